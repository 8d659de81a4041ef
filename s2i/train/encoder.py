"""SimCLR pretraining of the toy image encoder (NT-Xent on two augmented views; no labels).

Colour jitter and grayscale views make the embedding encode the object's shape: two views of
one still may differ in colour, so colour alone cannot match them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from s2i.models.common import resolve_device, to_tensor
from s2i.models.image_encoder import ImageEncoder
from s2i.toyworld.stills import StillSet


# ----------------------------------------------------------------------------- image encoder (SimCLR)
_CHANNEL_ORDERS = torch.tensor([[0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]])  # every non-identity order


def augment(
    x: torch.Tensor,
    g: torch.Generator,
    max_shift: int = 3,
    noise: float = 0.03,
    colour_p: float = 0.0,
    gray_p: float = 0.0,
) -> torch.Tensor:
    """Augmented views that keep object size: a random translation (replicate padding), a
    horizontal flip and a little pixel noise; with probability ``colour_p`` the RGB channels
    reordered (a colour jitter that maps the palette onto other saturated colours) and with
    probability ``gray_p`` the view turned grey. No scale crops: size is what loudness means."""
    B, _, H, W = x.shape
    p = max_shift
    xp = F.pad(x, (p, p, p, p), mode="replicate")
    dx = torch.randint(0, 2 * p + 1, (B,), generator=g)
    dy = torch.randint(0, 2 * p + 1, (B,), generator=g)
    out = torch.stack([xp[i, :, dy[i] : dy[i] + H, dx[i] : dx[i] + W] for i in range(B)])
    flip = torch.rand(B, generator=g) < 0.5
    out[flip] = out[flip].flip(-1)
    if colour_p > 0:
        swap = torch.rand(B, generator=g) < colour_p
        order = _CHANNEL_ORDERS[torch.randint(0, len(_CHANNEL_ORDERS), (B,), generator=g)]
        out[swap] = torch.gather(out[swap], 1, order[swap][:, :, None, None].expand(-1, -1, H, W))
    if gray_p > 0:
        gray = torch.rand(B, generator=g) < gray_p
        lum = (0.299 * out[:, 0] + 0.587 * out[:, 1] + 0.114 * out[:, 2])[:, None].expand(-1, 3, -1, -1)
        out = torch.where(gray[:, None, None, None], lum, out)
    return out + noise * torch.randn(out.shape, generator=g)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's NT-Xent loss over 2B views."""
    z = F.normalize(torch.cat([z1, z2]), dim=-1)  # (2B, D)
    sim = z @ z.t() / temperature
    sim.fill_diagonal_(float("-inf"))
    B = z1.shape[0]
    target = torch.cat([torch.arange(B, 2 * B), torch.arange(0, B)])
    return F.cross_entropy(sim, target)


@dataclass
class EncoderCfg:
    model: str = "s2i-toy-vit"
    steps: int = 600
    batch: int = 256
    lr: float = 1e-3
    temperature: float = 0.2
    max_shift: int = 3
    colour_p: float = 0.5  # colour jitter: views whose channels are reordered
    gray_p: float = 0.1  # views turned grey
    bf16: bool = False  # fp32: faster than bf16 autocast for these small models on CPU, and the same on every CPU


def train_encoder(
    data: StillSet,
    cfg: EncoderCfg,
    seed: int,
    log: Callable[[dict], None] | None = None,
    device: str | torch.device | None = None,
) -> ImageEncoder:
    """SimCLR pretraining of the open_clip vision tower on stills (no labels, no text).
    Trains on ``resolve_device(device)``; returns the encoder on the CPU."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    dev = resolve_device(device)
    enc = ImageEncoder(cfg.model)
    head = nn.Sequential(nn.Linear(enc.embed_dim, 256), nn.ReLU(), nn.Linear(256, 128))
    enc.to(dev), head.to(dev)
    params = list(enc.clip.visual.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    x_all = to_tensor(data.images)
    enc.train()
    for step in range(cfg.steps):
        idx = torch.randint(0, len(x_all), (cfg.batch,), generator=g)
        x = x_all[idx]
        views = [augment(x, g, cfg.max_shift, colour_p=cfg.colour_p, gray_p=cfg.gray_p) for _ in range(2)]
        v = torch.cat(views).to(dev)  # (2B, 3, H, W)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            z = head(enc(v)).float()
        loss = nt_xent(*z.chunk(2), cfg.temperature)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if log and (step % 20 == 0 or step == cfg.steps - 1):
            log(dict(part="encoder", step=step, loss=float(loss)))
    return enc.cpu().eval()
