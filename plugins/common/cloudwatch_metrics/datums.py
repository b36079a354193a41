"""Metric records -> PutMetricData datums, checked against the API's limits; datums -> requests.

One record becomes one datum, except a distribution with more than 150
distinct values, which becomes several datums of at most 150 values (CloudWatch
merges datums of the same metric and time, so nothing changes meaning):

- counter, gauge: `Value`;
- distribution: `Values` / `Counts` (percentiles stay available) together
  with the `StatisticValues` of those values (as the CloudWatch agent sends
  them: the API takes both in one datum), or with `distribution:
  statistic_set` the `StatisticValues` alone; a distribution that only carries
  a statistic set is always sent as one. Values and statistic set agree: the
  values of a bucketed distribution carry the exact sum, minimum and maximum
  (see distribution.py), so Sum, SampleCount, Minimum and Maximum are exact
  whichever of the two CloudWatch computes them from;
- set: `Value` = the number of distinct members (unit `Count`).

Everything CloudWatch would reject is caught here, per record, because one bad
datum fails the whole request: a record that cannot be sent raises
`InvalidRecord` with the reason the output dead-letters it under.
`pack` puts whole records into requests (a record's datums never straddle two
requests, so a failed request is retried without duplicating accepted values).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from collector.events import Metric
from collector_plugins.common.cloudwatch_metrics.limits import (
    MAX_AGE_SECONDS,
    MAX_DIMENSION_NAME,
    MAX_DIMENSION_VALUE,
    MAX_DIMENSIONS,
    MAX_FUTURE_SECONDS,
    MAX_METRIC_NAME,
    MAX_NAMESPACE,
    MAX_VALUE_EXPONENT,
    MAX_VALUES_PER_DATUM,
)
from collector_plugins.common.metrics.distribution import Distribution, as_distribution
from collector_plugins.common.metrics.units import CLOUDWATCH_UNITS

MAX_VALUE = 2.0**MAX_VALUE_EXPONENT.value
MIN_MAGNITUDE = 2.0**-MAX_VALUE_EXPONENT.value
_PRINTABLE_ASCII = re.compile(r"^[\x20-\x7e]+$")

# Upper bounds of the encoded size (bytes) for any protocol botocore uses for CloudWatch (query is the largest:
# every member is `MetricData.member.N.<path>=<url-encoded value>&`; URL-encoding triples a byte at worst).
_DATUM_FIXED = 240  # member prefixes, Timestamp (URL-encoded, with microseconds and offset), Unit, StorageResolution
# `MetricData.member.1000.Dimensions.member.30.Name=` + `&` (50) and the same for `.Value=` (51), plus slack.
_PER_DIMENSION = 110
_PER_NUMBER = 72  # `MetricData.member.1000.Values.member.150=` + a double's repr + `&`
_STATISTIC_SET = 4 * _PER_NUMBER + 32  # `MetricData.member.1000.StatisticValues.SampleCount=` is 51 characters
_REQUEST_FIXED = 128  # Action, Version, Namespace key, protocol framing


class InvalidRecord(ValueError):
    """A record CloudWatch would reject; `reason` names why (the dead-letter reason)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True)
class DatumOptions:
    namespace: str
    namespace_from_tag: str | None = None
    dimensions: tuple[str, ...] | None = None
    """Only these tags become dimensions (in this order); None: every tag."""
    drop_dimensions: frozenset[str] = frozenset()
    append: dict[str, str] = field(default_factory=dict)
    """Dimensions added to every datum that does not have them (resolved append_dimensions)."""
    distribution: str = "values"
    resolution: int | str = "auto"


def check_namespace(namespace: str) -> str:
    if not 1 <= len(namespace) <= MAX_NAMESPACE.value:
        raise ValueError(f"a namespace has 1 to {MAX_NAMESPACE.value} characters")
    if namespace.startswith(":"):
        raise ValueError("a namespace cannot start with ':'")
    if namespace.startswith("AWS/"):
        raise ValueError("namespaces starting with 'AWS/' are reserved for AWS services")
    return namespace


