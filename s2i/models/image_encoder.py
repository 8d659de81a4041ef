"""The toy/smoke image encoder: an open_clip model registered from ``s2i/models/configs/*.json``
(toy: a ModifiedResNet, the architecture of CLIP's ResNet towers; smoke: a tiny ViT) and created
through open_clip's own factory, pretrained by :mod:`s2i.train.encoder` as CLIP is, on stills and
their captions (plus SimCLR). Its embedding space Z^V is the one the audio encoder is aligned to."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from s2i.models.common import to_tensor
from s2i.utils import atomic_path, write_json

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


_registered = False


def register_model_configs() -> None:
    """Register s2i's open_clip architectures (``s2i/models/configs/*.json``) with open_clip,
    the way open_clip's own ``model_configs`` are registered."""
    global _registered
    if not _registered:
        import open_clip

        open_clip.add_model_config(CONFIG_DIR)
        _registered = True


class ImageEncoder(nn.Module):
    """The open_clip model's vision tower (created by open_clip's factory), with the
    normalisation open_clip's preprocess would apply. Input: float (N, 3, H, W) in [-1, 1]."""

    def __init__(self, model_name: str, clip_model: nn.Module | None = None):
        super().__init__()
        import open_clip

        register_model_configs()
        self.model_name = model_name
        self.clip = clip_model if clip_model is not None else open_clip.create_model(model_name, pretrained=None)
        pc = self.clip.visual.preprocess_cfg
        self.register_buffer("mean", torch.tensor(pc["mean"]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(pc["std"]).view(1, 3, 1, 1), persistent=False)
        self.embed_dim = int(self.clip.visual.output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, 3, H, W) -> (N, D)
        x = ((x + 1) / 2 - self.mean) / self.std
        return self.clip.encode_image(x)

    def save(self, out_dir: str | os.PathLike) -> None:
        """Save as an open_clip checkpoint: the config JSON and the full CLIP state dict (safetensors)."""
        from safetensors.torch import save_file

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        cfg = json.loads((CONFIG_DIR / f"{self.model_name}.json").read_text())
        write_json(out_dir / "open_clip_config.json", dict(model_name=self.model_name, model_cfg=cfg))
        sd = {k: v.contiguous() for k, v in self.clip.state_dict().items()}
        with atomic_path(out_dir / "open_clip_model.safetensors") as tmp:
            save_file(sd, str(tmp))

    @classmethod
    def load(cls, model_dir: str | os.PathLike) -> ImageEncoder:
        """Load through open_clip's factory: ``create_model(name, pretrained=<checkpoint>)``."""
        import open_clip

        register_model_configs()
        model_dir = Path(model_dir)
        meta = json.loads((model_dir / "open_clip_config.json").read_text())
        ckpt = model_dir / "open_clip_model.safetensors"
        clip = open_clip.create_model(meta["model_name"], pretrained=str(ckpt))
        return cls(meta["model_name"], clip).eval()


@torch.no_grad()
def embed(enc: nn.Module, images: np.ndarray | torch.Tensor, batch: int = 512) -> torch.Tensor:
    """Embed uint8 images with any module taking [-1, 1] tensors; returns (N, D) float32."""
    x = to_tensor(images)
    return torch.cat([enc(x[i : i + batch]) for i in range(0, len(x), batch)]).float()
