"""The CloudWatch agent's JSON config (amazon-cloudwatch-agent.json) translated into ours.

Each known key maps to the option of ours that does the same thing; any other
key becomes a `# not translated: ...` comment, so nothing is dropped silently.
Host metric groups each get a `host_metrics` input of their own, because the
agent gives each its own interval and `append_dimensions`.
"""

from __future__ import annotations

import re
from typing import Any

from collector_plugins.commands.importers import cloudwatch_traces, timestamp_format
from collector_plugins.commands.importers.document import Document, ImportFailed, literal, note
from collector_plugins.inputs.file.codec import normalize_encoding
from collector_plugins.outputs.cloudwatch_logs.limits import RETENTION_DAYS

AGENT_KEYS_TRANSLATED = {"metrics_collection_interval", "region", "credentials"}
HOST_GROUPS = ("cpu", "mem", "swap", "disk", "diskio", "net", "netstat", "processes")
DEFAULT_NAMESPACE = "CWAgent"
DEFAULT_INTERVAL = 60
# Our interval rule (host_metrics): these seconds, or whole minutes.
ALLOWED_SUBMINUTE = {1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30}
# The agent's log group/stream placeholders; only the host name is a host fact of ours.
PLACEHOLDERS = {"hostname": "{host}", "local_hostname": "{host}", "instance_id": "{host}", "ip_address": "{host}"}
_PLACEHOLDER_RE = re.compile(r"\{([a-z_]+)\}")


def translate(config: Any, source: str) -> Document:
    if not isinstance(config, dict):
        raise ImportFailed(f"{source}: not a CloudWatch agent config (the top level must be a JSON object)")
    doc = Document(source)
    agent = _section(config, "agent", source)
    aws = _aws_settings(agent)
    interval = agent.get("metrics_collection_interval", DEFAULT_INTERVAL)
    for key in agent:
        if key not in AGENT_KEYS_TRANSLATED:
            doc.not_translated(f"agent.{key} = {agent[key]!r}", _AGENT_WHY.get(key, "no equivalent"))
    _metrics(doc, _section(config, "metrics", source), interval, aws, source)
    _logs(doc, _section(config, "logs", source), aws, source)
    if "traces" in config:
        cloudwatch_traces.translate(doc, config["traces"], aws, source)
    for key in config:
        if key not in ("agent", "metrics", "logs", "traces"):
            doc.not_translated(f"{key} section", "only agent, metrics, logs and traces are translated")
    return doc


_AGENT_WHY = {
    "logfile": "the collector logs JSON lines to stderr (the journal under systemd)",
    "run_as_user": "set User= in the systemd unit",
    "omit_hostname": "host_metrics records always carry the host tag; drop it with drop_dimensions: [host]",
}


def _section(config: dict[str, Any], key: str, source: str) -> dict[str, Any]:
    value = config.get(key, {})
    if not isinstance(value, dict):
        raise ImportFailed(f"{source}: `{key}` must be a JSON object, not {type(value).__name__}")
    return value


def _aws_settings(section: dict[str, Any], base: dict[str, Any] | None = None) -> dict[str, Any]:
    settings = dict(base or {})
    if isinstance(section.get("region"), str):
        settings["region"] = section["region"]
    credentials = section.get("credentials")
    if isinstance(credentials, dict) and isinstance(credentials.get("role_arn"), str):
        settings["role_arn"] = credentials["role_arn"]
    if isinstance(section.get("endpoint_override"), str):
        settings["endpoint_url"] = section["endpoint_override"]
    return settings


def _interval(value: Any, where: str, notes: list[str]) -> str | None:
    if isinstance(value, int) and value > 0 and (value in ALLOWED_SUBMINUTE or value % 60 == 0):
        return f"{value}s"
    notes.append(note(f"{where}.metrics_collection_interval = {value!r}", "not an interval we allow; default used"))
    return None


