"""Recordings archived before their signed URL expires (opt-in: `SOURCES__NEURON__RECORDINGS_URL`).

A call's `recording_url` is signed and lives one hour, so the recording is downloaded right after
the call's details were fetched: streamed to storage chunk by chunk (never whole in memory), to
`<root>/<YYYY>/<MM>/<DD>/<call_id>.<ext>` (UTC day of `started_at`, extension from the content
type). The storage is a local folder or any fsspec URL (`s3://bucket/prefix`, `gs://...`,
`az://...`, `file://...`), with the credentials its library reads (for S3: `AWS_ACCESS_KEY_ID`,
`AWS_SECRET_ACCESS_KEY`, `AWS_ENDPOINT_URL`, ...).

A file appears only complete: a local file is written under a temporary name and renamed; an
object store's upload becomes visible only when it completes. A recording already in storage is
never downloaded again (its row is rebuilt from the stored file). A refused URL (403: expired)
gets a fresh one from the call's details, once. The signed URL is never stored or logged.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pendulum

from .api.client import NeuronClient
from .api.errors import ConfigError, NeuronError, RecordingURLRefused, sanitize_url
from .rows import Row, parse_timestamp
from .settings import env_var

log = logging.getLogger(__name__)

SETTING = env_var("recordings_url")
RECORDINGS_CONCURRENCY = 16  # downloads at once; fewer hold the fan-out up
READ_CHUNK = 1 << 20
EXTENSIONS = {
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/vnd.wave": "wav",
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
    "audio/ogg": "ogg",
    "audio/opus": "opus",
    "audio/webm": "webm",
    "audio/flac": "flac",
    "audio/mp4": "m4a",
}


def extension(content_type: str) -> str:
    return EXTENSIONS.get(content_type.split(";")[0].strip().lower(), "bin")


class RecordingStore:
    """Where recordings live: one folder per UTC day, one file per call."""

    def __init__(self, url: str) -> None:
        try:
            from fsspec.core import url_to_fs

            self.fs, root = url_to_fs(url)
        except ImportError as exc:
            extra = "s3" if "s3" in str(exc) else "the storage's fsspec package"
            raise ConfigError(
                f"{SETTING} {sanitize_url(url)!r} needs {exc.name or 'a package'}: "
                f"pip install 'neuron-calls[{extra}]'"
            ) from None
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{SETTING} {sanitize_url(url)!r} is not usable: {exc}") from None
        self.local = "file" in _protocols(self.fs)
        self.root = os.path.abspath(root) if self.local else root.rstrip("/")
        self._days: dict[str, set[str]] = {}

    def check_writable(self) -> None:
        """Fail before the run, with the setting's name, when nothing can be written there."""
        probe = f"{self.root}/.neuron-calls-probe-{uuid.uuid4().hex}"
        try:
            self.fs.makedirs(self.root, exist_ok=True)
            with self.fs.open(probe, "wb") as handle:
                handle.write(b"ok")
            self.fs.rm(probe)
        except Exception as exc:  # noqa: BLE001 - any storage error means: fix the setting
            raise ConfigError(
                f"cannot write recordings to {self.root}: {str(exc).splitlines()[0][:160]}; "
                f"check {SETTING} and its credentials"
            ) from None

    def folder(self, started_at: dt.datetime) -> str:
        day = started_at.astimezone(dt.UTC)
        return f"{self.root}/{day:%Y}/{day:%m}/{day:%d}"

    def find(self, call_id: str, started_at: dt.datetime) -> str | None:
        """The stored recording of the call, if any (one listing per day folder and run)."""
        folder = self.folder(started_at)
        if folder not in self._days:
            try:
                names = self.fs.ls(folder, detail=False)
            except FileNotFoundError:
                names = []
            self._days[folder] = {name.rstrip("/").rsplit("/", 1)[-1] for name in names}
        prefix = f"{call_id}."
        found = sorted(n for n in self._days[folder] if n.startswith(prefix) and ".part-" not in n)
        return f"{folder}/{found[0]}" if found else None

    async def write(
        self,
        call_id: str,
        started_at: dt.datetime,
        content_type: str,
        chunks: AsyncIterator[bytes],
    ) -> Row:
        """Stream the chunks to the call's path; the file appears only once complete."""
        folder = self.folder(started_at)
        final = f"{folder}/{call_id}.{extension(content_type)}"
        target = f"{final}.part-{uuid.uuid4().hex}" if self.local else final
        digest, size = hashlib.sha256(), 0
        await asyncio.to_thread(self.fs.makedirs, folder, exist_ok=True)
        handle = await asyncio.to_thread(self.fs.open, target, "wb")
        try:
            async for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                await asyncio.to_thread(handle.write, chunk)
            await asyncio.to_thread(self._close, handle)
        except BaseException:
            await asyncio.to_thread(self._abort, handle, target)
            raise
        if target != final:
            await asyncio.to_thread(self.fs.mv, target, final)
        self._days.setdefault(folder, set()).add(final.rsplit("/", 1)[-1])
        return self.row(call_id, final, size, digest.hexdigest(), content_type)

    def _close(self, handle: Any) -> None:
        if self.local:
            handle.flush()
            os.fsync(handle.fileno())
        handle.close()

    def _abort(self, handle: Any, target: str) -> None:
        try:
            if hasattr(handle, "discard"):
                handle.discard()  # an object store's unfinished upload: never visible
            handle.close()
        finally:
            if self.local and self.fs.exists(target):
                self.fs.rm(target)

    def describe(self, call_id: str, path: str, content_type: str | None = None) -> Row:
        """The row of a recording already stored (read back for its size and hash)."""
        digest, size = hashlib.sha256(), 0
        with self.fs.open(path, "rb") as handle:
            while chunk := handle.read(READ_CHUNK):
                digest.update(chunk)
                size += len(chunk)
        ext = path.rsplit(".", 1)[-1]
        kind = content_type or next((k for k, v in EXTENSIONS.items() if v == ext), "")
        return self.row(call_id, path, size, digest.hexdigest(), kind or None)

    def uri(self, path: str) -> str:
        if self.local:
            return path
        protocol = _protocols(self.fs)[0]
        return f"{protocol}://{path}"

    def row(self, call_id: str, path: str, size: int, sha256: str, content_type: str | None) -> Row:
        return {
            "call_id": call_id,
            "uri": self.uri(path),
            "bytes": size,
            "sha256": sha256,
            "content_type": content_type,
            "downloaded_at": pendulum.now("UTC"),
        }


