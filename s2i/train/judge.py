"""Supervised training of the judge on rendered stills with their known scene.

``python -m s2i.train.judge rebuild`` trains the judge alone again, exactly as the ``pretrain``
stage does with the active profile's ``pretrain.judge_*`` settings and seed
(:func:`s2i.train.pretrain.build_judge`), into the model folder; the image encoder and the
generator stay as they are. It then records the judge's settings, training time and machine in
``manifest.json`` and redoes the stage's measurements, which read every drawing with the judge
(``backbones.json``, the recon grid: what ``python -m s2i.train.denoiser measure`` writes). A
change to the judge's settings alone thus costs the judge's training, not the stage's hour;
``dvc commit -f pretrain`` then records the stage as up to date (``dvc repro -f pretrain``
rebuilds the same judge).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

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


def rebuild_judge(model_dir: str | Path, seed: int, n_stills: int, judge: dict, device=None) -> Judge:
    """Train the judge as the ``pretrain`` stage does (``judge``: its ``steps``/``batch``/
    ``width``) into ``model_dir/judge``, and record in ``model_dir/manifest.json`` its settings,
    its data and training times (``timings.judge_data_s``, ``judge_s``) and ``judge_rebuilt``:
    the device and torch version it was trained with. Returns the judge."""
    from s2i.train.pretrain import build_judge, rebuild_backbone  # pretrain imports this module

    dev = resolve_device(device)
    return rebuild_backbone(
        model_dir,
        "judge",
        judge,
        lambda timings: build_judge(model_dir, seed, n_stills, judge, None, dev, timings),
        dev,
    )


def main(argv=None) -> None:
    from s2i.train.pretrain import rebuild_command, write_measurements

    params, model_dir, device = rebuild_command("s2i.train.judge", __doc__, "judge", argv)
    pre = params["pretrain"]
    cfg = dict(steps=pre["judge_steps"], batch=pre["judge_batch"], width=pre["judge_width"])
    rebuild_judge(model_dir, params["base"]["seed"], pre["n_stills"], cfg, device)
    write_measurements(model_dir, params)


if __name__ == "__main__":
    main()
