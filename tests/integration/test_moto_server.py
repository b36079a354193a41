"""The moto fixture itself: a server on loopback that forgets everything between tests."""

from __future__ import annotations

from tests.moto import MotoServer


def test_server_is_on_loopback_and_reset_between_tests(moto: MotoServer) -> None:
    assert moto.endpoint_url.startswith("http://127.0.0.1:")
    logs = moto.client("logs")
    logs.create_log_group(logGroupName="g")
    assert [g["logGroupName"] for g in logs.describe_log_groups()["logGroups"]] == ["g"]
    moto.reset()
    assert logs.describe_log_groups()["logGroups"] == []
