"""The toy world's clips: each a sequence of segments whose picture and sound agree or not.

A clip lasts ``DURATION`` s at ``FPS`` frames/s with ``SR`` Hz mono audio, written as MP4
(H.264 + AAC via PyAV) with a sidecar JSON of the ground truth. Each clip is a sequence of
segments: ``match`` (the visible object is the heard one), ``silent`` (an object is visible but
silent), ``offscreen`` (the object is heard, nothing is visible) and ``ambient`` (only the
background's ambience) -- so naive frame/audio pairing is noisy. The corpus
(:func:`generate_world`) is split into train/val/test by clip, deterministically from the
world's seed; every clip's ground truth is written beside it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from s2i.toyworld.world import (
    AMBIENT_DB_RANGE,
    AMBIENT_RMS,
    BACKGROUNDS,
    CLASSES,
    DURATION,
    FPS,
    IMG,
    PALETTE,
    R_MAX,
    R_MIN,
    REF_RMS,
    SEGMENT_TYPES,
    SR,
    ambient_signal,
    background_image,
    colour_rng,
    envelope_to_samples,
    gain_from_size,
    mask_box,
    object_mask,
    source_signal,
)
from s2i.utils import read_json, write_json


# ----------------------------------------------------------------------------- clips
@dataclass
class ClipSpec:
    """Everything needed to render a clip; produced by :func:`sample_clip`."""

    clip_id: str
    seed: int
    background: int
    cls: int
    segments: list[dict]  # {type, start, end, cls, colour, r0, r1, x0, y0, x1, y1}
    pitch: float
    rate: float
    ambient_gain: float
    n_frames: int = int(DURATION * FPS)


def _segment_bounds(rng: np.random.Generator, n_frames: int, n_seg: int, min_len: int) -> list[tuple[int, int]]:
    spare = n_frames - n_seg * min_len
    cuts = np.sort(rng.integers(0, spare + 1, size=n_seg - 1))
    lens = np.diff(np.concatenate([[0], cuts, [spare]])) + min_len
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
    return [(int(s), int(s + n)) for s, n in zip(starts, lens)]


def sample_clip(clip_id: str, seed: int, p_match: float = 0.55, n_frames: int = int(DURATION * FPS)) -> ClipSpec:
    """Draw a clip's scenario from ``seed``: a background, the clip's sound class and 3-5
    segments of the types in ``SEGMENT_TYPES`` (at least one ``match``). Each segment's object
    takes a ``PALETTE`` colour drawn from :func:`~s2i.toyworld.world.colour_rng`."""
    rng = np.random.default_rng(seed)
    crng = colour_rng(seed)
    b = int(rng.integers(len(BACKGROUNDS)))
    c = int(rng.integers(len(CLASSES)))
    n_seg = int(rng.integers(3, 6))
    bounds = _segment_bounds(rng, n_frames, n_seg, min_len=4)
    p_other = (1 - p_match) / 3
    types = list(rng.choice(SEGMENT_TYPES, size=n_seg, p=[p_match, p_other, p_other, p_other]))
    if "match" not in types:
        types[int(rng.integers(n_seg))] = "match"
    segs = []
    for (s, e), ty in zip(bounds, types):
        r0, r1 = rng.uniform(R_MIN, R_MAX, size=2)
        m0, m1 = R_MAX + 0.5, IMG - R_MAX - 0.5  # keep objects fully inside at any radius
        x0, y0, x1, y1 = rng.uniform(m0, m1, size=4)
        seg_cls = c
        if ty == "silent" and rng.uniform() < 0.5:  # a silent object of another class
            seg_cls = int((c + rng.integers(1, len(CLASSES))) % len(CLASSES))
        segs.append(
            dict(
                type=str(ty),
                start=s,
                end=e,
                cls=seg_cls,
                colour=int(crng.integers(len(PALETTE))),
                r0=float(r0),
                r1=float(r1),
                x0=float(x0),
                y0=float(y0),
                x1=float(x1),
                y1=float(y1),
            )
        )
    return ClipSpec(
        clip_id=clip_id,
        seed=int(seed),
        background=b,
        cls=c,
        segments=segs,
        pitch=float(rng.uniform(0.96, 1.04)),
        rate=float(rng.uniform(0.96, 1.04)),
        ambient_gain=float(10 ** (rng.uniform(-AMBIENT_DB_RANGE, AMBIENT_DB_RANGE) / 20)),
        n_frames=n_frames,
    )


def render_clip(spec: ClipSpec, fps: int = FPS, sr: int = SR) -> tuple[np.ndarray, np.ndarray, dict]:
    """Render a clip: frames (T, IMG, IMG, 3) uint8, audio (S,) float32 and its ground truth."""
    T = spec.n_frames
    bg = background_image(spec.background)
    frames = np.repeat(bg[None], T, axis=0)
    gain_env = np.zeros(T)  # the clip's sound source (class spec.cls)
    per_frame = []
    for seg in spec.segments:
        L = seg["end"] - seg["start"]
        for k in range(L):
            f = seg["start"] + k
            a = k / max(L - 1, 1)
            r = seg["r0"] + a * (seg["r1"] - seg["r0"])
            x = seg["x0"] + a * (seg["x1"] - seg["x0"])
            y = seg["y0"] + a * (seg["y1"] - seg["y0"])
            visible, sounding = [], []
            if seg["type"] in ("match", "silent"):
                m = object_mask(seg["cls"], r, x, y)
                frames[f][m] = PALETTE[seg["colour"]]
                visible.append(
                    dict(
                        cls=seg["cls"],
                        name=CLASSES[seg["cls"]],
                        colour=seg["colour"],
                        size=r,
                        x=x,
                        y=y,
                        area=int(m.sum()),
                        box=mask_box(m),
                    )
                )
            if seg["type"] in ("match", "offscreen"):
                gain_env[f] = gain_from_size(r)
                sounding.append(dict(cls=spec.cls, name=CLASSES[spec.cls], gain=float(gain_env[f])))
            match = bool(visible) and bool(sounding) and {v["cls"] for v in visible} == {s["cls"] for s in sounding}
            per_frame.append(dict(t=f / fps, segment=seg["type"], visible=visible, sounding=sounding, match=match))
    n = int(round(T / fps * sr))
    rng = np.random.default_rng(spec.seed + 7919)
    src = source_signal(spec.cls, n, sr, rng, pitch=spec.pitch, rate=spec.rate)
    amb = ambient_signal(spec.background, n, sr, rng)
    audio = REF_RMS * envelope_to_samples(gain_env, n, fps, sr) * src + AMBIENT_RMS * spec.ambient_gain * amb
    truth = dict(
        clip_id=spec.clip_id,
        seed=spec.seed,
        fps=fps,
        sr=sr,
        n_frames=T,
        duration=T / fps,
        image_size=IMG,
        background=spec.background,
        background_name=BACKGROUNDS[spec.background],
        sound_class=spec.cls,
        sound_name=CLASSES[spec.cls],
        classes=sorted({spec.cls} | {s["cls"] for s in spec.segments if s["type"] in ("match", "silent")}),
        timbre=dict(pitch=spec.pitch, rate=spec.rate),
        ambient_gain=spec.ambient_gain,
        segments=spec.segments,
        sources=[
            dict(
                cls=spec.cls, name=CLASSES[spec.cls], gain_envelope=[float(g) for g in gain_env], rms_at_gain_1=REF_RMS
            ),
            dict(
                cls=None,
                name=f"ambience:{BACKGROUNDS[spec.background]}",
                gain_envelope=[float(spec.ambient_gain)] * T,
                rms_at_gain_1=AMBIENT_RMS,
            ),
        ],
        frames=per_frame,
    )
    return frames, np.clip(audio, -1, 1).astype(np.float32), truth


def split_of(clip_index: int, seed: int, fractions: Sequence[float] = (0.8, 0.1, 0.1)) -> str:
    """Deterministic split (``train``/``val``/``test``) of a clip, by a hash of its index and the seed."""
    h = int(hashlib.sha256(f"{seed}:{clip_index}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "train" if h < fractions[0] else ("val" if h < fractions[0] + fractions[1] else "test")


def clip_seed(world_seed: int, i: int) -> int:
    """The seed of clip ``i`` in a world made with ``world_seed``."""
    return int(np.random.SeedSequence([world_seed, i]).generate_state(1)[0])


def write_clip(out_dir: str | os.PathLike, spec: ClipSpec, split: str) -> dict:
    """Render ``spec`` and write ``<clip_id>.mp4`` and ``<clip_id>.json``; return the index row."""
    from s2i.media import write_video

    out_dir = Path(out_dir)
    frames, audio, truth = render_clip(spec)
    truth["split"] = split
    write_video(out_dir / f"{spec.clip_id}.mp4", frames, FPS, audio, SR)
    write_json(out_dir / f"{spec.clip_id}.json", truth)
    return dict(
        clip_id=spec.clip_id,
        split=split,
        video=f"{spec.clip_id}.mp4",
        truth=f"{spec.clip_id}.json",
        sound_class=spec.cls,
        background=spec.background,
        n_match=sum(f["match"] for f in truth["frames"]),
        n_frames=spec.n_frames,
    )


def generate_world(
    out_dir: str | os.PathLike,
    n_clips: int,
    seed: int,
    p_match: float = 0.55,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    progress: bool = True,
    workers: int = 2,
) -> dict:
    """Generate the toy corpus into ``out_dir``: one MP4 + JSON per clip and ``index.json``.

    Clips already on disk with a matching JSON are kept (the generator is resumable). The
    others are rendered and encoded by ``workers`` processes (1: this one); every clip is drawn
    from its own seed, so the files are the same whatever ``workers``."""
    from tqdm.auto import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict | None] = []
    todo: list[tuple[int, ClipSpec, str]] = []
    for i in range(n_clips):
        cid = f"clip{i:05d}"
        s = clip_seed(seed, i)
        split = split_of(i, seed, fractions)
        spec = sample_clip(cid, s, p_match=p_match)
        rows.append(_kept_row(out_dir, spec, split))
        if rows[-1] is None:
            todo.append((i, spec, split))
    args = ([out_dir] * len(todo), [t[1] for t in todo], [t[2] for t in todo])
    bar = dict(total=len(todo), desc="world", disable=not progress)
    if workers > 1 and len(todo) > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as pool:
            written = list(tqdm(pool.map(write_clip, *args, chunksize=4), **bar))
    else:
        written = [write_clip(*a) for a in tqdm(zip(*args), **bar)]
    for (i, _, _), row in zip(todo, written):
        rows[i] = row
    index = dict(
        seed=seed,
        n_clips=n_clips,
        fps=FPS,
        sr=SR,
        image_size=IMG,
        duration=DURATION,
        classes=CLASSES,
        backgrounds=BACKGROUNDS,
        clips=rows,
    )
    write_json(out_dir / "index.json", index)
    return index


def _kept_row(out_dir: Path, spec: ClipSpec, split: str) -> dict | None:
    """The index row of ``spec``'s clip if it is on disk already, from the same seed and split."""
    jp, vp = out_dir / f"{spec.clip_id}.json", out_dir / f"{spec.clip_id}.mp4"
    if not (jp.exists() and vp.exists()):
        return None
    try:
        t = read_json(jp)
    except ValueError:
        return None
    if t.get("seed") != spec.seed or t.get("split") != split:
        return None
    return dict(
        clip_id=spec.clip_id,
        split=split,
        video=vp.name,
        truth=jp.name,
        sound_class=spec.cls,
        background=spec.background,
        n_match=sum(f["match"] for f in t["frames"]),
        n_frames=t["n_frames"],
    )


