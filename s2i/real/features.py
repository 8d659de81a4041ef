"""The real path's audio front ends: (N, S) float32 16 kHz windows -> the encoder's (N, 1, F, T) input.

``"logmel"`` -- s2i's :func:`s2i.models.audio_encoder.log_mel` (64 mels, n_fft 512, hop 160,
centred with reflect padding, periodic Hann, ``log(mel + 1e-6)``, time average-pooled 2x with
``ceil_mode``): (N, 1, 64, ceil((S // 160 + 1) / 2)). Recomputed here with the same window and
filter bank; equal to ``log_mel`` within 1e-5 (float32 rounding only).

``"sound2scene"`` -- Sound2Scene's / Sound2Vision's front end, of which
:func:`s2i.models.published.published_spectrogram` is the float64 reference: each window repeated
10x and cut to 160000 samples, clipped to [-1, 1], scipy's spectrogram (nperseg 512, noverlap 353,
periodic Tukey(0.25), per-segment mean removed, one-sided PSD density), ``log(S + 1e-7)``,
standardised by the clip's own mean and std: (N, 1, 257, T), T = 1004 for 10 s. Computed here in
float32 with the constants folded into the window: ``log(S + 1e-7) = log(1 + 1e7 S) + log(1e-7)``
and the standardisation drops the additive constant, so the window carries ``sqrt(2e7 * scale)``
and ``log1p`` of the power is taken (DC and Nyquist halved). The segment means are removed on the
segments themselves (no running sums, no ``X - mean * W(k)``, which loses float32 digits). The
clip's mean and variance are taken in two passes; a near-constant clip (std of the log power
< 0.05, e.g. 16-bit dither) is recomputed with ``log1p`` instead of ``log(1 + q)``, whose
absolute rounding (~1e-7) the standardisation would blow up. Measured against
``published_spectrogram`` (tests/test_real_features.py): max abs difference < 1e-4 after
standardisation (about 3e-6 on noise and tones, 10 s and 1 s windows, DC offsets, quiet clips).

Speed (scripts/bench_frontend.py, 2 cores, 10-s clips, warm): ``sound2scene`` ~600 clips/s per
thread, ``logmel`` ~700 (``log_mel`` ~350, ``published_spectrogram`` ~70, scipy ~100-250 one clip
at a time). Both work one clip at a time on reused buffers, segments in chunks of 256 so that
the FFT's input and output stay in a core's L2 cache: a whole 10-s clip's FFT (2 MB in, 2 MB out)
runs at half the speed. What is left is the FFT (MKL, ~0.5 us per 512-point frame) and the
element-wise passes."""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import torch

from s2i.models.published import CLIP_SAMPLES, NOVERLAP, NPERSEG, REPEATS

FRONT_ENDS = ("logmel", "sound2scene")
_CHUNK = 256  # STFT frames per FFT call: input + output ~0.5 MB each, inside L2
_HOP = NPERSEG - NOVERLAP  # 159
_QUIET_STD = 0.05  # below this std of log(1 + q), recompute the clip with log1p


