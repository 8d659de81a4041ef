"""Training the embedding prior (:mod:`s2i.models.prior`) on the alignment's pairs.

The prior learns p(Z^V | Z^A) from the same pairs the audio encoder was aligned on: the
selected frames' image embeddings and the trained encoder's embeddings of their sounds. Nothing
but the videos is used (no labels), so it runs unchanged on a folder of real videos.

    z_a = encode_mels(audio_encoder, mels)               # (N, D) the pairs' sounds
    prior, losses = train_prior(z_a, z_img, PriorTrainCfg(), seed=0)
    prior.save(run_dir / "prior")
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from s2i.models.prior import EmbeddingPrior, PriorCfg


@dataclass
class PriorTrainCfg:
    model: PriorCfg = field(default_factory=PriorCfg)
    steps: int = 3000
    batch: int = 256
    lr: float = 3e-4
    weight_decay: float = 0.01


def train_prior(
    z_audio: torch.Tensor,
    z_img: torch.Tensor,
    cfg: PriorTrainCfg,
    seed: int = 0,
    log_every: int = 100,
    device: str | torch.device = "cpu",
) -> tuple[EmbeddingPrior, list[tuple[int, float]]]:
    """Fit the prior to (N, D) pairs: the x0 loss at uniformly drawn timesteps, the condition
    dropped with probability ``p_uncond`` and noised by ``cond_noise`` (a held-out sound's
    embedding is less sharp than a training pair's). Deterministic for a seed (the batches and
    noises are drawn on the CPU, whatever the ``device`` it trains on).

    Returns the prior (eval mode, on ``device``) and its loss curve [(step, mean loss over
    ``log_every``)]."""
    z_audio, z_img = torch.as_tensor(z_audio).float(), torch.as_tensor(z_img).float()
    if z_audio.ndim != 2 or z_audio.shape != z_img.shape:
        raise ValueError(
            f"pairs must be two (N, D) arrays of one shape, got {tuple(z_audio.shape)} and {tuple(z_img.shape)}"
        )
    if len(z_img) < 2:
        raise ValueError(f"the prior needs at least 2 pairs, got {len(z_img)}")
    mc = PriorCfg(**{**cfg.model.__dict__, "dim": z_img.shape[1]})
    z_scale = float(z_img.pow(2).mean().sqrt())
    a_scale = float(z_audio.pow(2).mean().sqrt())
    x_all, c_all = (z_img / z_scale).to(device), (z_audio / a_scale).to(device)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        prior = EmbeddingPrior(mc, z_scale, a_scale).to(device)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(prior.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    prior.train()
    losses, run = [], 0.0
    for step in range(cfg.steps):
        i = torch.randint(len(x_all), (cfg.batch,), generator=g).to(device)
        x0, c = x_all[i], c_all[i]
        c = c + mc.cond_noise * torch.randn(c.shape, generator=g).to(device)
        c = c * (torch.rand(len(c), 1, generator=g) >= mc.p_uncond).to(device)
        t = torch.randint(mc.timesteps, (len(x0),), generator=g).to(device)
        eps = torch.randn(x0.shape, generator=g).to(device)
        loss = F.mse_loss(prior(prior.noised(x0, t, eps), t, c), x0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        run += loss.item()
        if (step + 1) % log_every == 0 or step + 1 == cfg.steps:
            n = (step % log_every) + 1
            losses.append((step + 1, run / n))
            run = 0.0
    return prior.eval(), losses


@torch.no_grad()
def prior_loss(prior: EmbeddingPrior, z_audio: torch.Tensor, z_img: torch.Tensor, seed: int = 0, n_t: int = 8) -> float:
    """The x0 loss on (N, D) pairs (e.g. held-out ones), averaged over ``n_t`` timestep draws per
    pair, with the condition as given (no dropout, no noise)."""
    g = torch.Generator().manual_seed(seed)
    dev = prior.alpha_bar.device
    x0 = (torch.as_tensor(z_img).float().to(dev) / prior.z_scale).repeat(n_t, 1)
    c = (torch.as_tensor(z_audio).float().to(dev) / prior.a_scale).repeat(n_t, 1)
    t = torch.randint(prior.cfg.timesteps, (len(x0),), generator=g).to(dev)
    eps = torch.randn(x0.shape, generator=g).to(dev)
    return float(F.mse_loss(prior(prior.noised(x0, t, eps), t, c), x0))
