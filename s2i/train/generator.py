"""Training of the toy generator: x0-prediction with min-SNR weighting, classifier-free
dropout of the embedding, embedding noise augmentation and an EMA of the weights;
checkpointed and resumable."""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from s2i.models.common import resolve_device, to_tensor
from s2i.models.generator import EmbeddingDecoder, GeneratorCfg, ToyGenerator


def train_generator(
    emb: torch.Tensor,
    images: np.ndarray,
    cfg: GeneratorCfg,
    seed: int,
    log: Callable[[dict], None] | None = None,
    ckpt_path: str | os.PathLike | None = None,
    ckpt_every: int = 500,
    device: str | torch.device | None = None,
) -> ToyGenerator:
    """DDPM training of the embedding-conditioned decoder on (image embedding, image) pairs.

    x0 ("sample") prediction with min-SNR-gamma loss weights, classifier-free dropout of the
    embedding, Gaussian noise augmentation of the embedding, optional bf16 autocast, an EMA of
    the weights (the EMA is what is saved). Resumes from ``ckpt_path`` when it exists.
    Trains on ``resolve_device(device)`` (noise drawn on the CPU); returns the generator on the CPU."""
    from diffusers import DDPMScheduler

    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed + 2)
    D = emb.shape[1]
    dev = resolve_device(device)
    dec = EmbeddingDecoder(D, cfg).to(dev)
    ema = copy.deepcopy(dec).eval().requires_grad_(False)
    opt = torch.optim.AdamW(dec.parameters(), lr=cfg.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: min(1.0, (s + 1) / 200) * (0.5 * (1 + math.cos(math.pi * min(s, cfg.steps) / cfg.steps)) * 0.9 + 0.1),
    )
    ddpm = DDPMScheduler(
        num_train_timesteps=cfg.train_timesteps, beta_schedule="squaredcos_cap_v2", prediction_type="sample"
    )
    ac = ddpm.alphas_cumprod
    snr = ac / (1 - ac)
    w_t = torch.clamp(snr, max=cfg.min_snr_gamma)  # min-SNR weights for x0 prediction
    x_all = to_tensor(images)
    e_all = emb.float()
    emb_rms = float(e_all.pow(2).mean().sqrt())
    start = 0
    if ckpt_path is not None and Path(ckpt_path).exists():
        ck = torch.load(ckpt_path, weights_only=False, map_location=dev)
        dec.load_state_dict(ck["model"])
        ema.load_state_dict(ck["ema"])
        opt.load_state_dict(ck["opt"])
        sched.load_state_dict(ck["sched"])
        g.set_state(ck["rng"])
        torch.set_rng_state(ck["torch_rng"])
        start = ck["step"]
    dec.train()
    for step in range(start, cfg.steps):
        idx = torch.randint(0, len(x_all), (cfg.batch,), generator=g)
        x0, e = x_all[idx], e_all[idx]
        B = x0.shape[0]
        # 1. embedding augmentation: noise at a random level, then classifier-free dropout
        lvl = torch.rand(B, 1, generator=g) * cfg.max_noise_level * emb_rms
        e = e + lvl * torch.randn(e.shape, generator=g)
        drop = torch.rand(B, generator=g) < cfg.cfg_dropout
        e = torch.where(drop[:, None], torch.zeros_like(e), e)
        # 2. forward diffusion
        t = torch.randint(0, cfg.train_timesteps, (B,), generator=g)
        noise = torch.randn(x0.shape, generator=g)
        xt = ddpm.add_noise(x0, noise, t)
        x0, xt, e, wt, t = x0.to(dev), xt.to(dev), e.to(dev), w_t[t].to(dev), t.to(dev)
        # 3. predict x0, min-SNR weighted MSE
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            pred = dec(xt, t, e)
        loss = ((pred.float() - x0) ** 2).mean(dim=(1, 2, 3))
        loss = (loss * wt).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(dec.parameters(), 1.0)
        opt.step()
        sched.step()
        with torch.no_grad():
            d = min(cfg.ema_decay, (1 + step) / (10 + step))
            for pe, p in zip(ema.parameters(), dec.parameters()):
                pe.mul_(d).add_(p.detach(), alpha=1 - d)
        if log and (step % 25 == 0 or step == cfg.steps - 1):
            log(dict(part="generator", step=step, loss=loss.item()))
        if ckpt_path is not None and ((step + 1) % ckpt_every == 0) and step + 1 < cfg.steps:
            from s2i.utils import atomic_torch_save

            atomic_torch_save(
                dict(
                    model=dec.state_dict(),
                    ema=ema.state_dict(),
                    opt=opt.state_dict(),
                    sched=sched.state_dict(),
                    rng=g.get_state(),
                    torch_rng=torch.get_rng_state(),
                    step=step + 1,
                ),
                ckpt_path,
            )
    return ToyGenerator(ema.cpu(), cfg, emb_rms)
