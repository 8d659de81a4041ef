"""Figures shared by the notebooks: frame strips, spectrograms, image grids."""
from __future__ import annotations

import numpy as np


def log_spectrogram(audio: np.ndarray, sr: int, n_fft: int = 512, hop: int = 160) -> np.ndarray:
    """(F, T) log-power spectrogram in dB (Hann window)."""
    a = np.asarray(audio, np.float64)
    if len(a) < n_fft:
        a = np.pad(a, (0, n_fft - len(a)))
    n = 1 + (len(a) - n_fft) // hop
    idx = np.arange(n_fft)[None] + hop * np.arange(n)[:, None]
    spec = np.abs(np.fft.rfft(a[idx] * np.hanning(n_fft), axis=1)) ** 2
    return 10 * np.log10(spec.T + 1e-10)


def grid(images: np.ndarray, ncol: int, pad: int = 1, scale: int = 1) -> np.ndarray:
    """Tile uint8 (N, H, W, 3) images into one (rows*H, ncol*W, 3) picture."""
    n, h, w, c = images.shape
    nrow = (n + ncol - 1) // ncol
    out = np.full((nrow * (h + pad) + pad, ncol * (w + pad) + pad, c), 255, np.uint8)
    for i, im in enumerate(images):
        r, q = divmod(i, ncol)
        out[pad + r * (h + pad):pad + r * (h + pad) + h, pad + q * (w + pad):pad + q * (w + pad) + w] = im
    if scale > 1:
        out = out.repeat(scale, 0).repeat(scale, 1)
    return out


def save_png(path, img: np.ndarray) -> None:
    """Atomically save a uint8 image as PNG."""
    import io

    from PIL import Image

    from s2i.utils import atomic_write_bytes

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())


def plot_clip(ax_frames, ax_spec, frames: np.ndarray, audio: np.ndarray, sr: int, truth: dict, every: int = 4):
    """Draw a clip's frames (every ``every``-th, labelled with the segment kind) and its
    spectrogram with the gain envelope of the sound source on top."""
    sel = frames[::every]
    ax_frames.imshow(grid(sel, len(sel)))
    ax_frames.set_axis_off()
    kinds = [truth["frames"][i]["segment"] for i in range(0, len(frames), every)]
    ax_frames.set_title(f"{truth['clip_id']}: {truth['sound_name']} heard, {truth['background_name']}  |  "
                        + " ".join(k[:3] for k in kinds), fontsize=8)
    S = log_spectrogram(audio, sr)
    dur = len(audio) / sr
    ax_spec.imshow(S, origin="lower", aspect="auto", extent=[0, dur, 0, sr / 2000], vmin=S.max() - 80, cmap="magma")
    env = truth["sources"][0]["gain_envelope"]
    t = (np.arange(len(env)) + 0.5) / truth["fps"]
    ax2 = ax_spec.twinx()
    ax2.plot(t, env, color="cyan", lw=1.5)
    ax2.set_ylim(0, 1.05)
    ax2.set_ylabel("gain", fontsize=7)
    ax_spec.set_ylabel("kHz", fontsize=7)
    ax_spec.set_xlabel("s", fontsize=7)
