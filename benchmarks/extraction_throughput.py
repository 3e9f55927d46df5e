"""Trace extraction throughput against a plain sequential read of the same TIFF.

Writes (or, with ``--reuse``, reuses) a contiguous uint16 TIFF of
``max(--frames)`` x ``--size`` x ``--size`` pixels in ``--workdir`` (tifffile
memory-maps it), then, for every length in ``--frames`` (the first N frames of
the file), measures in a fresh process each:

- ``read``: ``tifffile.memmap`` the file and copy it into memory chunk by chunk
  (``np.array(mm[k:k + c])``), the least any reader must do;
- ``extract``: :func:`napari_sbtt.core.traces.extract_observations` with a
  strips pattern and ``--rois`` disk ROIs (optionally ``--neuropil 0.7``).

Before every cold measurement the page cache is dropped
(``echo 3 > /proc/sys/vm/drop_caches``, needs root); when that is not allowed
the numbers are warm only, which the output says. Each measurement is also
repeated warm (file in the page cache). Peak memory is reported twice: peak
RSS (``VmHWM``; it includes file pages a memmap keeps mapped; both the read and
the extraction unmap each chunk's pages when done with it) and peak anonymous
RSS (``RssAnon`` sampled every 20 ms: the memory the process really
allocates). The goals: extraction at least half the read speed; peak
memory below 1 GB and independent of the movie length.

Example::

    python benchmarks/extraction_throughput.py --workdir /tmp --frames 10000 20000
    python benchmarks/extraction_throughput.py --reuse --keep   # reuse the TIFF, keep it

The TIFF is deleted at the end unless ``--keep`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _common import AnonPeak

FILE_NAME = "napari_sbtt_extraction_bench_{t}x{s}x{s}.tif"


def rois_and_labels(size: int, n_rois: int, seed: int = 0) -> np.ndarray:
    """Labels (size, size) with n_rois non-overlapping disks of radius 5..7 px."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((size, size), dtype=np.int32)
    yy, xx = np.mgrid[:size, :size]
    placed, tries = 0, 0
    while placed < n_rois and tries < 100 * n_rois:
        tries += 1
        r = rng.uniform(5, 7)
        cy, cx = rng.uniform(r, size - r, 2)
        disk = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        if labels[disk].any():
            continue
        placed += 1
        labels[disk] = placed
    if placed < n_rois:
        raise SystemExit(f"could only place {placed} of {n_rois} ROIs in {size} x {size}")
    return labels


def write_tiff(path: Path, frames: int, size: int) -> None:
    import tifffile

    tmp = path.with_name(path.name + ".part")
    mm = tifffile.memmap(tmp, shape=(frames, size, size), dtype=np.uint16, bigtiff=True)
    rng = np.random.default_rng(1)
    base = rng.integers(200, 1200, (size, size), dtype=np.uint16)
    step = 500
    for k in range(0, frames, step):
        n = min(step, frames - k)
        mm[k : k + n] = base + rng.integers(0, 400, (n, size, size), dtype=np.uint16)
    mm.flush()
    del mm
    os.replace(tmp, path)


def drop_caches() -> bool:
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as fh:
            fh.write("3\n")
        return True
    except OSError:
        return False


