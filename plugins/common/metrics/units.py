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
