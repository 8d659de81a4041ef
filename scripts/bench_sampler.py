#!/usr/bin/env python
"""Benchmark: the ``full`` sampler's overhead over diffusers' own Stable unCLIP pipeline.

    .venv/bin/python scripts/bench_sampler.py                       # batch 1 and 4, steps 10 and 25
    .venv/bin/python scripts/bench_sampler.py --repeats 9 --guidance 1.0
    .venv/bin/python scripts/bench_sampler.py --profile /tmp/sampler   # + pyinstrument profiles

**Ours**: :meth:`s2i.backbones.full.FullBackbones.generate` (the one sampler,
:func:`s2i.models.sampler.sample`, over the pipeline's UNet, VAE, image normaliser and noising
scheduler) on ``N`` embeddings. **Reference**: ``StableUnCLIPImg2ImgPipeline.__call__`` with the
same embeddings, steps, guidance, noise level and seed (``prompt=[""] * N``, ``image_embeds=...``,
``output_type="np"``, progress bar off; its float images turned into uint8 as ``generate`` returns
them) -- what ``tests/test_full_profile.py`` checks ``generate`` against. Both draw the same images
(checked here: max difference 1 level).

Models: the tiny random ones of :mod:`s2i.testing` (``make_tiny_unclip_pipeline(dir, embed_dim=32)``,
``make_tiny_openclip_checkpoint`` loaded as ``local-dir:``), on the CPU. The tiny UNet costs a few
ms a step, so fixed per-step costs weigh far more here than with Stable unCLIP 2.1 (about a second
a step on a GPU at 768 px): an overhead measured here is an upper bound of the real one.

**Fixed**: ours with the UNet's ``dtype``/``device`` read once per call rather than at every step
(``ours_fixed``; same images), to show what the fix proposed in docs/benchmarks.md gives.

One untimed warm-up call of each per configuration, then ``--repeats`` timed calls alternating
ours and the pipeline; the median time per image is reported. Target: overhead <= 10 %.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from benchlib import cpu_model


def build(work: Path, steps: int, guidance: float):
    from s2i.backbones.full import FullBackbones
    from s2i.backbones.openclip import load_openclip_encoder
    from s2i.backbones.unclip import load_unclip_pipeline
    from s2i.testing import make_tiny_openclip_checkpoint, make_tiny_unclip_pipeline

    ck = work / "openclip"
    make_tiny_openclip_checkpoint(ck, embed_dim=32)
    unclip = make_tiny_unclip_pipeline(work / "stable-unclip", embed_dim=32)
    bb = FullBackbones(
        load_openclip_encoder(f"local-dir:{ck}", None), load_unclip_pipeline(unclip), steps=steps, guidance=guidance
    )
    bb.pipe.set_progress_bar_config(disable=True)
    return bb


def ours(bb, emb: torch.Tensor, steps: int, guidance: float, noise_level: int, seed: int) -> np.ndarray:
    return bb.generate(emb, n_per=1, guidance=guidance, steps=steps, noise_level=noise_level, seed=seed)


def ours_fixed(bb, emb: torch.Tensor, steps: int, guidance: float, noise_level: int, seed: int) -> np.ndarray:
    """``generate`` with the UNet's ``dtype`` and ``device`` read once per call instead of at every
    step (what the proposed fix does): the class properties are swapped for constants meanwhile."""
    unet = bb.pipe.unet
    cls, dtype, device = type(unet), unet.dtype, unet.device
    cls.dtype, cls.device = property(lambda self: dtype), property(lambda self: device)
    try:
        return ours(bb, emb, steps, guidance, noise_level, seed)
    finally:
        del cls.dtype, cls.device


def reference(bb, emb: torch.Tensor, steps: int, guidance: float, noise_level: int, seed: int) -> np.ndarray:
    out = bb.pipe(
        prompt=[""] * len(emb),
        image_embeds=emb,
        num_images_per_prompt=1,
        guidance_scale=guidance,
        num_inference_steps=steps,
        noise_level=noise_level,
        generator=torch.Generator().manual_seed(seed),
        output_type="np",
    ).images
    return (np.asarray(out) * 255).round().clip(0, 255).astype(np.uint8)


class _Timed:
    """Wraps callables (instance attributes, class properties) and adds up the seconds spent in them."""

    def __init__(self) -> None:
        self.t: dict[str, float] = {}
        self._undo: list = []

    def wrap(self, obj, attr: str, name: str, prop: bool = False) -> None:
        orig = getattr(type(obj) if prop else obj, attr)
        fn = orig.fget if prop else orig
        self.t.setdefault(name, 0.0)

        def timed(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                self.t[name] += time.perf_counter() - t0

        if prop:
            setattr(type(obj), attr, property(timed))
            self._undo.append(lambda: delattr(type(obj), attr) if attr in type(obj).__dict__ else None)
        else:
            setattr(obj, attr, timed)
            self._undo.append(lambda: delattr(obj, attr))

    def undo(self) -> None:
        for u in reversed(self._undo):
            u()


def breakdown(bb, fn, call) -> dict[str, float]:
    """Seconds of one call in the UNet's forward, the VAE's decode, the schedulers' step, the
    UNet's ``dtype``/``device`` properties (diffusers walks the modules/parameters on each access),
    and everything else."""
    tm = _Timed()
    unet, vae = bb.pipe.unet, bb.pipe.vae
    tm.wrap(unet, "forward", "unet")
    tm.wrap(vae, "decode", "vae decode")
    tm.wrap(bb.scheduler, "step", "sched step")
    tm.wrap(bb.pipe.scheduler, "step", "sched step")
    tm.wrap(unet, "dtype", "unet.dtype/dev", prop=True)
    tm.wrap(unet, "device", "unet.dtype/dev", prop=True)
    t0 = time.perf_counter()
    try:
        fn(bb, *call)
    finally:
        total = time.perf_counter() - t0
        tm.undo()
    r = dict(tm.t)
    r["other"] = total - sum(r.values())
    r["total"] = total
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--steps", type=int, nargs="+", default=[10, 25])
    ap.add_argument("--guidance", type=float, default=7.5, help="classifier-free guidance (params' default 7.5)")
    ap.add_argument("--noise-level", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: two OpenMP threads on two shared cores can "
        "stall many-fold when other processes run; 0 = torch's default)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--profile", default=None, help="folder for pyinstrument profiles of both (batch 1, most steps)")
    args = ap.parse_args()

    from diffusers.utils import logging as dlog

    if args.threads:
        torch.set_num_threads(args.threads)
    dlog.set_verbosity_error()
    dlog.disable_progress_bar()
    print("== full sampler (FullBackbones.generate) vs StableUnCLIPImg2ImgPipeline.__call__, tiny models, CPU")
    print(f"CPU: {cpu_model()} | os.cpu_count()={os.cpu_count()} | torch threads={torch.get_num_threads()}")
    import diffusers

    print(f"torch {torch.__version__} | diffusers {diffusers.__version__}")
    work = Path(tempfile.mkdtemp(prefix="s2i_bench_sampler_"))
    bb = build(work, max(args.steps), args.guidance)
    print(f"guidance {args.guidance}, noise level {args.noise_level}, images {bb.image_size}x{bb.image_size}")
    g = torch.Generator().manual_seed(1)
    rows = []
    for n in args.batches:
        emb = torch.randn(n, bb.embed_dim, generator=g)
        for steps in args.steps:
            call = (emb, steps, args.guidance, args.noise_level, args.seed)
            a, b = ours(bb, *call), reference(bb, *call)  # warm-up, and the same images
            diff = int(np.abs(a.astype(int) - b).max())
            fixed = ours_fixed(bb, *call)
            assert np.array_equal(fixed, a)
            t = {"ours": [], "pipe": [], "fixed": []}
            for _ in range(args.repeats):
                for k, fn in (("ours", ours), ("pipe", reference), ("fixed", ours_fixed)):
                    t0 = time.perf_counter()
                    fn(bb, *call)
                    t[k].append(time.perf_counter() - t0)
            med = {k: statistics.median(v) / n for k, v in t.items()}
            over = 100 * (med["ours"] / med["pipe"] - 1)
            rows.append((n, steps, med, over, diff))
            print(
                f"  batch {n}, {steps:>2} steps: ours {1e3 * med['ours']:7.1f} ms/image, pipeline "
                f"{1e3 * med['pipe']:7.1f} ms/image, overhead {over:+6.1f} % (max pixel diff {diff}); with the fix "
                f"{1e3 * med['fixed']:7.1f} ms/image, {100 * (med['fixed'] / med['pipe'] - 1):+6.1f} %",
                flush=True,
            )
    print(f"\nmedian of {args.repeats} warm calls each, alternating; overhead = ours / pipeline - 1 (target <= 10 %)")
    print(
        f"{'batch':>5} {'steps':>5} {'ours ms/img':>11} {'pipe ms/img':>11} {'ms/step ours':>12} "
        f"{'ms/step pipe':>12} {'overhead':>9} {'target':>8} {'fixed ms/img':>12} {'overhead':>9}"
    )
    for n, steps, med, over, _ in rows:
        print(
            f"{n:>5} {steps:>5} {1e3 * med['ours']:>11.1f} {1e3 * med['pipe']:>11.1f} "
            f"{1e3 * n * med['ours'] / steps:>12.2f} {1e3 * n * med['pipe'] / steps:>12.2f} {over:>+8.1f}% "
            f"{'met' if over <= 10 else 'NOT met':>8} {1e3 * med['fixed']:>12.1f} "
            f"{100 * (med['fixed'] / med['pipe'] - 1):>+8.1f}%"
        )

    print(
        f"\nwhere the time goes (batch 1, {max(args.steps)} steps; per call, median of {args.repeats}; wrappers "
        "time the UNet's"
    )
    print("forward, the VAE's decode, the schedulers' step and the UNet's dtype/device properties)")
    emb = torch.randn(1, bb.embed_dim, generator=g)
    call = (emb, max(args.steps), args.guidance, args.noise_level, args.seed)
    runs = {"ours": [], "pipe": []}
    for i in range(args.repeats + 1):  # alternating; the first round warms the wrappers up
        for k, fn in (("ours", ours), ("pipe", reference)):
            r = breakdown(bb, fn, call)
            if i:
                runs[k].append(r)
    parts = {k: {n: statistics.median(r[n] for r in v) for n in v[0]} for k, v in runs.items()}
    names = list(parts["ours"])
    print(f"{'':>22} " + " ".join(f"{n:>14}" for n in names))
    for k, v in parts.items():
        print(f"{k:>22} " + " ".join(f"{1e3 * v[n]:>12.1f}ms" for n in names))
    d = {n: parts["ours"][n] - parts["pipe"][n] for n in names}
    print(f"{'ours - pipe':>22} " + " ".join(f"{1e3 * d[n]:>+12.1f}ms" for n in names))

    if args.profile:
        from pyinstrument import Profiler

        out = Path(args.profile)
        out.mkdir(parents=True, exist_ok=True)
        for k, fn in (("ours", ours), ("pipe", reference)):
            prof = Profiler(interval=0.0002)
            prof.start()
            for _ in range(3):
                fn(bb, *call)
            prof.stop()
            (out / f"{k}.html").write_text(prof.output_html())
            print(f"\n---- profile: {k}, batch 1, {max(args.steps)} steps, 3 calls -> {out / (k + '.html')}")
            print(prof.output_text(unicode=False, color=False, show_all=False))

    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
