"""The fetching of a run, on a thread of its own that lives across the run's segments.

A run loads in segments (`model.Segments`): each one dlt load, with the source state that
describes exactly its rows. The fetching does not wait for those loads: it runs on its own
event loop, in its own thread, and hands its work to the loader through a bounded queue:

    batch, batch, ..., SegmentEnd(state copy), batch, batch, ..., SegmentEnd(..., last=True)

Each dlt load reads one segment, up to its `SegmentEnd`, and commits the copy of the state that
came with it. So a segment is fetched while the one before it loads, and the state a load
commits never runs ahead of its rows. The fetching goes at most one segment ahead of the
loads: what a stop loses stays bounded (`Segments.seconds`). An error in the fetching reaches
the loader as it reads the next item, after every segment before it has been committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from .model import Batch, SegmentEnd

AHEAD_BATCHES = 4  # batches the fetching may hand over before the loader takes them
JOIN_SECONDS = 5.0  # how long closing waits for the fetching to wind down
POLL_SECONDS = 0.01  # how often a waiting side looks again


class Feed:
    """One run's fetching on a thread of its own; the loader reads it segment by segment.

    `abandoned` says when the run is over without the loader reading on (a load failed, the
    run stopped at once): a fetching that waits then ends, and its thread with it."""

    def __init__(
        self,
        fetching: Callable[[Feed], Awaitable[None]],
        abandoned: Callable[[], bool] = lambda: False,
    ) -> None:
        self._items: queue.Queue[Any] = queue.Queue(AHEAD_BATCHES)
        self._closed = threading.Event()
        self._abandoned = abandoned
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self.reading = 0  # segments the loader has begun to read
        self.ended: SegmentEnd | None = None  # the last segment the loader read whole
        # what the fetching waits for now: "the loader" (the hand-over is full), "a commit",
        # or whatever else it waits on (`until`), or None
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
                await self._wait("the loader")

    async def until(self, ready: Callable[[], bool], what: str) -> None:
        """Wait until `ready()` (the loader's side answers it: a commit, data handed in)."""
        while not ready():
            await self._wait(what)
        self.waiting_for = None

    async def _wait(self, what: str) -> None:
        if self._abandoned():  # nobody reads on: the fetching ends here
            self._closed.set()
            raise asyncio.CancelledError
        self.waiting_for = what
        await asyncio.sleep(POLL_SECONDS)

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