def _metrics(doc: Document, metrics: dict[str, Any], interval: Any, aws: dict[str, Any], source: str) -> None:
    if not metrics:
        return
    collected = metrics.get("metrics_collected", {})
    if not isinstance(collected, dict):
        raise ImportFailed(f"{source}: `metrics.metrics_collected` must be a JSON object")
    sources: list[str] = []
    for group, options in collected.items():
        if group == "procstat" and isinstance(options, list) and all(isinstance(e, dict) for e in options):
            sources.append(_procstat(doc, options, interval))
            continue
        if not isinstance(options, dict):
            raise ImportFailed(f"{source}: `metrics.metrics_collected.{group}` must be a JSON object")
        if group in HOST_GROUPS:
            sources.append(_host_group(doc, group, options, options.get("metrics_collection_interval", interval)))
        elif group == "statsd":
            sources.append(_statsd(doc, options, interval))
        elif group == "procstat":
            sources.append(_procstat(doc, options, interval))
        else:
            doc.not_translated(f"metrics.metrics_collected.{group}", "no input of ours collects it")
    output: dict[str, Any] = {
        "type": "cloudwatch_metrics",
        "inputs": sources,
        "namespace": literal(str(metrics.get("namespace", DEFAULT_NAMESPACE))),
    }
    notes: list[str] = []
    dimensions = metrics.get("append_dimensions")
    if isinstance(dimensions, dict):
        # The agent writes `${aws:InstanceId}`; ours resolves `{aws:InstanceId}` from instance metadata.
        output["append_dimensions"] = {
            str(k): re.sub(r"\$\{(aws:[A-Za-z]+)\}", r"{\1}", str(v)) for k, v in dimensions.items()
        }
    output.update(_aws_settings(metrics, aws))
    for key in metrics:
        if key not in (
            "metrics_collected",
            "namespace",
            "append_dimensions",
            "region",
            "credentials",
            "endpoint_override",
        ):
            notes.append(note(f"metrics.{key} = {metrics[key]!r}", _METRICS_WHY.get(key, "no equivalent")))
    if sources:
        doc.add("outputs", "cloudwatch_metrics", output, notes)
    else:
        doc.notes.extend(notes)


_METRICS_WHY = {
    "aggregation_dimensions": "every tag set is sent as is; choose dimensions with `dimensions`/`drop_dimensions`",
    "force_flush_interval": "batches are sent by size and batch.timeout",
}


def _measurement_note(group: str, options: dict[str, Any]) -> list[str]:
    notes: list[str] = []
    measurements = options.get("measurement")
    if measurements is not None:
        notes.append(
            note(
                f"{group}.measurement = {measurements!r}",
                "host_metrics reports every measurement of the group under the agent's names; renames and units "
                "are not applied",
            )
        )
    return notes


def _host_group(doc: Document, group: str, options: dict[str, Any], interval: Any) -> str:
    body: dict[str, Any] = {"type": "host_metrics", "collect": [group]}
    notes = _measurement_note(group, options)
    every = _interval(interval, group, notes)
    if every:
        body["interval"] = every
    resources = options.get("resources")
    for key, value in options.items():
        if key in ("measurement", "metrics_collection_interval", "append_dimensions"):
            continue
        if key == "resources" and group == "cpu" and value == ["*"]:
            body["per_cpu"] = True
        elif key == "totalcpu" and group == "cpu" and value is True:
            continue  # we always report cpu-total
        elif key == "resources" and group == "disk" and isinstance(resources, list) and "*" not in resources:
            body["mount_points"] = [str(r) for r in resources]
        elif key == "resources" and value == ["*"]:
            continue  # every device/interface is our default too
        elif key == "ignore_file_system_types" and group == "disk" and isinstance(value, list):
            body["ignore_fstypes"] = [str(v) for v in value]
        else:
            notes.append(note(f"{group}.{key} = {value!r}", "no host_metrics option does this"))
    name = doc.add("inputs", group, body, notes)
    return _append_dimensions(doc, name, options)


