"""node-collector: a node-local collector for logs, metrics and traces."""

from __future__ import annotations

__version__ = "0.1.0"
