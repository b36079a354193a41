"""`collector tap NAME...`: print the records a running collector's components emit, from `GET /tap`.

Exit 0 at `--limit`, on Ctrl-C, when stdout closes (`| head`) or when the
collector ends the tap; 2 if a name matches no component (or a bad option);
1 if the collector cannot be reached.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import IO, Any

from collector.commands import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK
from collector.defaults import TAP_PATH


def tap_url(api: str, names: list[str], rate: float, sample: float) -> str:
    base = api if "://" in api else f"http://{api}"
    query = urllib.parse.urlencode([*(("component", n) for n in names), ("rate", rate), ("sample", sample)])
    return base.rstrip("/") + TAP_PATH + "?" + query


def format_text(line: dict[str, Any]) -> str:
    """`NAME kind: message` for logs, `NAME metrics: name value tags` for metrics, else the record as JSON."""
    record = line.get("record")
    head = f"{line.get('component')} {line.get('kind')}:"
    if isinstance(record, dict):
        if line.get("kind") == "logs" and "message" in record:
            return f"{head} {record['message']}"
        if line.get("kind") == "metrics" and "name" in record:
            return f"{head} {record['name']} {json.dumps(record.get('value'))} {json.dumps(record.get('tags') or {})}"
    return f"{head} {json.dumps(record, ensure_ascii=False)}"


def run_tap(
    api: str,
    names: list[str],
    rate: float,
    sample: float,
    limit: int | None,
    fmt: str,
    out: IO[str] | None = None,
) -> int:
    out = out or sys.stdout
    if not 0 < rate < float("inf") or not 0 < sample <= 1 or (limit is not None and limit < 1):
        print("collector tap: --rate must be > 0, --sample in (0, 1], --limit >= 1", file=sys.stderr)
        return EXIT_CONFIG
    url = tap_url(api, names, rate, sample)
    printed = 0
    try:
        try:
            response = urllib.request.urlopen(url, timeout=30)
        except urllib.error.HTTPError as exc:
            return _refused(exc)
        except (urllib.error.URLError, OSError) as exc:
            print(f"cannot reach the collector at {api}: {getattr(exc, 'reason', exc)}", file=sys.stderr)
            return EXIT_FAILURE
        with response:
            for raw in response:
                line = json.loads(raw)
                if "tap" in line:  # the collector ended the tap
                    print(
                        f"collector tap: ended ({line.get('reason')}); rate limited {line.get('rate_limited', 0)}, "
                        f"dropped {line.get('dropped', 0)}",
                        file=sys.stderr,
                    )
                    break
                out.write((format_text(line) if fmt == "text" else json.dumps(line, ensure_ascii=False)) + "\n")
                out.flush()
                printed += 1
                if limit is not None and printed >= limit:
                    break
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:
        # stdout closed (`collector tap x | head`): quietly, and without Python's own complaint at exit.
        if out is sys.stdout:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError) as exc:  # the stream broke off (the collector stopped)
        print(f"collector tap: the stream ended: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def _refused(exc: urllib.error.HTTPError) -> int:
    try:
        body = json.loads(exc.read())
    except ValueError:
        body = {}
    message = body.get("error") or f"HTTP {exc.code}"
    if body.get("components"):
        message += f" (components: {', '.join(body['components'])})"
    print(f"collector tap: {message}", file=sys.stderr)
    return EXIT_CONFIG if exc.code in (400, 404) else EXIT_FAILURE
