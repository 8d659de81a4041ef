"""The published Sound2Vision and Sound2Scene audio encoders, loaded from their own checkpoints.

Sound2Scene (Sung-Bin et al., CVPR 2023) and its extension Sound2Vision (arXiv 2412.06209) release
their audio encoders as PyTorch files (https://github.com/kaist-ami/Sound2Scene, README "Download
Models"):

============================  ===============================================  =====  ===========================
kind                          file                                             dim    aligned to
============================  ===============================================  =====  ===========================
``"sound2vision"``            ``sound2vision_env.pth`` (VGGSound, env. sound)  1024   OpenCLIP ViT-H-14 / unCLIP
``"sound2scene"``             ``sound2scene.pth``                              2048   SwAV ResNet-50 / IC-GAN
============================  ===============================================  =====  ===========================

**Network** (their ``models/resnet.py``, ``model.py``): a torchvision-style ResNet-18 on a one-channel
spectrogram -- ``conv1`` (1->64, 7x7, stride 2, pad 3, no bias), ``bn1``, ReLU, 3x3/2 max pool,
``layer1``..``layer4`` of two BasicBlocks each (``downsample.0``/``.1`` = 1x1 conv + BN on the first
block of layers 2-4), global average pool to 512, then ``fc`` (512->D) and ReLU. Sound2Vision adds
``fc2`` (D->D) after that ReLU (their ``ResNet_``, ``--resnet_type fc2``, ``n_classes`` 1024); Sound2Scene
stops at the ReLU (``ResNet``, ``n_classes`` 2048). The embedding is that last output (the second
value their ``AVENet`` returns). Their scripts save ``AVENet.state_dict()`` with ``torch.save``, so
every key starts with ``audnet.``; :class:`PublishedAudioEncoder` holds the ResNet itself, and its
keys are theirs without that prefix (``module.`` from ``DataParallel`` and containers such as
``{"model_state_dict": ...}`` are unwrapped too).

**Front end** (their ``a2s_dataloader.py`` and ``test*.py``, reimplemented in torch here): the clip at
16 kHz is repeated 10 times and cut to its first 160000 samples (10 s; a clip of 10 s or more is just
cut), clipped to [-1, 1], and ``scipy.signal.spectrogram(x, 16000, nperseg=512, noverlap=353)``
(defaults: periodic Tukey(0.25) window, per-segment mean removed, one-sided PSD density) gives
(257, T) with T = 1004 for 10 s; then ``log(S + 1e-7)`` and normalisation by that clip's own mean
and standard deviation (``(S - mean) / (std + 1e-9)``), computed in float64 and fed as float32
(N, 1, 257, T). No mel scale and no resizing.

Use with :class:`s2i.method.generate.Sound2Image` (which calls :meth:`PublishedAudioEncoder.embed_windows`)
and the ``full`` profile's backbones; their training clips were 10 s, hence ``window_s=enc.window_s``::

    enc = load_published_audio_encoder("models/published/sound2vision_env.pth", kind="sound2vision")
    backbones = load_backbones("full", full_params=load_profile("full")["full"])
    s2i = Sound2Image(backbones, enc, window_s=enc.window_s)

Sound2Image zero-pads a sound shorter than its window where their scripts repeat it; for their exact
input on a short clip, embed the whole clip as one window: ``enc.embed_windows(audio_16k[None])``.
Nothing here downloads: a missing file raises :class:`MissingWeightsError` saying where to get it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from s2i.backbones.openclip import MissingWeightsError
from s2i.media import SR
from s2i.paths import resolve

#: kind -> (file name, output dimension, whether ``fc2`` follows the ReLU, download page).
KINDS: dict[str, tuple[str, int, bool, str]] = {
    "sound2vision": (
        "sound2vision_env.pth",
        1024,
        True,
        "https://drive.google.com/file/d/1npdSAOHINI1MU5I365ylMl151GmmKkxB/view",
    ),
    "sound2scene": (
        "sound2scene.pth",
        2048,
        False,
        "https://drive.google.com/file/d/1MfQo9Y6cBwSo9sYkwj2gG9kNa_1fuaUJ/view",
    ),
}

#: Where the error messages suggest putting a downloaded checkpoint, relative to the repository root.
DEFAULT_PUBLISHED_DIR = "models/published"

#: Their front end's constants: clip length (samples at 16 kHz), repeats of a short clip, STFT.
CLIP_SAMPLES, REPEATS, NPERSEG, NOVERLAP = 160_000, 10, 512, 353

_WRAPPERS = ("module.", "audnet.")  # DataParallel, their AVENet
_CONTAINERS = ("state_dict", "model_state_dict", "model", "net")


class CheckpointLayoutError(ValueError):
    """A checkpoint's keys or shapes are not the published network's; the message lists them."""


# ----------------------------------------------------------------------------- front end
def published_spectrogram(windows: np.ndarray | torch.Tensor, sr: int = SR) -> torch.Tensor:
    """(N, S) mono windows at ``sr`` -> (N, 1, 257, T) float32: their normalised log spectrogram.

    Each window is processed as their scripts process one file (module docstring): repeated
    10x, cut to 160000 samples, clipped, PSD spectrogram (nperseg 512, noverlap 353), log,
    standardised by its own mean and std; in float64, so it equals their scipy computation up to
    the final cast to float32."""
    x = torch.as_tensor(np.asarray(windows), dtype=torch.float64)
    if x.ndim != 2:
        raise ValueError(f"windows must be (N, samples), got shape {tuple(x.shape)}")
    x = x.repeat(1, REPEATS)[:, :CLIP_SAMPLES].clamp(-1.0, 1.0)
    if x.shape[1] < NPERSEG:
        raise ValueError(f"a window of {x.shape[1] // REPEATS} samples is too short: 10 repeats are < {NPERSEG}")
    from scipy.signal import get_window

    win = torch.from_numpy(get_window(("tukey", 0.25), NPERSEG)).to(torch.float64)  # periodic, as scipy
    seg = x.unfold(-1, NPERSEG, NPERSEG - NOVERLAP)  # (N, T, 512)
    seg = (seg - seg.mean(-1, keepdim=True)) * win  # detrend="constant", then the window
    psd = torch.fft.rfft(seg, dim=-1).abs().square() / (sr * win.square().sum())  # scaling="density"
    psd[..., 1:-1] *= 2  # one-sided: every bin but DC and Nyquist (nperseg even) counts twice
    s = torch.log(psd.transpose(1, 2) + 1e-7)  # (N, 257, T)
    mean = s.mean(dim=(1, 2), keepdim=True)
    std = s.std(dim=(1, 2), correction=0, keepdim=True)  # np.std
    return ((s - mean) / (std + 1e-9)).float()[:, None]


# ----------------------------------------------------------------------------- network
class _BasicBlock(nn.Module):
    """torchvision's BasicBlock: keys conv1, bn1, conv2, bn2[, downsample.0, downsample.1]."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class PublishedAudioEncoder(nn.Module):
    """Their ResNet-18 audio network (keys as in their checkpoints, less ``audnet.``) with its front end.

    ``forward``: (B, 1, 257, T) spectrogram -> (B, D). :meth:`embed_windows`: (N, S) 16 kHz windows ->
    (N, D), the call :class:`~s2i.method.generate.Sound2Image` makes. ``window_s``: their clip length."""

    window_s = CLIP_SAMPLES / SR

    def __init__(self, kind: str = "sound2vision", embed_dim: int | None = None):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"unknown published encoder {kind!r}: one of {sorted(KINDS)}")
        _, dim, has_fc2, _ = KINDS[kind]
        dim = embed_dim or dim  # their network for another embedding space (s2i.real.align trains it)
        self.kind, self.embed_dim, self.checkpoint = kind, dim, None
        self.conv1 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        for i, (cin, cout) in enumerate([(64, 64), (64, 128), (128, 256), (256, 512)], start=1):
            stride = 1 if i == 1 else 2
            setattr(self, f"layer{i}", nn.Sequential(_BasicBlock(cin, cout, stride), _BasicBlock(cout, cout, 1)))
        self.fc = nn.Linear(512, dim)
        self.fc2 = nn.Linear(dim, dim) if has_fc2 else None

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(F.relu(self.bn1(self.conv1(spec))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = F.relu(self.fc(x.mean(dim=(2, 3))))
        return x if self.fc2 is None else self.fc2(x)

    front_end = staticmethod(published_spectrogram)

    @torch.no_grad()
    def embed_windows(self, windows: np.ndarray | torch.Tensor, batch: int = 8) -> torch.Tensor:
        """(N, S) mono 16 kHz windows -> (N, D) float32 embeddings on the CPU (eval mode)."""
        self.eval()
        dev = next(self.parameters()).device
        out = [
            self(published_spectrogram(windows[i : i + batch]).to(dev)).float().cpu()
            for i in range(0, len(windows), batch)
        ]
        return torch.cat(out) if out else torch.empty(0, self.embed_dim)


# ----------------------------------------------------------------------------- loading
def _unwrap(obj, path: Path) -> dict[str, torch.Tensor]:
    """The state dict inside a checkpoint: containers opened, wrapper prefixes removed."""
    while isinstance(obj, Mapping) and not all(isinstance(v, torch.Tensor) for v in obj.values()):
        key = next((k for k in _CONTAINERS if isinstance(obj.get(k), Mapping)), None)
        if key is None:
            raise CheckpointLayoutError(
                f"{path}: not a state dict and no state dict under {list(_CONTAINERS)}; top-level keys: "
                f"{sorted(map(str, obj))[:20]}"
            )
        obj = obj[key]
    if not isinstance(obj, Mapping):
        raise CheckpointLayoutError(f"{path}: holds a {type(obj).__name__}, not a state dict")
    out = {}
    for k, v in obj.items():
        k = str(k)
        while k.startswith(_WRAPPERS):
            k = k.split(".", 1)[1]
        out[k] = v
    return out


def _fmt(keys: list[str], limit: int = 20) -> str:
    more = f" ... and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def published_checkpoint_path(path: str | os.PathLike | None = None, kind: str = "sound2vision") -> Path:
    """The file :func:`load_published_audio_encoder` would read (relative paths from the repository
    root; default ``models/published/<their file name>``), checked without reading it.

    Raises:
        ValueError: an unknown ``kind``.
        MissingWeightsError: no file at ``path``; the message says where to download it.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown published encoder {kind!r}: one of {sorted(KINDS)}")
    fname, _, _, url = KINDS[kind]
    path = resolve(path if path is not None else Path(DEFAULT_PUBLISHED_DIR) / fname)
    if not path.is_file():
        raise MissingWeightsError(
            f"no {kind} checkpoint at {path}: s2i never downloads weights. Download {fname} from {url} "
            f"(linked from https://github.com/kaist-ami/Sound2Scene, 'Download Models') and put it at "
            f"{DEFAULT_PUBLISHED_DIR}/{fname} or pass its path."
        )
    return path


def load_published_audio_encoder(
    path: str | os.PathLike | None = None,
    kind: str = "sound2vision",
    device: str | torch.device = "cpu",
    weights_only: bool = True,
) -> PublishedAudioEncoder:
    """Load ``sound2vision_env.pth`` or ``sound2scene.pth`` into a :class:`PublishedAudioEncoder`.

    Args:
        path: the downloaded file (relative paths are from the repository root); default
            ``models/published/<their file name>``.
        kind: ``"sound2vision"`` (1024-d, ViT-H-14 / unCLIP) or ``"sound2scene"`` (2048-d).
        device: where the network goes.
        weights_only: ``torch.load``'s safe mode (tensors and plain containers only); set False
            only for a file you trust that pickles other objects.

    Raises:
        MissingWeightsError: no file at ``path``; the message says where to download it.
        CheckpointLayoutError: the keys or shapes are not the ``kind``'s network (lists them).
    """
    path = published_checkpoint_path(path, kind)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as e:  # noqa: BLE001 -- torch raises several types for a bad or unsafe pickle
        raise CheckpointLayoutError(f"{path}: cannot be read by torch.load(weights_only={weights_only}): {e}") from e
    sd = _unwrap(obj, path)
    model = PublishedAudioEncoder(kind)
    want = model.state_dict()
    for k in want:  # written by every PyTorch since 0.4.1; harmless to supply if a file lacks it
        if k.endswith("num_batches_tracked") and k not in sd:
            sd[k] = torch.zeros((), dtype=torch.long)
    missing = sorted(set(want) - set(sd))
    unexpected = sorted(set(sd) - set(want))
    shapes = sorted(
        f"{k} {tuple(sd[k].shape)} != {tuple(want[k].shape)}"
        for k in set(want) & set(sd)
        if tuple(sd[k].shape) != tuple(want[k].shape)
    )
    if missing or unexpected or shapes:
        other = [o for o in KINDS if o != kind and set(PublishedAudioEncoder(o).state_dict()) == set(sd)]
        hint = f" (its keys are those of {other[0]}: kind={other[0]!r}?)" if other else ""
        raise CheckpointLayoutError(
            f"{path} is not a {kind} audio encoder{hint}. "
            + (f"Missing keys ({len(missing)}): {_fmt(missing)}. " if missing else "")
            + (f"Unexpected keys ({len(unexpected)}): {_fmt(unexpected)}. " if unexpected else "")
            + (f"Wrong shapes ({len(shapes)}): {_fmt(shapes)}." if shapes else "")
        )
    model.load_state_dict(sd, strict=True)
    model.checkpoint = str(path)
    return model.to(device).eval()
