"""Readers never blocked: a sync writes a private copy of the DuckDB file and publishes it whole.

DuckDB allows one read-write process or many read-only ones per file. The file named by
`--duckdb` is the analysts' file, so a sync never opens it for writing:

1. `stage()`  copies the public file to `.<name>.sync` beside it (a reflink where the filesystem
   can, else `copy_file_range`; a stray `.wal` of a crashed read-write session comes along, so
   DuckDB replays it into the copy);
2. dlt loads into the copy, the views and the run log are written there;
3. `publish()` checkpoints and fsyncs the copy and renames it over the public file (atomic),
   unless the public file changed since it was copied (someone wrote to it read-write and closed
   it, or left a `.wal`): then the file is left as it stands and the run exits 3 (`Changed`).

A reader that has the public file open keeps reading the old inode (one consistent picture, the
last completed run) until it reconnects; a reader that connects later sees the new run. A kill at
any moment leaves either the old or the new file, both complete; the stray copy is dropped by the
next run. Extra disk while a run goes: one copy of the file (none on XFS/btrfs reflinks).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import duckdb

log = logging.getLogger(__name__)

FICLONE = 0x40049409  # ioctl: reflink a whole file (XFS, btrfs); ext4 answers EOPNOTSUPP
COPY_CHUNK = 1 << 30
DUCKDB_MAGIC = b"DUCK"  # bytes 8..12 of every DuckDB file
FREE_SPACE_MARGIN = 64 << 20


class SnapshotError(Exception):
    """The public file cannot be staged or published; `code` is the exit status to use."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


CHANGED_EXIT = 3  # the run's work waits for the next run, which goes on from the file as it is


def changed_message(path: Path) -> str:
    return (
        f"{path} was written by another connection during this sync (after the run copied it): "
        "it is left as it stands, with those changes, and nothing of this run was published, "
        "the next run completes it"
    )


def wal_of(path: Path) -> Path:
    return path.with_name(path.name + ".wal")


Mark = tuple[tuple[int, ...] | None, tuple[int, ...] | None]


def mark_of(path: Path) -> Mark:
    """What tells a write to the file apart: the identity, size and change times of the file
    and of its `.wal` (None: absent). Any write, by any process, moves the ctime."""

    def one(file: Path) -> tuple[int, ...] | None:
        try:
            st = file.stat()
        except FileNotFoundError:
            return None
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    return one(path), one(wal_of(path))


