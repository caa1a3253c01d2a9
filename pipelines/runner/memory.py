"""A long run's memory, given back: the C allocator's arenas and free pages (glibc only).

A run allocates from two threads at once (the fetching, and dlt's steps in the main thread),
and glibc gives each thread an arena of its own, whose freed pages it keeps; over a 300,000-call
run that held tens of megabytes nobody used (docs/performance.md). Two arenas, and the free
pages handed back after each checkpoint, keep the peak flat. Elsewhere (musl, macOS) this does
nothing.
"""

from __future__ import annotations

import ctypes
import functools
from typing import Any

M_ARENA_MAX = -8  # mallopt's parameter, from glibc's malloc.h
ARENAS = 2


@functools.cache
def _libc() -> Any:
    try:
        libc = ctypes.CDLL("libc.so.6")  # glibc by its soname: no search, no subprocess
        libc.mallopt, libc.malloc_trim  # noqa: B018 - glibc's, or nothing to do
    except (OSError, AttributeError):
        return None
    return libc


def limit_arenas() -> None:
    """At most ARENAS allocator arenas for the threads started from now on."""
    libc = _libc()
    if libc is not None:
        libc.mallopt(M_ARENA_MAX, ARENAS)


def give_back() -> None:
    """Hand the allocator's free pages back to the system."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