def check_dimension(name: str, value: str) -> None:
    """ValueError if CloudWatch would reject this dimension."""
    if not 1 <= len(name) <= MAX_DIMENSION_NAME.value or not _PRINTABLE_ASCII.match(name) or name.isspace():
        raise ValueError(f"dimension name {name[:64]!r}: 1-{MAX_DIMENSION_NAME.value} printable ASCII characters")
    if name.startswith(":"):
        raise ValueError(f"dimension name {name[:64]!r} starts with ':'")
    if not 1 <= len(value) <= MAX_DIMENSION_VALUE.value or not _PRINTABLE_ASCII.match(value) or value.isspace():
        raise ValueError(
            f"dimension {name!r} value {value[:64]!r}: 1-{MAX_DIMENSION_VALUE.value} printable ASCII characters, "
            "not only spaces"
        )


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRecord("invalid_value", f"{value!r} is not a number")
    number = float(value)
    if not math.isfinite(number) or abs(number) > MAX_VALUE:
        raise InvalidRecord("invalid_value", f"{number!r} is outside -2^360..2^360 or not finite")
    # CloudWatch cannot store magnitudes below 2^-360: they are zero for any statistic.
    return number if abs(number) >= MIN_MAGNITUDE else 0.0


class DatumBuilder:
    """Builds the datums of records with one output's options. Synchronous."""

    def __init__(self, options: DatumOptions) -> None:
        self.options = options
        self.unknown_units = 0
        """Units that are not CloudWatch units (sent without a unit)."""
        for name, value in options.append.items():
            check_dimension(name, value)

    def datums(self, metric: Metric, now: float) -> tuple[str, list[dict[str, Any]]]:
        """(namespace, datums) for one record; InvalidRecord if CloudWatch would reject it."""
        namespace, base = self.header(metric, now)
        kind = metric.type
        if kind in ("counter", "gauge"):
            return namespace, [{**base, "Value": _number(metric.value)}]
        if kind == "set":
            return namespace, [{**base, "Value": set_size(metric.value)}]
        if kind == "distribution":
            return namespace, self._distribution(base, metric.value)
        raise InvalidRecord("unknown_metric_type", repr(kind))

    def header(self, metric: Metric, now: float) -> tuple[str, dict[str, Any]]:
        """(namespace, the datum without its value): name, time, dimensions, unit, resolution; checked."""
        opts = self.options
        if metric.type not in ("counter", "gauge", "set", "distribution"):
            raise InvalidRecord("unknown_metric_type", repr(metric.type))
        name = metric.name
        if not isinstance(name, str) or not 1 <= len(name) <= MAX_METRIC_NAME.value:
            raise InvalidRecord("invalid_metric_name", f"{str(name)[:64]!r}: 1-{MAX_METRIC_NAME.value} characters")
        namespace, dimensions = self._dimensions(metric.tags)
        stamp = metric.timestamp or now
        if not now - MAX_AGE_SECONDS.value <= stamp <= now + MAX_FUTURE_SECONDS.value:
            raise InvalidRecord("timestamp_out_of_range", f"{stamp} is more than 14 days old or 2 hours ahead")
        base: dict[str, Any] = {"MetricName": name, "Timestamp": datetime.fromtimestamp(stamp, UTC)}
        if dimensions:
            base["Dimensions"] = dimensions
        unit = metric.unit
        if unit is not None:
            if unit in CLOUDWATCH_UNITS:
                base["Unit"] = unit
            else:
                self.unknown_units += 1
        resolution = opts.resolution
        if resolution == "auto":
            resolution = 1 if 0 < metric.interval < 60 else 60
        if resolution == 1:
            base["StorageResolution"] = 1
        if metric.type == "set":
            base.setdefault("Unit", "Count")
        return namespace, base

    def _dimensions(self, tags: dict[str, str]) -> tuple[str, list[dict[str, str]]]:
        opts = self.options
        namespace = opts.namespace
        from_tag = opts.namespace_from_tag
        if from_tag is not None and from_tag in tags:
            namespace = str(tags[from_tag])
            try:
                check_namespace(namespace)
            except ValueError as exc:
                raise InvalidRecord("invalid_namespace", f"{namespace[:64]!r}: {exc}") from None
        if opts.dimensions is not None:
            chosen = {k: tags[k] for k in opts.dimensions if k in tags and k != from_tag}
        else:
            drop = opts.drop_dimensions
            chosen = {k: v for k, v in tags.items() if k not in drop and k != from_tag}
        for k, v in opts.append.items():
            chosen.setdefault(k, v)
        if len(chosen) > MAX_DIMENSIONS.value:
            raise InvalidRecord(
                "too_many_dimensions", f"{len(chosen)} dimensions, at most {MAX_DIMENSIONS.value} (drop some tags)"
            )
        out = []
        for k in sorted(chosen):
            value = chosen[k]
            if not isinstance(value, str):
                value = str(value)
            try:
                check_dimension(k, value)
            except ValueError as exc:
                raise InvalidRecord("invalid_dimension", str(exc)) from None
            out.append({"Name": k, "Value": value})
        return namespace, out

    def _distribution(self, base: dict[str, Any], value: Any) -> list[dict[str, Any]]:
        dist = distribution_of(value)
        if dist.count <= 0:
            return []
        if self.options.distribution == "statistic_set" or not len(dist):
            stats = {
                "SampleCount": _number(dist.count),
                "Sum": _number(dist.sum),
                "Minimum": _number(dist.min),
                "Maximum": _number(dist.max),
            }
            return [{**base, "StatisticValues": stats}]
        pairs = [(_number(v), float(c)) for v, c in dist.pairs()]
        step = MAX_VALUES_PER_DATUM.value
        weighted = math.fsum(v * c for v, c in pairs)
        last = len(pairs) - 1
        out = []
        for start in range(0, len(pairs), step):
            chunk = pairs[start : start + step]
            values = [v for v, _ in chunk]
            # The chunk's own statistic set, like the CloudWatch agent's: the chunks' sums add up to the exact sum
            # (the last one takes what the values miss of it: a float rounding, or a histogram's bucket error),
            # the first holds the exact minimum and the last the maximum.
            part = math.fsum(v * c for v, c in chunk)
            if start + step > last:
                part += dist.sum - weighted
            stats = {
                "SampleCount": math.fsum(c for _, c in chunk),
                "Sum": _number(part),
                "Minimum": _number(dist.min) if start == 0 else values[0],
                "Maximum": _number(dist.max) if start + step > last else values[-1],
            }
            out.append({**base, "Values": values, "Counts": [c for _, c in chunk], "StatisticValues": stats})
        return out


