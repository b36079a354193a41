"""The AWS X-Ray daemon's YAML config (cfg.yaml, Version 2) translated into an `xray` input and output.

The daemon listens (Socket.UDPAddress, Socket.TCPAddress) and uploads
(Region, Endpoint, RoleARN, ProxyAddress, Concurrency, LocalMode,
ResourceARN); our `xray` input and `xray` output split those two jobs. Its
memory buffer (TotalBufferSizeMB) becomes the output's disk buffer bound.
"""

from __future__ import annotations

from typing import Any

from collector_plugins.commands.importers.document import Document, ImportFailed, literal, note

DEFAULT_ADDRESS = "127.0.0.1:2000"
KNOWN = {
    "Version",
    "Socket",
    "Region",
    "Endpoint",
    "RoleARN",
    "ProxyAddress",
    "Concurrency",
    "LocalMode",
    "ResourceARN",
    "TotalBufferSizeMB",
}
_WHY = {
    "Logging": "the collector logs JSON lines to stderr (the journal under systemd)",
    "NoVerifySSL": "TLS is always verified; give a ca_bundle instead",
}


def translate(config: Any, source: str) -> Document:
    if not isinstance(config, dict):
        raise ImportFailed(f"{source}: not an X-Ray daemon config (the top level must be a YAML mapping)")
    doc = Document(source)
    in_notes: list[str] = []
    out_notes: list[str] = []
    socket = config.get("Socket") or {}
    if not isinstance(socket, dict):
        raise ImportFailed(f"{source}: `Socket` must be a mapping")
    udp = _text(socket.get("UDPAddress")) or DEFAULT_ADDRESS
    tcp = _text(socket.get("TCPAddress")) or DEFAULT_ADDRESS
    listen = udp if udp == tcp else f"udp:{udp} tcp:{tcp}"
    for key in socket:
        if key not in ("UDPAddress", "TCPAddress"):
            in_notes.append(note(f"Socket.{key} = {socket[key]!r}", "no equivalent"))
    name = doc.add("inputs", "xray", {"type": "xray", "listen": listen}, in_notes)
    output: dict[str, Any] = {"type": "xray", "inputs": [name]}
    for theirs, ours in (
        ("Region", "region"),
        ("Endpoint", "endpoint_url"),
        ("RoleARN", "role_arn"),
        ("ProxyAddress", "proxy"),
        ("ResourceARN", "resource_arn"),
    ):
        value = _text(config.get(theirs))
        if value:
            output[ours] = literal(value)
    concurrency = config.get("Concurrency")
    if isinstance(concurrency, int) and not isinstance(concurrency, bool) and concurrency > 0:
        output["concurrency"] = min(concurrency, 64)  # our ceiling for requests in flight
        if concurrency > 64:
            out_notes.append(note(f"Concurrency = {concurrency}", "at most 64 requests in flight; 64 used"))
    if config.get("LocalMode") is True:
        output["local_mode"] = True
    size = config.get("TotalBufferSizeMB")
    if isinstance(size, int) and not isinstance(size, bool) and size > 0:
        output["buffer"] = {"max_bytes": f"{size}MiB"}
    elif size is not None:
        out_notes.append(note(f"TotalBufferSizeMB = {size!r}", "1% of host memory has no equivalent; default used"))
    for key, value in config.items():
        if key not in KNOWN:
            out_notes.append(note(f"{key} = {value!r}", _WHY.get(key, "no equivalent")))
    version = config.get("Version")
    if version not in (None, 1, 2):
        doc.not_translated(f"Version = {version!r}", "Version 1 and 2 are known; keys read as Version 2")
    doc.add("outputs", "xray_upload", output, out_notes)
    return doc


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""
