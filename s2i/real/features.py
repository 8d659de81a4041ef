"""The real path's audio front ends: (N, S) float32 16 kHz windows -> the encoder's (N, 1, F, T) input.

``"logmel"``: s2i's :func:`~s2i.models.audio_encoder.log_mel`, recomputed with its window and mel
bank: (N, 1, 64, ceil((S // 160 + 1) / 2)), within 1e-5 of ``log_mel`` (measured <= 2e-6).
``"sound2scene"``: Sound2Scene's, float64 reference :func:`~s2i.models.published.published_spectrogram`
(10 repeats cut to 160000, clip, scipy spectrogram, ``log(S + 1e-7)``, per-clip standardisation):
(N, 1, 257, 1004) for S >= 16000. In float32 here: ``log(S + 1e-7) = log(1 + 1e7 S) + const`` and the
standardisation drops the constant (the window carries ``sqrt(2e7 * scale)``); segment means are
removed twice, the second from the residuals (once leaves up to 3e-8 of a 0.9 DC offset, x440 in the
DC bin); the clip's moments use torch's cascade sums (BLAS ``dot``: 5e-5 relative error); a
near-constant clip (std of ``log(1 + q)`` < 0.05: dither, near silence) is redone with ``log1p``.
Within 1e-4 of ``published_spectrogram`` (measured <= 3e-5 on noise, tones, chirp, DC offset, dither,
clipping, 10/1/0.37-s windows: tests/test_real_features.py). Speed (scripts/bench_frontend.py, CPU
time per 10-s clip, one thread, 2-core Xeon under load): ``sound2scene`` 2.2-2.5 ms, ``logmel`` 1.6;
their scipy lines 7, ``log_mel`` 4.5-7, ``published_spectrogram`` 23-40. One clip at a time through
reused buffers, 256 STFT frames per FFT call (in and out stay in L2: whole clips run at half speed).
"""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import cache

import numpy as np
import torch
from scipy.signal import get_window

from s2i.models.audio_encoder import stft_constants
from s2i.models.published import CLIP_SAMPLES, NOVERLAP, NPERSEG, REPEATS

FRONT_ENDS = ("logmel", "sound2scene")
_CHUNK = 256  # STFT frames per FFT call: input + output ~0.5 MB each, inside L2
_HOP = NPERSEG - NOVERLAP  # 159
_QUIET_STD = 0.05  # below this std of log(1 + q), recompute the clip with log1p
_LOCK = threading.Lock()  # one multi-threaded call at a time: it sets torch's thread count to 1, as
# torch's per-op parallelism, on these small ops, is 10-60x slower when another process holds a core


