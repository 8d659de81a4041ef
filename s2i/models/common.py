"""Tensor helpers shared by the toy models: images <-> tensors, and device choice."""

from __future__ import annotations

import os

import numpy as np
import torch


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The device to train or sample on: ``device`` if given, else ``$S2I_DEVICE``, else CUDA when
    a GPU is present, else the CPU. Random draws always come from CPU generators and are moved to
    the device, so a CPU run is bit-identical whatever machine it runs on."""
    if device is None:
        device = os.environ.get("S2I_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def to_tensor(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) in [-1, 1]."""
    if isinstance(images, torch.Tensor) and images.dtype != torch.uint8:
        return images
    x = torch.as_tensor(np.asarray(images))
    return x.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float (N, 3, H, W) in [-1, 1] -> uint8 (N, H, W, 3)."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def native_bf16(device: str | torch.device) -> bool:
    """Whether ``device`` computes in bfloat16 natively: a CUDA GPU that supports it, or a CPU with
    AVX512-BF16 or AMX instructions (read from ``/proc/cpuinfo``). Elsewhere oneDNN emulates
    bfloat16 and autocast runs many times slower than float32."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    try:
        flags = next(
            line.split(":", 1)[1].split() for line in open("/proc/cpuinfo") if line.startswith(("flags", "Features"))
        )
    except (OSError, StopIteration):
        return False
    return bool({"avx512_bf16", "amx_bf16"} & set(flags))


def use_bf16(setting: bool | str, device: str | torch.device) -> bool:
    """A model's ``bf16`` setting for ``device``: True or False as given, ``"auto"`` where the
    device computes in bfloat16 natively (:func:`native_bf16`)."""
    if setting == "auto":
        return native_bf16(device)
    if isinstance(setting, bool):
        return setting
    raise ValueError(f"bf16 must be true, false or 'auto', got {setting!r}")
