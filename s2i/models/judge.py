"""The judge: a small CNN that reads a toy picture's object class, size, position and place.

It is the measuring instrument of the toy profile's studies (:mod:`s2i.eval`), trained on
rendered stills by :mod:`s2i.train.judge`; the method itself never uses it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from s2i.models.common import to_tensor
from s2i.toyworld import world
from s2i.utils import atomic_path, write_json


# ----------------------------------------------------------------------------- judge
class Judge(nn.Module):
    """The measuring instrument: a small CNN trained on real toy frames with their ground
    truth (never on generated images). For any image it reports which classes are present
    (sigmoid per class), each class's radius in px, and the background (softmax)."""

    def __init__(self, n_classes: int = len(world.CLASSES), n_bg: int = len(world.BACKGROUNDS), width: int = 32):
        super().__init__()
        w = width

        def block(i, o):
            return nn.Sequential(
                nn.Conv2d(i, o, 3, padding=1),
                nn.BatchNorm2d(o),
                nn.ReLU(),
                nn.Conv2d(o, o, 3, padding=1),
                nn.BatchNorm2d(o),
                nn.ReLU(),
            )

        self.features = nn.Sequential(
            block(3, w),
            nn.MaxPool2d(2),
            block(w, 2 * w),
            nn.MaxPool2d(2),
            block(2 * w, 4 * w),
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),
        )
        self.trunk = nn.Sequential(nn.Linear(16 * w, 256), nn.ReLU())
        self.presence = nn.Linear(256, n_classes)
        self.size = nn.Linear(256, n_classes)
        self.bg = nn.Linear(256, n_bg)
        self.config = dict(n_classes=n_classes, n_bg=n_bg, width=width)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:  # (N, 3, 32, 32) in [-1, 1]
        h = self.trunk(self.features(x))
        return dict(presence=self.presence(h), size=self.size(h) * world.R_MAX, bg=self.bg(h))

    @torch.no_grad()
    def report(self, images: np.ndarray | torch.Tensor, batch: int = 512) -> dict[str, np.ndarray]:
        """Judge a batch of uint8 (N, H, W, 3) images: ``p_present`` (N, C), ``present`` (N, C)
        bool (p > 0.5), ``top_class`` (N,), ``size`` (N, C) px, ``bg`` (N,), ``p_bg`` (N, B)."""
        self.eval()
        x = to_tensor(images)
        if x.shape[-1] != world.IMG:
            x = F.interpolate(x, size=(world.IMG, world.IMG), mode="area")
        outs = [self(x[i : i + batch]) for i in range(0, len(x), batch)]
        o = {k: torch.cat([d[k] for d in outs]) for k in outs[0]}
        p = torch.sigmoid(o["presence"]).numpy()
        return dict(
            p_present=p,
            present=p > 0.5,
            top_class=p.argmax(1),
            size=o["size"].numpy(),
            bg=o["bg"].argmax(1).numpy(),
            p_bg=torch.softmax(o["bg"], 1).numpy(),
        )

    def save(self, out_dir: str | os.PathLike) -> None:
        from safetensors.torch import save_file

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json(out_dir / "judge.json", self.config)
        with atomic_path(out_dir / "judge.safetensors") as tmp:
            save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(tmp))

    @classmethod
    def load(cls, model_dir: str | os.PathLike) -> Judge:
        from safetensors.torch import load_file

        model_dir = Path(model_dir)
        j = cls(**json.loads((model_dir / "judge.json").read_text()))
        j.load_state_dict(load_file(str(model_dir / "judge.safetensors")))
        return j.eval()
