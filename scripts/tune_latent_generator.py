#!/usr/bin/env python
"""Train the latent toy generator (:mod:`s2i.models.latent`, ``GeneratorCfg(kind="latent")``)
with the pretrain stage's own training function on the pretraining stills and the shipped image
encoder's embeddings, then read its drawings of a **tuning** draw with the shipped judge.

The tuning draw: the single-object stills among the first ``--n-tune`` stills of seed 1,000,005
(never a reported draw). Figures: the shape read (the judge's top class is the drawn object's;
chance 0.125) and the size Spearman, for the autoencoder's own reconstructions (the ceiling the
latent space allows) and for drawings from the stills' image embeddings at each guidance scale.

    .venv/bin/python scripts/tune_latent_generator.py --steps 6000 --guidance 1,2,3,4   # docs/results.md
    .venv/bin/python scripts/tune_latent_generator.py --denoiser mlp --width 1024 --depth 4 --steps 6000 \
        --out /tmp/s2i_latent_mlp
    .venv/bin/python scripts/tune_latent_generator.py --load --out /tmp/s2i_latent_mlp --train-read 2

Prints one JSON line; writes ``--out``/generator (the trained generator, ``ToyGenerator.load``
reads it) and ``--out``/latent_tuning_grid.png (rows: stills, reconstructions, one row of drawings
per guidance scale).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

TUNING_SEED = 1_000_005


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="models/toy", help="the shipped image encoder and judge")
    ap.add_argument("--steps", type=int, default=6000, help="denoiser training steps")
    ap.add_argument("--ae-steps", type=int, default=1500)
    ap.add_argument("--ae-width", type=int, default=16)
    ap.add_argument("--ae-latent-noise", type=float, default=0.2)
    ap.add_argument("--denoiser", choices=["conv", "mlp"], default="conv")
    ap.add_argument("--width", type=int, default=128, help="the denoiser's width (conv: channels; mlp: 1024)")
    ap.add_argument("--depth", type=int, default=6, help="its residual blocks (mlp: 4)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=7e-4)
    ap.add_argument("--ema", type=float, default=0.995)
    ap.add_argument("--guidance", default="1,2,3", help="guidance scales to draw with, comma-separated")
    ap.add_argument("--n-tune", type=int, default=512, help="stills of the tuning draw")
    ap.add_argument("--load", action="store_true", help="read --out/generator instead of training")
    ap.add_argument(
        "--train-read", type=float, default=0.0, help="also draw the first --n-tune training stills at this guidance"
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="/tmp/s2i_latent")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    from scipy.stats import spearmanr

    from s2i.models.common import to_tensor, to_uint8
    from s2i.models.generator import GeneratorCfg, ToyGenerator
    from s2i.models.image_encoder import ImageEncoder, embed
    from s2i.models.judge import Judge
    from s2i.toyworld.stills import make_stills
    from s2i.train.generator import train_generator
    from s2i.viz import grid, save_png

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    image_encoder = ImageEncoder.load(Path(a.models) / "image_encoder")
    judge = Judge.load(Path(a.models) / "judge")
    tune = make_stills(a.n_tune, TUNING_SEED)
    e_tune = embed(image_encoder, tune.images)
    single = tune.presence.sum(1) == 1
    true_cls = tune.presence[single].argmax(1)

    def read(images: np.ndarray) -> dict:
        rep = judge.report(images)
        size = rep["size"][single][np.arange(single.sum()), true_cls]
        return dict(
            shape=round(float((rep["top_class"][single] == true_cls).mean()), 4),
            size_spearman=round(float(spearmanr(size, tune.sizes[single].max(1)).statistic), 4),
        )

    t0 = time.time()
    if a.load:
        gen = ToyGenerator.load(out / "generator")
    else:
        manifest = json.loads((Path(a.models) / "manifest.json").read_text())
        recipe = {k: v for k, v in manifest["generator"].items() if k in GeneratorCfg.__dataclass_fields__}
        latent = dict(
            ae_steps=a.ae_steps,
            ae_width=a.ae_width,
            ae_latent_noise=a.ae_latent_noise,
            denoiser=a.denoiser,
            width=a.width,
            depth=a.depth,
        )
        cfg = GeneratorCfg(
            **{**recipe, "block_out_channels": tuple(recipe["block_out_channels"])},
            kind="latent",
            latent=latent,
        )
        cfg.steps, cfg.batch, cfg.lr, cfg.ema_decay = a.steps, a.batch, a.lr, a.ema
        train = make_stills(manifest["n_stills"], manifest["seed"])  # the pretraining stills
        e_train = embed(image_encoder, train.images)
        gen = train_generator(e_train, train.images, cfg, manifest["seed"])
        gen.save(out / "generator")
    train_s = time.time() - t0
    with torch.no_grad():
        recon = to_uint8(gen.autoencoder.decode(gen.autoencoder.encode(to_tensor(tune.images))))
    rows, by_guidance = [tune.images[:16], recon[:16]], {}
    t0 = time.time()
    for w in (float(s) for s in a.guidance.split(",")):
        drawn = gen(e_tune, guidance=w, seed=0)
        by_guidance[str(w)] = read(drawn)
        rows.append(drawn[:16])
    draw_s = time.time() - t0
    fit = {}
    if a.train_read:  # the same read on stills the generator trained on: fit vs generalisation
        manifest = json.loads((Path(a.models) / "manifest.json").read_text())
        seen = make_stills(manifest["n_stills"], manifest["seed"])
        sub = slice(0, a.n_tune)
        one = seen.presence[sub].sum(1) == 1
        rep = judge.report(gen(embed(image_encoder, seen.images[sub]), guidance=a.train_read, seed=0))
        fit = {str(a.train_read): round(float((rep["top_class"][one] == seen.presence[sub][one].argmax(1)).mean()), 4)}
    cfg = gen.cfg
    print(
        json.dumps(
            dict(
                n_single=int(single.sum()),
                steps=cfg.steps,
                latent=cfg.latent,
                batch=cfg.batch,
                lr=cfg.lr,
                ema=cfg.ema_decay,
                train_s=round(train_s, 1),
                draw_s=round(draw_s, 1),
                autoencoder=read(recon),
                by_guidance=by_guidance,
                training_stills_shape=fit,
            )
        )
    )
    save_png(out / "latent_tuning_grid.png", grid(np.concatenate(rows), 16, scale=3))


if __name__ == "__main__":
    main()
