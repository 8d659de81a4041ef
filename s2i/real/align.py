"""Alignment on real audio (claims 4-5) with Hugging Face Accelerate: one process, several GPUs or
several machines, the same code and the same result.

The audio encoder -- s2i's (:class:`~s2i.models.audio_encoder.AudioEncoder` on a log-mel) or
Sound2Scene's ResNet-18 on their spectrogram (:class:`~s2i.models.published.PublishedAudioEncoder`,
output dimension = the image embeddings') -- is trained so that Z^A lands on the frozen Z^V of the
extracted pairs (:class:`s2i.real.shards.Pairs`). Losses are those of :mod:`s2i.method.alignment`;
``infonce_l2`` with ``normalize: false`` is Sound2Vision's un-normalised InfoNCE-L2 (distances in
the raw unCLIP embedding space).

**Several processes give the curve of one.** Run as ``accelerate launch -m s2i.real align`` (or
through any ``torch.distributed`` launcher). Each global batch of ``batch`` pairs, drawn from a
permutation seeded by ``(seed, epoch)``, is cut into equal slices, one per process. A contrastive
loss needs every pair's negatives, so each process gathers all processes' audio embeddings and
image embeddings and computes the loss of the whole global batch; its own slice is put back with
its gradient (open_clip's ``gather_features``), and the loss is scaled by the number of processes
so that the data-parallel gradient average is the gradient of the global batch's loss. Batch norm
statistics are computed over the global batch too: torch's ``SyncBatchNorm`` on GPUs,
:class:`GlobalBatchNorm2d` (the same statistics through ``all_reduce``, which gloo supports) on
CPUs. The last incomplete batch of an epoch is dropped, so every process sees equal slices.

**Checkpoint and resume.** Every ``ckpt_steps`` steps and at each epoch's end the main process
writes ``ckpt/last.pt`` atomically (model, optimiser, schedule, position, history); a rerun resumes
from the step after it, and since the data order is a function of the seed and epoch, ends where an
uninterrupted run ends. Mixed precision (``fp16``/``bf16``) on GPUs through Accelerate.

**Evaluation** on the test split: audio-to-image retrieval among the N test pairs (R@1/5/10 by L2
distance, chance ``k/N``) and class-level R@1 where the corpus has labels
(:func:`s2i.method.alignment.retrieval`).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn

from s2i.method.alignment import alignment_loss, retrieval
from s2i.models.audio_encoder import AudioEncoder, AudioEncoderCfg
from s2i.real.shards import Pairs, identity
from s2i.utils import as_bool, atomic_torch_save, read_json, write_json

ENCODERS = ("s2i", "sound2scene")


@dataclass
class RealAlignCfg:
    encoder: str = "s2i"  # "s2i" (log-mel ResNet) or "sound2scene" (ResNet-18 on their spectrogram)
    width: int = 32  # s2i encoder only
    depth: int = 4  # s2i encoder only
    loss: str = "infonce_l2"
    temperature: float = 0.1
    normalize: bool = False  # false: Sound2Vision's un-normalised InfoNCE-L2
    epochs: int = 10
    batch: int = 256  # global batch (all processes together)
    lr: float = 1e-3
    weight_decay: float = 1e-4
    ckpt_steps: int = 500
    mixed_precision: str = "no"  # "no", "fp16" or "bf16" (GPU)
    workers: int = 2  # DataLoader workers computing the audio front end

    def __post_init__(self):
        self.normalize = as_bool(self.normalize)  # "false" from a command line must not be truthy


# ----------------------------------------------------------------------------- model
class GlobalBatchNorm2d(nn.BatchNorm2d):
    """``BatchNorm2d`` whose training statistics are those of the batch of all processes (two
    ``all_reduce`` passes: the mean, then the variance about it), on any backend; in eval mode,
    or in a single process, plain ``BatchNorm2d``. Same parameters and state-dict keys."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not dist.is_initialized() or dist.get_world_size() == 1:
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        C = x.shape[1]
        n = all_reduce(torch.tensor([x.numel() / C], dtype=x.dtype, device=x.device))
        mean = all_reduce(x.sum((0, 2, 3))) / n
        var = all_reduce((x - mean[None, :, None, None]).square().sum((0, 2, 3))) / n
        with torch.no_grad():
            m = self.momentum
            self.running_mean.mul_(1 - m).add_(m * mean.detach())
            self.running_var.mul_(1 - m).add_(m * var.detach() * n / (n - 1))
            self.num_batches_tracked += 1
        y = (x - mean[None, :, None, None]) * torch.rsqrt(var + self.eps)[None, :, None, None]
        return y * self.weight[None, :, None, None] + self.bias[None, :, None, None]


def global_batchnorm(model: nn.Module, device_type: str) -> nn.Module:
    """Every ``BatchNorm2d`` computed over all processes' batches (GPU: ``SyncBatchNorm``)."""
    if device_type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for name, child in model.named_children():
        if type(child) is nn.BatchNorm2d:
            new = GlobalBatchNorm2d(child.num_features, child.eps, child.momentum)
            new.load_state_dict(child.state_dict())
            setattr(model, name, new)
        else:
            global_batchnorm(child, device_type)
    return model


