"""OpenSearch `_bulk` request limits: the one place the `opensearch` output takes them from.

- Amazon OpenSearch Service caps an HTTP request body by instance size
  (`http.max_content_length`, "Network limits" on the quotas page): 10 MiB for
  the smallest instance types (t2/t3 micro, small, medium), 100 MiB for larger
  ones. We take 10 MiB, which every domain accepts; users may lower it in
  `batch: {max_bytes: ...}`, never raise it. A cluster that is configured
  lower answers 413, and the output halves the request.
- Self-managed OpenSearch defaults `http.max_content_length` to 100 MB, so
  10 MiB is safe there too (and within the 5 to 15 MiB bulk size the OpenSearch
  docs suggest for throughput).
- OpenSearch has no per-request document count limit.

The values are those of the pages below as this team knew them on the date given; this machine has no web
access, so the pages were not re-fetched for this change: re-check them when editing.
"""

from __future__ import annotations

from collector.output_limits import Limit, OutputLimits

CHECKED = "2026-12-06"
AMAZON_QUOTAS = "https://docs.aws.amazon.com/opensearch-service/latest/developerguide/limits.html#network-limits"
OPENSEARCH_HTTP = "https://opensearch.org/docs/latest/install-and-configure/configuring-opensearch/network-settings/"

MAX_REQUEST_BYTES = Limit(10 * 1024 * 1024, AMAZON_QUOTAS, CHECKED)
# One document and its action line must fit one request.
MAX_RECORD_BYTES = Limit(10 * 1024 * 1024 - 1024, AMAZON_QUOTAS, CHECKED)

LIMITS = OutputLimits(max_bytes=MAX_REQUEST_BYTES, max_record_bytes=MAX_RECORD_BYTES)
