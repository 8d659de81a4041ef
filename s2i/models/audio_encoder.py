"""The audio encoder: log-mel (torchaudio) -> ResNet-style CNN -> projection to the image
embedding dimension. Every sound is resampled to :data:`SR` before it is encoded."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from s2i.media import SR  # re-exported: the rate the encoder hears
from s2i.utils import atomic_path, read_json, write_json

# ----------------------------------------------------------------------------- features
N_FFT, HOP = 512, 160  # the log-mel's STFT: 32 ms frames every 10 ms at 16 kHz


class LogMel(nn.Module):
    """Waveform (B, S) at 16 kHz -> log-mel (B, 1, n_mels, T), average-pooled ``pool`` x in time."""

    def __init__(self, n_mels: int = 64, n_fft: int = N_FFT, hop: int = HOP, pool: int = 2, sr: int = SR):
        super().__init__()
        import torchaudio

        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sr, n_fft=n_fft, hop_length=hop, n_mels=n_mels, f_min=20, f_max=sr / 2, power=2.0
        )
        self.pool = pool

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        m = torch.log(self.mel(wav) + 1e-6)[:, None]  # (B, 1, M, T)
        if self.pool > 1:
            m = F.avg_pool2d(m, (1, self.pool), ceil_mode=True)
        return m


def log_mel(wavs: np.ndarray | torch.Tensor, pool: int = 2, batch: int = 1024) -> torch.Tensor:
    """log-mels of a batch of 16 kHz windows (N, S) -> (N, 1, 64, T) float16-safe float32."""
    lm = LogMel(pool=pool)
    x = torch.as_tensor(np.asarray(wavs, np.float32))
    with torch.no_grad():
        return torch.cat([lm(x[i : i + batch]) for i in range(0, len(x), batch)])


@cache
def stft_constants() -> tuple[torch.Tensor, torch.Tensor]:
    """The STFT window (N_FFT,) and the mel filter bank (N_FFT // 2 + 1, 64) of :class:`LogMel`'s
    defaults, built once (front ends that compute the same log-mel frame by frame use them)."""
    mel = LogMel().mel
    return mel.spectrogram.window.clone(), mel.mel_scale.fb.clone()


def log_mel_grid(signal: np.ndarray | torch.Tensor, window: int, hop: int, pool: int = 2) -> torch.Tensor:
    """:func:`log_mel` of the windows ``signal[i * hop : i * hop + window]`` (as many as fit),
    up to float rounding, computing once each STFT frame that overlapping windows share.

    With ``hop`` a multiple of the STFT hop (160 samples), a window's frames are frames of the
    whole signal, except the two at each end, which see the window's own reflection padding
    (``torch.stft(center=True)``): those are computed per window. For half-second windows every
    quarter second (the long-audio grid), 29 frames per window instead of 51; other hops, or
    windows too short to have inner frames, go through :func:`log_mel`."""
    x = torch.as_tensor(np.asarray(signal, np.float32)).flatten()
    if len(x) < window:
        raise ValueError(f"a signal of {len(x)} samples holds no window of {window}")
    taper, fb = stft_constants()
    n_fft, step, half = N_FFT, HOP, N_FFT // 2
    n, T = (len(x) - window) // hop + 1, window // step + 1  # windows, frames per window
    if hop % step or window < n_fft + 2 * step:
        return log_mel(x.unfold(0, window, hop), pool)

    def mel_of(frames: torch.Tensor) -> torch.Tensor:  # (..., n_fft) -> (..., n_mels) log-mel
        spec = torch.fft.rfft(frames * taper)
        return torch.log((spec.real.square() + spec.imag.square()) @ fb + 1e-6)

    # Frame j (2 <= j <= T-3) of window i starts at i * hop + step * (j - 2) + first: one grid over the signal.
    first = 2 * step - half  # where frame 2 of the first window starts (64)
    inner = mel_of(x[first:].unfold(0, n_fft, step))  # (M, n_mels)
    idx = (torch.arange(n) * (hop // step))[:, None] + torch.arange(T - 4)[None]
    wins = x.unfold(0, window, hop)  # (n, window), a view
    head = F.pad(wins[:, : step + half], (half, 0), mode="reflect")  # frames 0 and 1
    tail_at = step * (T - 2) - half  # where frame T-2 starts, inside the window
    tail = F.pad(wins[:, tail_at:], (0, half), mode="reflect")  # frames T-2 and T-1
    frames = torch.cat(
        [mel_of(head.unfold(1, n_fft, step)[:, :2]), inner[idx], mel_of(tail.unfold(1, n_fft, step)[:, :2])], 1
    )  # (n, T, n_mels)
    m = frames.transpose(1, 2)[:, None]  # (n, 1, n_mels, T)
    return F.avg_pool2d(m, (1, pool), ceil_mode=True) if pool > 1 else m.contiguous()


# ----------------------------------------------------------------------------- encoder
def conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    """``bn(conv(x))``. In eval mode, one convolution with the norm folded into its weights and
    bias: the same function up to float rounding, without the norm's pass over the activations
    (inference on half-second windows about a tenth faster; ``docs/benchmarks.md``, section 4)."""
    if bn.training:
        return bn(conv(x))
    scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
    bias = bn.bias - bn.running_mean * scale
    if conv.bias is not None:
        bias = bias + conv.bias * scale
    w = conv.weight * scale.view(-1, 1, 1, 1)  # keeps the weight's memory layout
    return F.conv2d(x, w, bias, conv.stride, conv.padding, conv.dilation, conv.groups)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.skip = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x):
        skip = x if isinstance(self.skip, nn.Identity) else conv_bn(self.skip[0], self.skip[1], x)
        return F.relu(conv_bn(self.c2, self.b2, F.relu(conv_bn(self.c1, self.b1, x))) + skip)


def channels_last_ok(width: int) -> bool:
    """Whether an encoder of this first-stage ``width`` may run in channels-last memory: every
    stage's width (``width`` x 2**i) a multiple of 8, and the first at least 16. Narrower skip
    convolutions (stride 2, 1x1) break oneDNN's channels-last backward pass on the 64-band
    log-mel (torch 2.11 on CPU): with 4 channels in it never returns on some shapes (4 -> 4 or
    4 -> 8 on a 64x26 or 32x26 input), and with 8 channels in it crashes the process on a CPU with
    AVX-512 (8 -> 8 or 8 -> 16 on a 64x26 input, batch sizes such as 3, 17 or 51; 16 to 64
    channels in measured fine on every shape and batch tried). Such encoders keep the contiguous
    layout."""
    return width % 8 == 0 and width >= 16


@dataclass
class AudioEncoderCfg:
    embed_dim: int = 256
    width: int = 32  # channels of the first stage; doubled at each later stage
    depth: int = 3  # number of stages (each: one stride-2 ResBlock)
    n_mels: int = 64


class AudioEncoder(nn.Module):
    """log-mel (B, 1, M, T) -> ResNet stages -> global average pool -> MLP -> (B, D) = Z^A.

    Its convolutions run in channels-last memory (weights and activations) when every stage's
    width is a multiple of 8 and the first at least 16 (:func:`channels_last_ok`): on CPU,
    oneDNN's convolutions are faster in that layout for these narrow layers over a 64-band
    log-mel (a training step on 128 half-second windows about a quarter faster;
    ``docs/benchmarks.md``). Saved weights are contiguous, so files do not depend on it."""

    def __init__(self, cfg: AudioEncoderCfg):
        super().__init__()
        self.cfg = cfg
        chans = [cfg.width * 2**i for i in range(cfg.depth)]
        self.stem = nn.Sequential(nn.Conv2d(1, chans[0], 3, 1, 1, bias=False), nn.BatchNorm2d(chans[0]))
        self.norm = nn.BatchNorm2d(1)  # learnable input normalisation of the log-mel
        layers, cin = [], chans[0]
        for c in chans:
            layers.append(ResBlock(cin, c, 2))
            cin = c
        self.stages = nn.Sequential(*layers)
        self.proj = nn.Sequential(nn.Linear(cin, 2 * cin), nn.ReLU(), nn.Linear(2 * cin, cfg.embed_dim))
        self.memory_format = torch.channels_last if channels_last_ok(cfg.width) else torch.contiguous_format
        self.to(memory_format=self.memory_format)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        mel = mel.contiguous(memory_format=self.memory_format)
        h = self.stages(F.relu(conv_bn(self.stem[0], self.stem[1], self.norm(mel))))  # (B, C, M', T')
        return self.proj(h.mean(dim=(2, 3)))  # (B, D)

    @torch.no_grad()
    def embed_windows(self, windows: np.ndarray) -> torch.Tensor:
        """(N, S) mono windows at :data:`SR` -> (N, D) Z^A, through its log-mel front end."""
        return encode_mels(self, log_mel(windows))

    @torch.no_grad()
    def embed_grid(self, signal: np.ndarray, window: int, hop: int) -> torch.Tensor:
        """:meth:`embed_windows` of the windows ``signal[i * hop : i * hop + window]``, their
        log-mels sharing the STFT frames they overlap on (:func:`log_mel_grid`)."""
        return encode_mels(self, log_mel_grid(signal, window, hop))

    def save(self, out_dir: str | os.PathLike, extra: dict | None = None) -> None:
        from safetensors.torch import save_file

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json(out_dir / "audio_encoder.json", dict(cfg=asdict(self.cfg), **(extra or {})))
        with atomic_path(out_dir / "audio_encoder.safetensors") as tmp:
            save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(tmp))

    @classmethod
    def load(cls, out_dir: str | os.PathLike) -> AudioEncoder:
        from safetensors.torch import load_file

        out_dir = Path(out_dir)
        meta = read_json(out_dir / "audio_encoder.json")
        m = cls(AudioEncoderCfg(**meta["cfg"]))
        m.load_state_dict(load_file(str(out_dir / "audio_encoder.safetensors")))
        return m.eval()


@torch.no_grad()
def encode_mels(model: AudioEncoder, mels: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """The embeddings of log-mels (N, 1, n_mels, T), ``batch`` at a time: batches of 64 keep each
    activation under glibc's mmap threshold (32 MB), so its memory is reused instead of mapped
    and unmapped on every call (a third of the time of 224 at once went to page faults)."""
    model.eval()
    return torch.cat([model(mels[i : i + batch]) for i in range(0, len(mels), batch)])