def feature_shape(kind: str, samples: int) -> tuple[int, int, int]:
    """(1, F, T) of :func:`audio_features` for windows of ``samples`` samples at 16 kHz."""
    if kind not in FRONT_ENDS:
        raise ValueError(f"unknown audio front end {kind!r}: one of {FRONT_ENDS}")
    n = samples if kind == "logmel" else min(samples * REPEATS, CLIP_SAMPLES)  # what the STFT sees
    if n < (NPERSEG // 2 + 1 if kind == "logmel" else NPERSEG):  # reflect padding / one segment
        raise ValueError(f"a window of {samples} samples is too short for {kind!r}")
    if kind == "logmel":
        return (1, 64, math.ceil((samples // 160 + 1) / 2))
    return (1, NPERSEG // 2 + 1, (n - NPERSEG) // _HOP + 1)


def audio_features(windows: np.ndarray | torch.Tensor, kind: str, threads: int | None = None) -> torch.Tensor:
    """(N, S) float32 16 kHz windows (numpy or tensor) -> (N, 1, F, T) float32 encoder input (CPU);
    ``threads`` Python threads (default: torch's count) take clips in turn, torch at one thread."""
    as_tensor = lambda w: torch.from_numpy(np.ascontiguousarray(w, np.float32))  # negative strides too
    x = windows.detach().to("cpu", torch.float32) if isinstance(windows, torch.Tensor) else as_tensor(windows)
    if x.ndim != 2:
        raise ValueError(f"windows must be (N, samples), got shape {tuple(x.shape)}")
    out = torch.empty((len(x), *feature_shape(kind, x.shape[1])))
    fn, clips = (_logmel if kind == "logmel" else _sound2scene), iter(range(len(x)))

    def run() -> torch.Tensor:  # takes the next clip until none is left (next() on a range iterator is atomic)
        work = _Work(kind, x.shape[1])
        with torch.no_grad():
            for i in clips:
                fn(x[i], out[i, 0], work)
        return out

    if (n := min(threads or torch.get_num_threads(), len(x))) <= 1 and torch.get_num_threads() == 1:
        return run()  # e.g. in a DataLoader worker
    with _LOCK:
        prev = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with ThreadPoolExecutor(n) as pool:
                list(pool.map(lambda _: run(), range(n)))
        finally:
            torch.set_num_threads(prev)
    return out


class _Work:
    """Buffers reused from clip to clip, and |rfft(frames * window)|^2 chunk by chunk."""

    def __init__(self, kind: str, samples: int):
        frames = samples // 160 + 1 if kind == "logmel" else feature_shape(kind, samples)[2]
        self.y, self.q = torch.empty(_CHUNK, NPERSEG), torch.empty(frames, NPERSEG // 2 + 1)  # q: power
        self.X = torch.empty(_CHUNK, NPERSEG // 2 + 1, dtype=torch.complex64)
        self.v = torch.view_as_real(self.X)
        if kind == "logmel":
            self.pad, self.mel = torch.empty(samples + NPERSEG), torch.empty(frames, 64)

    def power(self, frames: torch.Tensor, window: torch.Tensor, out: torch.Tensor, demean: bool = False):
        # out (T, 257) <- |rfft(window * frame)|^2, each frame's mean removed first if demean
        for j in range(0, len(frames), _CHUNK):
            f = frames[j : j + _CHUNK]
            k = len(f)
            if demean:  # twice (module docstring)
                f = torch.sub(f, f.mean(-1, keepdim=True), out=self.y[:k])
                f.sub_(f.mean(-1, keepdim=True))
            torch.mul(f, window, out=self.y[:k])
            torch.fft.rfft(self.y[:k], out=self.X[:k])
            v = self.v[:k].square_()
            torch.add(v[..., 0], v[..., 1], out=out[j : j + k])


@cache
def _constants(kind: str) -> tuple[torch.Tensor, ...]:
    """The window (and the mel filter bank) of ``kind``."""
    if kind == "logmel":
        return stft_constants()
    w = get_window(("tukey", 0.25), NPERSEG)  # float64, periodic, as scipy.signal.spectrogram
    # 2: one-sided; 1e7: log(S + 1e-7) = log(1 + 1e7 S) + const; 1 / (16000 sum w^2): scaling="density"
    return (torch.from_numpy(w * math.sqrt(2e7 / (16000 * np.square(w).sum()))).float(),)


def _sound2scene(x: torch.Tensor, out: torch.Tensor, work: _Work) -> None:
    (window,), q = _constants("sound2scene"), work.q
    n = min(len(x) * REPEATS, CLIP_SAMPLES)
    x = (x.repeat(REPEATS)[:n] if len(x) < n else x[:n]).clamp(-1.0, 1.0)
    work.power(x.unfold(0, NPERSEG, _HOP), window, q, demean=True)
    q[:, :: NPERSEG // 2].mul_(0.5)  # DC and Nyquist count once in a one-sided PSD
    torch.add(q.T, 1.0, out=out).log_()
    if _standardise(out) < _QUIET_STD:  # values ~ q << 1: log(1 + q) has too few digits
        torch.log1p(q.T, out=out)
        _standardise(out)


def _standardise(s: torch.Tensor) -> float:
    """``s`` <- (s - mean) / (std + 1e-9) in place; returns std."""
    s.sub_(s.mean().item())
    std = math.sqrt(s.square().mean().item())
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
