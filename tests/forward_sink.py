"""A minimal Fluent forward server for tests and the contract: decodes what a client sends and acks each chunk.

It runs in a thread (`socketserver`), so synchronous fixtures can start it. It speaks the modes our
`forward` output sends (PackedForward, CompressedPackedForward gzip, and Message/Forward for completeness)
without a handshake; `ack: False` makes it store chunks without answering (a server that dies before acking).
"""

from __future__ import annotations

import gzip
import socketserver
import threading
from typing import Any

import msgpack


class _Handler(socketserver.BaseRequestHandler):
    server: ForwardSink

    def handle(self) -> None:
        unpacker = msgpack.Unpacker(raw=False)
        while True:
            try:
                data = self.request.recv(65536)
            except OSError:
                return
            if not data:
                return
            unpacker.feed(data)
            for message in unpacker:
                self.server.take(message, self.request)


class ForwardSink(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, ack: bool = True, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.ack = ack
        self.lock = threading.Lock()
        self.records: list[tuple[str, Any, dict[str, Any]]] = []  # (tag, time, record)
        self.chunks: list[str] = []
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> ForwardSink:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()

    def take(self, message: list[Any], sock: Any) -> None:
        tag, body = message[0], message[1]
        option = message[2] if len(message) > 2 and isinstance(message[2], dict) else {}
        if isinstance(body, bytes):
            if option.get("compressed") == "gzip":
                body = gzip.decompress(body)
            entries = _entries(body)
        elif isinstance(body, list):
            entries = body
        else:
            entries = [[body, message[2]]]
            option = message[3] if len(message) > 3 else {}
        with self.lock:
            self.records.extend((tag, t, r) for t, r in entries)
            chunk = option.get("chunk")
            if chunk:
                self.chunks.append(chunk)
        if chunk and self.ack:
            sock.sendall(msgpack.packb({"ack": chunk}))


def _entries(data: bytes) -> list[Any]:
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(data)
    return list(unpacker)
