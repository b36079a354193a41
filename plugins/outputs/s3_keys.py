"""Object keys of the `s3` output: a partitioned prefix per record, a name per request.

A key is `PREFIX + NAME + EXTENSION`:

- `PREFIX` is a record template (`common.record_templates`), usually Hive-style
  partitions from the event time plus host or record parts:
  `logs/year={%Y}/month={%m}/day={%d}/hour={%H}/host={host}/`. A request whose
  records render to several prefixes (it spans an hour boundary) becomes one
  object per prefix, records in their order.
  Every value put into the prefix (record fields and host facts) is escaped
  (`common.key_escape`): it keeps S3's safe characters and percent-encodes
  the rest, `/` included, so a value can never add a segment, spoof a Hive
  partition (`x/year=1999`), be a `.`/`..` step or carry NUL, TAB or newline;
  distinct values stay distinct. A key therefore always has as many `/` as
  the template's own text.
- `NAME` is the request's `origin` (see `collector.output_driver`): the same when the
  same buffered data is sent again after a retry, a rewind or a restart, so a
  replay overwrites the object it wrote before instead of adding a duplicate.
  It starts with the hex time the data was buffered, so names sort by age.
  Without an origin (records resent alone) a random name is used: still
  at-least-once, just not idempotent.

Grouping is on the hot path (every record of every request): a prefix that
depends on the event time and host facts only is grouped by time bucket (one
integer division per record) and rendered once per bucket; only prefixes with
record fields render per record.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from collector_plugins.common.key_escape import escape_value
from collector_plugins.common.record_templates import RecordTemplate, parse_record_template, template_names
from collector_plugins.outputs.s3_limits import MAX_KEY_BYTES

# Seconds in the smallest time unit a prefix may change with, per date directive.
_STEP = {"%S": 1, "%M": 60, "%H": 3600, "%d": 86400, "%m": 86400, "%Y": 86400}


class KeyTooLongError(ValueError):
    """A rendered key is longer than S3 allows."""


def check_prefix(prefix: str) -> str:
    """Config check of a key prefix template: its syntax, and no `.`/`..` or empty segment of its own text."""
    parse_record_template(prefix)
    if prefix.startswith("/"):
        raise ValueError("prefix must not start with '/' (S3 keys have no leading slash)")
    for segment in prefix.split("/")[:-1]:
        if segment in ("", ".", ".."):
            raise ValueError(
                f"prefix {prefix!r} has an empty, '.' or '..' segment: S3 keeps them literally, but tools that "
                "copy keys to disk or build URLs from them do not"
            )
    return prefix


class ObjectKeys:
    """Splits a request's records by key prefix and names the objects."""

    def __init__(self, prefix: str, host: dict[str, str], extension: str) -> None:
        self.prefix = prefix
        self.extension = extension
        self.template = RecordTemplate(prefix, host, escape=escape_value)
        names = template_names(prefix)
        times = [n for n in names if n in _STEP]
        self._fields = [n for n in names if n not in _STEP and n not in host]
        self._step = min((_STEP[n] for n in times), default=0)

    def partition(self, records: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        """Records by rendered prefix, order kept within each prefix."""
        if not records:
            return {}
        template = self.template
        if template.static:
            return {template.render(records[0]): list(records)}
        if self._fields or not self._step:
            return template.group(records)
        step = self._step
        try:
            buckets = [int(r["timestamp"] // step) for r in records]
        except (KeyError, TypeError, ValueError, OverflowError):
            return template.group(records)  # a record without a usable time
        first = buckets[0]
        if buckets.count(first) == len(buckets):
            return {template.render(records[0]): list(records)}
        return self._group(records, buckets)

    def _group(self, records: Sequence[dict[str, Any]], buckets: list[int]) -> dict[str, list[dict[str, Any]]]:
        """One pass; a record with a time bucket seen before is not rendered again."""
        rendered: dict[int, str] = {}
        groups: dict[str, list[dict[str, Any]]] = {}
        render = self.template.render
        for bucket, record in zip(buckets, records, strict=True):
            key = rendered.get(bucket)
            if key is None:
                key = rendered[bucket] = render(record)
            group = groups.get(key)
            if group is None:
                groups[key] = [record]
            else:
                group.append(record)
        return groups

    def key(self, prefix: str, origin: str | None) -> str:
        """The object key for records under `prefix` sent with `origin`."""
        name = origin if origin else f"r{uuid.uuid4().hex}"
        key = f"{prefix}{name}{self.extension}"
        if len(key.encode("utf-8")) > MAX_KEY_BYTES.value:
            raise KeyTooLongError(
                f"object key is {len(key.encode('utf-8'))} bytes, more than S3's {MAX_KEY_BYTES.value}: {key[:80]}..."
            )
        return key
