"""The alert rule engine shared by the `alert` output, its notifiers and `collector rules test`.

- `rules.py`: the rule models (one per rule type) and rule files read with file:line for every problem;
- `masks.py`: the filter processor's conditions evaluated a column at a time over a batch;
- `windows.py`: sliding counts and CloudWatch-style periods, bounded in memory;
- `evaluators.py`: per rule type, what a group holds and when it fires;
- `engine.py`: groups (`query_key`), OK -> ALARM -> OK, realert, silences, aggregation, snapshots;
- `render.py`: notification text and the JSON, Slack and Teams bodies;
- `hub.py`: how an `alert` output hands notifications to `alerts` inputs in the same process.
"""
