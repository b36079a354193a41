"""The `trace_index` output; its options and examples are in README.md.

- `output`: `trace_index`: keep recent segments and trace-tagged log lines in a local index for `collector trace`.
- `cli`: `collector trace TRACE_ID`: one request's segments and log lines, in time order, from the local index.
"""
