"""What publishing a run costs: staging copy and atomic publish of the DuckDB file.

    python bench/bench_publish.py [--calls 100000 1000000] [--dir PATH]

A sync never writes the analysts' file in place: it copies it to a private file (reflink where
the filesystem can, else copy_file_range), loads there, then checkpoints, fsyncs and renames the
copy over the public file. This synthesizes a `neuron` dataset of each size (bench_views' data:
~5 segments per call), then times `stage()` and `publish()` cold (page cache dropped when we
may) and warm, and prints the file size and the extra disk a run needs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import duckdb
from bench_views import synthesize

from pipelines.warehouse.snapshot import Snapshot


def drop_caches() -> bool:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def measure(folder: Path, calls: int) -> None:
    db = folder / f"calls_{calls}.duckdb"
    with duckdb.connect(str(db)) as conn:
        synthesize(conn, calls)
        segments = (
            conn.execute("select count(*) from neuron.transcript_segments").fetchone() or (0,)
        )[0]
    size = db.stat().st_size
    snapshot = Snapshot(db)
    for label, cold in (("cold", True), ("warm", False)):
        dropped = drop_caches() if cold else False
        start = time.perf_counter()
        snapshot.stage()
        staged = time.perf_counter() - start
        start = time.perf_counter()
        snapshot.publish()
        published = time.perf_counter() - start
        tag = label if (dropped or not cold) else "cold (cache not dropped: not root)"
        print(
            f"{calls:>9,} calls {segments:>10,} segments  file {size / 2**20:7.1f} MB  "
            f"{tag:<5}  stage {staged:6.2f} s  publish {published:6.2f} s  "
            f"extra disk while a run goes {size / 2**20:7.1f} MB"
        )
    db.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--dir", help="where to put the files (default: a temp folder)")
    args = parser.parse_args()
    folder = Path(args.dir or tempfile.mkdtemp(prefix="bench-publish-"))
    fs = os.statvfs(folder)
    print(f"folder {folder}  free {fs.f_bavail * fs.f_frsize / 2**30:.1f} GB")
    try:
        for calls in args.calls:
            measure(folder, calls)
    finally:
        if not args.dir:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