def _append_dimensions(doc: Document, source_name: str, options: dict[str, Any]) -> str:
    dimensions = options.get("append_dimensions")
    if not isinstance(dimensions, dict) or not dimensions:
        return source_name
    fields = {str(k): literal(str(v)).replace("{", "{{").replace("}", "}}") for k, v in dimensions.items()}
    return doc.add(
        "processors", f"{source_name}_dimensions", {"type": "add_fields", "inputs": [source_name], "fields": fields}
    )


def _statsd(doc: Document, options: dict[str, Any], interval: Any) -> str:
    body: dict[str, Any] = {"type": "statsd"}
    notes: list[str] = []
    address = options.get("service_address", ":8125")
    host, _, port = str(address).rpartition(":")
    # The agent's StatsD listens on UDP only; an empty host means every interface.
    body["listen"] = [f"udp://{host or '0.0.0.0'}:{port}"]
    every = _interval(options.get("metrics_collection_interval", 10), "statsd", notes)
    if every:
        body["interval"] = every
    for key, value in options.items():
        if key not in ("service_address", "metrics_collection_interval", "append_dimensions"):
            why = "statsd aggregates per interval" if key == "metrics_aggregation_interval" else "no equivalent"
            notes.append(note(f"statsd.{key} = {value!r}", why))
    return _append_dimensions(doc, doc.add("inputs", "statsd", body, notes), options)


def _procstat(doc: Document, options: Any, interval: Any) -> str:
    notes: list[str] = []
    selectors: list[dict[str, str]] = []
    entries = options if isinstance(options, list) else [options]
    for entry in entries:
        for ours, theirs in (("exe", "exe"), ("pattern", "pattern"), ("pidfile", "pid_file")):
            if isinstance(entry.get(theirs), str):
                selectors.append({ours: entry[theirs]})
        for key in entry:
            if key not in ("exe", "pattern", "pid_file"):
                notes.append(note(f"procstat.{key} = {entry[key]!r}", "procstat_* are reported whole"))
    body: dict[str, Any] = {"type": "host_metrics", "collect": ["processes"], "processes": selectors}
    every = _interval(interval, "procstat", notes)
    if every:
        body["interval"] = every
    return doc.add("inputs", "procstat", body, notes)


def _template(name: str, where: str, notes: list[str]) -> str:
    """An agent log group/stream name as our record template: literal braces escaped, placeholders mapped."""
    parts: list[str] = []
    last = 0
    for match in _PLACEHOLDER_RE.finditer(name):
        parts.append(literal(name[last : match.start()]).replace("{", "{{").replace("}", "}}"))
        placeholder = match.group(1)
        if placeholder in PLACEHOLDERS:
            parts.append(PLACEHOLDERS[placeholder])
            if placeholder not in ("hostname", "local_hostname"):
                notes.append(note(f"{where} placeholder {{{placeholder}}}", "no such host fact here; {host} used"))
        else:
            parts.append(match.group(0).replace("{", "{{").replace("}", "}}"))
            notes.append(note(f"{where} placeholder {{{placeholder}}}", "unknown to the agent docs; kept literally"))
        last = match.end()
    parts.append(literal(name[last:]).replace("{", "{{").replace("}", "}}"))
    return "".join(parts)


FILE_KEYS = {
    "file_path",
    "filters",
    "timestamp_format",
    "timezone",
    "log_group_name",
    "log_stream_name",
    "multi_line_start_pattern",
    "encoding",
    "retention_in_days",
    "log_group_class",
}


