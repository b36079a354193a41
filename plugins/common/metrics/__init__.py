"""The metric model shared by the metric inputs and outputs.

- `distribution`: values with counts (never only an average), percentiles, bounded memory;
- `aggregator`: one point per series (type, name, sorted tags) and interval, a bounded series count;
- `emf`: Embedded Metric Format documents checked against the specification, split or repaired;
- `units`: the units CloudWatch accepts;
- `batch`: a batch of metric records, sized alike by every metric input.
"""
