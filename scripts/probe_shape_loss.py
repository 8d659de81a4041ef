#!/usr/bin/env python
"""Where the toy generator loses the shape: read on the **tuning** stills of
``python -m s2i.train.denoiser export`` (seed ``base.seed + 5,000,003``, never a reported draw).

For the single-object tuning stills, the judge's shape read (its top class is the drawn
object's; chance 0.125) of, in turn:

1. the stills themselves (the judge's own ceiling);
2. the autoencoder's reconstructions (the ceiling its latent space allows);
3. the denoiser's one-step prediction of the clean latents from the stills' own latents
   noised to timestep t (it is told part of the answer: how much of the shape does it keep?);
4. drawings from the stills' image embeddings with the shipped sampler, and with other sampler
   settings (``--samplers STEPS:GUIDANCE ...``), each over ``--seeds``; and drawings of as many
   of the stage's training stills (fit against generalisation);

each by shape and by size tercile; what the image embeddings themselves hold of the shape (a
linear probe and a 10-nearest-neighbour vote, fit on the single-object stills among
``--probe-stills`` stills of a seed of their own, read on the tuning stills' embeddings: the
ceiling the embedding sets, beside the autoencoder's); and the denoiser's x0 loss on all the tuning stills' latents
and on as many training stills' at fixed timesteps and noise (does it fit the 16,000 training
stills better than new ones?).

    .venv/bin/python scripts/probe_shape_loss.py build/stills.npz --samplers 25:5 50:5 25:3 25:8
    .venv/bin/python scripts/probe_shape_loss.py build/stills.npz --run build/denoiser/RUN --seeds 1 2 3 4

The installed generator (``--models``/generator), or with ``--run`` the one a
``python -m s2i.train.denoiser train`` run made (with its own autoencoder, if it had one).

Prints one JSON object; writes ``--out`` (default ``build/probe_shape_loss.json``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from s2i.models.common import to_uint8
from s2i.models.generator import ToyGenerator
from s2i.models.judge import Judge
from s2i.toyworld import world
from s2i.train.autoencoder import AE_JSON, shape_reads, singles
from s2i.train.denoiser import load_run, training_targets
from s2i.utils import write_json


@torch.no_grad()
def x0_loss(den, z: torch.Tensor, e: torch.Tensor, ts, ac: torch.Tensor, seed: int) -> list[float]:
    """Mean squared error of the denoiser's x0 prediction at each timestep in ``ts`` (fixed noise)."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(z.shape, generator=g)
    out = []
    for t in ts:
        zt = ac[t].sqrt() * z + (1 - ac[t]).sqrt() * noise
        pred = torch.cat([den(zt[s : s + 256], _t(zt[s : s + 256], t), e[s : s + 256]) for s in range(0, len(z), 256)])
        out.append(round(float(((pred - z) ** 2).mean()), 4))
    return out


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("stills", help="the .npz of python -m s2i.train.denoiser export")
    ap.add_argument("--models", default="models/toy")
    ap.add_argument("--run", default=None, help="a train run's folder: its generator instead of the installed one")
    ap.add_argument("--samplers", nargs="+", default=["25:5"], help="DDIM steps:guidance")
    ap.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--timesteps", nargs="+", type=int, default=[200, 400, 600, 800])
    ap.add_argument("--probe-stills", type=int, default=8000, help="stills the embedding probes are fit on")
    ap.add_argument("--out", default="build/probe_shape_loss.json")
    a = ap.parse_args()
    torch.set_num_threads(2)
    d = np.load(a.stills)
    single, cls, size_bin = singles(d["tuning_presence"], d["tuning_sizes"])
    imgs, size = d["tuning_images"][single], d["tuning_sizes"][single].max(1)
    judge = Judge.load(Path(a.models) / "judge")
    gen = ToyGenerator.load(Path(a.models) / "generator") if a.run is None else load_run(a.run, a.models)
    den, ae = gen.decoder.float().to(memory_format=torch.contiguous_format), gen.autoencoder
    ae_dir = a.run if a.run is not None and (Path(a.run) / AE_JSON).exists() else None
    # the tuning stills (one or two objects) and as many of the stage's training stills, at once
    n = len(d["tuning_images"])
    z_all, e_all = training_targets(a.models, np.concatenate([d["tuning_images"], d["images"][:n]]), ae_dir=ae_dir)
    (z_tu, z_tr), (e_tu, e_tr) = z_all.split(n), e_all.split(n)
    z, e = z_tu[torch.from_numpy(single)], e_tu[torch.from_numpy(single)]
    out = dict(n=len(imgs), stills=shape_reads(judge, imgs, cls, size_bin))
    out["autoencoder"] = shape_reads(judge, _decode(ae, z), cls, size_bin)
    out["embedding_probe"] = embedding_probe(a.models, e.numpy(), cls, size_bin, a.probe_stills, int(d["seed"]))

    from diffusers import DDPMScheduler

    ac = DDPMScheduler(num_train_timesteps=gen.cfg.train_timesteps, beta_schedule="squaredcos_cap_v2").alphas_cumprod
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(z.shape, generator=g)
    one_step = {}
    for t in a.timesteps:
        zt = ac[t].sqrt() * z + (1 - ac[t]).sqrt() * noise
        pred = den(zt, torch.full((len(z),), t), e)
        one_step[str(t)] = shape_reads(judge, _decode(ae, pred), cls, size_bin)["all"]
    out["one_step_x0"] = one_step

    out["x0_loss"] = dict(
        timesteps=a.timesteps,
        train=x0_loss(den, z_tr, e_tr, a.timesteps, ac, 7),
        tuning=x0_loss(den, z_tu, e_tu, a.timesteps, ac, 7),
    )
    # the same read on stills the denoiser trained on: fit against generalisation
    from s2i.toyworld.stills import make_stills

    seen = make_stills(n, int(d["seed"]))
    assert np.array_equal(seen.images, d["images"][:n]), "the export's first stills are not make_stills(n, seed)'s"
    one = seen.presence.sum(1) == 1
    seen_size = seen.sizes[one].max(1)
    seen_bin = np.searchsorted(np.quantile(size, [1 / 3, 2 / 3]), seen_size, side="right")
    drawn = gen(e_tr[torch.from_numpy(one)], seed=a.seeds[0], batch=512)
    out["training_stills_drawn"] = dict(
        n=int(one.sum()), **shape_reads(judge, drawn, seen.presence[one].argmax(1), seen_bin)
    )
    draws = {}
    for spec in a.samplers:
        steps, guidance = spec.split(":")
        reads, t0 = [], time.perf_counter()
        for seed in a.seeds:
            drawn = gen(e, guidance=float(guidance), steps=int(steps), seed=seed, batch=512)
            reads.append(shape_reads(judge, drawn, cls, size_bin))
        draws[spec] = dict(
            all=round(float(np.mean([r["all"] for r in reads])), 3),
            per_seed=[r["all"] for r in reads],
            by_shape={k: round(float(np.mean([r["by_shape"][k] for r in reads])), 3) for k in world.SHAPES},
            by_size=[round(float(np.mean([r["by_size"][b] for r in reads])), 3) for b in range(3)],
            s_per_draw=round((time.perf_counter() - t0) / len(a.seeds), 1),
        )
    out["drawn"] = draws
    write_json(a.out, out)
    print(json.dumps(out, indent=1))


