#!/usr/bin/env python
"""Benchmark: thumbnails of a 1-hour sound file -- seconds, real-time factor, peak memory, and
where the time and memory go.

    .venv/bin/python scripts/bench_thumbnails_rt.py                       # toy models (the CLI's default)
    .venv/bin/python scripts/bench_thumbnails_rt.py --profile-html /tmp/thumbs.html
    .venv/bin/python scripts/bench_thumbnails_rt.py --profile smoke --run-dir build/nbval \\
        --model-dir build/nbval/models --window 0.5                      # the smoke models of build/nbval

(``scripts/bench_thumbnails.py``, the older benchmark, compares several lengths' wall time and
peak memory; this one measures one long file against a target and profiles it.)

A toy programme (:func:`s2i.toyworld.programmes.make_programme`, ``--minutes`` long, 16 kHz mono)
is streamed to a FLAC file once (kept in ``--workdir``), then a **fresh process** builds the model
as the CLI's ``s2i thumbnails`` does (``Sound2Image.from_run(run_dir, profile, model_dir,
window_s, sample_steps)`` with the profile's ``sampling.steps``), runs ``make_thumbnails`` once
untimed on a 2-minute programme (warm-up), then once timed on the long file with the CLI's
settings (window 2 s, overlap 1 s, batch 32, k chosen over 2..8, ``out_dir`` written as
``res.save`` does). Reported: seconds, real-time factor (audio seconds / wall seconds), RSS after
the models loaded, the process's peak RSS (``ru_maxrss``; the child ends with ``os._exit`` so
interpreter teardown does not count), and per stage -- the stage functions ``make_thumbnails``
calls are wrapped in the measuring process (nothing in s2i is edited) -- seconds and the peak RSS
reached during it (a thread samples ``/proc/self/statm`` every 5 ms): decode (the streaming window
reader), embed (audio encoder), cluster (k-means + silhouettes), draw (the generator), save.

``--profile-html`` runs a third process with pyinstrument around the timed call and prints the
top of the profile. Targets: >= 300 x real time and <= 1 GB peak.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchlib import cpu_model, load_run

SECTIONS = ("decode", "embed", "cluster", "draw", "save")


_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE / 2**20


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ----------------------------------------------------------------------------- writer (own process)
def write_file(path: Path, minutes: float, seed: int) -> dict:
    from s2i.toyworld.programmes import make_programme, write_programme

    t = time.perf_counter()
    prog = make_programme(seed, duration_s=minutes * 60)
    write_programme(prog, path)
    return dict(write_s=round(time.perf_counter() - t, 1), duration_s=prog.duration, segments=len(prog.segments))


# ----------------------------------------------------------------------------- stage meter
class Stages:
    """Seconds and peak RSS per stage: wrappers mark the current stage, a thread samples RSS."""

    def __init__(self) -> None:
        self.secs = dict.fromkeys(SECTIONS, 0.0)
        self.peak = dict.fromkeys(SECTIONS, 0.0)
        self.peak["other"] = 0.0
        self.current = "other"
        self._stop = threading.Event()
        self._th = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            r = rss_mb()
            self.peak[self.current] = max(self.peak[self.current], r)
            time.sleep(0.005)

    def start(self) -> None:
        self._th.start()

    def stop(self) -> None:
        self._stop.set()
        self._th.join()

    def wrap(self, fn, name: str):
        def wrapped(*a, **k):
            prev, self.current = self.current, name
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                self.secs[name] += time.perf_counter() - t
                self.current = prev

        return wrapped

    def wrap_iter(self, fn, name: str):
        """A generator function whose ``next`` calls count as ``name`` (the streaming decoder)."""

        def wrapped(*a, **k):
            it = iter(fn(*a, **k))
            while True:
                prev, self.current = self.current, name
                t = time.perf_counter()
                try:
                    item = next(it)
                except StopIteration:
                    return
                finally:
                    self.secs[name] += time.perf_counter() - t
                    self.current = prev
                yield item

        return wrapped


def instrument(s2i, stages: Stages) -> None:
    """Wrap what make_thumbnails calls, in this process only."""
    import s2i.media as media
    import s2i.method.thumbnails as th

    media.iter_audio_windows = stages.wrap_iter(media.iter_audio_windows, "decode")  # imported at call time
    s2i.embed_windows = stages.wrap(s2i.embed_windows, "embed")  # the last, shorter window
    s2i.embed_window_grid = stages.wrap(s2i.embed_window_grid, "embed")  # the rest (the toy encoder's own grid)
    th.cluster_embeddings = stages.wrap(th.cluster_embeddings, "cluster")
    s2i.backbones.generate = stages.wrap(s2i.backbones.generate, "draw")
    th.ThumbnailResult.save = stages.wrap(th.ThumbnailResult.save, "save")


# ----------------------------------------------------------------------------- child: one timed run
def run_one(args, path: Path, warm: Path, profile_html: str | None) -> dict:
    milestones = {"python": rss_mb()}
    if not args.glibc_defaults:
        from s2i.app.cli import keep_freed_memory

        keep_freed_memory()  # as the s2i command does
    import torch

    milestones["import torch"] = rss_mb()
    from s2i.method.thumbnails import make_thumbnails

    milestones["import s2i.method"] = rss_mb()
    if args.threads:
        torch.set_num_threads(args.threads)
    t = time.perf_counter()
    s2i = load_run(args.run_dir, args.profile, args.model_dir, args.window)  # the profile's sampling steps, as the CLI
    load_s = time.perf_counter() - t
    milestones["models loaded (from_run)"] = rss_mb()
    kw = dict(window_s=2.0, overlap_s=1.0, batch=args.batch, seed=0)
    make_thumbnails(s2i, warm, out_dir=path.parent / "warm_out", **kw)  # warm-up, untimed
    milestones["after the warm-up (2 min)"] = rss_mb()
    stages = Stages()
    if not profile_html:
        instrument(s2i, stages)
    base = rss_mb()
    prof = None
    if profile_html:
        from pyinstrument import Profiler

        prof = Profiler(interval=0.001)
        prof.start()
    stages.start()
    t = time.perf_counter()
    res = make_thumbnails(s2i, path, out_dir=path.parent / f"{path.stem}_out", **kw)
    wall = time.perf_counter() - t
    stages.stop()
    out = dict(
        load_s=round(load_s, 2),
        wall_s=round(wall, 2),
        duration_s=round(float(res.windows.duration), 1),
        n_windows=int(len(res.starts)),
        k=res.k,
        k_method=res.clustering.method,
        rss_after_models_mb=round(base, 1),
        peak_rss_mb=round(peak_mb(), 1),
        torch_threads=torch.get_num_threads(),
        stage_s={k: round(v, 2) for k, v in stages.secs.items()},
        stage_peak_mb={k: round(v, 1) for k, v in stages.peak.items()},
        milestones_mb={k: round(v, 1) for k, v in milestones.items()},
    )
    if prof is not None:
        prof.stop()
        Path(profile_html).write_text(prof.output_html())
        out["profile_text"] = prof.output_text(unicode=False, color=False, show_all=False)
    return out


def child_cmd(args, extra: list[str]) -> list[str]:
    cmd = [sys.executable, os.path.abspath(__file__), "--profile", args.profile, "--run-dir", args.run_dir]
    cmd += ["--model-dir", args.model_dir, "--window", str(args.window), "--batch", str(args.batch)]
    cmd += ["--threads", str(args.threads)] + (["--glibc-defaults"] if args.glibc_defaults else [])
    return cmd + extra


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--profile", default="toy", help="model profile (toy, smoke)")
    ap.add_argument("--run-dir", default="results", help="where alignment/audio_encoder is")
    ap.add_argument("--model-dir", default="models/toy")
    ap.add_argument("--window", type=float, default=0.5, help="the audio encoder's window (params audio.window_s)")
    ap.add_argument("--batch", type=int, default=32, help="windows per encoder call (the CLI's default)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument(
        "--glibc-defaults", action="store_true", help="leave malloc as glibc sets it (the s2i command tunes it)"
    )
    ap.add_argument("--workdir", default=None, help="where the sound files go (kept; default: a temporary folder)")
    ap.add_argument("--profile-html", default=None, help="also run once under pyinstrument, HTML written here")
    ap.add_argument("--_write", nargs=3, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--_run", nargs=3, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args._write:
        print(json.dumps(write_file(Path(args._write[0]), float(args._write[1]), int(args._write[2]))), flush=True)
        return
    if args._run:
        r = run_one(args, Path(args._run[0]), Path(args._run[1]), args._run[2] or None)
        print(json.dumps(r), flush=True)
        sys.stderr.flush()
        os._exit(0)  # no interpreter teardown in the measured process

    import torch

    print("== thumbnails of a long file (s2i.method.thumbnails.make_thumbnails)")
    print(f"CPU: {cpu_model()} | os.cpu_count()={os.cpu_count()} | torch default threads={torch.get_num_threads()}")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="s2i_bench_thumbs_"))
    work.mkdir(parents=True, exist_ok=True)
    files = {}
    for minutes, seed in ((args.minutes, 0), (2.0, 1)):
        p = work / f"programme_{minutes:g}min.flac"
        if not p.exists():
            r = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--_write", str(p), str(minutes), str(seed)],
                check=True,
                stdout=subprocess.PIPE,
                text=True,
            )
            w = json.loads(r.stdout.strip().splitlines()[-1])
            print(f"wrote {p.name}: {w['duration_s']:.0f} s of sound, {w['segments']} segments, in {w['write_s']} s")
        files[minutes] = p
    long, warm = files[args.minutes], files[2.0]
    print(
        f"model: profile {args.profile}, run {args.run_dir}, models {args.model_dir}; file {long} "
        f"({long.stat().st_size / 2**20:.1f} MB)"
    )

    r = subprocess.run(
        child_cmd(args, ["--_run", str(long), str(warm), ""]), check=True, stdout=subprocess.PIPE, text=True
    )
    m = json.loads(r.stdout.strip().splitlines()[-1])
    rtf = m["duration_s"] / m["wall_s"]
    print(
        f"\n{m['duration_s']:.0f} s of audio, {m['n_windows']} windows, k = {m['k']} ({m['k_method']}); "
        f"torch threads {m['torch_threads']}; models loaded in {m['load_s']} s"
    )
    print(f"{'seconds':>8} {'x real time':>12} {'RSS models MB':>14} {'peak RSS MB':>12}")
    print(f"{m['wall_s']:>8.1f} {rtf:>12.0f} {m['rss_after_models_mb']:>14.0f} {m['peak_rss_mb']:>12.0f}")
    print(
        f"target >= 300 x real time: {'met' if rtf >= 300 else 'NOT met'}; "
        f"target <= 1 GB (1024 MiB) peak: {'met' if m['peak_rss_mb'] <= 1024 else 'NOT met'}"
    )
    print("\nRSS of the measuring process before the timed run (MB):")
    for k, v in m["milestones_mb"].items():
        print(f"  {k:<30} {v:>7.0f}")
    print("\nper stage (seconds; peak RSS MB reached during the stage; 'other' = outside the wrapped stages)")
    for s in SECTIONS:
        print(
            f"  {s:<8} {m['stage_s'][s]:>7.2f} s {100 * m['stage_s'][s] / m['wall_s']:>5.1f} %  "
            f"peak {m['stage_peak_mb'][s]:>7.0f} MB"
        )
    rest = m["wall_s"] - sum(m["stage_s"].values())
    print(
        f"  {'other':<8} {rest:>7.2f} s {100 * rest / m['wall_s']:>5.1f} %  peak {m['stage_peak_mb']['other']:>7.0f} MB"
    )

    if args.profile_html:
        r = subprocess.run(
            child_cmd(args, ["--_run", str(long), str(warm), args.profile_html]),
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        )
        p = json.loads(r.stdout.strip().splitlines()[-1])
        print(f"\n---- pyinstrument ({p['wall_s']} s under the profiler) -> {args.profile_html}")
        print(p["profile_text"])

    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