def set_size(value: Any) -> float:
    """A set metric's value: the number of distinct members."""
    members = value if isinstance(value, list | tuple) else [value]
    return float(len(members))


def distribution_of(value: Any) -> Distribution:
    """The distribution a record's value holds, every distinct value kept; InvalidRecord if it is none."""
    try:
        return as_distribution(value, limit=None)
    except ValueError as exc:
        raise InvalidRecord("invalid_value", str(exc)) from None


def number(value: Any) -> float:
    """A value CloudWatch accepts (finite, within -2^360..2^360; tinier magnitudes become 0)."""
    return _number(value)


def _text_cost(text: str) -> int:
    return 3 * len(text.encode("utf-8"))


def estimate(datum: dict[str, Any]) -> int:
    """An upper bound of the datum's encoded size in bytes, whatever protocol botocore uses."""
    size = _DATUM_FIXED + _text_cost(datum["MetricName"])
    for dim in datum.get("Dimensions", ()):
        size += _PER_DIMENSION + _text_cost(dim["Name"]) + _text_cost(dim["Value"])
    if "Values" in datum:
        size += _PER_NUMBER * (len(datum["Values"]) + len(datum["Counts"]))
    if "StatisticValues" in datum:
        size += _STATISTIC_SET
    if "Values" not in datum and "StatisticValues" not in datum:
        size += _PER_NUMBER
    return size


def request_overhead(namespace: str) -> int:
    return _REQUEST_FIXED + _text_cost(namespace)


@dataclass
class Request:
    namespace: str
    datums: list[dict[str, Any]] = field(default_factory=list)
    records: list[int] = field(default_factory=list)
    """Indexes (in the batch) of the records whose datums this request carries."""
    nbytes: int = 0


def pack(items: Iterable[tuple[int, str, Sequence[dict[str, Any]]]], max_datums: int, max_bytes: int) -> list[Request]:
    """Requests for (record index, namespace, datums): one namespace each, within both limits, records whole."""
    open_requests: dict[str, Request] = {}
    done: list[Request] = []
    for index, namespace, datums in items:
        if not datums:
            continue
        size = sum(estimate(d) for d in datums)
        request = open_requests.get(namespace)
        if request is not None and (
            len(request.datums) + len(datums) > max_datums or request.nbytes + size > max_bytes
        ):
            done.append(request)
            request = None
        if request is None:
            request = open_requests[namespace] = Request(namespace, nbytes=request_overhead(namespace))
        request.datums.extend(datums)
        request.records.append(index)
        request.nbytes += size
    done.extend(open_requests.values())
    return done
