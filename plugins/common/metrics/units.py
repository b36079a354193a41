"""The metric units CloudWatch accepts (MetricDatum.Unit; EMF MetricDefinition.Unit), and StatsD's.

Source: https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_MetricDatum.html (checked 2026-11-26).
"""

from __future__ import annotations

from typing import Final

CLOUDWATCH_UNITS: Final = frozenset(
    {
        "Seconds",
        "Microseconds",
        "Milliseconds",
        "Bytes",
        "Kilobytes",
        "Megabytes",
        "Gigabytes",
        "Terabytes",
        "Bits",
        "Kilobits",
        "Megabits",
        "Gigabits",
        "Terabits",
        "Percent",
        "Count",
        "Bytes/Second",
        "Kilobytes/Second",
        "Megabytes/Second",
        "Gigabytes/Second",
        "Terabytes/Second",
        "Bits/Second",
        "Kilobits/Second",
        "Megabits/Second",
        "Gigabits/Second",
        "Terabits/Second",
        "Count/Second",
        "None",
    }
)

# OpenTelemetry units are UCUM case-sensitive codes (https://ucum.org/ucum, checked 2026-12-06; the OTel
# semantic conventions use `s`, `ms`, `By`, `{request}`, `1`, `%`). The ones with a CloudWatch unit of the
# same meaning map to it. CloudWatch's Kilobytes etc. are the decimal multiples (kBy); the binary ones
# (KiBy) and annotations (`{request}`) have no CloudWatch unit and are sent without one.
UCUM_TO_CLOUDWATCH: Final = {
    "s": "Seconds",
    "ms": "Milliseconds",
    "us": "Microseconds",
    "By": "Bytes",
    "kBy": "Kilobytes",
    "MBy": "Megabytes",
    "GBy": "Gigabytes",
    "TBy": "Terabytes",
    "bit": "Bits",
    "kbit": "Kilobits",
    "Mbit": "Megabits",
    "Gbit": "Gigabits",
    "Tbit": "Terabits",
    "%": "Percent",
    "By/s": "Bytes/Second",
    "kBy/s": "Kilobytes/Second",
    "MBy/s": "Megabytes/Second",
    "GBy/s": "Gigabytes/Second",
    "TBy/s": "Terabytes/Second",
    "bit/s": "Bits/Second",
    "kbit/s": "Kilobits/Second",
    "Mbit/s": "Megabits/Second",
    "Gbit/s": "Gigabits/Second",
    "Tbit/s": "Terabits/Second",
    "1": "None",
    "{count}": "Count",
    "1/s": "Count/Second",
}


def from_ucum(unit: str) -> str | None:
    """The CloudWatch unit of an OTLP (UCUM) unit; None for no unit or one without a CloudWatch equivalent."""
    if not unit:
        return None
    if unit in CLOUDWATCH_UNITS:  # a sender already speaking CloudWatch's units
        return unit
    return UCUM_TO_CLOUDWATCH.get(unit)
