"""The `docker` input; its options and examples are in README.md.

- `input`: `docker`: the `file` input preset for Docker's json-file logs, with ECS task facts when in ECS.
- `ecs_metadata`: The ECS task metadata endpoint (version 4): which task and cluster a container belongs to.
"""
