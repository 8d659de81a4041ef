"""Pretraining of the toy image encoder as CLIP is pretrained: image-caption contrastive
learning, plus SimCLR on two augmented views.

The captions (:func:`s2i.toyworld.stills.caption`) say what an alt-text would: the place, and
for each object its shape, colour, size and where it is ("beach ring red small left top"). The
caption loss is what makes the embedding encode the object's *shape*: colours are shared by
every class, and a still's colour, place, size and position already tell it from the others in
a batch, so instance discrimination alone (SimCLR, even with colour jitter) learns colour and
leaves shape out -- measured: a kNN shape accuracy of 0.16 (chance 0.125) against 0.98 for colour
-- and so does a plain caption loss (0.17: the other words already tell the captions apart).
Each image's caption with its shapes swapped is therefore an extra negative (NegCLIP's hard
negatives), which only the shape can tell from the true one.
SimCLR (one plain view, one with flips, colour jitter and grayscale) keeps the detail within a
caption's words that the generator needs (exact size and place).

``python -m s2i.train.encoder rebuild`` trains the image encoder alone again, exactly as the
``pretrain`` stage does with the active profile's ``pretrain.enc_*`` settings, stills and seed
(:func:`s2i.train.pretrain.build_encoder`), into the model folder, and records its settings,
training time and machine in ``manifest.json``. Everything conditioned on its embedding is then
stale: the generator's denoiser is trained again on the new embeddings (``python -m
s2i.train.denoiser train --init installed``, then ``install``, which redoes the stage's
measurements), ``dvc commit -f pretrain`` records the stage, and ``dvc repro`` reruns every
stage after it (``dvc repro -f pretrain`` rebuilds the same encoder).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from s2i.models.common import resolve_device, to_tensor
from s2i.models.image_encoder import ImageEncoder
from s2i.toyworld import world
from s2i.toyworld.stills import END, VOCAB, StillSet

# ----------------------------------------------------------------------------- image encoder (SimCLR)
_CHANNEL_ORDERS = torch.tensor([[0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]])  # every non-identity order


def augment(
    x: torch.Tensor,
    g: torch.Generator,
    max_shift: int = 3,
    noise: float = 0.03,
    colour_p: float = 0.0,
    gray_p: float = 0.0,
    flip: bool = True,
) -> torch.Tensor:
    """Augmented views that keep object size: a random translation (replicate padding), a
    horizontal flip (``flip``) and a little pixel noise; with probability ``colour_p`` the RGB
    channels reordered (a colour jitter that maps the palette onto other saturated colours) and
    with probability ``gray_p`` the view turned grey. No scale crops: size is what loudness means."""
    B, _, H, W = x.shape
    p = max_shift
    xp = F.pad(x, (p, p, p, p), mode="replicate")
    dx = torch.randint(0, 2 * p + 1, (B,), generator=g)
    dy = torch.randint(0, 2 * p + 1, (B,), generator=g)
    out = torch.stack([xp[i, :, dy[i] : dy[i] + H, dx[i] : dx[i] + W] for i in range(B)])
    if flip:
        flipped = torch.rand(B, generator=g) < 0.5
        out[flipped] = out[flipped].flip(-1)
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


def clip_loss(img: torch.Tensor, txt: torch.Tensor, logit_scale: torch.Tensor, hard: torch.Tensor | None = None):
    """CLIP's symmetric InfoNCE between B image and B caption embeddings; ``hard``: B more
    captions, each image's own with a word swapped, as extra negatives of the image -> text
    direction (NegCLIP, Yuksekgonul et al. 2023)."""
    img, txt = F.normalize(img, dim=-1), F.normalize(txt, dim=-1)
    scale = logit_scale.exp().clamp(max=100)
    logits = scale * img @ txt.t()
    target = torch.arange(len(img), device=img.device)
    i2t = logits if hard is None else torch.cat([logits, scale * img @ F.normalize(hard, dim=-1).t()], dim=1)
    return (F.cross_entropy(i2t, target) + F.cross_entropy(logits.t(), target)) / 2


def shapes_only(tokens: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Captions cut down to their shape words (and "and"), where ``keep`` (B,) is False."""
    lo, n = VOCAB.index(world.SHAPES[0]), len(world.SHAPES)
    short = torch.zeros_like(tokens)
    for i in torch.nonzero(~keep).flatten().tolist():
        words = [int(w) for w in tokens[i] if lo <= w < lo + n]
        ids = [w for k, w in enumerate(words) for w in ([VOCAB.index("and")] if k else []) + [w]] or [
            VOCAB.index("nothing")
        ]
        short[i, : len(ids) + 1] = torch.tensor(ids + [END])
    return torch.where(keep[:, None], tokens, short)


