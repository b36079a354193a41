"""The `trace_context` processor: X-Ray headers, W3C traceparent and keyed ids in log lines, as text or bytes."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.api import ComponentContext
from collector.events import LOGS, Batch
from collector_plugins.processors.trace_context.processor import TraceContextConfig, TraceContextProcessor, extract

XRAY = "1-5759e988-bd862e3fe1be46a994272793"
W3C = "5759e988bd862e3fe1be46a994272793"


def run(ctx: ComponentContext, messages: list[Any], **options: Any) -> list[dict[str, Any]]:
    processor = TraceContextProcessor(TraceContextConfig(type="trace_context", inputs=["app"], **options), ctx)
    records = [{"timestamp": 1.0, "message": m} for m in messages]
    out = processor.process(Batch(LOGS, records))
    assert out is not None
    return out.records


@pytest.mark.parametrize(
    ("line", "span", "sampled"),
    [
        # An access log with the X-Amzn-Trace-Id header the load balancer added.
        (
            f'10.0.0.1 - "GET /cart HTTP/1.1" 200 "X-Amzn-Trace-Id: Root={XRAY};Parent=53995c3f42cd8ad8;Sampled=1"',
            "53995c3f42cd8ad8",
            True,
        ),
        # ALB access log field: Self before Root; no Parent.
        (
            f'http 2024-01-01T00:00:00Z app/lb 1.2.3.4:80 "Self=1-67891234-12456789abcdef0123456789;Root={XRAY}" -',
            None,
            None,
        ),
        # Parent before Root, Sampled=0, Lineage after.
        (
            f"trace header Parent=53995C3F42CD8AD8;Root={XRAY.upper().replace('1-', '1-', 1)};Sampled=0;Lineage=a:1",
            "53995c3f42cd8ad8",
            False,
        ),
        # Lambda's environment variable in a log line.
        (f"_X_AMZN_TRACE_ID=Root={XRAY};Parent=53995c3f42cd8ad8;Sampled=1 handler start", "53995c3f42cd8ad8", True),
        (f"traceparent: 00-{W3C}-00f067aa0ba902b7-01 served", "00f067aa0ba902b7", True),
        (f'{{"msg":"ok","traceparent":"00-{W3C}-00f067aa0ba902b7-00"}}', "00f067aa0ba902b7", False),
        (f'{{"level":"info","xray_trace_id":"{XRAY}","msg":"paid"}}', None, None),
        (f"2024-01-01 INFO trace_id={W3C} span_id=00f067aa0ba902b7 paid", "00f067aa0ba902b7", None),
        (f'{{"traceId": "{W3C.upper()}", "spanId": "00F067AA0BA902B7"}}', "00f067aa0ba902b7", None),
        (f"X-Amzn-Trace-Id: {XRAY}", None, None),
    ],
)
def test_forms_found_in_text_and_bytes(
    ctx: ComponentContext, line: str, span: str | None, sampled: bool | None
) -> None:
    for message in (line, line.encode()):
        (record,) = run(ctx, [message], sampled_field="sampled")
        assert record["trace_id"] == W3C
        assert record["xray_trace_id"] == XRAY
        assert record.get("span_id") == span
        assert record.get("sampled") == sampled
        assert record["message"] == message  # untouched


@pytest.mark.parametrize(
    "line",
    [
        "GET /health 200",
        "a race condition in the scheduler",
        "TRACE entering loop",
        f"traceparent: ff-{W3C}-00f067aa0ba902b7-01",  # version ff is invalid
        f"traceparent: 00-{'0' * 32}-00f067aa0ba902b7-01",  # all-zero trace id
        f"traceparent: 00-{W3C}-{'0' * 16}-01",  # all-zero parent id
        f"trace_id={'0' * 32}",
        "Root=1-5759e988-bd862e3f",  # cut short
        f"request {W3C} finished",  # a bare hex string is not a trace id
    ],
)
def test_lines_without_trace_context_pass_unchanged(ctx: ComponentContext, line: str) -> None:
    (record,) = run(ctx, [line])
    assert record == {"timestamp": 1.0, "message": line}


def test_precedence_header_before_traceparent_before_keyed(ctx: ComponentContext) -> None:
    other = "4bf92f3577b34da6a3ce929d0e0e4736"
    line = f"trace_id={other} traceparent: 00-{other}-00f067aa0ba902b7-01 Root={XRAY}"
    assert extract(line) is not None and extract(line).trace_id == W3C  # type: ignore[union-attr]
    assert extract(f"trace_id={W3C} traceparent: 00-{other}-00f067aa0ba902b7-01").trace_id == other  # type: ignore[union-attr]


def test_field_names_sources_and_overwrite(ctx: ComponentContext) -> None:
    processor = TraceContextProcessor(
        TraceContextConfig(
            type="trace_context",
            inputs=["app"],
            source_fields=["message", "headers"],
            trace_id_field=None,
            xray_trace_id_field="traceId",
            span_id_field=None,
        ),
        ctx,
    )
    records = [
        {"message": "no trace here", "headers": f"X-Amzn-Trace-Id: Root={XRAY};Parent=53995c3f42cd8ad8"},
        {"message": "kept", "traceId": "1-00000000-000000000000000000000000", "headers": f"Root={XRAY}"},
        {"message": 42, "headers": None},
    ]
    processor.process(Batch(LOGS, records))
    assert (
        records[0] == {**records[0], "traceId": XRAY} and "trace_id" not in records[0] and "span_id" not in records[0]
    )
    assert records[1]["traceId"] == "1-00000000-000000000000000000000000"  # already set: left alone
    assert records[2] == {"message": 42, "headers": None}
    assert processor.counters() == {"records": 3, "with_trace": 1}
    (replaced,) = run(ctx, [f"Root={XRAY}"], overwrite=True)
    assert replaced["trace_id"] == W3C


def test_cost_bounded_on_long_lines_without_delimiters(ctx: ComponentContext) -> None:
    # A long token full of near-misses must not make the search quadratic.
    line = "Root=1-" + "a=" * 200_000 + f" Root={XRAY}"
    (record,) = run(ctx, [line])
    assert record["trace_id"] == W3C


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=400), st.binary(max_size=400)))
def test_fuzz_never_raises_and_ids_are_well_formed(message: str | bytes) -> None:
    context = extract(message)
    if context is not None:
        assert len(context.trace_id) == 32 and context.trace_id == context.trace_id.lower()
        int(context.trace_id, 16)
        assert context.span_id is None or (len(context.span_id) == 16 and int(context.span_id, 16) >= 0)