def load_index(world_dir: str | os.PathLike) -> dict:
    """The world's ``index.json``."""
    return read_json(Path(world_dir) / "index.json")


def load_truth(world_dir: str | os.PathLike, clip_id: str) -> dict:
    return read_json(Path(world_dir) / f"{clip_id}.json")


def corpus_stats(world_dir: str | os.PathLike) -> dict:
    """Statistics of a generated corpus: class and background balance, split sizes, the share
    of frames whose picture and sound disagree (by kind), and size/gain ranges."""
    world_dir = Path(world_dir)
    idx = load_index(world_dir)
    n_frames = 0
    seg_counts = {t: 0 for t in SEGMENT_TYPES}
    mismatched = 0
    sizes = []
    cls_counts = [0] * len(CLASSES)
    bg_counts = [0] * len(BACKGROUNDS)
    splits: dict[str, int] = {}
    for row in idx["clips"]:
        t = load_truth(world_dir, row["clip_id"])
        cls_counts[t["sound_class"]] += 1
        bg_counts[t["background"]] += 1
        splits[row["split"]] = splits.get(row["split"], 0) + 1
        for f in t["frames"]:
            n_frames += 1
            seg_counts[f["segment"]] += 1
            mismatched += not f["match"]
            sizes += [v["size"] for v in f["visible"]]
    return dict(
        n_clips=len(idx["clips"]),
        n_frames=n_frames,
        splits=splits,
        class_counts=dict(zip(CLASSES, cls_counts)),
        background_counts=dict(zip(BACKGROUNDS, bg_counts)),
        frame_kind_share={k: v / max(n_frames, 1) for k, v in seg_counts.items()},
        mismatch_share=mismatched / max(n_frames, 1),
        size_min=float(np.min(sizes)) if sizes else None,
        size_max=float(np.max(sizes)) if sizes else None,
    )


def spec_from_truth(truth: dict) -> ClipSpec:
    """Rebuild a clip's :class:`ClipSpec` from its sidecar JSON (to re-render it)."""
    return ClipSpec(
        clip_id=truth["clip_id"],
        seed=truth["seed"],
        background=truth["background"],
        cls=truth["sound_class"],
        segments=truth["segments"],
        pitch=truth["timbre"]["pitch"],
        rate=truth["timbre"]["rate"],
        ambient_gain=truth["ambient_gain"],
        n_frames=truth["n_frames"],
    )
