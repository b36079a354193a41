"""The `prometheus` input; its options and examples are in README.md.

- `input`: `prometheus` input: scrapes Prometheus endpoints (static targets and file-based discovery).
- `convert`: Prometheus metric families -> metric records, each type keeping its meaning.
"""
