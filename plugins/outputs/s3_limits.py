"""Amazon S3 limits the `s3` output works within: the one place it takes them from.

Checked against the S3 user guide and API reference on 2026-11-26:

- a multipart upload has at most 10,000 parts; each part but the last is 5 MiB
  to 5 GiB (the last may be smaller);
- a single PutObject carries at most 5 GiB (more than `MAX_BATCH_BYTES`); an
  object is at most 5 TiB;
- an object key is at most 1,024 bytes of UTF-8.

S3 has no limit on records per object, so the output declares no
`OutputLimits`: its object size is its own default (`batch.max_bytes`), which
users may raise or lower within `MAX_BATCH_BYTES`, a bound of ours (an object
is built in memory) well below every S3 limit.
"""

from __future__ import annotations

from collector.output_limits import Limit

CHECKED = "2026-11-26"
MULTIPART = "https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html"
KEYS = "https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-keys.html"

MIB = 1024 * 1024
GIB = 1024 * MIB

MAX_PARTS = Limit(10_000, MULTIPART, CHECKED)
MIN_PART_BYTES = Limit(5 * MIB, MULTIPART, CHECKED)
MAX_PART_BYTES = Limit(5 * GIB, MULTIPART, CHECKED)
MAX_KEY_BYTES = Limit(1024, KEYS, CHECKED)

# Ours, not S3's: one request (one object per partition) is held in memory, encoded and compressed.
DEFAULT_BATCH_BYTES = 16 * MIB
MAX_BATCH_BYTES = 1 * GIB
DEFAULT_BATCH_TIMEOUT = 300.0