def feature_shape(kind: str, samples: int) -> tuple[int, int, int]:
    """(1, F, T) of :func:`audio_features` for windows of ``samples`` samples at 16 kHz."""
    if kind == "logmel":
        return (1, 64, math.ceil((samples // 160 + 1) / 2))
    if kind == "sound2scene":
        n = min(samples * REPEATS, CLIP_SAMPLES)
        if n < NPERSEG:
            raise ValueError(f"a window of {samples} samples is too short: 10 repeats are < {NPERSEG}")
        return (1, NPERSEG // 2 + 1, (n - NPERSEG) // _HOP + 1)
    raise ValueError(f"unknown audio front end {kind!r}: one of {FRONT_ENDS}")


def audio_features(windows: np.ndarray | torch.Tensor, kind: str) -> torch.Tensor:
    """(N, S) float32 16 kHz windows (numpy or tensor) -> (N, 1, F, T) float32 encoder input (CPU)."""
    if kind not in FRONT_ENDS:
        raise ValueError(f"unknown audio front end {kind!r}: one of {FRONT_ENDS}")
    if isinstance(windows, torch.Tensor):
        x = windows.detach().to("cpu", torch.float32)
    else:
        x = torch.from_numpy(np.asarray(windows, dtype=np.float32))
    if x.ndim != 2:
        raise ValueError(f"windows must be (N, samples), got shape {tuple(x.shape)}")
    shape = feature_shape(kind, x.shape[1])
    out = torch.empty((len(x), *shape))
    if kind == "logmel" and x.shape[1] <= NPERSEG // 2:
        raise ValueError(f"a window of {x.shape[1]} samples is too short for the log-mel (> {NPERSEG // 2})")
    work = _Work(kind, x.shape[1])
    with torch.no_grad():
        for i in range(len(x)):
            (_logmel if kind == "logmel" else _sound2scene)(x[i], out[i, 0], work)
    return out


class _Work:
    """Buffers reused from clip to clip, and |rfft(frames * window)|^2 chunk by chunk."""

    def __init__(self, kind: str, samples: int):
        frames = samples // 160 + 1 if kind == "logmel" else feature_shape(kind, samples)[2]
        self.y = torch.empty(_CHUNK, NPERSEG)
        self.X = torch.empty(_CHUNK, NPERSEG // 2 + 1, dtype=torch.complex64)
        self.v = torch.view_as_real(self.X)
        self.q = torch.empty(frames, NPERSEG // 2 + 1)  # power
        if kind == "logmel":
            self.pad, self.mel = torch.empty(samples + NPERSEG), torch.empty(frames, 64)

    def power(self, frames: torch.Tensor, window: torch.Tensor, out: torch.Tensor, demean: bool = False):
        """``out`` (T, 257) <- power of each windowed frame (its mean removed first if ``demean``)."""
        for j in range(0, len(frames), _CHUNK):
            f = frames[j : j + _CHUNK]
            k = len(f)
            y = f
            if demean:  # twice: the second mean is that of the (exact) residuals, so a DC offset
                y = torch.sub(f, f.mean(-1, keepdim=True), out=self.y[:k])  # of 0.9 leaves ~1e-10
                y.sub_(y.mean(-1, keepdim=True))  # in y, not float32's 3e-8 (x 440 in the DC bin)
            torch.mul(y, window, out=self.y[:k])
            torch.fft.rfft(self.y[:k], out=self.X[:k])
            v = self.v[:k].square_()
            torch.add(v[..., 0], v[..., 1], out=out[j : j + k])


@cache
def _constants(kind: str) -> tuple[torch.Tensor, ...]:
    """The window (and the mel filter bank) of ``kind``."""
    if kind == "logmel":
        from s2i.models.audio_encoder import LogMel

        mel = LogMel().mel
        return mel.spectrogram.window.clone(), mel.mel_scale.fb.clone()
    from scipy.signal import get_window

    w = get_window(("tukey", 0.25), NPERSEG)  # float64, periodic, as scipy.signal.spectrogram
    scale = 1.0 / (16000 * np.square(w).sum())  # scaling="density"
    return (torch.from_numpy(w * math.sqrt(2e7 * scale)).float(),)  # 2: one-sided; 1e7: log(S + 1e-7)


def _sound2scene(x: torch.Tensor, out: torch.Tensor, work: _Work) -> None:
    (window,), q = _constants("sound2scene"), work.q
    n = min(len(x) * REPEATS, CLIP_SAMPLES)
    x = (x.repeat(REPEATS)[:n] if len(x) < n else x[:n]).clamp(-1.0, 1.0)
    work.power(x.unfold(0, NPERSEG, _HOP), window, q, demean=True)
    q[:, 0].mul_(0.5)  # DC and Nyquist count once in a one-sided PSD
    q[:, -1].mul_(0.5)
    torch.add(q.T, 1.0, out=out).log_()
    if _standardise(out) < _QUIET_STD:  # values ~ q << 1: log(1 + q) has too few digits
        torch.log1p(q.T, out=out)
        _standardise(out)


def _standardise(s: torch.Tensor) -> float:
    """``s`` <- (s - mean) / (std + 1e-9) in place; returns std. Two passes, torch's cascade sums
    (BLAS ``dot`` accumulates in float32: ~5e-5 relative error on 258k values, too much)."""
    flat = s.view(-1)
    s.sub_(flat.sum().item() / flat.numel())
    std = math.sqrt(flat.square().sum().item() / flat.numel())
    s.mul_(1.0 / (std + 1e-9))
    return std


def _logmel(x: torch.Tensor, out: torch.Tensor, work: _Work) -> None:
    (window, fb), pad, mel = _constants("logmel"), work.pad, work.mel
    S, T, h = len(x), len(work.mel), NPERSEG // 2
    pad[h : h + S] = x  # torch.stft(center=True, pad_mode="reflect")
    pad[:h] = x[1 : h + 1].flip(0)
    pad[h + S :] = x[S - h - 1 : S - 1].flip(0)
    work.power(pad.unfold(0, NPERSEG, 160), window, work.q)
    torch.mm(work.q, fb, out=mel).add_(1e-6).log_()
    torch.add(mel[0 : T - 1 : 2].T, mel[1:T:2].T, out=out[:, : T // 2]).mul_(0.5)  # avg_pool2d (1, 2)
    if T % 2:
        out[:, -1] = mel[-1]  # ceil_mode: the last, lone frame is its own average
