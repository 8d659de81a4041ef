#!/usr/bin/env python
"""Benchmark thumbnails on long files: wall time and peak memory against the file's length.

    python scripts/bench_thumbnails.py --minutes 6 60                  # smoke models of build/nbval
    python scripts/bench_thumbnails.py --minutes 60 --profile toy --run-dir results --model-dir models/toy

For each length a toy programme (s2i.method.thumbnails.make_programme) is streamed to disk segment by
segment (FLAC by default; the writer runs in its own process so its memory does not count),
then a fresh process loads the models and runs ``make_thumbnails`` on the file, which streams
it window batch by window batch. Each run reports the wall time of the thumbnails, the
resident memory after loading the models, and the peak resident memory of the process
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``): if memory does not grow with the length of
the file, the peaks of a 6-minute and a 60-minute file are about the same.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import load_run


def rss_mb() -> float:
    """Current resident set size (MiB), from /proc (Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def write_file(path: Path, minutes: float, seed: int) -> dict:
    from s2i.toyworld.programmes import make_programme, write_programme

    t = time.perf_counter()
    prog = make_programme(seed, duration_s=minutes * 60)
    write_programme(prog, path)
    return dict(
        write_s=round(time.perf_counter() - t, 1),
        duration_s=round(prog.duration, 1),
        n_segments=len(prog.segments),
        classes=prog.present_classes(),
        longest=prog.longest_class(),
        file_mb=round(path.stat().st_size / 2**20, 1),
        writer_peak_rss_mb=round(peak_mb(), 1),
    )


def run_one(args, path: Path) -> dict:
    from s2i.method.thumbnails import make_thumbnails

    s2i = load_run(args.run_dir, args.profile, args.model_dir)  # the profile's sampling steps, as the CLI
    base = rss_mb()
    t = time.perf_counter()
    res = make_thumbnails(
        s2i,
        path,
        window_s=args.window,
        overlap_s=args.overlap,
        batch=args.batch,
        seed=args.seed,
        progress=args.progress,
        out_dir=path.parent / f"{path.stem}_out",
    )
    wall = time.perf_counter() - t
    return dict(
        thumbnails_wall_s=round(wall, 1),
        n_windows=int(len(res.starts)),
        k=res.k,
        rss_after_models_mb=round(base, 1),
        peak_rss_mb=round(peak_mb(), 1),
        embeddings_mb=round(res.windows.z.nbytes / 2**20, 2),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, nargs="+", default=[6.0, 60.0], help="programme lengths")
    ap.add_argument("--format", default="flac", choices=["flac", "wav", "mp3", "m4a", "opus"])
    ap.add_argument("--profile", default="smoke")
    ap.add_argument("--run-dir", default="build/nbval")
    ap.add_argument("--model-dir", default="build/nbval/models")
    ap.add_argument("--window", type=float, default=2.0)
    ap.add_argument("--overlap", type=float, default=1.0)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", default=None, help="where the files go (default: a temporary folder)")
    ap.add_argument("--progress", action="store_true")
    ap.add_argument("--_write", default=None, help=argparse.SUPPRESS)  # child: write one file
    ap.add_argument("--_run", default=None, help=argparse.SUPPRESS)  # child: thumbnails of one file
    args = ap.parse_args()

    if args._write:
        print(json.dumps(write_file(Path(args._write), args.minutes[0], args.seed)))
        return
    if args._run:
        print(json.dumps(run_one(args, Path(args._run))))
        return

    work = Path(args.workdir or tempfile.mkdtemp(prefix="s2i_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    me = [sys.executable, os.path.abspath(__file__)]
    passthru = [
        "--profile",
        args.profile,
        "--run-dir",
        args.run_dir,
        "--model-dir",
        args.model_dir,
        "--window",
        str(args.window),
        "--overlap",
        str(args.overlap),
        "--batch",
        str(args.batch),
        "--seed",
        str(args.seed),
    ] + (["--progress"] if args.progress else [])
    rows = []
    for m in args.minutes:
        path = work / f"programme_{m:g}min.{args.format}"
        w = json.loads(
            subprocess.run(
                me + ["--minutes", str(m), "--seed", str(args.seed), "--_write", str(path)],
                check=True,
                capture_output=True,
                text=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        r = json.loads(
            subprocess.run(me + passthru + ["--_run", str(path)], check=True, stdout=subprocess.PIPE, text=True)
            .stdout.strip()
            .splitlines()[-1]
        )
        row = dict(minutes=m, **w, **r)
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(
        f"\n{'minutes':>8} {'file MB':>8} {'windows':>8} {'k':>3} {'wall s':>8} {'RSS models MB':>14} "
        f"{'peak RSS MB':>12}"
    )
    for r in rows:
        print(
            f"{r['minutes']:>8g} {r['file_mb']:>8} {r['n_windows']:>8} {r['k']:>3} {r['thumbnails_wall_s']:>8} "
            f"{r['rss_after_models_mb']:>14} {r['peak_rss_mb']:>12}"
        )
    print(f"files in {work}")


if __name__ == "__main__":
    main()
