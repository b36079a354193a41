"""`common/search_bulk` and the opensearch/elasticsearch outputs against scripted endpoints.

Checked here rather than against the real peers: the `_bulk` final-newline rule
(noida-db accepts a body without it), exact cuts at the request limit, 413
halving, Retry-After, the per-item classification, auth headers (basic, API
key, SigV4 for `es` and `aoss`), gzip and TLS with a private CA, and the
policies installed at start (neither peer implements ISM or ILM).
"""

from __future__ import annotations

import datetime
import gzip
import json
import ssl
import time
from pathlib import Path
from typing import Any

import pytest

from collector.events import LOGS, METRICS, Batch, Metric
from collector.send_result import Outcome
from collector.testing import component_context
from collector_plugins.common.search_bulk.bulk import BulkEncoder, id_prefix, read_items
from collector_plugins.common.search_bulk.settings import SearchSettings
from collector_plugins.outputs.elasticsearch.output import ElasticsearchConfig, ElasticsearchOutput
from collector_plugins.outputs.opensearch import limits as os_limits
from collector_plugins.outputs.opensearch.output import OpenSearchConfig, OpenSearchOutput
from tests.plugins.bulk_fakes import Answer, Endpoint, Seen, bulk_ok


def os_config(endpoint: str, **body: Any) -> OpenSearchConfig:
    return OpenSearchConfig.model_validate({"type": "opensearch", "inputs": ["x"], "endpoint": endpoint, **body})


def named(records: list[Any], first: int = 0, kind: str = LOGS) -> Batch:
    batch = Batch(kind, records)  # type: ignore[arg-type]
    batch.record_origins = [f"0190-0-10-{i}" for i in range(first, first + len(records))]
    return batch


def pairs(body: bytes) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    lines = body.split(b"\n")
    assert lines[-1] == b"", "the body ends with a newline"
    lines = lines[:-1]
    return [(json.loads(lines[i]), json.loads(lines[i + 1])) for i in range(0, len(lines), 2)]


# -- the body --------------------------------------------------------------------------------------------


def test_every_line_ends_with_a_newline_the_last_one_included() -> None:
    encoder = BulkEncoder(os_config("http://h", index="logs"), {"host": "n1"}, "out")
    lines = encoder.lines(LOGS, [{"message": "a"}, {"message": b"b\nc"}], ["o-0", "o-1"])
    body = b"".join(lines)
    assert body.endswith(b"}\n") and body.count(b"\n") == 4
    (a1, _), (_, d2) = pairs(body)
    assert a1 == {"create": {"_index": "logs", "_id": id_prefix("n1", "out") + "o-0"}}
    assert d2["message"] == "b\nc"  # bytes as text; the newline escaped inside the JSON string


def test_ids_name_host_output_and_buffer_position_and_nothing_else() -> None:
    a = BulkEncoder(os_config("http://h", index="logs"), {"host": "n1"}, "out")
    b = BulkEncoder(os_config("http://h", index="other"), {"host": "n1"}, "out")
    c = BulkEncoder(os_config("http://h", index="logs"), {"host": "n2"}, "out")
    ids = [pairs(b"".join(e.lines(LOGS, [{"message": "x"}], ["o-0"])))[0][0]["create"]["_id"] for e in (a, b, c)]
    assert ids[0] == ids[1] != ids[2]  # the index does not matter; the host does
    again = pairs(b"".join(a.lines(LOGS, [{"message": "different content"}], ["o-0"])))[0][0]
    assert again["create"]["_id"] == ids[0]  # same place in the buffer, same id


def test_no_ids_without_origins_or_with_document_id_none() -> None:
    stable = BulkEncoder(os_config("http://h", index="logs"), {"host": "n"}, "o")
    none = BulkEncoder(os_config("http://h", index="logs", document_id="none"), {"host": "n"}, "o")
    assert pairs(b"".join(stable.lines(LOGS, [{"message": "x"}], None)))[0][0] == {"create": {"_index": "logs"}}
    assert pairs(b"".join(none.lines(LOGS, [{"message": "x"}], ["o-0"])))[0][0] == {"create": {"_index": "logs"}}