def vm_hwm_mb() -> float:
    """Peak RSS of this process in MB: VmHWM (ru_maxrss survives exec from a big parent)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(kind: str, path: Path, frames: int, args: argparse.Namespace) -> dict:
    """One measurement in this process; returns a dict for JSON."""
    import tifffile

    from napari_sbtt.core.gather import release_pages
    from napari_sbtt.core.scan import ScanPattern
    from napari_sbtt.core.traces import extract_observations

    mm = tifffile.memmap(path, mode="r")[:frames]
    size = mm.shape[1]
    nbytes = mm.nbytes
    labels = rois_and_labels(size, args.rois) if kind == "extract" else None
    with AnonPeak() as anon:
        t0 = time.perf_counter()
        if kind == "read":
            c = args.chunk_frames or 256
            total = 0
            for k in range(0, frames, c):
                block = mm[k : k + c]
                buf = np.array(block)  # read into memory
                total += int(buf[0, 0, 0])
                release_pages(block)
        else:
            # a resonant-scanner-like strips pattern: 63 us lines, 4 strips of 64 rows -> 248 Hz sweeps
            p = ScanPattern.strips(size, frames, 63e-6, args.strips, flyback=2e-4)
            obs = extract_observations(
                mm, labels, p, factor=args.factor, neuropil=args.neuropil, chunk_frames=args.chunk_frames
            )
            assert obs.n_rois == args.rois and np.isfinite(obs.coverage).all()
        dt = time.perf_counter() - t0
    peak_rss_mb = vm_hwm_mb()
    return {
        "kind": kind,
        "frames": frames,
        "seconds": dt,
        "mb_per_s": nbytes / 1e6 / dt,
        "gb": nbytes / 1e9,
        "peak_rss_mb": peak_rss_mb,
        "peak_anon_mb": anon.peak_mb,
    }


def run_child(kind: str, path: Path, frames: int, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--_one", kind, "--_path", str(path), "--frames", str(frames),
           "--rois", str(args.rois), "--strips", str(args.strips), "--factor", str(args.factor)]
    if args.neuropil is not None:
        cmd += ["--neuropil", str(args.neuropil)]
    if args.chunk_frames is not None:
        cmd += ["--chunk-frames", str(args.chunk_frames)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", default="/tmp", help="folder for the big TIFF (default /tmp)")
    ap.add_argument("--frames", type=int, nargs="+", default=[10000, 20000],
                    help="movie lengths to measure (the file holds the largest)")
    ap.add_argument("--size", type=int, default=256, help="frame size Y = X in pixels")
    ap.add_argument("--rois", type=int, default=100)
    ap.add_argument("--strips", type=int, default=4)
    ap.add_argument("--factor", type=int, default=1)
    ap.add_argument("--neuropil", type=float, default=None, help="neuropil coefficient (e.g. 0.7)")
    ap.add_argument("--chunk-frames", type=int, default=None)
    ap.add_argument("--reuse", action="store_true", help="reuse the TIFF if it exists")
    ap.add_argument("--keep", action="store_true", help="do not delete the TIFF at the end")
    ap.add_argument("--_one", choices=["read", "extract"], help=argparse.SUPPRESS)
    ap.add_argument("--_path", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args._one:
        print(json.dumps(measure(args._one, Path(args._path), args.frames[0], args)))
        return

    frames_max = max(args.frames)
    path = Path(args.workdir) / FILE_NAME.format(t=frames_max, s=args.size)
    if not (args.reuse and path.exists()):
        t0 = time.perf_counter()
        write_tiff(path, frames_max, args.size)
        print(f"wrote {path} ({path.stat().st_size / 1e9:.2f} GB) in {time.perf_counter() - t0:.0f} s",
              file=sys.stderr)
    command = "python benchmarks/extraction_throughput.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}"
    can_drop = drop_caches()
    rows = []
    try:
        for frames in sorted(set(args.frames)):
            res = {}
            for state in (["cold"] if can_drop else []) + ["warm"]:
                for kind in ("read", "extract"):
                    if state == "cold":
                        drop_caches()
                    else:
                        run_child("read", path, frames, args)  # warm the page cache
                    res[(state, kind)] = r = run_child(kind, path, frames, args)
                    print(f"{state:4s} {kind:7s} {frames:6d} frames: {r['mb_per_s']:7.0f} MB/s, "
                          f"{r['seconds']:6.1f} s, peak RSS {r['peak_rss_mb']:6.0f} MB, "
                          f"peak anon {r['peak_anon_mb']:5.0f} MB", file=sys.stderr)
            rows.append((frames, res))
    finally:
        if not args.keep:
            path.unlink(missing_ok=True)

    print()
    print(f"Command: `{command}`  ")
    print(f"Machine: {machine}; page cache dropped before cold runs: {'yes' if can_drop else 'no (warm only)'}; "
          f"{args.rois} ROIs, {args.strips} strips, factor {args.factor}, "
          f"neuropil {args.neuropil}, chunk_frames {args.chunk_frames or 'auto'}")
    print()
    print("| frames | GB | cache | read MB/s | extract MB/s | extract / read | read peak RSS / anon MB "
          "| extract peak RSS / anon MB |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|")
    for frames, res in rows:
        for state in ("cold", "warm"):
            if (state, "read") not in res:
                continue
            r, e = res[(state, "read")], res[(state, "extract")]
            print(f"| {frames} | {r['gb']:.2f} | {state} | {r['mb_per_s']:.0f} | {e['mb_per_s']:.0f} | "
                  f"{e['mb_per_s'] / r['mb_per_s']:.2f} | {r['peak_rss_mb']:.0f} / {r['peak_anon_mb']:.0f} | "
                  f"{e['peak_rss_mb']:.0f} / {e['peak_anon_mb']:.0f} |")


if __name__ == "__main__":
    main()
