"""Rendered stills of the toy world: the pretraining data of the toy image encoder, the judge
and the generator (random scenes, optionally through an H.264 round trip so the models see
the codec's artefacts the video frames carry)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from s2i.toyworld import world


# ----------------------------------------------------------------------------- pretraining data
def _background_colours() -> np.ndarray:
    return np.unique(np.concatenate([world.background_image(b).reshape(-1, 3) for b in world.BACKGROUNDS]), axis=0)


def any_colour(rng: np.random.Generator, min_distance: float = 80.0) -> tuple[int, int, int]:
    """A random RGB colour at least ``min_distance`` away from every background colour."""
    bg = _background_colours().astype(np.float64)
    while True:
        c = rng.integers(0, 256, size=3)
        if np.linalg.norm(bg - c, axis=1).min() >= min_distance:
            return tuple(int(v) for v in c)


def sample_scenes(
    n: int, seed: int, p_objects: Sequence[float] = (0.1, 0.45, 0.45), p_any_colour: float = 0.0
) -> list[world.Scene]:
    """Random still scenes for pretraining: a background and 0, 1 or 2 objects of distinct
    classes with random radius in [R_MIN, R_MAX], position (fully inside the frame) and
    ``PALETTE`` colour (drawn from :func:`~s2i.toyworld.world.colour_rng`) -- or, with
    probability ``p_any_colour``, any colour that stands out from the backgrounds
    (:func:`any_colour`: the judge's training stills, so that it reads shapes in any colour)."""
    rng = np.random.default_rng(seed)
    crng = world.colour_rng(seed)
    scenes = []
    for _ in range(n):
        k = int(rng.choice(len(p_objects), p=p_objects))
        cls = rng.choice(len(world.CLASSES), size=k, replace=False)
        objs = []
        for c in cls:
            r = float(rng.uniform(world.R_MIN, world.R_MAX))
            x, y = rng.uniform(r + 0.5, world.IMG - r - 0.5, size=2)
            colour = int(crng.integers(len(world.PALETTE)))
            if p_any_colour and crng.uniform() < p_any_colour:
                colour = any_colour(crng)
            objs.append(world.SceneObject(int(c), size=r, x=float(x), y=float(y), colour=colour))
        scenes.append(world.Scene(int(rng.integers(len(world.BACKGROUNDS))), objs))
    return scenes


def codec_roundtrip(frames: np.ndarray, chunk: int = 32, crf: int = 12) -> np.ndarray:
    """Pass frames through the same H.264 (yuv420p) encode/decode as the world's videos, so
    pretraining stills carry the artefacts of real decoded frames."""
    import tempfile

    from s2i.media import read_video, write_video

    out = []
    with tempfile.TemporaryDirectory() as d:
        for s in range(0, len(frames), chunk):
            p = Path(d) / "c.mp4"
            write_video(p, frames[s : s + chunk], world.FPS, None, crf=crf)
            out.append(read_video(p, need_audio=False).frames)
    return np.concatenate(out)


# ----------------------------------------------------------------------------- captions
# A still's caption, as a list of word ids: the place, then each object (shape, colour, size,
# column, row) joined by "and", then the end token. The end token has the largest id, where
# open_clip's text tower pools (``pool_type="argmax"``); 0 pads.
CAPTION_LEN = 16
SIZE_WORDS = ["tiny", "small", "medium", "large", "huge"]  # radius in five equal bins of [R_MIN, R_MAX]
COLUMN_WORDS, ROW_WORDS = ["left", "centre", "right"], ["top", "middle", "bottom"]
VOCAB = (
    ["<pad>"]
    + world.SHAPES
    + world.COLOUR_NAMES
    + SIZE_WORDS
    + COLUMN_WORDS
    + ROW_WORDS
    + world.BACKGROUNDS
    + ["and", "nothing"]
)
END = 63  # the text tower's vocabulary is 64 words


def _word(w: str) -> int:
    return VOCAB.index(w)


def caption(scene: world.Scene) -> list[str]:
    """The words of a still's caption, e.g. ``["beach", "ring", "red", "small", "left", "top"]``."""
    words = [world.BACKGROUNDS[world.background_index(scene.background)]]
    objs = [o for o in scene.objects if o.visible]
    for k, o in enumerate(objs):
        r = o.radius()
        size = min(int((r - world.R_MIN) / (world.R_MAX - world.R_MIN) * len(SIZE_WORDS)), len(SIZE_WORDS) - 1)
        col = min(int(o.x / world.IMG * 3), 2)
        row = min(int(o.y / world.IMG * 3), 2)
        colour = world.COLOUR_NAMES[world.PALETTE.index(world.colour_rgb(o.colour))]
        words += (["and"] if k else []) + [world.SHAPES[world.class_index(o.cls)], colour]
        words += [SIZE_WORDS[size], COLUMN_WORDS[col], ROW_WORDS[row]]
    return words if objs else words + ["nothing"]


def caption_tokens(scene: world.Scene) -> np.ndarray:
    """(CAPTION_LEN,) int64 word ids of :func:`caption`, the end token, then padding."""
    ids = [_word(w) for w in caption(scene)] + [END]
    if len(ids) > CAPTION_LEN:
        raise ValueError(f"a caption of {len(ids)} tokens is longer than {CAPTION_LEN}")
    return np.array(ids + [0] * (CAPTION_LEN - len(ids)), np.int64)


@dataclass
class StillSet:
    """Pretraining stills with their ground truth (``labels``: presence (N, C) float,
    ``sizes``: radius per class (N, C) px, 0 where absent; ``bg``: (N,) int; ``tokens``:
    (N, CAPTION_LEN) caption word ids, :func:`caption_tokens`)."""

    images: np.ndarray
    presence: np.ndarray
    sizes: np.ndarray
    bg: np.ndarray
    tokens: np.ndarray | None = None


def object_cover(images: np.ndarray, bg: np.ndarray, side: int, min_diff: int = 32) -> np.ndarray:
    """(N, 1, side, side) float32: the share of each cell of a side x side grid over uint8
    ``images`` (N, H, W, 3) that an object covers. A pixel is an object's where some channel of
    it lies more than ``min_diff`` outside the range that channel takes in the place's
    background (``bg``, :func:`world.background_image`) within 2 px of it: every object colour
    is at least 80 from every background colour (:func:`any_colour`), and the codec's blend
    across a background's own edges (sky over grass) stays inside that range. For the
    generator's loss weights (``GeneratorCfg.object_weight``)."""
    n, h, w, _ = images.shape
    if h % side or w % side:
        raise ValueError(f"a {h}x{w} picture does not split into a {side}x{side} grid")
    lo, hi = [], []  # per place and pixel: each channel's range within 2 px, (4, H, W, 3)
    for b in world.BACKGROUNDS:
        img = world.background_image(b).astype(np.int16)
        near = np.stack([np.roll(img, (dy, dx), (0, 1)) for dy in range(-2, 3) for dx in range(-2, 3)])
        lo.append(near.min(0) - min_diff)
        hi.append(near.max(0) + min_diff)
    lo, hi = np.stack(lo), np.stack(hi)
    cover = np.empty((n, 1, side, side), np.float32)
    for s in range(0, n, 4096):
        x, b = images[s : s + 4096].astype(np.int16), bg[s : s + 4096]
        fg = ((x < lo[b]) | (x > hi[b])).any(-1).reshape(-1, side, h // side, side, w // side)
        cover[s : s + 4096, 0] = fg.mean((2, 4))
    return cover


def make_stills(n: int, seed: int, roundtrip: bool = True, p_any_colour: float = 0.0) -> StillSet:
    """Render ``n`` random scenes (seeded, :func:`sample_scenes`) and their labels; captions only
    when every colour is a palette colour (``p_any_colour`` 0)."""
    scenes = sample_scenes(n, seed, p_any_colour=p_any_colour)
    imgs = np.stack([world.render_still(s) for s in scenes])
    if roundtrip:
        imgs = codec_roundtrip(imgs)
    C = len(world.CLASSES)
    pres, sizes = np.zeros((n, C), np.float32), np.zeros((n, C), np.float32)
    for i, s in enumerate(scenes):
        for o in s.objects:
            pres[i, o.cls] = 1
            sizes[i, o.cls] = o.radius()
    tokens = None if p_any_colour else np.stack([caption_tokens(s) for s in scenes])
    return StillSet(imgs, pres, sizes, np.array([s.background for s in scenes]), tokens)