def _logs(doc: Document, logs: dict[str, Any], aws: dict[str, Any], source: str) -> None:
    if not logs:
        return
    settings = _aws_settings(logs, aws)
    default_stream = str(logs.get("log_stream_name", "{instance_id}"))
    collected = logs.get("logs_collected", {})
    if not isinstance(collected, dict):
        raise ImportFailed(f"{source}: `logs.logs_collected` must be a JSON object")
    for kind, options in collected.items():
        if kind == "files" and isinstance(options, dict):
            entries = options.get("collect_list", [])
            if not isinstance(entries, list):
                raise ImportFailed(f"{source}: `logs.logs_collected.files.collect_list` must be a JSON array")
            for index, entry in enumerate(entries):
                if not isinstance(entry, dict) or not isinstance(entry.get("file_path"), str):
                    raise ImportFailed(f"{source}: collect_list[{index}] needs a `file_path` string")
                _log_file(doc, entry, default_stream, settings)
        else:
            doc.not_translated(f"logs.logs_collected.{kind}", "only files are translated")
    metrics = logs.get("metrics_collected", {})
    if isinstance(metrics, dict):
        for kind, options in metrics.items():
            if kind == "emf":
                _emf(doc, options, settings)
            else:
                doc.not_translated(f"logs.metrics_collected.{kind}", "no input of ours collects it")
    for key in logs:
        if key not in (
            "logs_collected",
            "metrics_collected",
            "log_stream_name",
            "region",
            "credentials",
            "endpoint_override",
        ):
            why = "batches are sent by size and batch.timeout" if key == "force_flush_interval" else "no equivalent"
            doc.not_translated(f"logs.{key} = {logs[key]!r}", why)


def _regex_ok(pattern: str) -> bool:
    # The agent's expressions are Go (RE2) syntax; the common subset is Python's too, the rest becomes a comment.
    try:
        re.compile(pattern)
    except re.error:
        return False
    return True


def _log_file(doc: Document, entry: dict[str, Any], default_stream: str, aws: dict[str, Any]) -> None:
    path = entry["file_path"]
    if not path.startswith("/"):
        doc.not_translated(f"collect_list file_path {path!r}", "the file input reads absolute POSIX paths only")
        return
    notes: list[str] = []
    body: dict[str, Any] = {"type": "file", "include": [path]}
    pattern = entry.get("multi_line_start_pattern")
    if isinstance(pattern, str) and pattern != "{timestamp_format}" and _regex_ok(pattern):
        body["multiline"] = {"start": pattern}
    elif pattern is not None:
        notes.append(note(f"multi_line_start_pattern = {pattern!r}", "write it as a Python regular expression"))
    encoding = entry.get("encoding")
    if isinstance(encoding, str):
        try:
            body["encoding"] = normalize_encoding(encoding)
        except ValueError as exc:
            notes.append(note(f"encoding = {encoding!r}", f"{exc}; UTF-8 used"))
    for key, value in entry.items():
        if key not in FILE_KEYS:
            notes.append(note(f"{key} = {value!r}", _FILE_WHY.get(key, "no equivalent")))
    name = doc.add("inputs", _input_name(path), body, notes)
    source = _timestamp(doc, name, _filters(doc, name, entry, notes), entry, notes)
    out_notes: list[str] = []
    group = str(entry.get("log_group_name", path))
    output: dict[str, Any] = {
        "type": "cloudwatch_logs",
        "inputs": [source],
        "log_group": _template(group, "log_group_name", out_notes),
        "log_stream": _template(str(entry.get("log_stream_name", default_stream)), "log_stream_name", out_notes),
    }
    retention = entry.get("retention_in_days")
    if retention in RETENTION_DAYS:
        output["retention_days"] = retention
    elif retention is not None and retention != -1:  # -1 is the agent's "never expire", our default
        out_notes.append(note(f"retention_in_days = {retention!r}", "not a value PutRetentionPolicy accepts"))
    group_class = entry.get("log_group_class")
    if isinstance(group_class, str) and group_class.upper() in ("STANDARD", "INFREQUENT_ACCESS"):
        output["log_group_class"] = group_class.upper()
    elif group_class is not None:
        out_notes.append(note(f"log_group_class = {group_class!r}", "STANDARD or INFREQUENT_ACCESS only"))
    output.update(aws)
    doc.add("outputs", f"{name}_cloudwatch", output, out_notes)


