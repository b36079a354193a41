"""The CloudWatch agent's `traces` section: its X-Ray receiver as our `xray` input, its upload as `xray` output.

The keys are those of the agent's reference ("traces" section): `traces_collected.xray`
(`bind_address`, `tcp_proxy.bind_address`) and the upload settings beside it.
"""

from __future__ import annotations

from typing import Any

from collector_plugins.commands.importers.document import Document, ImportFailed, literal, note

DEFAULT_ADDRESS = "127.0.0.1:2000"
# Upload settings: the agent's key, ours.
UPLOAD = {
    "region_override": "region",
    "endpoint_override": "endpoint_url",
    "proxy_override": "proxy",
    "resource_arn": "resource_arn",
}


def translate(doc: Document, traces: Any, aws: dict[str, Any], source: str) -> None:
    if not isinstance(traces, dict):
        raise ImportFailed(f"{source}: `traces` must be a JSON object")
    collected = traces.get("traces_collected", {})
    if not isinstance(collected, dict):
        raise ImportFailed(f"{source}: `traces.traces_collected` must be a JSON object")
    for kind in collected:
        if kind != "xray":
            doc.not_translated(f"traces.traces_collected.{kind}", "only the X-Ray receiver is translated")
    xray = collected.get("xray")
    if not isinstance(xray, dict):
        if traces:
            doc.not_translated("traces section", "no traces_collected.xray receiver in it")
        return
    in_notes: list[str] = []
    udp = xray.get("bind_address") if isinstance(xray.get("bind_address"), str) else DEFAULT_ADDRESS
    proxy = xray.get("tcp_proxy")
    tcp = proxy.get("bind_address") if isinstance(proxy, dict) and isinstance(proxy.get("bind_address"), str) else udp
    for key, value in xray.items():
        if key not in ("bind_address", "tcp_proxy"):
            in_notes.append(note(f"traces.traces_collected.xray.{key} = {value!r}", "no equivalent"))
    name = doc.add(
        "inputs", "xray", {"type": "xray", "listen": udp if udp == tcp else f"udp:{udp} tcp:{tcp}"}, in_notes
    )
    output: dict[str, Any] = {"type": "xray", "inputs": [name], **aws}
    out_notes: list[str] = []
    for key, value in traces.items():
        if key == "traces_collected":
            continue
        if key in UPLOAD and isinstance(value, str) and value:
            output[UPLOAD[key]] = literal(value)
        elif key == "concurrency" and isinstance(value, int) and 0 < value <= 64:
            output["concurrency"] = value
        elif key == "local_mode" and isinstance(value, bool):
            output["local_mode"] = value
        elif key == "buffer_size_mb" and isinstance(value, int) and value > 0:
            output["buffer"] = {"max_bytes": f"{value}MiB"}
        elif key == "credentials" and isinstance(value, dict) and isinstance(value.get("role_arn"), str):
            output["role_arn"] = value["role_arn"]
        else:
            why = "TLS is always verified; give a ca_bundle instead" if key == "insecure" else "no equivalent"
            out_notes.append(note(f"traces.{key} = {value!r}", why))
    doc.add("outputs", "xray_upload", output, out_notes)
