#!/usr/bin/env python
"""Benchmark: extraction's peak memory does not grow with the number of videos.

    .venv/bin/python scripts/bench_extract_memory.py                     # 50 and 500 clips, workers 0 and 2
    .venv/bin/python scripts/bench_extract_memory.py --clips 50 2000 --workers 2
    .venv/bin/python scripts/bench_extract_memory.py --encoder mean      # the mean-colour stand-in encoder

``s2i.real.shards.extract_pairs`` holds one shard (``shard_clips`` clips) plus the decoders'
prefetch at a time, so its peak resident memory should be the same for 50 and for 500 videos.
Each (clips, workers) run is a fresh process: it scans the folder (``s2i.real.corpus.scan_corpus``),
loads the image encoder -- the tiny random OpenCLIP of ``s2i.testing.make_tiny_openclip_checkpoint``
loaded as ``local-dir:`` (default) or the mean-colour stand-in of ``tests/test_real_path.py`` --
runs one untimed warm-up extraction on 4 clips, then extracts 2 frames per clip (frames 0 and 10 of
the 10-fps grid) with ``ExtractCfg(shard_clips=64, workers=W, window_s=1.0, image_size=32)``.

Memory, all in MiB:

* ``main peak``: ``ru_maxrss`` of the extraction process (``RUSAGE_SELF``);
* ``worker peak``: the largest ``ru_maxrss`` of its DataLoader workers (``RUSAGE_CHILDREN``, once
  they are joined; 0 without workers);
* ``tree peak``: the largest sum of the RSS of the process and its workers, polled every 20 ms by
  the parent with psutil (forked workers share pages with the main process, so the sum counts
  them more than once: an upper bound); the process exits with ``os._exit`` right after its
  report, as interpreter teardown raises RSS by tens of MB after the work is done;
* ``base``: RSS of the process after imports, scan, model load and warm-up, before the timed
  extraction; ``growth`` = main peak - base.

Clips: ``--unique`` distinct 2-s 64x48 H.264 + AAC (25 fps) videos are generated with PyAV, then
hard-linked (copied if links fail) under new names up to the largest count; each count gets its
own folder of links. Target: peak(500) / peak(50) ~ 1.0.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
from benchlib import cpu_model


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# ----------------------------------------------------------------------------- clips
def write_clip(path: Path, seed: int, seconds: float = 2.0, fps: int = 25, size=(64, 48)) -> None:
    import av

    rng = np.random.default_rng(seed)
    w, h = size
    n = int(seconds * fps)
    c0, c1 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    u = np.linspace(0, 1, w)[None, :, None]
    bg = (c0 * (1 - u) + c1 * u).astype(np.uint8)
    with av.open(str(path), "w", format="mp4") as c:
        vs = c.add_stream("libx264", rate=fps, options={"preset": "veryfast", "threads": "1"})
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.codec_context.time_base = Fraction(1, fps)
        as_ = c.add_stream("aac", rate=44100, layout="stereo")
        for i in range(n):
            img = np.broadcast_to(bg, (h, w, 3)).copy()
            x0 = int((w - 16) * i / max(n - 1, 1))
            img[16:32, x0 : x0 + 16] = rng.integers(0, 256, 3)
            fr = av.VideoFrame.from_ndarray(img, format="rgb24")
            fr.pts = i
            for pkt in vs.encode(fr):
                c.mux(pkt)
        for pkt in vs.encode():
            c.mux(pkt)
        sr, hop = 44100, 1024
        t = np.arange(int(seconds * sr)) / sr
        sig = (0.3 * np.sin(2 * np.pi * rng.uniform(200, 800) * t)).astype(np.float32)
        stereo = np.stack([sig, sig])
        for k, s in enumerate(range(0, stereo.shape[1], hop)):
            af = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(stereo[:, s : s + hop]), format="fltp", layout="stereo"
            )
            af.sample_rate, af.pts = sr, k * hop
            for pkt in as_.encode(af):
                c.mux(pkt)
        for pkt in as_.encode():
            c.mux(pkt)


def make_folders(work: Path, counts: list[int], unique: int) -> dict[int, Path]:
    src = work / "unique"
    src.mkdir(parents=True, exist_ok=True)
    bases = []
    for i in range(unique):
        p = src / f"u{i:03d}.mp4"
        if not p.exists():
            write_clip(p, seed=i)
        bases.append(p)
    folders = {}
    for n in sorted(set(counts)) + [4]:
        d = work / f"n{n}"
        d.mkdir(exist_ok=True)
        for i in range(n):
            q = d / f"clip{i:05d}.mp4"
            if not q.exists():
                try:
                    os.link(bases[i % unique], q)
                except OSError:
                    q.write_bytes(bases[i % unique].read_bytes())
        folders[n] = d
    return folders


# ----------------------------------------------------------------------------- child: one extraction
def _encode_mean(frames: np.ndarray):
    """The stand-in image embedding of tests/test_real_path.py: mean colour and brightness."""
    import torch

    x = torch.from_numpy(frames).float() / 255
    return torch.cat([x.mean((1, 2)), x.std((1, 2)).mean(1, keepdim=True)], 1)


def child(folder: Path, warm: Path, workers: int, encoder: str, out: Path) -> dict:
    import torch

    from s2i.real.corpus import scan_corpus
    from s2i.real.shards import ExtractCfg, extract_pairs

    if encoder == "openclip":
        from s2i.backbones.openclip import load_openclip_encoder
        from s2i.testing import make_tiny_openclip_checkpoint

        ck = out / "tiny-openclip"
        make_tiny_openclip_checkpoint(ck, embed_dim=32)
        enc = load_openclip_encoder(f"local-dir:{ck}", None)
        encode = enc.encode
    else:
        encode = _encode_mean
    cfg = ExtractCfg(shard_clips=64, workers=workers, window_s=1.0, image_size=32, model=encoder)
    wc = scan_corpus(warm)
    extract_pairs(wc.root, wc.clips, {c.clip_id: [(0, "s"), (10, "s")] for c in wc.clips}, encode, out / "warm", cfg)
    t = time.perf_counter()
    corpus = scan_corpus(folder)
    scan_s = time.perf_counter() - t
    plan = {c.clip_id: [(0, "selected"), (10, "random")] for c in corpus.clips}
    base = rss_mb()
    t = time.perf_counter()
    index = extract_pairs(corpus.root, corpus.clips, plan, encode, out / "pairs", cfg, progress=False)
    secs = time.perf_counter() - t
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return dict(
        clips=len(corpus.clips),
        skipped=len(corpus.skipped) + len(index["skipped"]),
        pairs=index["n_pairs"],
        shards=len(index["shards"]),
        scan_s=round(scan_s, 2),
        extract_s=round(secs, 2),
        base_mb=round(base, 1),
        main_peak_mb=round(me.ru_maxrss / 1024, 1),
        worker_peak_mb=round(kids.ru_maxrss / 1024, 1),
        torch_threads=torch.get_num_threads(),
    )


# ----------------------------------------------------------------------------- parent
def run_child(folder: Path, warm: Path, workers: int, encoder: str, work: Path) -> dict:
    import psutil

    out = Path(tempfile.mkdtemp(prefix="run_", dir=work))
    cmd = [sys.executable, os.path.abspath(__file__), "--_child", str(folder), str(warm), str(workers), encoder]
    cmd += [str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    peak, stop = [0.0], threading.Event()

    def poll() -> None:
        try:
            p = psutil.Process(proc.pid)
        except psutil.NoSuchProcess:
            return
        while not stop.is_set():
            total = 0
            try:
                for q in [p] + p.children(recursive=True):
                    try:
                        total += q.memory_info().rss
                    except psutil.NoSuchProcess:
                        pass
            except psutil.NoSuchProcess:
                return
            peak[0] = max(peak[0], total / 2**20)
            time.sleep(0.02)

    th = threading.Thread(target=poll, daemon=True)
    th.start()
    stdout, _ = proc.communicate()
    stop.set()
    th.join()
    if proc.returncode:
        raise SystemExit(f"child failed ({proc.returncode}): {' '.join(cmd)}")
    r = json.loads(stdout.strip().splitlines()[-1])
    r["tree_peak_mb"] = round(peak[0], 1)
    shutil.rmtree(out, ignore_errors=True)  # the run's shards and model
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, nargs="+", default=[50, 500])
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    ap.add_argument("--encoder", choices=["openclip", "mean"], default="openclip")
    ap.add_argument("--unique", type=int, default=10, help="distinct clips generated (the rest are links)")
    ap.add_argument("--repeats", type=int, default=1, help="runs per configuration (median)")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--_child", nargs=5, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args._child:
        folder, warm, workers, encoder, out = args._child
        print(json.dumps(child(Path(folder), Path(warm), int(workers), encoder, Path(out))), flush=True)
        sys.stderr.flush()
        os._exit(0)  # no interpreter teardown: it touches memory (~+40-110 MB RSS) after the measurement

    import torch

    print("== extraction peak memory (s2i.real.shards.extract_pairs) vs number of videos")
    print(f"CPU: {cpu_model()} | os.cpu_count()={os.cpu_count()} | torch threads={torch.get_num_threads()}")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="s2i_bench_extract_"))
    work.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    folders = make_folders(work, args.clips, args.unique)
    print(
        f"{args.unique} distinct 2-s 64x48 H.264+AAC clips, linked up to {max(args.clips)}, in "
        f"{time.perf_counter() - t:.1f} s ({work}); encoder: {args.encoder}; plan: 2 frames per clip; "
        "ExtractCfg(shard_clips=64, window_s=1.0, image_size=32)"
    )
    rows = []
    for workers in args.workers:
        for n in args.clips:
            runs = [run_child(folders[n], folders[4], workers, args.encoder, work) for _ in range(args.repeats)]
            r = {k: statistics.median(x[k] for x in runs) for k in runs[0]}
            r["workers"] = workers
            rows.append(r)
            print(json.dumps(r), flush=True)

    print(
        f"\n{'workers':>7} {'clips':>6} {'pairs':>6} {'shards':>6} {'extract s':>9} {'clips/s':>8} {'base MB':>8} "
        f"{'main peak MB':>12} {'growth MB':>9} {'worker peak MB':>14} {'tree peak MB':>12}"
    )
    for r in rows:
        print(
            f"{r['workers']:>7} {r['clips']:>6} {r['pairs']:>6} {r['shards']:>6} {r['extract_s']:>9.2f} "
            f"{r['clips'] / r['extract_s']:>8.1f} {r['base_mb']:>8.1f} {r['main_peak_mb']:>12.1f} "
            f"{r['main_peak_mb'] - r['base_mb']:>9.1f} {r['worker_peak_mb']:>14.1f} {r['tree_peak_mb']:>12.1f}"
        )
    lo, hi = min(args.clips), max(args.clips)
    print(f"\nratios {hi}/{lo} clips (target ~1.0):")
    for workers in args.workers:
        a = next(r for r in rows if r["workers"] == workers and r["clips"] == lo)
        b = next(r for r in rows if r["workers"] == workers and r["clips"] == hi)
        parts = [
            f"main peak {b['main_peak_mb'] / a['main_peak_mb']:.3f}",
            f"tree peak {b['tree_peak_mb'] / a['tree_peak_mb']:.3f}",
        ]
        if workers:
            parts.append(f"worker peak {b['worker_peak_mb'] / a['worker_peak_mb']:.3f}")
        parts.append(f"growth {a['main_peak_mb'] - a['base_mb']:.1f} -> {b['main_peak_mb'] - b['base_mb']:.1f} MB")
        print(f"  workers={workers}: " + ", ".join(parts))

    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
