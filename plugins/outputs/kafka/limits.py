"""Kafka's size limits: the one place the `kafka` output takes them from.

Checked on 2026-12-06 against the Apache Kafka configuration reference:

- broker `message.max.bytes` (default 1048588): "the largest record batch size allowed by Kafka (after
  compression if compression is enabled)"; topic-level `max.message.bytes` has the same default;
- producer `max.request.size` (default 1048576, aiokafka's `max_request_size` too): a record whose serialised
  size (value, key, headers and the record batch's framing) exceeds it is refused by the client.

One record therefore travels alone in the worst case and must fit in 1 MiB with its framing: the record batch
header (61 bytes) and the record's own varint framing and attribute bytes. We count a record as its value, key
and header names and values, and keep 1 KiB for that framing, so a record at the limit is accepted by both
the client and a broker with default settings. Kafka has no per-request record count: aiokafka packs records
into per-partition batches itself (`max_batch_size`), so the driver's request size is ours to choose.
"""

from __future__ import annotations

from collector.output_limits import Limit, OutputLimits

CHECKED = "2026-12-06"
BROKER_CONFIGS = "https://kafka.apache.org/documentation/#brokerconfigs_message.max.bytes"
PRODUCER_CONFIGS = "https://kafka.apache.org/documentation/#producerconfigs_max.request.size"

MAX_REQUEST_SIZE = 1_048_576
"""The producer's `max.request.size` default (and aiokafka's `max_request_size`)."""
RECORD_FRAMING = 1024
"""Room kept for the record batch header and the record's framing within `MAX_REQUEST_SIZE`."""

MAX_RECORD_BYTES = Limit(MAX_REQUEST_SIZE - RECORD_FRAMING, PRODUCER_CONFIGS, CHECKED)

LIMITS = OutputLimits(max_record_bytes=MAX_RECORD_BYTES)
