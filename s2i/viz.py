"""Figures: frame strips, spectrograms, image grids, and the thumbnails' contact sheets and
slideshow GIFs (upscaled, nearest-neighbour)."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from s2i.utils import atomic_write_bytes


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
        out[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + q * (w + pad) : pad + q * (w + pad) + w] = im
    if scale > 1:
        out = out.repeat(scale, 0).repeat(scale, 1)
    return out


def recon_grid(stills: np.ndarray, recon: np.ndarray, n: int = 32) -> np.ndarray:
    """The first ``n`` stills, each followed by its drawing from its image embedding, 16
    pictures a row, 3x (the pretrain and generation stages' recon grids)."""
    k = min(n, len(recon))
    return grid(np.stack([x for i in range(k) for x in (stills[i], recon[i])]), 16, scale=3)


def save_png(path, img: np.ndarray) -> None:
    """Atomically save a uint8 image as PNG."""
    import io

    from PIL import Image

    from s2i.utils import atomic_write_bytes

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img)).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())


def plot_clip(ax_frames, ax_spec, frames: np.ndarray, audio: np.ndarray, sr: int, truth: dict, every: int = 4):
    """Draw a clip's frames (every ``every``-th, labelled with the segment kind) and its
    spectrogram with the gain envelope of the sound source on top."""
    sel = frames[::every]
    ax_frames.imshow(grid(sel, len(sel)))
    ax_frames.set_axis_off()
    kinds = [truth["frames"][i]["segment"] for i in range(0, len(frames), every)]
    ax_frames.set_title(
        f"{truth['clip_id']}: {truth['sound_name']} heard, {truth['background_name']}  |  "
        + " ".join(k[:3] for k in kinds),
        fontsize=8,
    )
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


def auto_scale(h: int, target: int = 128) -> int:
    return max(1, math.ceil(target / max(h, 1)))


def save_gif(path: Path, frames: list[np.ndarray], frame_ms: int) -> None:
    """Animated GIF, looping; one frame per thumbnail (frames differ by their captions, so
    PIL never merges two of them)."""
    from PIL import Image

    ims = [Image.fromarray(f) for f in frames]
    buf = io.BytesIO()
    ims[0].save(buf, format="GIF", save_all=True, append_images=ims[1:], duration=int(frame_ms), loop=0, disposal=1)
    atomic_write_bytes(path, buf.getvalue())


def captioned(img: np.ndarray, caption: str, final: bool = False, line_h: int = 12) -> np.ndarray:
    """``img`` with ``caption`` (one or two lines) written under it; a gold frame if ``final``."""
    from PIL import Image, ImageDraw

    h, w = img.shape[:2]
    lines = caption.split("\n")
    pad = 3
    canvas = Image.new(
        "RGB", (w + 2 * pad, h + 2 * pad + line_h * len(lines) + 2), (255, 200, 0) if final else (255, 255, 255)
    )
    canvas.paste(Image.fromarray(img), (pad, pad))
    d = ImageDraw.Draw(canvas)
    d.rectangle([0, h + 2 * pad, canvas.width, canvas.height], fill=(255, 255, 255))
    for i, line in enumerate(lines):
        d.text((pad, h + 2 * pad + 1 + i * line_h), line, fill=(0, 0, 0))
    return np.asarray(canvas)


def contact_sheet(
    images: np.ndarray,
    captions: Sequence[str] | None = None,
    scale: int = 4,
    ncol: int | None = None,
    final: int | None = None,
) -> np.ndarray:
    """uint8 (k, H, W, 3) thumbnails -> one captioned sheet (row-major, ``ncol`` columns,
    default up to 6), upscaled ``scale`` x with nearest neighbour; ``final`` gets a gold frame."""
    k = len(images)
    captions = list(captions) if captions is not None else [f"#{i}" for i in range(k)]
    tiles = [captioned(images[i].repeat(scale, 0).repeat(scale, 1), captions[i], final=i == final) for i in range(k)]
    ncol = ncol or min(k, 6)
    nrow = math.ceil(k / ncol)
    th, tw = tiles[0].shape[:2]
    gap = 4
    sheet = np.full((nrow * (th + gap) + gap, ncol * (tw + gap) + gap, 3), 255, np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, ncol)
        sheet[gap + r * (th + gap) : gap + r * (th + gap) + th, gap + c * (tw + gap) : gap + c * (tw + gap) + tw] = t
    return sheet
