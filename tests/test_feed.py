"""The run's fetching on its own thread (`neuron/feed.py`): segments in order with the state
that describes them, errors after what came before, a bounded hand-over, a clean close."""

from __future__ import annotations

import threading
from contextlib import closing
from typing import Any

import pytest

from pipelines.neuron.feed import AHEAD_BATCHES, Feed, SegmentEnd
from pipelines.neuron.model import Batch

from .helpers import wait_until

pytestmark = pytest.mark.unit


def batch(n: int) -> Batch:
    made = Batch()
    made.add("calls", [{"id": f"c{n}"}])
    made.size = 1
    return made


def ids(batches: list[Batch]) -> list[str]:
    return [row["id"] for b in batches for row in b.rows["calls"]]


def test_segments_come_in_order_each_with_its_state() -> None:
    async def fetching(feed: Feed) -> None:
        await feed.put(batch(1))
        await feed.put(batch(2))
        await feed.put(SegmentEnd({"cursor": "one"}, more=True, last=False))
        await feed.put(batch(3))
        await feed.put(SegmentEnd({"cursor": "two"}, more=False, last=True))

    with closing(Feed(fetching)) as feed:
        assert ids(list(feed.segment())) == ["c1", "c2"]
        assert feed.ended is not None and feed.ended.state == {"cursor": "one"}
        assert not feed.done and feed.reading == 1
        assert ids(list(feed.segment())) == ["c3"]
        assert feed.ended.state == {"cursor": "two"} and feed.done
        assert feed.ended.received >= feed.ended.at


def test_an_error_of_the_fetching_reaches_the_loader_after_the_segments_before_it() -> None:
    async def fetching(feed: Feed) -> None:
        await feed.put(batch(1))
        await feed.put(SegmentEnd({"cursor": "one"}, more=True, last=False))
        await feed.put(batch(2))
        raise ConnectionError("list page failed after its retries")

    with closing(Feed(fetching)) as feed:
        assert ids(list(feed.segment())) == ["c1"]
        read: list[Batch] = []
        with pytest.raises(ConnectionError, match="list page failed"):
            read.extend(feed.segment())
        assert ids(read) == ["c2"]


def test_the_fetching_waits_for_the_loader_and_for_commits() -> None:
    put: list[int] = []
    committed = [0]  # segments the loader committed (the runner's `Segments.committed`)

    async def fetching(feed: Feed) -> None:
        for n in range(3 * AHEAD_BATCHES):
            await feed.put(batch(n))
            put.append(n)
        await feed.put(SegmentEnd({}, more=True, last=False))
        await feed.until(lambda: committed[0] >= 1, "a commit")
        put.append(-1)
        await feed.put(SegmentEnd({}, more=False, last=True))

    with closing(Feed(fetching)) as feed:
        wait_until(lambda: feed.waiting_for == "the loader", "the fetching waits for the loader")
        assert put == list(range(AHEAD_BATCHES))  # nothing read yet: the hand-over is full
        assert len(list(feed.segment())) == 3 * AHEAD_BATCHES
        wait_until(lambda: feed.waiting_for == "a commit", "the fetching waits for a commit")
        assert put[-1] != -1  # the first segment is not committed yet
        committed[0] = 1
        assert list(feed.segment()) == [] and feed.done and put[-1] == -1


def test_close_stops_a_fetching_that_waits_and_ends_its_thread() -> None:
    cancelled = threading.Event()

    async def fetching(feed: Feed) -> None:
        try:
            while True:
                await feed.put(batch(0))
        finally:
            cancelled.set()

    feed = Feed(fetching)
    wait_until(lambda: feed.waiting_for == "the loader", "the fetching fills the hand-over")
    feed.close()
    assert cancelled.is_set()
    # its thread ended (other tests' are none of ours), not left behind after JOIN_SECONDS
    assert not feed._thread.is_alive()


def test_a_fetching_that_ends_without_its_segment_end_is_an_error() -> None:
    async def fetching(feed: Feed) -> None:
        await feed.put(batch(1))

    with closing(Feed(fetching)) as feed:
        got: list[Any] = []
        with pytest.raises(RuntimeError, match="ended before its segment did"):
            got.extend(feed.segment())
        assert ids(got) == ["c1"]


def test_a_fetching_the_run_abandoned_ends_with_its_thread() -> None:
    """The runner is done (a load failed): a fetching waiting for a commit that never comes
    ends by itself, and so does its thread; nobody has to reach into the source to close it."""
    over = threading.Event()
    ended = threading.Event()

    async def fetching(feed: Feed) -> None:
        try:
            await feed.put(SegmentEnd({}, more=True, last=False))
            await feed.until(lambda: False, "a commit")
        finally:
            ended.set()

    feed = Feed(fetching, abandoned=over.is_set)
    wait_until(lambda: feed.waiting_for == "a commit", "the fetching waits for a commit")
    over.set()
    wait_until(ended.is_set, "the abandoned fetching ends")
    wait_until(lambda: not feed._thread.is_alive(), "its thread ends")
