"""The `statsd` input; its options and examples are in README.md.

- `input`: `statsd` input: StatsD / DogStatsD metrics over UDP and TCP, aggregated per interval.
- `protocol`: The StatsD line protocol (with DogStatsD tags), parsed straight into an `Aggregator`.
"""
