"""A bare async client of the Neuron Calls API: the yardstick for the sync's own cost.

It makes the requests a first sync makes and nothing else: the list by offset pages of 100,
details of every call, then the transcript of each call with a `transcript_job_id`, with
`concurrency` fetches in flight (the list read by one task beside them, as the sync does).
It decodes each JSON body (it must, to know the ids and transcript jobs) and keeps nothing:
no rows, no dlt, no retries, no rate limiter. plain aiohttp.

    python bench/bare_client.py BASE_URL API_KEY CONCURRENCY   # prints {"seconds", "requests"}
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import aiohttp
import orjson

PAGE = 100


async def bare_sync(base_url: str, api_key: str, concurrency: int) -> dict[str, float]:
    headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency + 4)
    requests = 0
    started = time.monotonic()
    async with aiohttp.ClientSession(
        base_url.rstrip("/") + "/", headers=headers, connector=connector
    ) as session:

        async def get(path: str, params: dict[str, int] | None = None) -> object:
            nonlocal requests
            requests += 1
            async with session.get(path, params=params) as response:
                body = await response.read()
                if response.status == 404:
                    return None
                response.raise_for_status()
                return orjson.loads(body)

        queue: asyncio.Queue[str | None] = asyncio.Queue(concurrency * 4)

        async def lister() -> None:
            offset = 0
            while True:
                page = await get("calls", {"limit": PAGE, "offset": offset})
                assert isinstance(page, dict)
                for item in page["data"]:
                    await queue.put(item["id"])
                offset += len(page["data"])
                if not page["data"] or offset >= page["total"]:
                    break
            for _ in range(concurrency):
                await queue.put(None)

        async def worker() -> None:
            while (call_id := await queue.get()) is not None:
                detail = await get(f"calls/{call_id}")
                if isinstance(detail, dict) and detail.get("transcript_job_id"):
                    await get(f"calls/{call_id}/transcript")

        await asyncio.gather(lister(), *(worker() for _ in range(concurrency)))
    return {"seconds": time.monotonic() - started, "requests": requests}


if __name__ == "__main__":
    url, key, c = sys.argv[1], sys.argv[2], int(sys.argv[3])
    print(json.dumps(asyncio.run(bare_sync(url, key, c))))
