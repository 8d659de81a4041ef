"""Contact sheets, captions and slideshow GIFs for thumbnails (upscaled, nearest-neighbour)."""
from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Sequence

import numpy as np

from s2i.utils import atomic_write_bytes


def _auto_scale(h: int, target: int = 128) -> int:
    return max(1, math.ceil(target / max(h, 1)))


def _save_png(path: Path, img: np.ndarray) -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img)).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())


def _save_gif(path: Path, frames: list[np.ndarray], frame_ms: int) -> None:
    """Animated GIF, looping; one frame per thumbnail (frames differ by their captions, so
    PIL never merges two of them)."""
    from PIL import Image

    ims = [Image.fromarray(f) for f in frames]
    buf = io.BytesIO()
    ims[0].save(buf, format="GIF", save_all=True, append_images=ims[1:], duration=int(frame_ms), loop=0,
                disposal=1)
    atomic_write_bytes(path, buf.getvalue())


def _captioned(img: np.ndarray, caption: str, final: bool = False, line_h: int = 12) -> np.ndarray:
    """``img`` with ``caption`` (one or two lines) written under it; a gold frame if ``final``."""
    from PIL import Image, ImageDraw

    h, w = img.shape[:2]
    lines = caption.split("\n")
    pad = 3
    canvas = Image.new("RGB", (w + 2 * pad, h + 2 * pad + line_h * len(lines) + 2),
                       (255, 200, 0) if final else (255, 255, 255))
    canvas.paste(Image.fromarray(img), (pad, pad))
    d = ImageDraw.Draw(canvas)
    d.rectangle([0, h + 2 * pad, canvas.width, canvas.height], fill=(255, 255, 255))
    for i, line in enumerate(lines):
        d.text((pad, h + 2 * pad + 1 + i * line_h), line, fill=(0, 0, 0))
    return np.asarray(canvas)


def contact_sheet(images: np.ndarray, captions: Sequence[str] | None = None, scale: int = 4,
                  ncol: int | None = None, final: int | None = None) -> np.ndarray:
    """uint8 (k, H, W, 3) thumbnails -> one captioned sheet (row-major, ``ncol`` columns,
    default up to 6), upscaled ``scale`` x with nearest neighbour; ``final`` gets a gold frame."""
    k = len(images)
    captions = list(captions) if captions is not None else [f"#{i}" for i in range(k)]
    tiles = [_captioned(images[i].repeat(scale, 0).repeat(scale, 1), captions[i], final=i == final)
             for i in range(k)]
    ncol = ncol or min(k, 6)
    nrow = math.ceil(k / ncol)
    th, tw = tiles[0].shape[:2]
    gap = 4
    sheet = np.full((nrow * (th + gap) + gap, ncol * (tw + gap) + gap, 3), 255, np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, ncol)
        sheet[gap + r * (th + gap):gap + r * (th + gap) + th, gap + c * (tw + gap):gap + c * (tw + gap) + tw] = t
    return sheet
