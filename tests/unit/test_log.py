from __future__ import annotations

import io
import json
import logging

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