def _protocols(fs: Any) -> list[str]:
    protocol = fs.protocol
    return list(protocol) if isinstance(protocol, tuple | list) else [protocol]


class RecordingFailed(Exception):
    """The recording could not be had this run (the call stays pending for it)."""


class Archiver:
    """Downloads each call's recording once, with its own concurrency bound."""

    def __init__(self, store: RecordingStore, concurrency: int = RECORDINGS_CONCURRENCY) -> None:
        self.store = store
        self.slots = asyncio.Semaphore(concurrency)

    async def archive(self, client: NeuronClient, detail: Row) -> tuple[Row, bool]:
        """The recordings row of a call whose details carry a `recording_url`, and whether it
        was downloaded now (False: found in storage); raises RecordingFailed with a message
        that never holds the URL."""
        call_id = str(detail["id"])
        started = parse_timestamp(detail.get("started_at")) or pendulum.now("UTC")
        try:
            stored = await asyncio.to_thread(self.store.find, call_id, started)
            if stored is not None:  # never twice: archived by an earlier run
                return await asyncio.to_thread(self.store.describe, call_id, stored), False
            url = detail.get("recording_url")
            return await self._download(client, call_id, started, url), True
        except RecordingFailed:
            raise
        except (NeuronError, OSError, ValueError) as exc:
            raise RecordingFailed(f"recording: {str(exc).splitlines()[0][:200]}") from None

    async def _download(
        self, client: NeuronClient, call_id: str, started: dt.datetime, url: Any
    ) -> Row:
        for attempt in range(2):
            if not isinstance(url, str) or not url:
                raise RecordingFailed("recording: the call no longer has a recording URL")
            try:
                async with self.slots, client.stream_recording(url) as (content_type, chunks):
                    return await self.store.write(call_id, started, content_type, chunks)
            except RecordingURLRefused:
                if attempt:
                    raise RecordingFailed("recording: the URL was refused (403) twice") from None
                log.debug("recording URL of %s refused: fetching a fresh one", call_id)
                url = (await client.get_call(call_id)).get("recording_url")
        raise AssertionError("unreachable")