PROBE_SEED_OFFSET = 7_000_003  # the probes' stills: base.seed + this (not training, held-out or tuning)


def embedding_probe(models, e_tune: np.ndarray, cls, size_bin, n_stills: int, seed: int) -> dict:
    """How well the shape of the single-object tuning stills can be read from their image
    embeddings ``e_tune``: a logistic regression and a 10-nearest-neighbour vote (cosine), each
    fit on the single-object stills among ``n_stills`` stills of seed ``seed + PROBE_SEED_OFFSET``;
    overall and by size tercile."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier

    from s2i.models.image_encoder import ImageEncoder, embed
    from s2i.toyworld.stills import make_stills

    fit = make_stills(n_stills, seed + PROBE_SEED_OFFSET)
    one, shape, _ = singles(fit.presence, fit.sizes)
    e_fit = embed(ImageEncoder.load(Path(models) / "image_encoder").eval(), fit.images[one])  # no latents needed

    def unit(x):
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    out = dict(n_fit=int(one.sum()))
    for name, clf in (
        ("linear", LogisticRegression(C=10, max_iter=3000)),
        ("knn10", KNeighborsClassifier(10, metric="cosine")),
    ):
        ok = clf.fit(unit(e_fit.numpy()), shape).predict(unit(e_tune)) == cls
        out[name] = dict(
            all=round(float(ok.mean()), 4), by_size=[round(float(ok[size_bin == b].mean()), 3) for b in range(3)]
        )
    return out


def _t(z: torch.Tensor, t: int) -> torch.Tensor:
    return torch.full((len(z),), t)


def _decode(ae, z: torch.Tensor) -> np.ndarray:
    return to_uint8(torch.cat([ae.decode(z[s : s + 256].contiguous()) for s in range(0, len(z), 256)]))


if __name__ == "__main__":
    main()
