"""`RecordFaultProxy`: the fault proxy in front of moto, plus per-record failures of PutRecordBatch / PutRecords.

moto accepts every record of a call. A real service may accept some and fail
others in the same call (`FailedPutCount` / `FailedRecordCount`). This proxy
makes that happen for real: the records a plan names are taken out of the
request before it reaches moto (so moto never stores them), and the answer
moto gives for the others is widened back to one result per original record,
the failed ones carrying `ErrorCode` / `ErrorMessage` as the API documents.
Whole-request faults (`fail_next`) keep working as in `FaultProxy`. Every call
is recorded, decoded, in `calls`.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from typing import Any

from tests.aws_faults import FaultProxy, ProxiedRequest

# call number of that operation (0-based), record index in the call -> error code, or None when accepted
Plan = Callable[[int, int], str | None]

_COUNT_FIELD = {"PutRecordBatch": "FailedPutCount", "PutRecords": "FailedRecordCount"}
_RESULTS_FIELD = {"PutRecordBatch": "RequestResponses", "PutRecords": "Records"}


class RecordFaultProxy(FaultProxy):
    def __post_init__(self) -> None:
        super().__post_init__()
        self.plan: Plan | None = None
        self.calls: dict[str, list[list[tuple[bytes, str | None]]]] = {"PutRecordBatch": [], "PutRecords": []}
        self._calls_lock = threading.Lock()

    def fail_records(self, plan: Plan) -> None:
        """From now on, `plan(call, index)` names the per-record error code of each record (None: accept)."""
        self.plan = plan

    def records(self, operation: str, call: int) -> list[bytes]:
        """The data of every record of one call, decoded."""
        return [data for data, _ in self.calls[operation][call]]

    def _forward(self, request: ProxiedRequest) -> tuple[int, list[tuple[str, str]], bytes]:
        operation = request.operation
        if operation not in _COUNT_FIELD:
            return super()._forward(request)
        body = json.loads(request.body)
        records: list[dict[str, Any]] = body["Records"]
        with self._calls_lock:
            call = len(self.calls[operation])
            self.calls[operation].append([(base64.b64decode(r["Data"]), r.get("PartitionKey")) for r in records])
        codes = [self.plan(call, i) if self.plan else None for i in range(len(records))]
        if not any(codes):
            return super()._forward(request)
        kept = [r for r, code in zip(records, codes, strict=True) if not code]
        answers: list[dict[str, Any]] = []
        status, headers = 200, [("Content-Type", "application/x-amz-json-1.1")]
        if kept:
            request.body = json.dumps({**body, "Records": kept}).encode()
            status, headers, payload = super()._forward(request)
            if status != 200:
                return status, headers, payload
            answers = json.loads(payload)[_RESULTS_FIELD[operation]]
        results = iter(answers)
        widened = [{"ErrorCode": code, "ErrorMessage": f"injected {code}"} if code else next(results) for code in codes]
        failed = sum(1 for code in codes if code)
        reply = {_COUNT_FIELD[operation]: failed, _RESULTS_FIELD[operation]: widened}
        if operation == "PutRecordBatch":
            reply["Encrypted"] = False
        headers = [(k, v) for k, v in headers if k.lower() not in ("x-amz-crc32", "content-length")]
        return status, headers, json.dumps(reply).encode()
