from __future__ import annotations

import io
import json
import logging
from pathlib import Path

from collector.log import RepeatLimiter, configure_logging, kv


def emit(fmt: str) -> str:
    stream = io.StringIO()
    configure_logging("info", fmt, stream)
    log = logging.getLogger("collector.test")
    log.info('component "x" failed', extra=kv(component="my out", count=3, empty=""))
    log.debug("hidden")
    return stream.getvalue()


def test_logfmt_one_line_with_quoting() -> None:
    line = emit("logfmt")
    assert line.count("\n") == 1
    assert line.startswith("ts=")
    assert 'level=info msg="component \\"x\\" failed" component="my out" count=3 empty=""' in line


def test_json_lines() -> None:
    record = json.loads(emit("json"))
    assert record["level"] == "info" and record["component"] == "my out" and record["count"] == 3


def test_tracebacks_stay_on_one_line() -> None:
    stream = io.StringIO()
    configure_logging("info", "logfmt", stream)
    try:
        raise ValueError("bad")
    except ValueError:
        logging.getLogger("collector.test").exception("failed")
    assert stream.getvalue().count("\n") == 1
    assert "Traceback" in stream.getvalue()


def test_repeat_limiter(monkeypatch) -> None:
    now = [100.0]
    monkeypatch.setattr("collector.log.time.monotonic", lambda: now[0])
    limiter = RepeatLimiter(interval=60)
    assert limiter.check("c", "E") == (True, True, 0)
    assert limiter.check("c", "E") == (False, False, 0)
    assert limiter.check("c", "E") == (False, False, 0)
    assert limiter.check("other", "E") == (True, True, 0)
    now[0] += 61
    assert limiter.check("c", "E") == (True, False, 2)


def test_secret_values_never_reach_the_log_traceback_included() -> None:
    from collector.config.secrets import REDACTED

    secret = "s3cr3t-Pa55word"
    for fmt in ("logfmt", "json"):
        stream = io.StringIO()
        configure_logging("info", fmt, stream, secrets={secret, ""})
        log = logging.getLogger("collector.test")
        try:
            raise ConnectionError(f"proxy http://user:{secret}@127.0.0.1:9 refused")
        except ConnectionError as exc:
            log.error("component failed; restarting it", exc_info=exc, extra=kv(cause=str(exc), url=secret))
        out = stream.getvalue()
        assert secret not in out, fmt
        assert out.count(REDACTED) >= 3, out  # two fields and the traceback's last line
    # Without the config's secrets the value would be written as it is.
    stream = io.StringIO()
    configure_logging("info", "logfmt", stream)
    logging.getLogger("collector.test").error("x", extra=kv(url=secret))
    assert secret in stream.getvalue()


def test_a_config_lists_the_values_of_every_secret_option(tmp_path: Path) -> None:
    from collector.config import load_config

    path = tmp_path / "collector.yaml"
    path.write_text(
        f"data_dir: {tmp_path}\n"
        "inputs:\n"
        "  fwd: {type: forward, listen: 127.0.0.1:0, shared_key: '0012345', self_hostname: me}\n"
        "outputs:\n"
        "  out: {type: blackhole, inputs: [fwd]}\n"
    )
    assert "0012345" in load_config(path).secret_values()
