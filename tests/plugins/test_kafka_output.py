"""`kafka` output against a real Kafka API (noida-db), read back with an aiokafka consumer group.

The real output driver (memory buffer, dead letters) sends; every test checks what a consumer of the topic
reads: every codec, keys to partitions, headers, topic templates, a broker stopped and restarted mid-run
(nothing lost), and records the broker or Kafka's rules refuse for good (dead-lettered, the rest delivered).
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import errors as kafka_errors
from aiokafka.partitioner import DefaultPartitioner
from pydantic import ValidationError

from collector.send_result import Outcome
from collector.testing import wait_for
from collector_plugins.outputs.kafka import limits as kafka_limits
from collector_plugins.outputs.kafka.errors import outcome_of
from collector_plugins.outputs.kafka.output import KafkaConfig, KafkaOutput, valid_topic
from collector_plugins.outputs.kafka.security import KafkaSasl, msk_token_provider, producer_settings
from tests.kafka_broker import KafkaBroker
from tests.plugins.aws_stream_fakes import DriverHarness


def harness(tmp_path: Path, broker: KafkaBroker, **body: Any) -> DriverHarness:
    config = {
        "type": "kafka",
        "bootstrap_servers": [broker.bootstrap],
        "topic": "logs",
        "batch": {"timeout": 0},
        "request_timeout": "3s",
        **body,
    }
    return DriverHarness(tmp_path, KafkaOutput, config)


def values(messages: list[Any]) -> list[dict[str, Any]]:
    return [orjson.loads(m.value) for m in messages]


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
async def test_every_codec_delivers_every_record(tmp_path: Path, kafka_broker: KafkaBroker, codec: str) -> None:
    h = harness(tmp_path, kafka_broker, compression=codec)
    records = [{"message": f"line {i} " + "x" * (i % 50), "n": i} for i in range(500)]
    await h.run(records[:250], records[250:])
    assert h.output.records_sent == 500 and h.dead() == []
    got = values(await kafka_broker.read("logs", 500))
    assert sorted(r["n"] for r in got) == list(range(500))
    assert got[0] == records[0]


async def test_a_key_keeps_its_partition_and_keys_spread(tmp_path: Path, kafka_broker: KafkaBroker) -> None:
    await kafka_broker.create_topic("keyed", 4)
    h = harness(tmp_path, kafka_broker, topic="keyed", key="{svc}")
    records = [{"message": str(i), "svc": f"svc{i % 8}", "n": i} for i in range(400)]
    await h.run(records)
    messages = await kafka_broker.read("keyed", 400)
    assert len(messages) == 400
    partitions: dict[bytes, set[int]] = {}
    for m in messages:
        partitions.setdefault(m.key, set()).add(m.partition)
        assert m.key == orjson.loads(m.value)["svc"].encode()
        assert m.partition == DefaultPartitioner()(m.key, [0, 1, 2, 3], [0, 1, 2, 3])  # murmur2, as Java's
    assert all(len(p) == 1 for p in partitions.values())  # one key, one partition
    assert len({p for ps in partitions.values() for p in ps}) > 1  # eight keys over four partitions
    # Order is kept per key.
    for key in partitions:
        ns = [orjson.loads(m.value)["n"] for m in messages if m.key == key]
        assert ns == sorted(ns)


async def test_topic_templates_and_headers_from_fields(tmp_path: Path, kafka_broker: KafkaBroker) -> None:
    h = harness(
        tmp_path,
        kafka_broker,
        topic="logs-{team}",
        headers={"service": "svc", "pod": "k8s.pod", "code": "status"},
        format="raw",
    )
    records = [
        {"message": "a", "team": "blue", "svc": "api", "k8s": {"pod": "p-1"}, "status": 503},
        {"message": b"b\xff", "team": "red", "svc": "db"},
        {"message": "c", "svc": "web"},  # no team: the template's "unknown"
    ]
    await h.run(records)
    blue = await kafka_broker.read("logs-blue", 1, group="b")
    red = await kafka_broker.read("logs-red", 1, group="r")
    unknown = await kafka_broker.read("logs-unknown", 1, group="u")
    assert [m.value for m in blue] == [b"a"] and [m.value for m in red] == [b"b\xff"]
    assert [m.value for m in unknown] == [b"c"]
    assert dict(blue[0].headers) == {"service": b"api", "pod": b"p-1", "code": b"503"}
    assert dict(red[0].headers) == {"service": b"db"}  # fields it lacks are no headers


async def test_invalid_topics_and_oversized_records_are_dead_lettered_the_rest_delivered(
    tmp_path: Path, kafka_broker: KafkaBroker
) -> None:
    h = harness(tmp_path, kafka_broker, topic="t-{svc}", format="raw")
    limit = kafka_limits.MAX_RECORD_BYTES.value
    records = [
        {"message": "ok", "svc": "a"},
        {"message": "bad", "svc": "no spaces!"},
        {"message": "x" * limit, "svc": "a"},  # exactly at the limit: delivered
        {"message": "y" * (limit + 1), "svc": "a"},  # one byte over: dead-lettered by the driver
    ]
    await h.run(records)
    dead = h.dead()
    assert sorted(d["record"]["message"][:3] for d in dead) == ["bad", "yyy"]
    assert any("invalid topic name 'no spaces!'" in d["reason"] or "t-no spaces!" in d["reason"] for d in dead)
    got = await kafka_broker.read("t-a", 2)
    assert [len(m.value) for m in got] == [2, limit]


@pytest.mark.slow
async def test_broker_stopped_and_restarted_mid_run_loses_nothing(tmp_path: Path, kafka_broker: KafkaBroker) -> None:
    h = harness(
        tmp_path, kafka_broker, topic="durable", linger="1ms", retry={"initial_backoff": 0.05, "max_backoff": 0.5}
    )
    await h.output.start()
    task = h.start()
    total = 0
    try:
        for round_ in range(6):
            await h.feed([{"message": f"r{round_}", "n": total + i} for i in range(200)])
            total += 200
            if round_ == 2:
                await asyncio.to_thread(kafka_broker.stop)  # records keep coming while the broker is away
            if round_ == 4:
                # The outage was met: requests failed and were retried while the broker was away (records not
                # acknowledged, or, when the producer had been replaced, a new one unable to connect).
                await wait_for(lambda: h.stats.retries > 0, timeout=20)
                await asyncio.to_thread(kafka_broker.start)
        await wait_for(h.settled, timeout=60)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await h.output.stop()
    assert h.dead() == [] and h.stats.retries > 0
    got = [orjson.loads(m.value)["n"] for m in await kafka_broker.read("durable", total, timeout=30)]
    assert set(got) == set(range(total)), f"lost {sorted(set(range(total)) - set(got))[:10]}"
    print(f"delivered {total}, read {len(got)}, duplicates {len(got) - len(set(got))}")


def test_error_classification() -> None:
    for exc in (
        kafka_errors.MessageSizeTooLargeError(),
        kafka_errors.RecordTooLargeError(),
        kafka_errors.InvalidTopicError(),
        kafka_errors.TopicAuthorizationFailedError(),
        kafka_errors.SaslAuthenticationFailed(),
    ):
        assert outcome_of(exc) is Outcome.DROP, exc
    for exc in (
        kafka_errors.NotLeaderForPartitionError(),
        kafka_errors.RequestTimedOutError(),
        kafka_errors.KafkaConnectionError(),
        kafka_errors.KafkaTimeoutError(),
        kafka_errors.LeaderNotAvailableError(),
        kafka_errors.NotEnoughReplicasError(),
        kafka_errors.UnknownTopicOrPartitionError(),
        kafka_errors.KafkaError("never heard of it"),
    ):
        assert outcome_of(exc) is Outcome.RETRY, exc


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("logs", True),
        ("a.b_c-D9", True),
        ("x" * 249, True),
        ("x" * 250, False),
        ("", False),
        ("..", False),
        ("a b", False),
        ("é", False),
    ],
)
def test_topic_names_follow_kafkas_rule(name: str, ok: bool) -> None:
    assert valid_topic(name) is ok


def test_security_settings() -> None:
    assert producer_settings(None, None) == {"security_protocol": "PLAINTEXT"}
    sasl = KafkaSasl(mechanism="SCRAM-SHA-512", username="u", password="p")  # type: ignore[arg-type]
    settings = producer_settings(None, sasl)
    assert settings == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "u",
        "sasl_plain_password": "p",
    }
    config = KafkaConfig.model_validate(
        {
            "type": "kafka",
            "inputs": ["a"],
            "bootstrap_servers": ["b:9092"],
            "topic": "t",
            "tls": {"verify": False},
            "sasl": {"mechanism": "PLAIN", "username": "u", "password": "p"},
        }
    )
    settings = producer_settings(config.tls, config.sasl)
    assert settings["security_protocol"] == "SASL_SSL" and settings["ssl_context"].check_hostname is False
    with pytest.raises(ValidationError, match="needs `username` and `password`"):
        KafkaSasl(mechanism="PLAIN")
    with pytest.raises(ValidationError, match="no `username`"):
        KafkaSasl(mechanism="AWS_MSK_IAM", username="u")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="server_name"):
        KafkaConfig.model_validate(
            {
                "type": "kafka",
                "inputs": ["a"],
                "bootstrap_servers": ["b:9092"],
                "topic": "t",
                "tls": {"server_name": "x"},
            }
        )
    with pytest.raises(ValidationError, match="invalid placeholder"):
        KafkaConfig.model_validate(
            {"type": "kafka", "inputs": ["a"], "bootstrap_servers": ["b:9092"], "topic": "{a b}"}
        )


async def test_msk_iam_tokens_are_signed_locally_with_the_credential_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("aws_msk_iam_sasl_signer")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    settings = producer_settings(None, KafkaSasl(mechanism="AWS_MSK_IAM", region="eu-west-1"))
    assert settings["security_protocol"] == "SASL_SSL" and settings["sasl_mechanism"] == "OAUTHBEARER"
    token = await settings["sasl_oauth_token_provider"].token()
    url = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    assert url.startswith("https://kafka.eu-west-1.amazonaws.com/?Action=kafka-cluster%3AConnect")
    assert "X-Amz-Credential=AKIDEXAMPLE" in url and "X-Amz-Signature=" in url
    with pytest.raises(RuntimeError, match="needs `region`"):
        monkeypatch.delenv("AWS_REGION", raising=False)
        monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
        msk_token_provider(KafkaSasl(mechanism="AWS_MSK_IAM"))


async def test_a_producer_cancelled_while_starting_is_closed(tmp_path: Path) -> None:
    """A stop or reload that cancels a send while the producer connects must not leak the producer."""
    import gc
    import socket
    import warnings

    silent = socket.socket()  # accepts connections (the kernel's backlog) and never answers a request
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        port = silent.getsockname()[1]
        body = {"type": "kafka", "bootstrap_servers": [f"127.0.0.1:{port}"], "topic": "t", "request_timeout": "30s"}
        output = DriverHarness(tmp_path, KafkaOutput, body).output
        starting = asyncio.create_task(output.producer())  # type: ignore[attr-defined]
        await asyncio.sleep(0.3)
        assert not starting.done()  # still waiting for the broker's first answer
        starting.cancel()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            await asyncio.gather(starting, return_exceptions=True)
            gc.collect()
        assert not [w for w in caught if "Unclosed AIOKafkaProducer" in str(w.message)]
        await output.stop()
    finally:
        silent.close()
