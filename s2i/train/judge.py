"""Supervised training of the judge on rendered stills with their known scene."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from s2i.models.common import resolve_device, to_tensor
from s2i.models.judge import Judge
from s2i.toyworld import world
from s2i.toyworld.stills import StillSet
from s2i.train.encoder import augment


@dataclass
class JudgeCfg:
    steps: int = 1500
    batch: int = 128
    lr: float = 2e-3
    width: int = 32


def train_judge(
    data: StillSet,
    cfg: JudgeCfg,
    seed: int,
    log: Callable[[dict], None] | None = None,
    device: str | torch.device | None = None,
) -> Judge:
    """Supervised training of the judge on real toy stills and their ground truth, with
    translation/flip augmentation (no colour changes). Returns the judge on the CPU."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed + 1)
    dev = resolve_device(device)
    judge = Judge(width=cfg.width).to(dev)
    opt = torch.optim.AdamW(judge.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    x_all = to_tensor(data.images)
    pres, sizes, bg = (torch.as_tensor(a) for a in (data.presence, data.sizes, data.bg))
    judge.train()
    for step in range(cfg.steps):
        idx = torch.randint(0, len(x_all), (cfg.batch,), generator=g)
        x = augment(x_all[idx], g, max_shift=1, noise=0.02).to(dev)
        o = judge(x)
        m, s_true, b_true = pres[idx].to(dev), sizes[idx].to(dev), bg[idx].to(dev)
        l_p = F.binary_cross_entropy_with_logits(o["presence"], m)
        l_s = ((o["size"] - s_true) ** 2 * m).sum() / m.sum().clamp(min=1) / world.R_MAX
        l_b = F.cross_entropy(o["bg"], b_true)
        loss = l_p + l_s + l_b
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if log and (step % 50 == 0 or step == cfg.steps - 1):
            log(dict(part="judge", step=step, loss=float(loss), presence=float(l_p), size=float(l_s), bg=float(l_b)))
    return judge.cpu().eval()
