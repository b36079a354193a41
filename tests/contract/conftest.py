"""Local peers the contract's lifecycle test points README examples at."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.plugins.webhook_receiver import WebhookReceiver


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver().start()
    yield receiver
    receiver.stop()
