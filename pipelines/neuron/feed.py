"""The fetching of a run, on a thread of its own that lives across the run's segments.

A run loads in segments (`model.Checkpoints`): each one dlt load, with the source state that
describes exactly its rows. The fetching does not wait for those loads: it runs on its own
event loop, in its own thread, and hands its work to the loader through a bounded queue:

    batch, batch, ..., SegmentEnd(state copy), batch, batch, ..., SegmentEnd(..., last=True)

Each dlt load reads one segment, up to its `SegmentEnd`, and commits the copy of the state that
came with it. So a segment is fetched while the one before it loads, and the state a load
commits never runs ahead of its rows. The fetching goes at most one segment ahead of the
loads: what a stop loses stays bounded (`Checkpoints.seconds`). An error in the fetching reaches
the loader as it reads the next item, after every segment before it has been committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .model import Batch

AHEAD_BATCHES = 4  # batches the fetching may hand over before the loader takes them
JOIN_SECONDS = 5.0  # how long closing waits for the fetching to wind down
POLL_SECONDS = 0.01  # how often a waiting side looks again


@dataclass
class SegmentEnd:
    """The end of one segment: the state that describes every batch handed over before it."""

    state: dict[str, Any]
    more: bool  # work is left for the next segment, or the next run
    last: bool  # the fetching ends here (no work left, or the run is stopping)
    at: float = field(default_factory=time.monotonic)  # when its fetching ended
    received: float = 0.0  # when the loader read it: its rows all handed over


class Feed:
    """One run's fetching on a thread of its own; the loader reads it segment by segment."""

    def __init__(self, fetching: Callable[[Feed], Awaitable[None]]) -> None:
        self._items: queue.Queue[Any] = queue.Queue(AHEAD_BATCHES)
        self._closed = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self.reading = 0  # segments the loader has begun to read
        self.committed = 0  # segments the loader has committed (set by the runner)
        self.ended: SegmentEnd | None = None  # the last segment the loader read whole
        # what the fetching waits for now: "the loader" (the hand-over is full), "a commit",
        # "a segment" (the loader to read one), or None
        self.waiting_for: str | None = None
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._run(fetching),), name="neuron-fetching", daemon=True
        )
        self._thread.start()

    # -- the fetching's side (its own thread and event loop) ----------------------------------

    async def _run(self, fetching: Callable[[Feed], Awaitable[None]]) -> None:
        self._loop, self._task = asyncio.get_running_loop(), asyncio.current_task()
        if self._closed.is_set():
            return
        try:
            await fetching(self)
        except BaseException as exc:  # noqa: BLE001 - raised again where the loader reads
            self._hand_over(exc)

    async def put(self, item: Batch | SegmentEnd) -> None:
        """Hand one item to the loader; waits while AHEAD_BATCHES are not taken yet."""
        while True:
            try:
                self._items.put_nowait(item)
                self.waiting_for = None
                return
            except queue.Full:
                self.waiting_for = "the loader"
                await asyncio.sleep(POLL_SECONDS)

    async def until_committed(self, segments: int) -> None:
        """Wait until the loader has committed `segments` segments."""
        while self.committed < segments:
            self.waiting_for = "a commit"
            await asyncio.sleep(POLL_SECONDS)
        self.waiting_for = None

    async def until_reading(self, segment: int) -> None:
        """Wait until the loader reads segment `segment` (1 is the first): every one before it
        is committed."""
        while self.reading < segment:
            self.waiting_for = "a segment"
            await asyncio.sleep(POLL_SECONDS)
        self.waiting_for = None

    def _hand_over(self, item: Any) -> None:
        while not self._closed.is_set():
            with contextlib.suppress(queue.Full):
                self._items.put(item, timeout=0.1)
                return

    # -- the loader's side --------------------------------------------------------------------

    def segment(self) -> Iterator[Batch]:
        """The next segment's batches; its end is in `ended` once they are all read. An error
        of the fetching is raised here."""
        self.reading += 1
        while True:
            try:
                item = self._items.get(timeout=0.25)
            except queue.Empty:
                if not self._thread.is_alive() and self._items.empty():
                    raise RuntimeError("the fetching ended before its segment did") from None
                continue
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, SegmentEnd):
                item.received = time.monotonic()
                self.ended = item
                return
            yield item

    @property
    def done(self) -> bool:
        """The loader has read the last segment: nothing more will come."""
        return self.ended is not None and self.ended.last

    def close(self) -> None:
        """Stop the fetching (if it still runs) and let its thread end; idempotent."""
        self._closed.set()
        loop, task = self._loop, self._task
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):  # its loop has ended already
                loop.call_soon_threadsafe(task.cancel)
        with contextlib.suppress(queue.Empty):
            while True:
                self._items.get_nowait()
        self._thread.join(JOIN_SECONDS)