def test_index_templates_take_dates_fields_and_host_and_stay_valid_index_names() -> None:
    ts = datetime.datetime(2026, 12, 6, 23, 59, 59, 250000, tzinfo=datetime.UTC).timestamp()
    encoder = BulkEncoder(os_config("http://h", index="{app}-{host}-{%Y.%m.%d}", op="index"), {"host": "Node1"}, "o")
    records = [{"message": "x", "timestamp": ts, "app": 'My App/"x"'}, {"message": "y", "timestamp": ts}]
    (a1, d1), (a2, _) = pairs(b"".join(encoder.lines(LOGS, records, ["o-0", "o-1"])))
    assert a1["index"]["_index"] == "my_app__x_-node1-2026.12.06"
    assert a2["index"]["_index"] == "unknown-node1-2026.12.06"
    assert d1["@timestamp"] == "2026-12-06T23:59:59.250Z"
    assert d1["timestamp"] == ts and d1["message"] == "x"


def test_a_records_own_timestamp_field_wins_and_metrics_get_theirs() -> None:
    encoder = BulkEncoder(os_config("http://h", index="m"), {"host": "n"}, "o")
    metric = Metric("cpu", "gauge", 1.5, {"core": "0"}, 1796515200.0)
    ((_, doc),) = pairs(b"".join(encoder.lines(METRICS, [metric], ["o-0"])))
    assert doc["@timestamp"] == "2026-12-06T00:00:00.000Z" and doc["name"] == "cpu" and doc["tags"] == {"core": "0"}
    ((_, own),) = pairs(b"".join(encoder.lines(LOGS, [{"@timestamp": "mine", "message": "x"}], ["o-0"])))
    assert own["@timestamp"] == "mine"
    ((_, empty),) = pairs(b"".join(encoder.lines(LOGS, [{}], ["o-0"])))
    assert abs(datetime.datetime.fromisoformat(empty["@timestamp"]).timestamp() - time.time()) < 5


def test_bad_index_templates_and_data_stream_options_are_refused() -> None:
    with pytest.raises(ValueError, match="lower case"):
        os_config("http://h", index="Logs-{%Y}")
    with pytest.raises(ValueError, match="op: create"):
        os_config("http://h", data_stream=True, op="index")
    with pytest.raises(ValueError, match="basic"):
        os_config("http://h", auth={"type": "basic", "user": "u"})


# -- reading the answer ------------------------------------------------------------------------------------


def _answer(*statuses: int) -> bytes:
    items = []
    for s in statuses:
        item: dict[str, Any] = {"status": s}
        if s >= 300:
            item["error"] = {"type": f"t{s}", "reason": f"r{s}"}
        items.append({"create": item})
    return json.dumps({"errors": True, "items": items}).encode()


def test_each_item_is_classified() -> None:
    read = read_items(_answer(201, 409, 429, 500, 503, 400, 404), 7, "create", True)
    assert not isinstance(read, str)
    outcomes, reasons, throttled, present = read
    ok, retry, drop = Outcome.OK, Outcome.RETRY, Outcome.DROP
    assert outcomes == [ok, ok, retry, retry, retry, drop, drop]
    assert throttled and present == 1
    assert reasons[5] == "400 t400: r400"


def test_a_409_is_a_rejection_when_the_id_is_not_ours_or_the_op_overwrites() -> None:
    for op, own in (("create", False), ("index", True)):
        read = read_items(_answer(409), 1, op, own)
        assert not isinstance(read, str) and read[0] == [Outcome.DROP]


def test_an_answer_that_does_not_match_the_request_is_a_reason_to_resend() -> None:
    assert isinstance(read_items(_answer(201), 2, "create", True), str)
    assert isinstance(read_items(b"<html>", 1, "create", True), str)


# -- whole requests against a scripted endpoint --------------------------------------------------------------


async def _output(tmp_path: Path, endpoint: Endpoint, cls: Any = OpenSearchOutput, **body: Any) -> Any:
    config_cls = OpenSearchConfig if cls is OpenSearchOutput else ElasticsearchConfig
    config = config_cls.model_validate(
        {"type": cls.type_name, "inputs": ["x"], "endpoint": endpoint.url, "index": "t", **body}
    )
    output = cls(config, component_context("out", tmp_path))
    await output.start()
    return output


