#!/usr/bin/env python
"""The embedding prior's recipe, chosen on tuning draws: trains priors on a finished toy run's pairs
and judges what the generator draws from their samples, beside the baselines.

    python scripts/tune_prior.py --recipes 512:3000 512:6000 1024:3000 --guidance 1.5 2 3

A recipe is ``WIDTH:STEPS[:COND_NOISE]`` (depth 4, batch 256, lr 3e-4, the rest ``PriorCfg``'s
defaults). The
sounds are the held-out banks of seeds ``--seed`` and ``--seed + 1`` (8 per class each, one
image per sound); the stages report seeds 0 and 1 (novel timbres), so seeds from 1000 on are
tuning draws. Printed per recipe and guidance: the judge's class accuracy and the share of
pictures in which it finds no object, the spread of 4 samples of one sound (mean cosine
distance between them, averaged over the sounds: 0 when the prior gives one embedding whatever
its noise; the same measure over 4 training frames of one class: the spread the data has), the
training time and the validation pairs' loss. The
baselines, printed first: Z^A drawn as it is (what the prior replaces) and, without any model,
the image embedding of a training pair whose *sound* is among the k nearest to the held-out one
(a retrieval prior; k = 1, 4, 16). Needs ``results/`` (the trained audio encoder and pairs).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from s2i.method.generate import Sound2Image
from s2i.method.prior import PriorTrainCfg, prior_loss, train_prior
from s2i.method.selection import load_pairs, subset
from s2i.models.audio_encoder import encode_mels
from s2i.models.prior import PriorCfg
from s2i.toyworld import world
from s2i.toyworld.heldout import sound_bank


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="results")
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--recipes", nargs="+", default=["512:6000"])
    ap.add_argument("--guidance", type=float, nargs="+", default=[2.0])
    args = ap.parse_args()

    s2i = Sound2Image.from_run(args.run, "toy", "models/toy", 0.5, sample_steps=12).without_prior()
    rows, z, m = load_pairs(f"{args.run}/pairs")
    _, tr_z, tr_m = subset(rows, z, m, "train", "selected")
    _, va_z, va_m = subset(rows, z, m, "val", "selected")
    tr_a, va_a = encode_mels(s2i.audio_encoder, tr_m), encode_mels(s2i.audio_encoder, va_m)
    bank = sound_bank(8, args.seed) + sound_bank(8, args.seed + 1)
    cls = np.array([s.cls for s in bank])
    za = torch.stack([s2i.embed_audio(s.render(), world.SR) for s in bank])

    def judge(z_draw: torch.Tensor) -> str:
        rep = s2i.backbones.judge.report(s2i.backbones.generate(z_draw, n_per=1, seed=args.seed))
        return f"class {(rep['top_class'] == cls).mean():.3f}  no object {(rep['present'].sum(1) == 0).mean():.3f}"

    print(f"Z^A drawn as it is: {judge(za)}", flush=True)
    dist = torch.cdist(F.normalize(za, dim=1), F.normalize(tr_a, dim=1))
    g = torch.Generator().manual_seed(args.seed)
    for k in (1, 4, 16):
        top = dist.topk(k, largest=False).indices
        pick = top[torch.arange(len(za)), torch.randint(k, (len(za),), generator=g)]
        print(f"retrieval prior, k={k}: {judge(tr_z[pick])}", flush=True)

    def spread(x: torch.Tensor) -> float:  # (S, 4, D) -> mean pairwise cosine distance within each group
        x = F.normalize(x, dim=-1)
        cos = x @ x.transpose(1, 2)
        k = x.shape[1]
        return float(1 - ((cos.sum((1, 2)) - k) / (k * k - k)).mean())

    tr_cls = np.array([r["sound_class"] for r in rows if r["split"] == "train" and r["source"] == "selected"])
    groups = [tr_z[tr_cls == c][torch.randperm(int((tr_cls == c).sum()), generator=g)[:4]] for c in range(8)]
    print(f"spread of 4 training frames of one class: {spread(torch.stack(groups)):.3f}", flush=True)
    for recipe in args.recipes:
        parts = recipe.split(":")
        width, steps = int(parts[0]), int(parts[1])
        cond_noise = float(parts[2]) if len(parts) > 2 else PriorCfg.cond_noise
        t0 = time.perf_counter()
        cfg = PriorTrainCfg(PriorCfg(width=width, cond_noise=cond_noise), steps=steps)
        prior, _ = train_prior(tr_a, tr_z, cfg)
        took = time.perf_counter() - t0
        print(f"prior {recipe}: {took:.0f} s, validation loss {prior_loss(prior, va_a, va_z):.4f}", flush=True)
        for w in args.guidance:
            four = prior.sample(za, 4, seed=args.seed, guidance=w).view(len(za), 4, -1)
            print(f"  guidance {w}: {judge(four[:, 0])}  spread {spread(four):.3f}", flush=True)


if __name__ == "__main__":
    main()
