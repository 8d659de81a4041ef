#!/usr/bin/env python
"""Probe: does a *latent* generator learn to draw the toy shapes faster than the pixel one?

The shipped toy generator is a pixel diffusion UNet (``s2i.models.generator``); after its
1,500 training steps it draws the colour, place and size of an object but not its shape
(``docs/results.md``, "Generator: recipes tried"). Stable unCLIP, the ``full`` profile's
generator, is a latent model. This probe trains, on the pretraining stills and the shipped
image encoder's embeddings:

1. an autoencoder 32x32x3 <-> 8x8xC (convolutions and residual blocks, MSE), for ``--ae-steps``;
2. a diffusers ``UNet2DConditionModel`` on its latents (scaled to unit variance), conditioned as
   the shipped generator is (FiLM through a projection class embedding + cross-attention to 4
   tokens), with the shipped recipe (x0 prediction, min-SNR weights, classifier-free dropout,
   embedding noise, EMA; its values read from the shipped ``manifest.json``), for
   ``--gen-minutes`` of wall time or ``--gen-steps`` steps;

then draws the first 128 stills of a **tuning** draw (seed 1,000,005; never a reported draw)
from their image embeddings (the shipped DDIM steps and guidance: 25, 2) and lets the shipped judge read the
single-object ones: the shape read (chance 0.125) and the size Spearman, beside the same
figures for the autoencoder's own reconstructions (the ceiling the latent space allows).

    .venv/bin/python scripts/probe_latent_generator.py --ae-steps 1500 --gen-minutes 20   # docs/results.md
    .venv/bin/python scripts/probe_latent_generator.py --ae-steps 1500 --gen-steps 891    # the same, by steps

Prints one JSON line; writes ``--out``/latent_probe_grid.png (rows: stills, autoencoder
reconstructions, drawings).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

TUNING_SEED = 1_000_005


def autoencoder(c: int) -> tuple[nn.Module, nn.Module]:
    """The encoder and decoder of :class:`s2i.models.latent.Autoencoder` at width 32 (used bare:
    the probe scales the latents itself)."""
    from s2i.models.latent import Autoencoder

    ae = Autoencoder(c, width=32)
    return ae.enc, ae.dec


def latent_decoder(c: int, embed_dim: int, channels: tuple[int, ...], n_tokens: int = 4) -> nn.Module:
    """The shipped generator's ``EmbeddingDecoder`` (FiLM + cross-attention to ``n_tokens``
    tokens) around a UNet on 8x8xC latents: ``(z_t, t, e) -> z_0``."""
    from diffusers import UNet2DConditionModel

    from s2i.models.generator import EmbeddingDecoder, GeneratorCfg

    n = len(channels)
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=c,
        out_channels=c,
        block_out_channels=channels,
        layers_per_block=1,
        down_block_types=("DownBlock2D",) * (n - 2) + ("CrossAttnDownBlock2D",) * 2,
        up_block_types=("CrossAttnUpBlock2D",) * 2 + ("UpBlock2D",) * (n - 2),
        cross_attention_dim=channels[-1],
        attention_head_dim=32,
        class_embed_type="projection",
        projection_class_embeddings_input_dim=embed_dim,
        resnet_time_scale_shift="scale_shift",
        norm_num_groups=32,
    )
    to_tokens = nn.Linear(embed_dim, n_tokens * channels[-1])
    cfg = GeneratorCfg(block_out_channels=channels, n_tokens=n_tokens)
    return EmbeddingDecoder(embed_dim, cfg, unet=unet, to_tokens=to_tokens)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="models/toy", help="the shipped toy backbones (encoder, judge)")
    ap.add_argument("--ae-steps", type=int, default=1500)
    ap.add_argument("--gen-minutes", type=float, default=20.0, help="train the generator this long ...")
    ap.add_argument("--gen-steps", type=int, default=0, help="... or exactly this many steps (0: by time)")
    ap.add_argument("--latent-channels", type=int, default=8)
    ap.add_argument("--channels", default="64,128,256", help="the latent UNet's block_out_channels")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="/tmp/s2i_latent_probe")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    from diffusers import DDIMScheduler, DDPMScheduler
    from scipy.stats import spearmanr

    from s2i.models.common import to_tensor, to_uint8
    from s2i.models.generator import GeneratorCfg
    from s2i.models.image_encoder import ImageEncoder, embed
    from s2i.models.judge import Judge
    from s2i.models.sampler import sample
    from s2i.toyworld.stills import make_stills

    recipe = json.loads((Path(a.models) / "manifest.json").read_text())["generator"]  # the shipped recipe
    image_encoder = ImageEncoder.load(Path(a.models) / "image_encoder")
    judge = Judge.load(Path(a.models) / "judge")
    train, tune = make_stills(16000, 0), make_stills(128, TUNING_SEED)  # seed 0: the pretraining stills
    e_train, e_tune = embed(image_encoder, train.images), embed(image_encoder, tune.images)
    x_train, x_tune = to_tensor(train.images), to_tensor(tune.images)
    single = tune.presence.sum(1) == 1
    true_cls = tune.presence[single].argmax(1)

    def read(images: np.ndarray) -> dict:
        rep = judge.report(images)
        size = rep["size"][single][np.arange(single.sum()), true_cls]
        return dict(
            shape=float((rep["top_class"][single] == true_cls).mean()),
            size_spearman=float(spearmanr(size, tune.sizes[single].max(1)).statistic),
        )

    # 1. the autoencoder (initialised from the global stream as it stands after loading the models)
    enc, dec = autoencoder(a.latent_channels)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    params = list(enc.parameters()) + list(dec.parameters())
    opt = torch.optim.AdamW(params, lr=1e-3)
    t0 = time.time()
    for step in range(a.ae_steps):
        x = x_train[torch.randint(0, len(x_train), (64,), generator=g)]
        z = enc(x)
        loss = F.mse_loss(dec(z), x) + 1e-4 * z.pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        for group in opt.param_groups:  # cosine decay to 0.1x, set for the next step
            group["lr"] = 1e-3 * (0.5 * (1 + math.cos(math.pi * step / a.ae_steps)) * 0.9 + 0.1)
    ae_s = time.time() - t0
    enc.eval().requires_grad_(False)
    dec.eval().requires_grad_(False)
    with torch.no_grad():
        z_train = torch.cat([enc(x_train[i : i + 512]) for i in range(0, len(x_train), 512)])
        z_scale = float(z_train.std())
        z_train /= z_scale
        recon = to_uint8(dec(enc(x_tune)))

    # 2. the latent diffusion model, the shipped recipe
    model = latent_decoder(a.latent_channels, e_train.shape[1], tuple(int(c) for c in a.channels.split(",")))
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe["lr"])
    ddpm = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="sample")
    snr = ddpm.alphas_cumprod / (1 - ddpm.alphas_cumprod)
    w_t = snr.clamp(max=GeneratorCfg.min_snr_gamma)
    B = recipe["batch"]
    rms = float(e_train.pow(2).mean().sqrt())
    t0, step = time.time(), 0
    while (step < a.gen_steps) if a.gen_steps else (time.time() - t0 < a.gen_minutes * 60):
        idx = torch.randint(0, len(z_train), (B,), generator=g)
        z0, e = z_train[idx], e_train[idx]
        lvl = torch.rand(B, 1, generator=g) * recipe["max_noise_level"] * rms
        e = e + lvl * torch.randn(e.shape, generator=g)
        e = torch.where((torch.rand(B, generator=g) < recipe["cfg_dropout"])[:, None], torch.zeros_like(e), e)
        t = torch.randint(0, 1000, (B,), generator=g)
        zt = ddpm.add_noise(z0, torch.randn(z0.shape, generator=g), t)
        loss = (((model(zt, t, e) - z0) ** 2).mean(dim=(1, 2, 3)) * w_t[t]).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            d = min(recipe["ema_decay"], (1 + step) / (10 + step))
            for pe, p in zip(ema.parameters(), model.parameters()):
                pe.mul_(d).add_(p.detach(), alpha=1 - d)
        step += 1
    gen_s = time.time() - t0

    ddim = DDIMScheduler(
        num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="sample", clip_sample=False
    )
    noise = torch.randn((len(e_tune), a.latent_channels, 8, 8), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        drawn = to_uint8(
            dec(sample(ema, ddim, e_tune[None], [recipe["guidance"]], noise, recipe["sample_steps"]) * z_scale)
        )
    print(
        json.dumps(
            dict(
                n_single=int(single.sum()),
                autoencoder=dict(steps=a.ae_steps, seconds=round(ae_s, 1), **read(recon)),
                latent_generator=dict(steps=step, seconds=round(gen_s, 1), **read(drawn)),
            )
        )
    )
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    from s2i.viz import grid, save_png

    save_png(
        out / "latent_probe_grid.png", grid(np.concatenate([tune.images[:16], recon[:16], drawn[:16]]), 16, scale=3)
    )


if __name__ == "__main__":
    main()
