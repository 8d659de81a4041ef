#!/usr/bin/env python
"""Benchmark: frame sampling + decode of the real-video path against the bare decode of the same frames.

    .venv/bin/python scripts/bench_frames.py                 # 8 generated 10-s clips (30/25/8 fps)
    .venv/bin/python scripts/bench_frames.py --no-hd         # without the two 1280x720 clips
    .venv/bin/python scripts/bench_frames.py --profile out.html   # + a pyinstrument profile of ours
    .venv/bin/python scripts/bench_frames.py --workers            # main process only (no DataLoader)

**Ours** is :func:`s2i.real.frames.read_frames_at` on the 10-fps grid of each clip
(:func:`~s2i.real.frames.sample_times`): every grid frame, as selection decodes them, scaled in
swscale (shorter side to ``size``), converted to RGB and centre-cropped to ``size`` x ``size``
(224 and 32; ``s2i.media.video._frame_rgb``). **Bare decode** is the minimum work to get the same
frames as RGB arrays: a PyAV loop ``for fr in container.decode(video=0)`` over every frame of the
file, ``fr.to_ndarray(format="rgb24")`` on the wanted ones only (no crop, no resize; which frames
are wanted is worked out beforehand from the packets, untimed). A second reference, "bare+thr", is
the same loop with ``thread_type = "AUTO"`` (frame threading, which ours switches on), timed in the
main process only. **Fixed** is ours with the fix proposed in docs/benchmarks.md patched in
(``_frame_rgb_shared``: one swscale context reused from frame to frame; same pixels), to show what
it would give. A clip is one 10-s H.264 (High, CABAC, B-frames) + AAC file written with PyAV into a
temporary folder, at about web bitrates.

Each configuration has one untimed warm-up pass over all clips, then ``--repeats`` timed passes
(the median is reported); ours and the references alternate within a repeat, so load from other
processes hits them alike. ``--workers 1 2`` also runs both through a ``torch`` DataLoader (one
clip per item, ``batch_size=None``, ``prefetch_factor=4``), as extraction does
(``s2i.real.shards._ClipFrames``). Target: ours >= 0.5 x the bare decode (clips/s).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from av.video.reformatter import VideoReformatter
from benchlib import cpu_model

from s2i.real import frames as frames_mod
from s2i.real.frames import read_frames_at, sample_times

FPS_GRID = 10.0
SECONDS = 10.0


def header(title: str) -> None:
    print(f"== {title}")
    print(f"CPU: {cpu_model()} | os.cpu_count()={os.cpu_count()} | torch threads={torch.get_num_threads()}")
    print(f"torch {torch.__version__} | PyAV {av.__version__} (FFmpeg {av.ffmpeg_version_info})")


# ----------------------------------------------------------------------------- clips
def write_clip(path: Path, fps: int, width: int, height: int, seconds: float = SECONDS, seed: int = 0) -> None:
    """A ``seconds``-long H.264 (x264 superfast: High profile, CABAC, B-frames) + AAC mp4 at about
    web bitrates: a camera pan over a smooth random texture with a bouncing box (motion the encoder
    predicts, as in real footage), stereo 44.1 kHz tones."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * fps))
    pan = 2 * n + 8  # the texture is wider than the frame by the pan's length
    small = rng.integers(0, 256, (height // 8 + 2, (width + pan) // 8 + 2, 3)).astype(np.uint8)
    tex = av.VideoFrame.from_ndarray(small, format="rgb24")
    tex = tex.reformat(width=small.shape[1] * 8, height=small.shape[0] * 8, interpolation="BICUBIC")
    tex = tex.to_ndarray(format="rgb24")[:height, : width + pan]
    with av.open(str(path), "w", format="mp4") as c:
        vs = c.add_stream("libx264", rate=fps, options={"preset": "superfast", "crf": "26"})
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.codec_context.time_base = Fraction(1, fps)
        as_ = c.add_stream("aac", rate=44100, layout="stereo")
        bw, bh = width // 5, height // 4
        for i in range(n):
            img = np.ascontiguousarray(tex[:, 2 * i : 2 * i + width])
            x0 = int((width - bw) * (0.5 + 0.5 * np.sin(i / 9)))
            y0 = int((height - bh) * (0.5 + 0.5 * np.cos(i / 13)))
            img[y0 : y0 + bh, x0 : x0 + bw] = (255 - 40 * (i % 5), 30, 200)
            fr = av.VideoFrame.from_ndarray(img, format="rgb24")
            fr.pts = i
            for pkt in vs.encode(fr):
                c.mux(pkt)
        for pkt in vs.encode():
            c.mux(pkt)
        sr, hop = 44100, 1024
        t = np.arange(int(seconds * sr)) / sr
        sig = (0.3 * np.sin(2 * np.pi * 440 * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.5 * t))).astype(np.float32)
        stereo = np.stack([sig, 0.8 * sig])
        for k, s in enumerate(range(0, stereo.shape[1], hop)):
            chunk = np.ascontiguousarray(stereo[:, s : s + hop])
            af = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            af.sample_rate, af.pts = sr, k * hop
            for pkt in as_.encode(af):
                c.mux(pkt)
        for pkt in as_.encode():
            c.mux(pkt)


CLIP_SPECS = [  # (fps, width, height)
    (30, 640, 360),
    (25, 640, 360),
    (8, 640, 360),
    (30, 320, 240),
    (25, 320, 240),
    (8, 320, 240),
]
HD_SPECS = [(30, 1280, 720), (25, 1280, 720)]


def wanted_indices(path: Path, times: np.ndarray) -> tuple[list[int], int]:
    """Indices (decode order = presentation order for these files) of the frames on screen at
    ``times``, and the frame count: from the packets' pts, without decoding (untimed)."""
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        pts = sorted(p.pts for p in c.demux(vs) if p.pts is not None)
        tb = float(vs.time_base)
    t = (np.asarray(pts) - pts[0]) * tb
    idx = [max(int(np.searchsorted(t, x + 1e-6, side="right")) - 1, 0) for x in times]
    return idx, len(pts)


# ----------------------------------------------------------------------------- the decoders
def ours(path: Path, times: np.ndarray, size: int, _wanted) -> int:
    return len(read_frames_at(path, times, size))


class _SharedReformatter:
    """A decoded frame whose ``reformat`` goes through one ``VideoReformatter`` kept for the
    process, every other attribute passed through."""

    _per_pid: dict = {}  # DataLoader workers are forked: one reformatter per process

    def __init__(self, frame: av.VideoFrame) -> None:
        self._frame = frame
        if os.getpid() not in self._per_pid:
            self._per_pid[os.getpid()] = VideoReformatter()
        self._rf = self._per_pid[os.getpid()]

    def __getattr__(self, name):
        return getattr(self._frame, name)

    def reformat(self, *args, **kwargs):
        return self._rf.reformat(self._frame, *args, **kwargs)


_frame_rgb = frames_mod._frame_rgb  # what read_frames_at converts each wanted frame with


def _frame_rgb_shared(frame: av.VideoFrame, size: int) -> np.ndarray:
    """``_frame_rgb`` with its swscale context reused from frame to frame (same pixels):
    ``VideoFrame.reformat`` makes a new ``VideoReformatter`` -- a new SwsContext, whose set-up
    (filter coefficients, a thread pool with ``threads=0``) runs again -- for every frame."""
    return _frame_rgb(_SharedReformatter(frame), size)


def ours_fixed(path: Path, times: np.ndarray, size: int, _wanted) -> int:
    """``read_frames_at`` with :func:`_frame_rgb_shared` patched in: what the proposed fix gives."""
    frames_mod._frame_rgb = _frame_rgb_shared
    try:
        return len(read_frames_at(path, times, size))
    finally:
        frames_mod._frame_rgb = _frame_rgb


def bare(path: Path, times: np.ndarray, size: int, wanted, threaded: bool = False) -> int:
    want = set(wanted)
    n = 0
    with av.open(str(path)) as c:
        if threaded:
            c.streams.video[0].thread_type = "AUTO"
        for i, fr in enumerate(c.decode(video=0)):
            if i in want:
                fr.to_ndarray(format="rgb24")
                n += wanted.count(i)  # a frame on screen at two grid times counts twice, as ours
    return n


def bare_thr(path, times, size, wanted) -> int:
    return bare(path, times, size, wanted, threaded=True)


class _Clips(torch.utils.data.Dataset):
    def __init__(self, fn, clips, size):
        self.fn, self.clips, self.size = fn, clips, size

    def __len__(self):
        return len(self.clips)

    def __getitem__(self, i):
        path, times, wanted = self.clips[i]
        return self.fn(path, times, self.size, wanted)


def _identity(x):
    return x


def cpu_s() -> float:
    """CPU seconds (user + system) of this process and of its reaped children (DataLoader workers
    are joined when their loader is exhausted, so a pass's workers are counted once it ends)."""
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def run_pass(fn, clips, size: int, workers: int | None) -> tuple[float, float, int, list[float]]:
    """(wall seconds, CPU seconds, frames, wall seconds per clip) for one pass over ``clips``
    (``workers`` None: a plain loop in this process, timed clip by clip; else a DataLoader as
    extraction's)."""
    t, c = time.perf_counter(), cpu_s()
    per = []
    if workers is None:
        frames = 0
        for p, ts, w in clips:
            t1 = time.perf_counter()
            frames += fn(p, ts, size, w)
            per.append(time.perf_counter() - t1)
    else:
        loader = torch.utils.data.DataLoader(
            _Clips(fn, clips, size),
            batch_size=None,
            num_workers=workers,
            collate_fn=_identity,
            prefetch_factor=4 if workers else None,
        )
        frames = sum(loader)
        del loader
    return time.perf_counter() - t, cpu_s() - c, frames, per


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[224, 32])
    ap.add_argument("--workers", type=int, nargs="*", default=[1, 2], help="DataLoader num_workers to try")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--no-hd", action="store_true", help="leave out the 1280x720 clips")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--profile", default=None, help="write a pyinstrument HTML profile of ours (size 224) here")
    args = ap.parse_args()

    header("frame sampling + decode (s2i.real.frames.read_frames_at) vs bare PyAV decode")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="s2i_bench_frames_"))
    work.mkdir(parents=True, exist_ok=True)
    specs = CLIP_SPECS + ([] if args.no_hd else HD_SPECS)
    t = time.perf_counter()
    clips, res = [], []
    for i, (fps, w, h) in enumerate(specs):
        p = work / f"clip_{fps}fps_{w}x{h}.mp4"
        if not p.exists():
            write_clip(p, fps, w, h, seed=i)
        times = sample_times(SECONDS, FPS_GRID)
        wanted, n_frames = wanted_indices(p, times)
        clips.append((p, times, wanted))
        res.append(f"{w}x{h}")
        print(f"  {p.name}: {n_frames} frames, {len(times)} grid times, {p.stat().st_size / 2**20:.2f} MB")
    print(f"{len(clips)} clips of {SECONDS:g} s written in {time.perf_counter() - t:.1f} s ({work})")
    grid = sum(len(ts) for _, ts, _ in clips)

    rows, by_res = [], {}
    for workers in [None] + list(args.workers):
        for size in args.sizes:
            fns = dict(ours=ours, fixed=ours_fixed, bare=bare)
            if workers is None:
                fns["bare_thr"] = bare_thr
            secs = {k: [] for k in fns}
            cpus = {k: [] for k in fns}
            per = {k: [] for k in fns}
            for fn in fns.values():  # warm-up (untimed): file cache, codec init, worker start-up paths
                run_pass(fn, clips, size, workers)
            for _ in range(args.repeats):
                for k, fn in fns.items():
                    s, cs, n, pc = run_pass(fn, clips, size, workers)
                    assert n == grid, (k, n, grid)
                    secs[k].append(s)
                    cpus[k].append(cs)
                    per[k].append(pc)
            med = {k: statistics.median(v) for k, v in secs.items()}
            cpu = {k: statistics.median(v) for k, v in cpus.items()}
            rows.append((workers, size, med, cpu))
            if workers is None:
                for r in dict.fromkeys(res):
                    idx = [j for j, x in enumerate(res) if x == r]
                    by_res[(size, r)] = {
                        k: statistics.median(sum(pc[j] for j in idx) for pc in v) for k, v in per.items()
                    }
            where = "main process" if workers is None else f"DataLoader {workers} worker(s)"
            print(
                f"  size {size:>3}, {where:<22}: ours {len(clips) / med['ours']:6.2f} clips/s "
                f"{grid / med['ours']:7.1f} frames/s | bare {len(clips) / med['bare']:6.2f} clips/s "
                f"{grid / med['bare']:7.1f} frames/s | ours/bare {med['bare'] / med['ours']:.2f}x | "
                f"with the fix {med['bare'] / med['fixed']:.2f}x | CPU-time ratio {cpu['bare'] / cpu['ours']:.2f}x "
                f"(fix {cpu['bare'] / cpu['fixed']:.2f}x)",
                flush=True,
            )

    print(f"\n{len(clips)} clips, {grid} grid frames per pass, median of {args.repeats} warm passes")
    print("ratio = ours throughput / bare-decode throughput (wall clock; target >= 0.5); cpu = the same from")
    print("CPU seconds (process + workers), steadier when other processes share the cores; fixed = ours with")
    print("its swscale contexts reused (the proposed fix)")
    print(
        f"{'workers':>8} {'size':>5} {'ours clips/s':>13} {'ours fr/s':>10} {'bare clips/s':>13} {'bare fr/s':>10} "
        f"{'ratio':>6} {'cpu':>5} {'target':>8} {'fixed fr/s':>11} {'ratio':>6} {'cpu':>5} {'bare+thr fr/s':>14}"
    )
    for workers, size, med, cpu in rows:
        r = med["bare"] / med["ours"]
        thr = f"{grid / med['bare_thr']:>14.1f}" if "bare_thr" in med else f"{'':>14}"
        print(
            f"{'-' if workers is None else workers:>8} {size:>5} {len(clips) / med['ours']:>13.2f} "
            f"{grid / med['ours']:>10.1f} {len(clips) / med['bare']:>13.2f} {grid / med['bare']:>10.1f} "
            f"{r:>6.2f} {cpu['bare'] / cpu['ours']:>5.2f} {'met' if r >= 0.5 else 'NOT met':>8} "
            f"{grid / med['fixed']:>11.1f} {med['bare'] / med['fixed']:>6.2f} {cpu['bare'] / cpu['fixed']:>5.2f} {thr}"
        )
    print("\nmain process, by resolution (ms per grid frame; ratio = bare / ours)")
    print(
        f"{'size':>5} {'resolution':>11} {'ours':>7} {'fixed':>7} {'bare':>7} {'bare+thr':>9} {'ratio':>6} {'fixed':>6}"
    )
    for (size, r), m in by_res.items():
        n = sum(len(clips[j][1]) for j, x in enumerate(res) if x == r)
        ms = {k: 1e3 * v / n for k, v in m.items()}
        print(
            f"{size:>5} {r:>11} {ms['ours']:>7.2f} {ms['fixed']:>7.2f} {ms['bare']:>7.2f} {ms['bare_thr']:>9.2f} "
            f"{m['bare'] / m['ours']:>6.2f} {m['bare'] / m['fixed']:>6.2f}"
        )

    if args.profile:
        from pyinstrument import Profiler

        prof = Profiler(interval=0.0005)
        prof.start()
        for p, ts, _ in clips:
            read_frames_at(p, ts, 224)
        prof.stop()
        Path(args.profile).write_text(prof.output_html())
        print(prof.output_text(unicode=False, color=False, show_all=False))
        print(f"profile -> {args.profile}")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
