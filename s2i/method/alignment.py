"""Alignment of the audio encoder to the frozen image-embedding space (claims 4-5).

Losses (``loss`` in params): ``infonce_l2`` (the patent's formula: logits = -||a - b||_2 /
temperature, symmetric, optional L2 normalisation), ``infonce_cos`` (cosine / temperature),
``l2`` (direct regression of Z^A onto Z^V, the patent's second option) and weighted sums
written ``"infonce_l2+0.5*l2"``."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from s2i.models.audio_encoder import AudioEncoder, AudioEncoderCfg, encode_mels
from s2i.utils import as_bool, atomic_torch_save


# ----------------------------------------------------------------------------- losses
def infonce_l2(
    a: torch.Tensor, v: torch.Tensor, temperature: float = 0.1, normalize: bool = False, symmetric: bool = True
) -> torch.Tensor:
    """The patent's InfoNCE: ``-log(exp(-d(a_j, v_j)) / sum_k exp(-d(a_j, v_k)))`` with
    ``d = ||a - v||_2 / temperature``, averaged over j (and over both directions if symmetric)."""
    if normalize:
        a, v = F.normalize(a, dim=-1), F.normalize(v, dim=-1)
    logits = -torch.cdist(a, v) / temperature  # (N, N)
    target = torch.arange(len(a))
    loss = F.cross_entropy(logits, target)
    return (loss + F.cross_entropy(logits.t(), target)) / 2 if symmetric else loss


def infonce_cos(a: torch.Tensor, v: torch.Tensor, temperature: float = 0.07, symmetric: bool = True) -> torch.Tensor:
    """CLIP-style InfoNCE over cosine similarity / temperature."""
    logits = F.normalize(a, dim=-1) @ F.normalize(v, dim=-1).t() / temperature
    target = torch.arange(len(a))
    loss = F.cross_entropy(logits, target)
    return (loss + F.cross_entropy(logits.t(), target)) / 2 if symmetric else loss


def l2_loss(a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Direct regression: mean ||Z^V - Z^A||_2."""
    return (a - v).norm(dim=-1).mean()


def parse_loss(spec: str) -> list[tuple[float, str]]:
    """``"infonce_l2+0.5*l2"`` -> [(1.0, "infonce_l2"), (0.5, "l2")]."""
    terms = []
    for t in spec.replace(" ", "").split("+"):
        w, _, name = t.rpartition("*")
        if name not in ("infonce_l2", "infonce_cos", "l2"):
            raise ValueError(f"unknown loss term {name!r} in {spec!r} (infonce_l2, infonce_cos, l2)")
        terms.append((float(w) if w else 1.0, name))
    return terms


def alignment_loss(
    a: torch.Tensor, v: torch.Tensor, spec: str, temperature: float = 0.1, normalize: bool = False
) -> torch.Tensor:
    total = 0.0
    for w, name in parse_loss(spec):
        if name == "infonce_l2":
            total = total + w * infonce_l2(a, v, temperature, normalize)
        elif name == "infonce_cos":
            total = total + w * infonce_cos(a, v, temperature)
        else:
            total = total + w * l2_loss(a, v)
    return total


# ----------------------------------------------------------------------------- retrieval
def retrieval(
    a: torch.Tensor, v: torch.Tensor, classes: np.ndarray | None = None, ks: tuple[int, ...] = (1, 5, 10)
) -> dict:
    """Audio -> image retrieval among the N pairs by L2 distance: R@k, median rank, chance
    level, and (with ``classes``) class_r1: the top-1 image shows the heard class."""
    d = torch.cdist(a.float(), v.float())  # (N, N)
    order = d.argsort(dim=1)
    n = len(a)
    rank = (order == torch.arange(n)[:, None]).float().argmax(dim=1)  # 0-based rank of the true image
    out = {f"r{k}": float((rank < k).float().mean()) for k in ks}
    out.update(
        n=n,
        chance_r1=1.0 / n,
        median_rank=float(rank.float().median() + 1),
        mean_l2=float((a - v).norm(dim=-1).mean()),
        mean_cos=float(F.cosine_similarity(a, v).mean()),
    )
    if classes is not None:
        c = np.asarray(classes)
        out["class_r1"] = float((c[order[:, 0].numpy()] == c).mean())
        out["class_chance"] = float(sum((c == k).mean() ** 2 for k in np.unique(c)))
    return out


# ----------------------------------------------------------------------------- training
@dataclass
class AlignCfg:
    loss: str = "infonce_l2"
    temperature: float = 0.1
    normalize: bool = False
    epochs: int = 30
    batch: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    spec_mask: int = 4  # SpecAugment-style frequency/time mask width (0 = off)

    def __post_init__(self):
        self.normalize = as_bool(self.normalize)  # "false" from a command line must not be truthy


