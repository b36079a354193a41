"""Elasticsearch `_bulk` request limits: the one place the `elasticsearch` output takes them from.

- `http.max_content_length` defaults to 100 MB (HTTP settings page); Elastic
  recommends bulk requests of a few MB to tens of MB, and Elastic Cloud and
  Amazon OpenSearch Service domains running Elasticsearch have the same 10 MiB
  cap on small instance sizes. We take 10 MiB; users may lower it in
  `batch: {max_bytes: ...}`, never raise it. A cluster configured lower answers
  413, and the output halves the request.
- No per-request document count limit.

The values are those of the pages below as this team knew them on the date given; this machine has no web
access, so the pages were not re-fetched for this change: re-check them when editing.
"""

from __future__ import annotations

from collector.output_limits import Limit, OutputLimits

CHECKED = "2026-12-06"
HTTP_SETTINGS = "https://www.elastic.co/guide/en/elasticsearch/reference/current/modules-network.html#http-settings"
AMAZON_QUOTAS = "https://docs.aws.amazon.com/opensearch-service/latest/developerguide/limits.html#network-limits"

MAX_REQUEST_BYTES = Limit(10 * 1024 * 1024, HTTP_SETTINGS, CHECKED)
MAX_RECORD_BYTES = Limit(10 * 1024 * 1024 - 1024, HTTP_SETTINGS, CHECKED)

LIMITS = OutputLimits(max_bytes=MAX_REQUEST_BYTES, max_record_bytes=MAX_RECORD_BYTES)