def _filters(doc: Document, name: str, entry: dict[str, Any], notes: list[str]) -> str:
    """One `filter` processor per agent filter, in order (an event must pass them all); returns the last one."""
    filters = entry.get("filters")
    if filters is None:
        return name
    valid = isinstance(filters, list) and all(
        isinstance(f, dict)
        and f.get("type") in ("include", "exclude")
        and isinstance(f.get("expression"), str)
        and _regex_ok(f["expression"])
        for f in filters
    )
    if not valid:
        notes.append(note(f"filters = {filters!r}", "each needs type include/exclude and a Python regular expression"))
        return name
    upstream = name
    for index, rule in enumerate(filters, 1):
        body = {
            "type": "filter",
            "inputs": [upstream],
            "action": "keep" if rule["type"] == "include" else "drop",
            "conditions": [{"field": "message", "matches": rule["expression"]}],
        }
        upstream = doc.add("processors", f"{name}_filter{index}", body)
    return upstream


def _timestamp(doc: Document, name: str, upstream: str, entry: dict[str, Any], notes: list[str]) -> str:
    """parse_regex + parse_timestamp after `upstream` for `timestamp_format`; returns the last component."""
    fmt, zone = entry.get("timestamp_format"), entry.get("timezone")
    if not isinstance(fmt, str):
        if zone is not None:
            notes.append(note(f"timezone = {zone!r}", "only used with timestamp_format"))
        return upstream
    translated = timestamp_format.translate(fmt)
    if isinstance(translated, str):
        notes.append(note(f"timestamp_format = {fmt!r}", f"{translated}; records keep the time they were read"))
        return upstream
    pattern, parse_format = translated
    # A line without the time keeps the time it was read, as with the agent: no error field.
    regex = {"type": "parse_regex", "inputs": [upstream], "pattern": pattern, "error_field": None}
    parsed = doc.add("processors", f"{name}_time", regex)
    timestamp: dict[str, Any] = {
        "type": "parse_timestamp",
        "inputs": [parsed],
        "field": timestamp_format.TIME_FIELD,
        "formats": [parse_format],
        "drop_field": True,
        "error_field": None,
    }
    ts_notes: list[str] = []
    if zone != "UTC" and "%z" not in parse_format:
        # The agent's default is Local, the node's zone; ours needs an IANA name, which the file does not give.
        ts_notes.append(
            note(f"timezone = {zone or 'Local'!r}", "parse_timestamp needs an IANA zone: UTC used, set the node's")
        )
    return doc.add("processors", f"{name}_timestamp", timestamp, ts_notes)


def _input_name(path: str) -> str:
    """A component name from a file path: its last segment without glob characters, extension removed."""
    plain = [part for part in path.split("/") if part and not any(c in part for c in "*?[{")]
    stem = plain[-1].rsplit(".", 1)[0] if plain else ""
    return re.sub(r"[^A-Za-z0-9]+", "_", stem).strip("_").lower() or "file"


_FILE_WHY = {
    "auto_removal": "the collector never deletes the files it reads",
    "blacklist": "use the file input's exclude (glob patterns, not regular expressions)",
    "publish_multi_logs": "every matched file is read",
    "trim_timestamp": "goes with timestamp_format",
}


def _emf(doc: Document, options: Any, aws: dict[str, Any]) -> None:
    notes: list[str] = []
    body: dict[str, Any] = {"type": "emf", "listen": ["tcp://127.0.0.1:25888", "udp://127.0.0.1:25888"]}
    if isinstance(options, dict):
        for key, value in options.items():
            notes.append(note(f"emf.{key} = {value!r}", "no equivalent"))
    name = doc.add("inputs", "emf", body, notes)
    doc.add(
        "outputs",
        "emf_cloudwatch",
        {
            "type": "cloudwatch_logs",
            "inputs": [name],
            # Each document's _aws.LogGroupName/LogStreamName, as the agent uses them.
            "log_group": "{log_group_name}",
            "log_stream": "{log_stream_name}",
            **aws,
        },
        [
            note(
                "the agent's default group for documents without _aws.LogGroupName",
                "they go to `unknown`, see missing_value",
            )
        ],
    )