def build_encoder(cfg: RealAlignCfg, embed_dim: int) -> nn.Module:
    if cfg.encoder == "s2i":
        return AudioEncoder(AudioEncoderCfg(embed_dim=embed_dim, width=cfg.width, depth=cfg.depth))
    if cfg.encoder == "sound2scene":
        from s2i.models.published import PublishedAudioEncoder

        return PublishedAudioEncoder("sound2vision", embed_dim=embed_dim)
    raise ValueError(f"unknown audio encoder {cfg.encoder!r}: one of {ENCODERS}")


def front_end(cfg: RealAlignCfg) -> str:
    return "logmel" if cfg.encoder == "s2i" else "sound2scene"


def save_encoder(model: nn.Module, cfg: RealAlignCfg, out_dir: str | os.PathLike, extra: dict | None = None) -> None:
    """The trained encoder: s2i's in its own format (``AudioEncoder.load``), Sound2Scene's as a
    state dict in their key layout plus ``audio_encoder.json`` (:func:`load_encoder` reads both)."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    info = dict(extra or {}, encoder=cfg.encoder, align=asdict(cfg))
    if cfg.encoder == "s2i":
        model.save(out, extra=info)
        return
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / "audio_encoder.safetensors"))
    write_json(out / "audio_encoder.json", dict(info, embed_dim=model.embed_dim))


def encoder_info(out_dir: str | os.PathLike) -> dict:
    """What a saved encoder needs around it: ``{"encoder", "embed_dim", "window_s"}``."""
    meta = read_json(Path(out_dir) / "audio_encoder.json")
    kind = meta.get("encoder", "s2i")
    dim = meta["cfg"]["embed_dim"] if kind == "s2i" else meta["embed_dim"]
    return dict(encoder=kind, embed_dim=int(dim), window_s=meta.get("window_s"))


def load_encoder(out_dir: str | os.PathLike) -> nn.Module:
    """An encoder saved by :func:`save_encoder` (eval mode), with ``embed_windows``."""
    from safetensors.torch import load_file

    out = Path(out_dir)
    meta = read_json(out / "audio_encoder.json")
    if meta.get("encoder", "s2i") == "s2i":
        return AudioEncoder.load(out)
    from s2i.models.published import PublishedAudioEncoder

    m = PublishedAudioEncoder("sound2vision", embed_dim=meta["embed_dim"])
    m.load_state_dict(load_file(str(out / "audio_encoder.safetensors")))
    return m.eval()


# ----------------------------------------------------------------------------- data
class _Batches(torch.utils.data.Dataset):
    """Item ``b``: this process's slice of global batch ``b`` -> (features, Z^V) (in a worker)."""

    def __init__(self, pairs: Pairs, order: np.ndarray, batch: int, rank: int, world: int, kind: str) -> None:
        self.pairs, self.order, self.batch, self.kind = pairs, order, batch, kind
        self.local = batch // world
        self.offset = rank * self.local

    def __len__(self) -> int:
        return len(self.order) // self.batch

    def __getitem__(self, b: int):
        from s2i.real.features import audio_features

        idx = self.order[b * self.batch + self.offset : b * self.batch + self.offset + self.local]
        return audio_features(self.pairs.windows(idx), self.kind), self.pairs.z(idx)


def _gather(x: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """All processes' ``x`` concatenated in rank order, this process's slice keeping its gradient."""
    if world == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(world)]
    dist.all_gather(parts, x.detach().contiguous())
    parts[rank] = x
    return torch.cat(parts)


@torch.no_grad()
def embed(model: nn.Module, pairs: Pairs, idx: np.ndarray, kind: str, device, batch: int = 64) -> torch.Tensor:
    """Z^A of pairs ``idx`` (eval mode), float32 on the CPU."""
    from s2i.real.features import audio_features

    model.eval()
    out = [
        model(audio_features(pairs.windows(idx[i : i + batch]), kind).to(device)).float().cpu()
        for i in range(0, len(idx), batch)
    ]
    return torch.cat(out) if out else torch.zeros(0, 0)


