"""The video study (claims 15-16): held-out toy videos edited with a sound whose gain follows an
envelope, every output frame judged (:func:`video_study`); its inputs (:func:`video_inputs`) and
per-video reads (:func:`judge_video`) are functions of their own, so that
``scripts/tune_video.py`` reads candidate edits exactly as the study does."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from s2i.eval.studies import judged_exactly, scene_kept
from s2i.method.generate import Sound2Image
from s2i.toyworld import world
from s2i.toyworld.heldout import TEST_SEED_OFFSET


def envelope(kind: str, n_frames: int) -> np.ndarray:
    """A gain envelope over frames: ``ramp`` (0.25 -> 1) or ``swell`` (0.25 -> 1 -> 0.25)."""
    x = np.linspace(0, 1, n_frames)
    if kind == "ramp":
        return 0.25 + 0.75 * x
    if kind == "swell":
        return 0.25 + 0.75 * np.sin(np.pi * x)
    raise ValueError(f"unknown envelope {kind!r} (ramp, swell)")


@dataclass
class VideoInput:
    """One input of the video study: a still toy video of background ``bg`` (uint8 ``frames``
    (T, 32, 32, 3)) and a sound of class ``cls`` (``audio``, at the world's rate) whose gain
    follows ``env`` (T,), one value per frame."""

    cls: int
    bg: int
    frames: np.ndarray
    env: np.ndarray
    audio: np.ndarray


def video_inputs(n_videos: int, seed: int, n_frames: int = 32) -> list[VideoInput]:
    """The video study's held-out inputs for draw ``seed``: the sound's gain ramps up in even
    videos and swells in odd ones; its recording's ambience is of another background than the
    video's."""
    rng = np.random.default_rng(TEST_SEED_OFFSET + 13 + seed)
    out = []
    for i in range(n_videos):
        c = int(rng.integers(len(world.CLASSES)))
        bg = int(rng.integers(len(world.BACKGROUNDS)))
        frames = np.repeat(world.render_still(world.Scene(bg, []))[None], n_frames, 0)
        env = envelope("ramp" if i % 2 == 0 else "swell", n_frames)
        n = int(n_frames / world.FPS * world.SR)
        r = np.random.default_rng(TEST_SEED_OFFSET + 900_000 + i)
        src = world.source_signal(c, n, world.SR, r)
        amb = world.ambient_signal((bg + 1) % len(world.BACKGROUNDS), n, world.SR, r)
        audio = (world.REF_RMS * world.envelope_to_samples(env, n) * src + world.AMBIENT_RMS * amb).astype(np.float32)
        out.append(VideoInput(c, bg, frames, env, audio))
    return out


def judge_video(backbones, frames: np.ndarray, cls: int, env: np.ndarray, bg: int, inputs: np.ndarray) -> dict:
    """The video study's reads of one edited video's frames (uint8 (T, h, w, 3)), heard class
    ``cls``, gain envelope ``env``, input background ``bg``: the Pearson r of the judged size of
    the heard class (0 where it is not found) with the envelope, the share of frames holding the
    heard class (among any others), holding it alone, and keeping the background; and the share
    of the input frames' (``inputs``) pixels kept around the object, over the whole frame, at
    the radius each frame's gain gives (:func:`scene_kept`)."""
    from s2i.media import square_resize

    rep = backbones.judge.report(np.stack([square_resize(f, world.IMG) for f in frames]))
    sz = np.where(rep["present"][:, cls], rep["size"][:, cls], 0.0)
    radius = world.size_from_gain(env[: len(frames)])
    return dict(
        corr=0.0 if np.ptp(sz) == 0 else float(np.corrcoef(sz, env[: len(sz)])[0, 1]),
        present=float(rep["present"][:, cls].mean()),
        alone=float(np.mean([judged_exactly(p, [cls]) for p in rep["present"]])),
        kept=float((rep["bg"] == bg).mean()),
        scene_kept=float(scene_kept(frames, inputs[: len(frames)], radius, fraction=1.0).mean()),
    )


def video_study(s2i: Sound2Image, n_videos: int, seed: int, work_dir, n_frames: int = 32, **edit_kw) -> dict:
    """Video + sound -> edited video. Inputs: held-out toy videos of a background (written as
    MP4), sounds of a class whose gain follows a ramp or a swell (:func:`video_inputs`). The
    output MP4 is decoded back and every frame judged (:func:`judge_video`): the heard class
    present (among any others), the heard object alone (its class and no other: the inputs hold
    none), its size against the envelope (Pearson per video, averaged), the background kept, the
    input's pixels kept around the object; the container is probed. Video ``i`` is edited from
    ``seed + i``, as the edit study's edits are: every frame of a video shares its noise, the
    videos do not."""
    from pathlib import Path

    from s2i.media import probe, read_video, write_video
    from s2i.method.video_edit import edit_video

    work_dir = Path(work_dir)
    reads, probes, outs = [], [], []
    for i, x in enumerate(video_inputs(n_videos, seed, n_frames)):
        vin = write_video(work_dir / f"input_{i}.mp4", x.frames, world.FPS, None)
        vout = edit_video(s2i, vin, x.audio, work_dir / f"edited_{i}.mp4", sr=world.SR, seed=seed + i, **edit_kw)
        v = read_video(vout)
        reads.append(judge_video(s2i.backbones, v.frames, x.cls, x.env, x.bg, read_video(vin, need_audio=False).frames))
        p = probe(vout)
        probes.append(
            dict(
                video=p["video"]["codec"] if p["video"] else None,
                audio=p["audio"]["codec"] if p["audio"] else None,
                fps=p["video"]["fps"] if p["video"] else None,
                duration=p["duration"],
            )
        )
        outs.append(v.frames)
    corrs = [r["corr"] for r in reads]
    return dict(
        video_size_envelope_corr=float(np.mean(corrs)),
        video_object_present=float(np.mean([r["present"] for r in reads])),
        video_object_alone=float(np.mean([r["alone"] for r in reads])),
        video_bg_kept=float(np.mean([r["kept"] for r in reads])),
        video_scene_kept=float(np.mean([r["scene_kept"] for r in reads])),
        corr_per_video=corrs,  # the units of video_size_envelope_corr (its interval)
        probes=probes,
        frames=outs,
    )