def held_read_write(path: Path) -> bool:
    """True when another process has `path` open read-write: DuckDB then holds an exclusive
    fcntl lock on it (read-only readers hold shared ones, which this probe does not disturb)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EAGAIN):
            return True
        raise
    finally:
        os.close(fd)  # also drops the probe's shared lock
    return False


def read_write_holder_message(path: Path) -> str:
    return (
        f"{path} is open read-write in another process (the duckdb CLI opens files read-write by "
        f"default): connect read-only instead (`duckdb -readonly {path.name}`, or "
        f"`ATTACH '{path.name}' AS neuron_calls (READ_ONLY)`) and run again"
    )


def check_duckdb_file(path: Path) -> None:
    """Refuse a folder or a file that is not DuckDB before anything is copied."""
    if not path.exists():
        return
    if not path.is_file():
        raise SnapshotError(f"{path} is not a usable DuckDB file: it is not a regular file", 2)
    with open(path, "rb") as handle:
        head = handle.read(12)
    if head and head[8:12] != DUCKDB_MAGIC:
        raise SnapshotError(f"{path} is not a usable DuckDB file: it is not a DuckDB database", 2)


def copy_file(source: Path, target: Path) -> None:
    """Reflink when the filesystem can, else copy_file_range in the kernel; fsync the copy."""
    with open(source, "rb") as src, open(target, "wb") as dst:
        try:
            fcntl.ioctl(dst.fileno(), FICLONE, src.fileno())
        except OSError:
            _copy_range(src.fileno(), dst.fileno(), os.fstat(src.fileno()).st_size)
        os.fsync(dst.fileno())


def _copy_range(src: int, dst: int, size: int) -> None:
    copied = 0
    try:
        while copied < size:
            done = os.copy_file_range(src, dst, min(COPY_CHUNK, size - copied))
            if done == 0:
                break
            copied += done
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
            raise
        os.lseek(src, copied, os.SEEK_SET)
        os.lseek(dst, copied, os.SEEK_SET)
        with os.fdopen(os.dup(src), "rb") as s, os.fdopen(os.dup(dst), "wb") as d:
            shutil.copyfileobj(s, d, 16 << 20)


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Snapshot:
    """The private copy a run writes, and its publication over the public file."""

    def __init__(self, public: Path) -> None:
        self.public = public
        self.staged = public.with_name(f".{public.name}.sync")
        self.copied: Mark | None = None  # the public file as it was when staged

    def discard(self) -> None:
        for stale in (self.staged, wal_of(self.staged)):
            stale.unlink(missing_ok=True)

    def stage(self) -> Path:
        """A fresh private copy of the public file (an empty one when there is none yet)."""
        check_duckdb_file(self.public)
        if held_read_write(self.public):
            raise SnapshotError(read_write_holder_message(self.public), 2)
        self.discard()
        self.public.parent.mkdir(parents=True, exist_ok=True)
        self.copied = mark_of(self.public)  # before the copy: a write during it counts too
        if not self.public.exists():
            return self.staged
        self._check_free_space()
        try:
            copy_file(self.public, self.staged)
            if wal_of(self.public).exists():  # a crashed read-write session's log: keep its data
                shutil.copyfile(wal_of(self.public), wal_of(self.staged))
        except OSError as exc:
            self.discard()
            raise SnapshotError(f"cannot copy {self.public} to stage the run: {exc}", 1) from None
        return self.staged

    def _check_free_space(self) -> None:
        need = self.public.stat().st_size + FREE_SPACE_MARGIN
        free = shutil.disk_usage(self.public.parent).free
        if free < need:
            raise SnapshotError(
                f"not enough free disk in {self.public.parent} to stage a run: it needs a copy "
                f"of {self.public.name} ({need >> 20} MB), {free >> 20} MB free; free some "
                "space and run again (nothing was changed)",
                1,
            )

    def publish(self) -> None:
        """Make the staged copy the public file, atomically; the copy is complete on disk."""
        with duckdb.connect(str(self.staged)) as conn:
            conn.execute("checkpoint")  # everything in the main file, nothing left in a .wal
        if wal_of(self.staged).exists() and wal_of(self.staged).stat().st_size:
            raise SnapshotError(f"{self.staged} still has a write-ahead log after checkpoint", 1)
        wal_of(self.staged).unlink(missing_ok=True)
        with open(self.staged, "rb+") as handle:
            os.fsync(handle.fileno())
        with self._kept_still():
            if self.copied is not None and mark_of(self.public) != self.copied:
                raise SnapshotError(changed_message(self.public), CHANGED_EXIT)
            # a .wal beside the public file belongs to the old file: new readers must not replay
            wal_of(self.public).unlink(missing_ok=True)
            os.replace(self.staged, self.public)
            fsync_dir(self.public.parent)
        log.debug("published %s", self.public)

    @contextlib.contextmanager
    def _kept_still(self) -> Iterator[None]:
        """A shared lock on the public file while it is compared and replaced: a read-write
        connection (DuckDB locks the file exclusively) cannot open it meanwhile; one that holds
        it refuses the run (exit 2). Read-only readers share the lock and go on."""
        try:
            fd = os.open(self.public, os.O_RDONLY)
        except FileNotFoundError:
            yield
            return
        try:
            try:
                fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EACCES, errno.EAGAIN):
                    raise SnapshotError(read_write_holder_message(self.public), 2) from None
                raise
            yield
        finally:
            os.close(fd)  # also lets the lock go

    @contextlib.contextmanager
    def staging(self) -> Iterator[Path]:
        """`with snapshot.staging() as path:` the copy is discarded unless published inside."""
        try:
            yield self.stage()
        finally:
            self.discard()
