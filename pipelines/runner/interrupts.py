"""The stop a signal raises: SIGTERM (a scheduler stopping the run), handled like Ctrl-C.

A module of its own, importing nothing: the CLI's signal handlers raise it, and a handler must
not import (a signal can arrive in the middle of another import, on any thread's watch)."""

from __future__ import annotations


class Interrupted(KeyboardInterrupt):
    """SIGTERM (a scheduler stopping the run), handled like Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"signal {signum}")
        self.code = 128 + signum
