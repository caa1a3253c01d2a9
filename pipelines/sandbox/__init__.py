"""The sandbox: a seeded emulator of the Neuron Calls API, served over real HTTP."""

from .server import DEFAULT_API_KEY, Sandbox, add_arguments, run_from_args, serve

__all__ = ["DEFAULT_API_KEY", "Sandbox", "add_arguments", "run_from_args", "serve"]
