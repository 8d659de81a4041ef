"""Training of the toy generator: x0-prediction with min-SNR weighting (optionally floored:
``GeneratorCfg.snr_floor``), classifier-free dropout of the embedding, embedding noise
augmentation and an EMA of the weights; checkpointed and resumable. ``GeneratorCfg.kind``
chooses what is denoised: the pictures (``pixel``, :class:`s2i.models.generator.EmbeddingDecoder`)
or the latents of an autoencoder trained first on the same pictures (``latent``,
:mod:`s2i.models.latent`)."""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from s2i.models.common import resolve_device, to_tensor, use_bf16
from s2i.models.generator import EmbeddingDecoder, GeneratorCfg, ToyGenerator


def _cosine(step: int, total: int, warmup: int = 0) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 0.1 of the rate at ``total``."""
    ramp = min(1.0, (step + 1) / warmup) if warmup else 1.0
    return ramp * (0.5 * (1 + math.cos(math.pi * min(step, total) / total)) * 0.9 + 0.1)


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
    """DDPM training of the embedding-conditioned generator on (image embedding, image) pairs.

    x0 ("sample") prediction with min-SNR-gamma loss weights, ``min(SNR, gamma)``, raised to at
    least ``cfg.snr_floor`` (0: plain min-SNR; ``floor == gamma``: every timestep weighs the
    same, the noisiest ones included, where the layout and the shape are decided), classifier-free
    dropout of the embedding, Gaussian noise augmentation of the embedding, optional bf16 autocast
    (``cfg.bf16``: ``"auto"`` where the device computes in bfloat16 natively), an EMA of
    the weights (the EMA is what is saved). With ``cfg.kind == "latent"`` an autoencoder is
    trained on the images first (:func:`train_autoencoder`) and the diffusion runs on its latents.
    Resumes from ``ckpt_path`` when it exists (in either phase). Trains on
    ``resolve_device(device)``: on a GPU the batches and noise are drawn there (a stream of its
    own, seeded from ``seed``), on the CPU from a CPU generator; returns the generator on the CPU."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed + 2)
    D = emb.shape[1]
    dev = resolve_device(device)
    ck = torch.load(ckpt_path, weights_only=False, map_location=dev) if _exists(ckpt_path) else None
    if cfg.kind == "latent":
        from s2i.models.latent import LatentCfg, LatentGenerator, build

        ae, model = build(cfg, D, images.shape[1])
        ae = train_autoencoder(ae, images, LatentCfg(**cfg.latent), g, log, ckpt_path, ckpt_every, dev, ck)
        x_all = ae.encode_all(to_tensor(images)).cpu()
        ema, emb_rms = _fit(model.to(dev), x_all, emb, cfg, g, log, ckpt_path, ckpt_every, dev, ck, ae)
        return LatentGenerator(ema.cpu(), ae.cpu(), cfg, emb_rms, images.shape[1])
    if cfg.kind != "pixel":
        raise ValueError(f"generator kind must be 'pixel' or 'latent', got {cfg.kind!r}")
    dec = EmbeddingDecoder(D, cfg).to(dev)
    ema, emb_rms = _fit(dec, to_tensor(images), emb, cfg, g, log, ckpt_path, ckpt_every, dev, ck)
    return ToyGenerator(ema.cpu(), cfg, emb_rms)


def _exists(path) -> bool:
    return path is not None and Path(path).exists()


def _save(state: dict, path) -> None:
    from s2i.utils import atomic_torch_save

    atomic_torch_save(state, path)


def x0_loss_weights(alphas_cumprod: torch.Tensor, gamma: float, floor: float = 0.0) -> torch.Tensor:
    """Per-timestep weights of the x0 loss: min-SNR, ``min(SNR, gamma)`` (Hang et al. 2023), raised
    to at least ``floor``; ``floor == gamma`` weighs every timestep alike."""
    snr = alphas_cumprod / (1 - alphas_cumprod)
    return torch.clamp(snr, min=floor, max=gamma)


