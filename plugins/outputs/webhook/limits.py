"""Webhook limits: one notification per request.

Checked on 2026-12-06: a Slack incoming webhook posts one message per request
(https://api.slack.com/messaging/webhooks), and a Microsoft Teams connector one card per request
(https://learn.microsoft.com/en-us/microsoftteams/platform/webhooks-and-connectors/how-to/connectors-using).
A generic JSON receiver gets the same: one request is one notification, so a failed request is
retried alone and a rejected one dead-lettered alone.
"""

from __future__ import annotations

from collector.output_limits import Limit, OutputLimits

CHECKED = "2026-12-06"
SLACK = "https://api.slack.com/messaging/webhooks"

MAX_EVENTS = Limit(1, SLACK, CHECKED)
LIMITS = OutputLimits(max_events=MAX_EVENTS)