# ----------------------------------------------------------------------------- training
def train_real_alignment(
    pairs_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    cfg: RealAlignCfg,
    seed: int = 0,
    source: str = "selected",
    progress: bool = True,
) -> dict:
    """Train on the ``train`` pairs of ``source`` (``selected`` frames), validate on ``val`` each epoch
    (the best epoch is kept), test on ``test``; write ``audio_encoder/``, ``history.json`` and
    ``metrics.json`` into ``out_dir`` (main process) and return the metrics. Call it in every
    process of an Accelerate launch (module docstring)."""
    from accelerate import Accelerator

    acc = Accelerator(mixed_precision=cfg.mixed_precision, cpu=not torch.cuda.is_available())  # cpu: gloo
    rank, world, device = acc.process_index, acc.num_processes, acc.device
    if cfg.batch % world:
        raise ValueError(f"the global batch {cfg.batch} must be a multiple of the number of processes {world}")
    pairs = Pairs(pairs_dir)
    tr, va, te = (pairs.select(split, source) for split in ("train", "val", "test"))
    if len(tr) < 2 * world:
        raise ValueError(f"{pairs_dir}: {len(tr)} training pairs of source {source!r}; contrastive training needs more")
    if len(tr) < cfg.batch:  # a small corpus: one batch of all the pairs (a multiple of the processes)
        cfg = RealAlignCfg(**dict(asdict(cfg), batch=len(tr) // world * world))
        if acc.is_main_process:
            print(f"s2i.real: {len(tr)} training pairs, fewer than the batch; batch = {cfg.batch}", flush=True)
    D = int(pairs.z(tr[:1]).shape[1])
    torch.manual_seed(seed)
    model = build_encoder(cfg, D)
    if world > 1:
        model = global_batchnorm(model, device.type)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = len(tr) // cfg.batch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps, pct_start=0.1)
    out, kind = Path(out_dir), front_end(cfg)
    ck = out / "ckpt" / "last.pt"
    fingerprint = dict(
        cfg={k: v for k, v in asdict(cfg).items() if k not in ("workers", "ckpt_steps")}, seed=seed, n=len(tr), D=D
    )
    state = dict(epoch=0, step=0, history=[], best=math.inf, best_state=None)
    if ck.exists():
        s = torch.load(ck, weights_only=False, map_location="cpu")
        if s["fingerprint"] != fingerprint:
            raise ValueError(
                f"{ck}: checkpoint of a different run (settings, seed or data differ); delete it to start afresh"
            )
        model.load_state_dict(s["model"])
        opt.load_state_dict(s["opt"])
        sched.load_state_dict(s["sched"])
        state = s["state"]
    model, opt = acc.prepare(model, opt)
    raw = acc.unwrap_model(model)

    def save(state):
        if acc.is_main_process:
            atomic_torch_save(
                dict(
                    model=raw.state_dict(),
                    opt=opt.state_dict(),
                    sched=sched.state_dict(),
                    state=state,
                    fingerprint=fingerprint,
                ),
                ck,
            )
        acc.wait_for_everyone()

    for epoch in range(state["epoch"], cfg.epochs):
        order = np.random.default_rng([seed, epoch]).permutation(tr)
        data = _Batches(pairs, order, cfg.batch, rank, world, kind)
        sub = torch.utils.data.Subset(data, range(state["step"], len(data)))
        loader = torch.utils.data.DataLoader(sub, batch_size=None, num_workers=cfg.workers, collate_fn=identity)
        model.train()
        for feats, z in loader:
            with acc.autocast():
                a = model(feats.to(device))
            a_all, z_all = _gather(a.float(), rank, world), _gather(z.to(device), rank, world)
            loss = alignment_loss(a_all, z_all, cfg.loss, cfg.temperature, cfg.normalize)
            opt.zero_grad(set_to_none=True)
            acc.backward(loss * world)  # DDP averages gradients; the global loss's gradient is their sum
            opt.step()
            sched.step()
            state["step"] += 1
            state.setdefault("losses", []).append(float(loss.detach()))
            if state["step"] % cfg.ckpt_steps == 0 and state["step"] < len(data):
                save(state)
        losses = state.pop("losses", [])
        row = dict(epoch=epoch + 1, train_loss=float(np.mean(losses)) if losses else float("nan"), losses=losses)
        if len(va) > 1:
            za = embed(raw, pairs, va, kind, device)
            row["val_loss"] = float(alignment_loss(za, pairs.z(va), cfg.loss, cfg.temperature, cfg.normalize))
            row["val_r1"] = retrieval(za, pairs.z(va))["r1"]
        crit = row.get("val_loss", row["train_loss"])
        if crit < state["best"]:
            state["best"], state["best_state"] = (
                crit,
                {k: v.detach().cpu().clone() for k, v in raw.state_dict().items()},
            )
        state["history"].append(row)
        state.update(epoch=epoch + 1, step=0)
        save(state)
        if progress and acc.is_main_process:
            print({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items() if k != "losses"}, flush=True)
    if state["best_state"] is not None:
        raw.load_state_dict(state["best_state"])
    metrics = dict(n_train=len(tr), n_val=len(va), n_test=len(te), processes=world, epochs=cfg.epochs, loss=cfg.loss)
    if len(te) > 1:
        labels = [pairs.rows[i]["label"] for i in te]
        classes = np.array(labels) if all(lb is not None for lb in labels) else None
        metrics.update(retrieval(embed(raw, pairs, te, kind, device), pairs.z(te), classes))
    if acc.is_main_process:
        save_encoder(raw, cfg, out / "audio_encoder", extra=dict(window_s=pairs.settings["window_s"]))
        write_json(out / "history.json", state["history"])
        write_json(out / "metrics.json", metrics)
    acc.wait_for_everyone()
    return metrics