def _fit(
    model, x_all, emb, cfg, g, log, ckpt_path, ckpt_every, dev, ck, autoencoder=None, cover=None
) -> tuple[nn.Module, float]:
    """The diffusion loop on targets ``x_all`` (pictures or latents); returns (EMA model, embedding
    RMS). With ``cfg.object_weight`` each target's squared error is weighed cell by cell by
    :func:`object_weights` of ``cover``, the share of each cell an object covers (N, 1, h, w)."""
    from diffusers import DDPMScheduler

    resident = _resident(dev)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    ema_params, params = list(ema.parameters()), list(model.parameters())
    # fused: one kernel for the whole update on a GPU (on the CPU, the stage's builds as they were)
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0, fused=resident or None)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _cosine(s, cfg.steps, warmup=200))
    ddpm = DDPMScheduler(
        num_train_timesteps=cfg.train_timesteps, beta_schedule="squaredcos_cap_v2", prediction_type="sample"
    )
    ac = ddpm.alphas_cumprod
    w_t = x0_loss_weights(ac, cfg.min_snr_gamma, cfg.snr_floor)
    e_all = emb.float()
    emb_rms = float(e_all.pow(2).mean().sqrt())
    # Where a step's batch and noise are drawn: on the CPU from g (bit for bit the CPU builds), or
    # on the GPU, with the targets resident there and a generator of its own seeded from g, so
    # that a step copies nothing from the host.
    src, g = (dev, _device_generator(g, dev)) if resident else (torch.device("cpu"), g)
    n, *_, h, w = x_all.shape
    if cfg.object_weight and (cover is None or tuple(cover.shape) != (n, 1, h, w)):
        raise ValueError(
            f"object_weight {cfg.object_weight} needs each target's object cover, ({n}, 1, {h}, {w}) "
            "(s2i.toyworld.stills.object_cover; python -m s2i.train.denoiser train --object-weight finds it)"
        )
    cover = cover.to(src) if cfg.object_weight else None
    x_all, e_all, w_t = x_all.to(src), e_all.to(src), w_t.to(src)
    ddpm.alphas_cumprod = ac.to(src)
    start = 0
    if ck is not None and ck.get("phase", "diffusion") == "diffusion":
        model.load_state_dict(ck["model"])
        ema.load_state_dict(ck["ema"])
        opt.load_state_dict(ck["opt"])
        sched.load_state_dict(ck["sched"])
        g.set_state(ck["rng"].cpu())  # .cpu(): the checkpoint is loaded onto the training device
        torch.set_rng_state(ck["torch_rng"].cpu())
        start = ck["step"]
    bf16 = use_bf16(cfg.bf16, dev)
    model.train()
    for step in range(start, cfg.steps):
        idx = torch.randint(0, len(x_all), (cfg.batch,), generator=g, device=src)
        x0, e = x_all[idx], e_all[idx]
        B = x0.shape[0]
        # 1. embedding augmentation: noise at a random level, then classifier-free dropout
        lvl = torch.rand(B, 1, generator=g, device=src) * cfg.max_noise_level * emb_rms
        e = e + lvl * torch.randn(e.shape, generator=g, device=src)
        drop = torch.rand(B, generator=g, device=src) < cfg.cfg_dropout
        e = torch.where(drop[:, None], torch.zeros_like(e), e)
        # 2. forward diffusion
        t = torch.randint(0, cfg.train_timesteps, (B,), generator=g, device=src)
        noise = torch.randn(x0.shape, generator=g, device=src)
        xt = ddpm.add_noise(x0, noise, t)
        x0, xt, e, wt, t = x0.to(dev), xt.to(dev), e.to(dev), w_t[t].to(dev), t.to(dev)
        # 3. predict x0, min-SNR weighted MSE
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
            pred = model(xt, t, e)
        err = (pred.float() - x0) ** 2
        if cover is not None:
            err = err * object_weights(cover[idx].to(dev), cfg.object_weight)
        loss = err.mean(dim=(1, 2, 3))
        loss = (loss * wt).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        with torch.no_grad():  # the EMA, as one multi-tensor update (one kernel per op on a GPU)
            d = min(cfg.ema_decay, (1 + step) / (10 + step))
            torch._foreach_mul_(ema_params, d)
            torch._foreach_add_(ema_params, params, alpha=1 - d)
        if log and (step % 25 == 0 or step == cfg.steps - 1):
            log(dict(part="generator", step=step, loss=loss.item()))
        if ckpt_path is not None and ((step + 1) % ckpt_every == 0) and step + 1 < cfg.steps:
            state = dict(
                phase="diffusion",
                model=model.state_dict(),
                ema=ema.state_dict(),
                opt=opt.state_dict(),
                sched=sched.state_dict(),
                rng=g.get_state(),
                torch_rng=torch.get_rng_state(),
                step=step + 1,
            )
            if autoencoder is not None:
                state["autoencoder"] = autoencoder.state_dict()
            _save(state, ckpt_path)
    return ema, emb_rms


