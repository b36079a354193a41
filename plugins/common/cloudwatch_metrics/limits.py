"""CloudWatch PutMetricData limits: every value in one place, with its source and the date it was checked.

From the PutMetricData and MetricDatum API references (checked 2026-11-26;
the same text and constraints are in botocore's `cloudwatch` service model,
1.43): "Each PutMetricData request is limited to 1 MB in size for HTTP POST
requests ... no more than 1000 different metrics"; "up to 150 values per
metric with one PutMetricData request" (the Values array); "up to 30
dimensions per metric"; names of metrics and dimensions 1-255 characters,
dimension values 1-1024, ASCII only, not only whitespace, a dimension name not
starting with ':'; namespaces 1-255 characters, pattern `[^:].*` (and `AWS/`
is reserved for AWS services); values within -2^360..2^360, no NaN or
infinities; time stamps at most two weeks old and two hours ahead;
StorageResolution 1 or 60.

A datum may carry `Values`/`Counts` and `StatisticValues` together: the
MetricDatum reference lists both as optional without excluding either, and
the CloudWatch agent sends every distribution datum that way
(aws/amazon-cloudwatch-agent, plugins/outputs/cloudwatch/cloudwatch.go,
`BuildMetricDatum`); only `Value` excludes the other two. moto accepts the
pair and computes its statistics from the values, which is why `datums.py`
makes both describe the same figures.

"1 MB" is read as 1,000,000 bytes (the smaller reading) of the request before
compression (botocore gzips PutMetricData bodies over 10 KiB), and the size of
a request is estimated from above for every wire protocol botocore may use
(query, JSON, CBOR; `estimate` in datums.py, tested
against botocore's own serializers). moto enforces none of these, so the
output's unit tests hold them.
"""

from __future__ import annotations

from collector.output_limits import Limit, OutputLimits

CHECKED = "2026-11-26"
PUT_METRIC_DATA = "https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricData.html"
METRIC_DATUM = "https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_MetricDatum.html"
DIMENSION = "https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_Dimension.html"

MAX_DATUMS_PER_REQUEST = Limit(1000, PUT_METRIC_DATA, CHECKED)
MAX_REQUEST_BYTES = Limit(1_000_000, PUT_METRIC_DATA, CHECKED)
MAX_VALUES_PER_DATUM = Limit(150, PUT_METRIC_DATA, CHECKED)
MAX_DIMENSIONS = Limit(30, METRIC_DATUM, CHECKED)
MAX_METRIC_NAME = Limit(255, METRIC_DATUM, CHECKED)
MAX_NAMESPACE = Limit(255, PUT_METRIC_DATA, CHECKED)
MAX_DIMENSION_NAME = Limit(255, DIMENSION, CHECKED)
MAX_DIMENSION_VALUE = Limit(1024, DIMENSION, CHECKED)
MAX_VALUE_EXPONENT = Limit(360, PUT_METRIC_DATA, CHECKED)
"""Values must lie within -2**360 .. 2**360."""
MAX_AGE_SECONDS = Limit(14 * 24 * 3600, PUT_METRIC_DATA, CHECKED)
MAX_FUTURE_SECONDS = Limit(2 * 3600, PUT_METRIC_DATA, CHECKED)

LIMITS = OutputLimits(max_events=MAX_DATUMS_PER_REQUEST, max_bytes=MAX_REQUEST_BYTES)
"""What the driver batches by: records (each usually one datum) and estimated request bytes."""