async def test_bodies_are_cut_exactly_at_the_limit(tmp_path: Path) -> None:
    endpoint = await Endpoint().start()
    output = await _output(tmp_path, endpoint)
    try:
        records = [{"message": "x" * 100} for _ in range(10)]
        line = len(output.encoder.lines(LOGS, records[:1], ["0190-0-10-0"])[0])
        output.max_body = 5 * line  # exactly five lines fit
        assert (await output.send(named(records))).per_record == [Outcome.OK] * 10
        assert [len(s.body) for s in endpoint.seen] == [5 * line, 5 * line]
        endpoint.seen.clear()
        output.max_body = 5 * line - 1  # one byte short: four per body
        await output.send(named(records))
        assert [len(s.body) // line for s in endpoint.seen] == [4, 4, 2]
    finally:
        await output.stop()
        await endpoint.stop()


async def test_the_declared_limit_is_ten_mib_and_batch_max_bytes_lowers_it(tmp_path: Path) -> None:
    endpoint = await Endpoint().start()
    default = await _output(tmp_path, endpoint)
    lowered = await _output(tmp_path, endpoint, batch={"max_bytes": "1MiB"})
    try:
        assert os_limits.MAX_REQUEST_BYTES.value == 10 * 1024 * 1024
        assert os_limits.MAX_REQUEST_BYTES.source.startswith("https://docs.aws.amazon.com/opensearch-service/")
        assert default.max_body == 10 * 1024 * 1024 and lowered.max_body == 1024 * 1024
    finally:
        await default.stop()
        await lowered.stop()
        await endpoint.stop()


async def test_a_413_halves_the_request_down_to_one_document(tmp_path: Path) -> None:
    def answer(seen: Seen) -> Answer:
        if seen.body.count(b"\n") > 4 or b"huge" in seen.body:  # more than two documents, or the huge one
            return 413, {}, b'{"error":"too large"}'
        return bulk_ok(seen)

    endpoint = await Endpoint(answer).start()
    output = await _output(tmp_path, endpoint)
    try:
        records = [{"message": f"m{i}"} for i in range(7)]
        records[5]["message"] = "huge"
        result = await output.send(named(records))
        assert result.per_record == [Outcome.OK] * 5 + [Outcome.DROP, Outcome.OK]
        assert result.record_reasons is not None and "413" in result.record_reasons[5]
        accepted = [s for s in endpoint.seen if s.body.count(b"\n") <= 4 and b"huge" not in s.body]
        delivered = [d["message"] for s in accepted for _, d in pairs(s.body)]
        assert sorted(delivered) == sorted(f"m{i}" for i in range(7) if i != 5)
        assert output.counters()["requests_split_413"] >= 3
    finally:
        await output.stop()
        await endpoint.stop()


@pytest.mark.parametrize(
    ("status", "outcome", "throttled"),
    [(429, Outcome.RETRY, True), (503, Outcome.RETRY, False), (403, Outcome.DROP, False)],
)
async def test_whole_request_answers_keep_retry_after(
    tmp_path: Path, status: int, outcome: Outcome, throttled: bool
) -> None:
    endpoint = await Endpoint(lambda s: (status, {"Retry-After": "7"}, b'{"error":"x"}')).start()
    output = await _output(tmp_path, endpoint)
    try:
        result = await output.send(named([{"message": "a"}]))
        assert (result.outcome, result.throttled) == (outcome, throttled)
        if outcome is Outcome.RETRY:
            assert result.retry_after == 7.0
        assert str(status) in result.reason
    finally:
        await output.stop()
        await endpoint.stop()


async def test_gzip_basic_auth_and_the_filter_path(tmp_path: Path) -> None:
    endpoint = await Endpoint().start()
    output = await _output(tmp_path, endpoint, compression="gzip", auth={"type": "basic", "user": "u", "password": "p"})
    try:
        await output.send(named([{"message": "a" * 1000}]))
        (seen,) = endpoint.seen
        assert seen.headers["Content-Encoding"] == "gzip" and len(seen.raw) < len(seen.body)
        assert gzip.decompress(seen.raw) == seen.body
        assert seen.headers["Authorization"] == "Basic dTpw"
        assert seen.headers["Content-Type"] == "application/x-ndjson"
        assert seen.path == "/_bulk" and "filter_path=" in seen.query
    finally:
        await output.stop()
        await endpoint.stop()


async def test_elasticsearch_api_key_and_ilm_policy(tmp_path: Path) -> None:
    endpoint = await Endpoint(
        lambda s: (200, {}, b'{"acknowledged":true}') if s.method == "PUT" else bulk_ok(s)
    ).start()
    policy = {"policy": {"phases": {"delete": {"min_age": "7d", "actions": {"delete": {}}}}}}
    template = {"index_patterns": ["t*"], "data_stream": {}}
    output = await _output(
        tmp_path,
        endpoint,
        ElasticsearchOutput,
        auth={"type": "api_key", "token": "aWQ6a2V5"},
        ilm_policy={"name": "logs-7d", "body": policy},
        index_template={"name": "logs", "body": template},
    )
    try:
        await output.send(named([{"message": "a"}]))
        puts = [(s.path, json.loads(s.body)) for s in endpoint.seen if s.method == "PUT"]
        assert puts == [("/_index_template/logs", template), ("/_ilm/policy/logs-7d", policy)]
        assert all(s.headers["Authorization"] == "ApiKey aWQ6a2V5" for s in endpoint.seen)
    finally:
        await output.stop()
        await endpoint.stop()


async def test_an_existing_ism_policy_is_kept_and_a_refused_install_fails_start(tmp_path: Path) -> None:
    endpoint = await Endpoint(lambda s: (409, {}, b'{"error":"exists"}')).start()
    policy = {"policy": {"description": "d", "default_state": "hot", "states": []}}
    output = await _output(tmp_path, endpoint, ism_policy={"name": "p", "body": policy})
    await output.stop()
    assert [s.path for s in endpoint.seen] == ["/_plugins/_ism/policies/p"]
    from collector.send_result import PermanentError

    with pytest.raises(PermanentError, match="409"):
        await _output(tmp_path, endpoint, index_template={"name": "t", "body": {}})
    await endpoint.stop()


@pytest.mark.parametrize("service", ["es", "aoss"])
async def test_sigv4_signs_with_botocore_for_domains_and_serverless(
    tmp_path: Path, service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    endpoint = await Endpoint().start()
    output = await _output(
        tmp_path, endpoint, compression="gzip", auth={"type": "sigv4", "region": "eu-west-1", "service": service}
    )
    try:
        await output.send(named([{"message": "a"}]))
        (seen,) = endpoint.seen
        auth = seen.headers["Authorization"]
        assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
        assert f"/eu-west-1/{service}/aws4_request" in auth
        assert "x-amz-date" in {k.lower() for k in seen.headers}
        if service == "aoss":
            import hashlib

            assert seen.headers["x-amz-content-sha256"] == hashlib.sha256(seen.raw).hexdigest()  # the gzip bytes
            assert "x-amz-content-sha256" in auth
        # The signature verifies: botocore re-signing the same request gives the same header.
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        signed = auth.split("SignedHeaders=")[1].split(",")[0].split(";")
        keep = {k: v for k, v in seen.headers.items() if k.lower() in signed and k.lower() != "host"}
        again = AWSRequest(method="POST", url=f"{endpoint.url}{seen.path}?{seen.query}", data=seen.raw, headers=keep)
        signer = SigV4Auth(Credentials("AKIDEXAMPLE", "secret"), service, "eu-west-1")
        again.context["timestamp"] = seen.headers["X-Amz-Date"]
        canonical = signer.canonical_request(again)
        signature = signer.signature(signer.string_to_sign(again, canonical), again)
        assert auth.endswith(f"Signature={signature}")
    finally:
        await output.stop()
        await endpoint.stop()


def _private_ca(tmp_path: Path) -> tuple[Path, ssl.SSLContext]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "ca.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    return cert_file, server


async def test_tls_with_a_private_ca(tmp_path: Path) -> None:
    ca_file, server_context = _private_ca(tmp_path)
    endpoint = await Endpoint().start(ssl_context=server_context)
    trusted = await _output(tmp_path, endpoint, tls={"ca_file": str(ca_file)})
    untrusted = await _output(tmp_path, endpoint)
    try:
        assert (await trusted.send(named([{"message": "a"}]))).outcome is Outcome.OK
        with pytest.raises(Exception, match=r"(?i)certificate"):
            await untrusted.send(named([{"message": "a"}]))
        assert len(endpoint.seen) == 1
    finally:
        await trusted.stop()
        await untrusted.stop()
        await endpoint.stop()


def test_settings_are_shared_by_both_plugins() -> None:
    assert issubclass(OpenSearchConfig, SearchSettings) and issubclass(ElasticsearchConfig, SearchSettings)