def object_weights(cover: torch.Tensor, weight: float) -> torch.Tensor:
    """Per-cell loss weights ``1 + weight * cover`` (``cover``: (B, 1, h, w), the share of each
    cell an object covers), scaled so that each picture's weights average 1: a picture's loss
    keeps its scale, and within it the cells of its objects, small ones included, count more
    than the place around them."""
    w = 1 + weight * cover
    return w / w.mean(dim=(1, 2, 3), keepdim=True)


def _resident(dev: torch.device) -> bool:
    """Whether training on ``dev`` keeps its targets there and draws each step's batch and noise
    there (a GPU), rather than drawing them on the CPU and copying them over."""
    return dev.type == "cuda"


def _device_generator(g: torch.Generator, dev: torch.device) -> torch.Generator:
    """A random generator on ``dev`` seeded from the CPU generator ``g`` (one draw of it)."""
    return torch.Generator(dev).manual_seed(int(torch.randint(0, 2**62, (1,), generator=g)))


def train_autoencoder(ae, images, lat, g, log=None, ckpt_path=None, ckpt_every=500, device=None, ck=None):
    """Train the latent generator's :class:`s2i.models.latent.Autoencoder` (MSE; the decoder
    also sees latents with noise ``lat.ae_latent_noise`` x their std, so that it decodes the
    near-misses a denoiser makes), then set its ``scaling_factor`` so that the training
    pictures' latents have unit variance. Batches come from ``g``; checkpointed in
    ``ckpt_path`` and resumed from ``ck`` (a later phase's checkpoint holds the trained
    autoencoder: then nothing is trained). Returns the frozen autoencoder on ``device``."""
    dev = resolve_device(device)
    ae = ae.to(dev)
    if ck is not None and "autoencoder" in ck:  # trained already: the diffusion phase saved it
        ae.load_state_dict(ck["autoencoder"])
        return ae.eval().requires_grad_(False)
    opt = torch.optim.AdamW(ae.parameters(), lr=lat.ae_lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _cosine(s, lat.ae_steps))
    start = 0
    if ck is not None and ck.get("phase") == "autoencoder":
        ae.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        sched.load_state_dict(ck["sched"])
        g.set_state(ck["rng"].cpu())
        start = ck["step"]
    x_all = to_tensor(images)
    ae.train()
    for step in range(start, lat.ae_steps):
        x = x_all[torch.randint(0, len(x_all), (lat.ae_batch,), generator=g)]
        side = x.shape[2] // ae.factor
        noise = torch.randn((x.shape[0], lat.channels, side, side), generator=g)
        x = x.to(dev)
        z = ae.enc(x)
        z_in = z + lat.ae_latent_noise * z.detach().std() * noise.to(dev)
        loss = F.mse_loss(ae.dec(z_in), x) + 1e-4 * z.pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if log and (step % 25 == 0 or step == lat.ae_steps - 1):
            log(dict(part="autoencoder", step=step, loss=loss.item()))
        if ckpt_path is not None and ((step + 1) % ckpt_every == 0) and step + 1 < lat.ae_steps:
            state = dict(
                phase="autoencoder",
                model=ae.state_dict(),
                opt=opt.state_dict(),
                sched=sched.state_dict(),
                rng=g.get_state(),
                step=step + 1,
            )
            _save(state, ckpt_path)
    ae.eval().requires_grad_(False)
    ae.scaling_factor.fill_(1.0 / float(ae.encode_all(x_all).std()))  # the factor is 1 until here
    return ae