def _augment_mel(m: torch.Tensor, g: torch.Generator, width: int) -> torch.Tensor:
    if width <= 0:
        return m
    m = m.clone()
    B, _, M, T = m.shape
    f0 = torch.randint(0, M - width, (B,), generator=g)
    t0 = torch.randint(0, max(T - width // 2, 1), (B,), generator=g)
    fill = m.mean()
    for i in range(B):
        m[i, :, f0[i] : f0[i] + width] = fill
        m[i, :, :, t0[i] : t0[i] + width // 2] = fill
    return m


def train_alignment(
    mels: torch.Tensor,
    z_img: torch.Tensor,
    enc_cfg: AudioEncoderCfg,
    cfg: AlignCfg,
    seed: int,
    val: tuple[torch.Tensor, torch.Tensor] | None = None,
    ckpt_dir: str | os.PathLike | None = None,
    log: Callable[[dict], None] | None = None,
) -> tuple[AudioEncoder, list[dict]]:
    """Train the audio encoder so that Z^A lands on Z^V (frozen, precomputed ``z_img``).

    One checkpoint per epoch in ``ckpt_dir`` (``last.pt``); a rerun after a kill resumes from
    it. Returns the encoder with the best validation loss (or the last, without ``val``) and
    the per-epoch history (train loss, val loss, val R@1)."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = AudioEncoder(enc_cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = max(1, math.ceil(len(mels) / cfg.batch))
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch, pct_start=0.1
    )
    history: list[dict] = []
    best, best_state, start = float("inf"), None, 0
    ck = Path(ckpt_dir) / "last.pt" if ckpt_dir else None
    # what a checkpoint must match to be resumed (everything but the number of epochs)
    fingerprint = dict(
        enc=asdict(enc_cfg),
        cfg={k: v for k, v in asdict(cfg).items() if k != "epochs"},
        seed=seed,
        n=len(mels),
        shape=list(mels.shape[1:]),
        z=float(z_img.float().sum()),
    )
    if ck is not None and ck.exists():
        s = torch.load(ck, weights_only=False)
        if s.get("fingerprint") != fingerprint:
            raise ValueError(
                f"{ck}: checkpoint of a different training run (settings, seed or data differ); "
                "delete it to start afresh"
            )
        model.load_state_dict(s["model"])
        opt.load_state_dict(s["opt"])
        if s["epochs"] == cfg.epochs:
            sched.load_state_dict(s["sched"])
        else:  # more (or fewer) epochs than the checkpointed run: a fresh schedule over what is left
            remaining = max(1, (cfg.epochs - s["epoch"]) * steps_per_epoch)
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=remaining, pct_start=0.1)
        g.set_state(s["rng"])
        torch.set_rng_state(s["torch_rng"])
        history, best, best_state, start = s["history"], s["best"], s["best_state"], s["epoch"]
    z_img = z_img.float()
    for epoch in range(start, cfg.epochs):
        model.train()
        perm = torch.randperm(len(mels), generator=g)
        tot, nb = 0.0, 0
        for s in range(0, len(perm), cfg.batch):
            idx = perm[s : s + cfg.batch]
            if len(idx) < 2:
                continue
            a = model(_augment_mel(mels[idx], g, cfg.spec_mask))
            loss = alignment_loss(a, z_img[idx], cfg.loss, cfg.temperature, cfg.normalize)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            tot, nb = tot + loss.item(), nb + 1
        row = dict(epoch=epoch + 1, train_loss=tot / max(nb, 1))
        if val is not None:
            va = encode_mels(model, val[0])
            row["val_loss"] = float(alignment_loss(va, val[1].float(), cfg.loss, cfg.temperature, cfg.normalize))
            row["val_r1"] = retrieval(va, val[1])["r1"]
            crit = row["val_loss"]
        else:
            crit = row["train_loss"]
        if crit < best:
            best, best_state = crit, {k: v.clone() for k, v in model.state_dict().items()}
        history.append(row)
        if log:
            log(row)
        if ck is not None:
            atomic_torch_save(
                dict(
                    model=model.state_dict(),
                    opt=opt.state_dict(),
                    sched=sched.state_dict(),
                    rng=g.get_state(),
                    torch_rng=torch.get_rng_state(),
                    history=history,
                    best=best,
                    best_state=best_state,
                    epoch=epoch + 1,
                    epochs=cfg.epochs,
                    fingerprint=fingerprint,
                ),
                ck,
            )
    if best_state is not None:
        model.load_state_dict(best_state)
    return model.eval(), history
