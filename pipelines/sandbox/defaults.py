"""The sandbox's defaults, shared by its command line (options.py) and its server (server.py)."""

from __future__ import annotations

DEFAULT_API_KEY = "sk_sandbox_neuron_calls_0000"
DEFAULT_PORT = 8765