def swap_shapes(tokens: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Captions with every shape word replaced by another shape (the hard negatives)."""
    lo, n = VOCAB.index(world.SHAPES[0]), len(world.SHAPES)
    is_shape = (tokens >= lo) & (tokens < lo + n)
    other = (tokens - lo + torch.randint(1, n, tokens.shape, generator=g)) % n + lo
    return torch.where(is_shape, other, tokens)


@dataclass
class EncoderCfg:
    model: str = "s2i-toy-rn"
    steps: int = 600
    batch: int = 256
    lr: float = 1e-3
    temperature: float = 0.2
    max_shift: int = 3
    colour_p: float = 0.8  # SimCLR's second view: colour jitter (channels reordered) ...
    gray_p: float = 0.2  # ... or grey
    simclr_weight: float = 0.5  # the SimCLR term beside the caption term (weight 1)
    shape_caption_p: float = 0.5  # captions cut down to their shape words
    bf16: bool = False  # fp32, the same on every CPU (bf16 autocast pays only where the CPU computes it natively)


def train_encoder(
    data: StillSet,
    cfg: EncoderCfg,
    seed: int,
    log: Callable[[dict], None] | None = None,
    device: str | torch.device | None = None,
) -> ImageEncoder:
    """Pretrain the open_clip model on stills and their captions (``data.tokens``): the image
    tower against the text tower (CLIP's loss, on a view that keeps colours and left/right) plus
    SimCLR between that view and a flipped, colour-jittered one. Trains on
    ``resolve_device(device)``; returns the encoder on the CPU."""
    if data.tokens is None:
        raise ValueError("the stills carry no captions (StillSet.tokens)")
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    dev = resolve_device(device)
    enc = ImageEncoder(cfg.model)
    head = nn.Sequential(nn.Linear(enc.embed_dim, 256), nn.ReLU(), nn.Linear(256, 128))
    enc.to(dev), head.to(dev)
    params = list(enc.clip.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    x_all, tok_all = to_tensor(data.images), torch.as_tensor(data.tokens)
    enc.train()
    for step in range(cfg.steps):
        idx = torch.randint(0, len(x_all), (cfg.batch,), generator=g)
        x = x_all[idx]
        plain = augment(x, g, max_shift=2, flip=False)  # colours and left/right as the caption says
        jittered = augment(x, g, cfg.max_shift, colour_p=cfg.colour_p, gray_p=cfg.gray_p)
        v = torch.cat([plain, jittered]).to(dev)  # (2B, 3, H, W)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            z = enc(v)
            tok = shapes_only(tok_all[idx], torch.rand(cfg.batch, generator=g) >= cfg.shape_caption_p)
            t = enc.clip.encode_text(torch.cat([tok, swap_shapes(tok, g)]).to(dev))
            h = head(z)
        t = t.float()
        l_clip = clip_loss(z[: cfg.batch].float(), t[: cfg.batch], enc.clip.logit_scale, hard=t[cfg.batch :])
        l_simclr = nt_xent(*h.float().chunk(2), cfg.temperature)
        loss = l_clip + cfg.simclr_weight * l_simclr
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if log and (step % 20 == 0 or step == cfg.steps - 1):
            log(dict(part="encoder", step=step, loss=loss.item(), clip=l_clip.item(), simclr=l_simclr.item()))
    return enc.cpu().eval()


def rebuild_encoder(model_dir: str | Path, seed: int, n_stills: int, encoder: dict, device=None) -> ImageEncoder:
    """Train the image encoder as the ``pretrain`` stage does (its ``n_stills`` training stills
    of ``seed``, ``encoder``: its settings) into ``model_dir/image_encoder``, and record in
    ``model_dir/manifest.json`` its settings, its data and training times
    (``timings.encoder_data_s``, ``encoder_s``) and ``encoder_rebuilt``: the device and torch version it
    was trained with. Returns the encoder."""
    from s2i.toyworld.stills import make_stills
    from s2i.train.pretrain import build_encoder, rebuild_backbone  # pretrain imports this module

    dev = resolve_device(device)

    def build(timings: dict) -> ImageEncoder:
        t = time.time()
        train = make_stills(n_stills, seed)
        timings["encoder_data_s"] = time.time() - t
        return build_encoder(model_dir, train, seed, encoder, None, dev, timings)

    return rebuild_backbone(model_dir, "encoder", encoder, build, dev)


def main(argv=None) -> None:
    from s2i.train.pretrain import rebuild_command

    params, model_dir, device = rebuild_command("s2i.train.encoder", __doc__, "image encoder", argv)
    pre = params["pretrain"]
    cfg = {k: pre[f"enc_{k}"] for k in ("model", "steps", "batch", "lr", "temperature")}
    rebuild_encoder(model_dir, params["base"]["seed"], pre["n_stills"], cfg, device)
    print(
        f"{model_dir / 'image_encoder'}: rebuilt. The generator draws from the old embedding until its "
        "denoiser is trained again (python -m s2i.train.denoiser train --init installed, then install)"
    )


if __name__ == "__main__":
    main()
