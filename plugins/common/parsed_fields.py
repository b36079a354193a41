"""How a parsing processor puts what it extracted into a record, and tags what it could not parse.

Shared by `parse_json`, `parse_regex` and `parse_logfmt` so that they behave
alike: merged into the record root or stored under `target`; a parsed
`timestamp` that is not a number never replaces the record's float
`timestamp` but lands in `timestamp_raw` (feed it to `parse_timestamp`);
failures keep the record, tagged with the reason in `error_field` (the first
reason, when processors are chained).
"""

from __future__ import annotations

from typing import Any

RAW_TIMESTAMP_FIELD = "timestamp_raw"

Failures = list[tuple[dict[str, Any], str]]


def store_fields(record: dict[str, Any], fields: dict[str, Any], target: str | None, overwrite: bool) -> None:
    """Merge `fields` into `record` (target None) or store them as one object under `target`."""
    if target is not None:
        if overwrite or target not in record:
            record[target] = fields
        return
    if "timestamp" in fields:
        stamp = fields["timestamp"]
        if type(stamp) is not float and type(stamp) is not int:
            fields[RAW_TIMESTAMP_FIELD] = fields.pop("timestamp")
    if overwrite:
        record.update(fields)
    else:
        for key, value in fields.items():
            record.setdefault(key, value)


def tag_failures(failed: Failures, error_field: str | None) -> None:
    """Set `error_field` to the reason on each failed record (nothing when `error_field` is None).

    A record already tagged keeps its reason: the first failure is the cause (a line the container
    format could not read, then not logfmt, then without a time field), the later ones follow from it.
    """
    if error_field is not None:
        for record, reason in failed:
            if error_field not in record:
                record[error_field] = reason


def text_of(value: Any) -> str | None:
    """A field's value as text to parse: str as it is, bytes decoded (U+FFFD for invalid UTF-8), else None."""
    if type(value) is str:
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    return None
