"""The `prometheus_exporter` output; its options and examples are in README.md.

- `output`: `prometheus_exporter` output: serves the metrics it receives on an HTTP endpoint for Prometheus to scrape.
- `exposition`: What a Prometheus server scrapes from the `prometheus_exporter` output: metric records folded into
  series.
"""
