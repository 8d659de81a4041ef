"""Frame selection on real videos (claim 2): which frames of each clip become training pairs.

Every method returns, per clip, frame indices on the ``fps`` grid of :mod:`s2i.real.frames`:

* ``bootstrap`` -- the method of s2i (as on the toy world, :mod:`s2i.method.selection`): a first
  alignment round on *every* grid frame of the training clips, then each frame scored by how much
  better its own sound explains it than sounds in general do
  (:func:`s2i.method.selection.correspondence_scores`) and the top ``k`` above the
  ``score_quantile`` of the training scores kept (:func:`select_by_scores`). Needs the candidates
  extracted and a round of training (:func:`s2i.real.pipeline.frame_selection` does both).
* ``center`` -- the ``k`` grid frames nearest the clip's middle (a common baseline).
* ``random`` -- ``k`` grid frames drawn with a generator seeded by the clip id and the seed.
* ``sound2scene_json`` -- Sound2Scene's published selection for VGGSound,
  ``top1_boxes_top10_moments.json``: ``{"<youtube_id>_<start_ms>_<end_ms>": [frame numbers at 10
  fps, most correlated first]}``. The first ``k`` numbers are kept. Clips are matched by YouTube id
  and start second (:func:`s2i.real.corpus.youtube_key`), so any file naming works. Their README
  does not say whether frame numbers start at 0 or 1; ``json_first_frame`` (default 1, as the images
  ``ffmpeg -vf fps=10 %d.jpg`` writes are numbered) says which. A number past the clip's last grid
  frame is dropped; a clip missing from the file gets no pairs and is listed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from s2i.method.selection import select_frames
from s2i.real.corpus import Clip, hash_unit, youtube_key
from s2i.real.frames import sample_times

METHODS = ("bootstrap", "center", "random", "sound2scene_json")


def n_grid(clip: Clip, fps: float) -> int:
    """Number of grid frames of a clip."""
    return len(sample_times(clip.duration, fps))


def select_center(clip: Clip, fps: float, k: int) -> list[int]:
    n = n_grid(clip, fps)
    order = np.argsort(np.abs(np.arange(n) - (n - 1) / 2), kind="stable")
    return sorted(int(i) for i in order[:k])


def select_random(clip: Clip, fps: float, k: int, seed: int = 0) -> list[int]:
    n = n_grid(clip, fps)
    rng = np.random.default_rng(int(hash_unit(clip.clip_id, seed) * 2**32))
    return sorted(int(i) for i in rng.choice(n, size=min(k, n), replace=False))


def read_sound2scene_json(path: str | os.PathLike) -> dict[tuple[str, int], list[int]]:
    """``top1_boxes_top10_moments.json`` -> ``{(youtube_id, start_second): [frame numbers]}``."""
    with open(path, encoding="utf-8") as f:
        raw = json.load(f)
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected an object of '<id>_<start_ms>_<end_ms>': [frame numbers]")
    out = {}
    for name, frames in raw.items():
        key = youtube_key(str(name))
        if key is None or not isinstance(frames, list):
            raise ValueError(f"{path}: entry {name!r} is not '<youtube_id>_<start_ms>_<end_ms>': [frame numbers]")
        out[key] = [int(f) for f in frames]
    return out


def select_sound2scene(
    clip: Clip, table: dict[tuple[str, int], list[int]], fps: float, k: int, first_frame: int = 1
) -> list[int] | None:
    """The clip's first ``k`` annotated frames as grid indices, or ``None`` if it is not annotated."""
    key = youtube_key(Path(clip.path).stem)
    if key is None or key not in table:
        return None
    n = n_grid(clip, fps)
    frames = [f - first_frame for f in table[key] if 0 <= f - first_frame < n]
    return sorted(dict.fromkeys(frames[:k]))


def select_by_scores(scores: np.ndarray, k: int, threshold: float) -> list[int]:
    """Top-``k`` frames scoring at least ``threshold`` (else the best one), in time order."""
    return [int(i) for i in select_frames(np.asarray(scores), k, threshold)]


def agreement(a: dict[str, Sequence[int]], b: dict[str, Sequence[int]], tolerance: int = 0) -> float:
    """Share of ``a``'s selected frames within ``tolerance`` grid frames of one of ``b``'s, over the
    clips both select in."""
    hits, total = 0, 0
    for cid, fa in a.items():
        fb = b.get(cid)
        if not fb:
            continue
        fb = np.asarray(fb)
        hits += sum(int(np.min(np.abs(fb - f)) <= tolerance) for f in fa)
        total += len(fa)
    return hits / total if total else float("nan")
