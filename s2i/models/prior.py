"""The embedding prior: a sound's embedding Z^A -> image embeddings Z^V drawn from p(Z^V | sound).

Why a prior at all: a sound does not say everything its picture shows (the toy world's objects
take any colour of a shared palette and stand anywhere; a real dog's bark does not say its breed).
The alignment trains Z^A to land next to the Z^V of its frames, so the best it can do is land
near their *average* over what the sound leaves open, and an average of several pictures'
embeddings is the embedding of none of them: the generator, pretrained on single pictures'
embeddings, draws it as a patchwork (every colour at once, the shape blurred). The prior
resolves what the sound leaves open by sampling it: a small diffusion model over embeddings,
conditioned on Z^A, trained on the same (Z^A, Z^V) pairs as the alignment -- unCLIP's prior
(DALL-E 2), there from a caption's embedding, here from a sound's. Each sample is one plausible
picture's embedding (one colour, one place), and the generator draws it as it draws any
image embedding.

The network is an MLP of residual blocks that sees the noisy embedding, the condition and the
timestep and predicts the clean embedding (DALL-E 2's prior predicts x0 as well). Classifier-free
guidance on the condition (``guidance`` > 1) weighs p(Z^V | sound) / p(Z^V): pictures that go with
*this* sound more than with sounds in general -- the same ratio frame selection scores frames by,
and here it pushes the samples away from the training pairs whose frame does not show what is
heard. Embeddings are scaled to unit RMS (the training pairs' own) inside; any dimension works
(the toy's 256, OpenCLIP ViT-H-14's 1024).

    prior = EmbeddingPrior.load("results/prior")
    z_img = prior.sample(z_audio, n_per=4, seed=0)        # (4 N, D), each sound's 4 consecutive
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn

from s2i.utils import atomic_path, read_json, write_json


@dataclass
class PriorCfg:
    dim: int = 256  # the embedding dimension (Z^A and Z^V alike)
    width: int = 512
    depth: int = 4  # residual blocks
    timesteps: int = 1000  # the cosine schedule's training steps
    p_uncond: float = 0.1  # condition dropped in training (classifier-free guidance)
    cond_noise: float = 1.0  # Gaussian noise on the (unit-RMS) condition in training
    guidance: float = 2.0  # default guidance scale of sample()
    sample_steps: int = 50  # default DDIM steps of sample()


def cosine_alpha_bar(timesteps: int) -> torch.Tensor:
    """(T,) cumulative signal shares of the cosine schedule (Nichol & Dhariwal), clipped to
    [1e-5, 1]."""
    s = 0.008
    f = torch.cos((torch.arange(timesteps + 1, dtype=torch.float64) / timesteps + s) / (1 + s) * math.pi / 2) ** 2
    return (f / f[0])[1:].clamp(1e-5, 1.0).float()


def timestep_features(t: torch.Tensor, n: int = 128) -> torch.Tensor:
    """(B,) timesteps -> (B, n) sinusoidal features."""
    freqs = torch.exp(-math.log(1e4) * torch.arange(n // 2, device=t.device) / (n // 2))
    arg = t.float()[:, None] * freqs
    return torch.cat([arg.sin(), arg.cos()], 1)


class EmbeddingPrior(nn.Module):
    """x0-predicting denoiser over unit-RMS image embeddings, conditioned on a sound's embedding;
    ``z_scale`` / ``a_scale``: the RMS of the training pairs' Z^V / Z^A."""

    def __init__(self, cfg: PriorCfg, z_scale: float = 1.0, a_scale: float = 1.0):
        super().__init__()
        self.cfg = cfg
        self.z_scale, self.a_scale = float(z_scale), float(a_scale)
        D, W = cfg.dim, cfg.width
        self.inp = nn.Linear(2 * D + 128, W)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(W), nn.Linear(W, W), nn.SiLU(), nn.Linear(W, W)) for _ in range(cfg.depth)
        )
        self.out = nn.Sequential(nn.LayerNorm(W), nn.Linear(W, D))
        self.register_buffer("alpha_bar", cosine_alpha_bar(cfg.timesteps), persistent=False)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Noisy unit-RMS embeddings (B, D), timesteps (B,), unit-RMS conditions (B, D; zeros:
        none) -> the predicted clean embeddings (B, D)."""
        h = self.inp(torch.cat([x, cond, timestep_features(t)], 1))
        for block in self.blocks:
            h = h + block(h)
        return self.out(h)

    def noised(self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """Clean unit-RMS embeddings (B, D) noised to timesteps ``t`` (B,) with ``eps`` (B, D)."""
        ab = self.alpha_bar[t][:, None]
        return ab.sqrt() * x0 + (1 - ab).sqrt() * eps

    def _x0(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, guidance: float) -> torch.Tensor:
        if guidance == 1.0:
            return self(x, t, cond)
        both = self(torch.cat([x, x]), torch.cat([t, t]), torch.cat([cond, torch.zeros_like(cond)]))
        x_c, x_u = both.chunk(2)
        return x_u + guidance * (x_c - x_u)

    @torch.no_grad()
    def sample(
        self,
        z_audio: torch.Tensor,
        n_per: int = 1,
        seed: int = 0,
        guidance: float | None = None,
        steps: int | None = None,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(N, D) sound embeddings -> (N * n_per, D) image embeddings, each sound's ``n_per``
        samples consecutive, by deterministic DDIM from Gaussian noise (drawn from ``seed``, or
        ``noise`` (N * n_per, D) given). The same seed gives the same samples."""
        guidance = self.cfg.guidance if guidance is None else float(guidance)
        steps = self.cfg.sample_steps if steps is None else int(steps)
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        dev = next(self.parameters()).device
        cond = (torch.as_tensor(z_audio).float().to(dev) / self.a_scale).repeat_interleave(n_per, 0)
        if noise is None:
            g = torch.Generator().manual_seed(int(seed))
            noise = torch.randn(len(cond), self.cfg.dim, generator=g)
        if noise.shape != cond.shape:
            raise ValueError(f"noise of shape {tuple(noise.shape)} for {tuple(cond.shape)} conditions")
        x = noise.float().to(dev)
        ab = self.alpha_bar.to(dev)
        ts = torch.linspace(self.cfg.timesteps - 1, 0, steps).round().long()
        for k, t in enumerate(ts):
            x0 = self._x0(x, t.expand(len(x)).to(dev), cond, guidance)
            eps = (x - ab[t].sqrt() * x0) / (1 - ab[t]).sqrt()
            a_next = ab[ts[k + 1]] if k + 1 < len(ts) else torch.ones((), device=dev)
            x = a_next.sqrt() * x0 + (1 - a_next).sqrt() * eps
        return x * self.z_scale

    def save(self, out_dir: str | os.PathLike, extra: dict | None = None) -> None:
        """``prior.json`` (config, scales, ``extra``) and ``prior.safetensors``, each written
        atomically."""
        from safetensors.torch import save_file

        out_dir = Path(out_dir)
        with atomic_path(out_dir / "prior.safetensors") as tmp:
            save_file({k: v.detach().contiguous() for k, v in self.state_dict().items()}, str(tmp))
        write_json(
            out_dir / "prior.json",
            dict(cfg=asdict(self.cfg), z_scale=self.z_scale, a_scale=self.a_scale, **(extra or {})),
        )

    @classmethod
    def load(cls, out_dir: str | os.PathLike) -> EmbeddingPrior:
        from safetensors.torch import load_file

        out_dir = Path(out_dir)
        meta = read_json(out_dir / "prior.json")
        m = cls(PriorCfg(**meta["cfg"]), meta["z_scale"], meta["a_scale"])
        m.load_state_dict(load_file(str(out_dir / "prior.safetensors")))
        return m.eval()

    @staticmethod
    def exists(out_dir: str | os.PathLike) -> bool:
        out_dir = Path(out_dir)
        return (out_dir / "prior.json").exists() and (out_dir / "prior.safetensors").exists()
