"""Editing a video with a sound (claims 15-16): every frame edited as an image is
(:func:`s2i.method.edit.object_edit`), with the audio window around its time, the same noise for
every frame (shared seed) and the sound embedding smoothed over neighbouring frames, so the object
is stable and its size follows the sound's volume envelope. The frames are edited in a centred
rectangle of :data:`VIDEO_REGION` of each side, larger than an image edit's 3/4, so that the
loudest frames' objects fit in it (the toy's loudness law draws up to 26 px across on 32).
``candidates`` > 1 edits the whole video from several seeds and keeps one (:func:`video_scores`,
:func:`video_score`). The edited video keeps the input's frame rate, frame count, pixel size and
audio track (:func:`edit_video`). Frames of any shape are edited at the generator's drawing size
for them (:func:`edit_window`). Design and measurements: ``docs/decisions/editing.md`` (Video).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from s2i.media import aspect_crop, read_audio_track, read_video, write_video
from s2i.method.edit import (
    EDIT_STRENGTH,
    EDIT_W_IMAGE,
    default_w_sound,
    edit_direction_score,
    edit_embeddings,
    object_edit,
)
from s2i.method.generate import Sound2Image, candidate_seeds
from s2i.method.mix import AMBIENCE_DB
from s2i.models.audio_encoder import SR

ASPECT_TOLERANCE = 0.1  # a drawing within 10 % of a frame's aspect stands for the whole frame (edit_window)

SMALL_DRAWING = 128  # px: a drawing whose shorter side is below it is enlarged with its own pixels (nearest)

VIDEO_REGION = 0.875  # a video's frames are edited in a centred rectangle of 7/8 of each side (images: 3/4)


def frame_sound_embeddings(
    s2i: Sound2Image, audio: np.ndarray, times: np.ndarray, fps: float, smooth: int = 3
) -> torch.Tensor:
    """(T, D) sound embeddings, one per frame (the window centred on the frame), smoothed by a
    centred moving average over ``smooth`` frames."""
    from s2i.method.selection import frame_windows

    wins = frame_windows(audio, times, fps, SR, s2i.window_s)
    z = s2i.embed_windows(wins)
    if smooth > 1:
        k = smooth // 2
        zp = torch.cat([z[:1].repeat(k, 1), z, z[-1:].repeat(k, 1)])
        z = torch.stack([zp[i : i + smooth].mean(0) for i in range(len(z))])
    return z


def edit_frames(
    s2i: Sound2Image,
    frames: np.ndarray,
    audio: np.ndarray,
    times: np.ndarray,
    fps: float,
    seed: int = 0,
    strength: float = EDIT_STRENGTH,
    w_image: float = EDIT_W_IMAGE,
    w_sound: float | None = None,
    smooth: int = 3,
    ambience_db: float | None = AMBIENCE_DB,
    region=VIDEO_REGION,
    steps: int | None = None,
    candidates: int = 1,
) -> np.ndarray:
    """Edit each frame (uint8 (T, h, w, 3) at a size the generator draws: a
    :meth:`~s2i.backbones.base.Backbones.drawing_size`) with the sound around its time; every
    frame has the same noise and the same ``region`` (:func:`~s2i.method.edit.edit_region`), and with an embedding
    prior every frame's sound the same prior noise (:meth:`Sound2Image.image_embeddings`).

    ``candidates``: the whole video is edited from each of the seeds
    :func:`~s2i.method.generate.candidate_seeds` gives (``seed`` first; every frame of one
    candidate shares its seed) and the one :func:`video_score` ranks first is kept; 1: the video
    from ``seed``. Costs ``candidates`` times the drawing; one candidate is held at a time."""
    seeds = candidate_seeds(seed, candidates)
    z_loud = frame_sound_embeddings(s2i, audio, times, fps, smooth)
    z_quiet = (
        None
        if ambience_db is None
        else frame_sound_embeddings(s2i, audio * 10 ** (ambience_db / 20), times, fps, smooth)
    )
    z_img = s2i.backbones.encode_images(frames) if w_image or candidates > 1 else None
    weights = [default_w_sound(s2i.backbones) if w_sound is None else w_sound]
    size = (int(frames.shape[1]), int(frames.shape[2]))
    best, best_score = None, None
    for sd in seeds:
        loud, quiet = edit_embeddings(s2i, z_loud, z_quiet, sd)
        out = object_edit(
            s2i.backbones,
            z_img if w_image else None,
            [loud],
            None if quiet is None else [quiet],
            weights,
            frames,
            w_image,
            sd,
            strength,
            region,
            steps,
            True,
            size,
        )
        if candidates == 1:
            return out
        score = video_score(video_scores(s2i.backbones, out, frames, z_img, z_loud, z_quiet))
        if best_score is None or score > best_score:
            best, best_score = out, score
    return best


def video_scores(
    backbones, edits: np.ndarray, frames: np.ndarray, e_frames: torch.Tensor, z_loud: torch.Tensor, z_quiet
) -> dict:
    """What ranks one candidate edit of a video: per frame, whether the edit changed any pixel
    (``changed``, (T,) bool) and how much its change points along what the frame's sound adds
    (``direction``, (T,): :func:`~s2i.method.edit.edit_direction_score` of the frame's edit
    against the input frame, with the frame's Z^A and that of its sound turned down; ``z_quiet``
    None: Z^A itself); per pair of consecutive frames, the cosine between their changes
    (``coherence``, (T - 1,): the same object changing only in size keeps its change's direction;
    an object that turns into another does not). ``edits``, ``frames``: uint8 (T, h, w, 3);
    ``e_frames``: the frames' image embeddings (T, D)."""
    e_edit = backbones.encode_images(edits).float()
    d = e_edit - e_frames.float()
    return dict(
        changed=(edits != frames).any(axis=(1, 2, 3)),
        direction=edit_direction_score(e_edit, e_frames, [z_loud], None if z_quiet is None else [z_quiet]).numpy(),
        coherence=torch.nn.functional.cosine_similarity(d[1:], d[:-1], dim=1).numpy(),
    )


def video_score(scores: dict) -> float:
    """One candidate video's rank (higher first) from its :func:`video_scores`: its frames' mean
    direction, a frame that changed nothing counting as -1 (the image edit's rule, that an
    unchanged edit ranks last, frame by frame), plus the mean coherence of consecutive frames'
    changes (the object added is the same one from frame to frame). Chosen on tuning draws
    (``scripts/tune_video.py``; ``docs/decisions/editing.md``, Video)."""
    direction = np.where(scores["changed"], scores["direction"], -1.0).mean()
    coherence = scores["coherence"].mean() if len(scores["coherence"]) else 0.0
    return float(direction + coherence)


def edit_window(height: int, width: int, drawing: tuple[int, int]) -> tuple[int, int, int, int]:
    """``(y0, x0, h, w)``: the part of a ``height`` x ``width`` frame that a drawing of size
    ``drawing`` (h, w) stands for. The whole frame when the drawing's aspect is within
    :data:`ASPECT_TOLERANCE` of the frame's (the full profile draws at the frame's aspect, its
    sides rounded to what its networks take: the small difference is absorbed by resizing);
    otherwise the frame's largest centred crop of the drawing's aspect (the toy generator's
    square in a wide frame: its centre square)."""
    dh, dw = drawing
    if abs(math.log((dw / dh) / (width / height))) <= math.log1p(ASPECT_TOLERANCE):
        return 0, 0, height, width
    return aspect_crop(height, width, dw / dh)


def _resize(img: np.ndarray, height: int, width: int, pixels: bool) -> np.ndarray:
    """``img`` resized to ``height`` x ``width`` (the same array when it has that size already):
    area filter when shrinking; when enlarging, nearest neighbour if ``pixels`` (a small drawing
    shown with its own pixels) else bicubic."""
    from PIL import Image

    if img.shape[:2] == (height, width):
        return img
    if img.shape[0] > height:
        filt = Image.BOX
    else:
        filt = Image.NEAREST if pixels else Image.BICUBIC
    return np.asarray(Image.fromarray(img).resize((width, height), filt))


def _video_audio(video_path, v, keep_audio: bool, sound: np.ndarray) -> tuple[np.ndarray, int]:
    """The edited video's audio track and its rate: the input's own track (its rate and
    channels, on the frames' clock: a track that starts later than the first frame is delayed,
    an earlier one cut) when ``keep_audio`` and the input has one, else ``sound`` (mono at SR)."""
    if not keep_audio or v.audio is None or not len(v.audio):
        return sound, SR
    track, rate, start = read_audio_track(video_path)
    shift = int(round((start - (v.start + float(v.times[0]))) * rate))
    track = np.pad(track, ((0, 0), (shift, 0))) if shift > 0 else track[:, -shift:]
    return track, rate


def edit_video(
    s2i: Sound2Image,
    video_path: str | os.PathLike,
    audio,
    out_path: str | os.PathLike,
    sr: int | None = None,
    seed: int = 0,
    strength: float = EDIT_STRENGTH,
    w_image: float = EDIT_W_IMAGE,
    w_sound: float | None = None,
    smooth: int = 3,
    ambience_db: float | None = AMBIENCE_DB,
    region=VIDEO_REGION,
    steps: int | None = None,
    keep_audio: bool = True,
    candidates: int = 1,
) -> Path:
    """Video + sound -> an MP4 (H.264 + AAC) whose frames are the input's with the sound's object
    added, its size following the sound's volume over time (the sound, trimmed or zero-padded to
    the video's duration, drives frame ``i`` by the window around its time). Every frame is
    edited with the same noise (:func:`edit_frames`), so the video does not flicker;
    ``candidates`` > 1 edits it from that many seeds and keeps the best (:func:`video_score`).

    The output keeps the input's frame rate, frame count (hence duration), pixel size (odd sides
    lose their last row or column: H.264 4:2:0 needs even ones) and audio: the input's own audio
    track, re-encoded as AAC at its sample rate, mono or stereo (more channels are downmixed to
    stereo), with its duration. ``keep_audio=False``, or an input without audio, gives the
    driving sound as the audio track instead (mono, 16 kHz).

    Geometry: each frame is edited at the generator's
    :meth:`~s2i.backbones.base.Backbones.drawing_size` for it. The full profile draws at the
    frame's aspect (shorter side at its resolution, sides rounded to its size step): the whole
    frame is resized to the drawing and the edit resized back to the frame. The toy generator
    draws its 32x32 square: the frame's centre square is edited and pasted back into the frame,
    the rest of which is kept as it was (a square frame is edited whole, as before). See
    :func:`edit_window`. An edit is enlarged bicubic, or with its own pixels (nearest neighbour,
    as the command line shows small pictures) where its shorter side is below
    :data:`SMALL_DRAWING` (the toy's 32 px); it is shrunk by area.
    """
    v = read_video(video_path, need_audio=False)
    a = s2i.load_audio(audio, sr)
    n = int(round(v.duration * SR))
    a = np.pad(a, (0, max(0, n - len(a))))[:n]
    H, W = v.frames.shape[1:3]
    h, w = s2i.backbones.drawing_size(H, W)
    y0, x0, ch, cw = edit_window(H, W, (h, w))
    small = np.stack([_resize(f[y0 : y0 + ch, x0 : x0 + cw], h, w, pixels=False) for f in v.frames])
    out = edit_frames(
        s2i, small, a, v.times, v.fps, seed, strength, w_image, w_sound, smooth, ambience_db, region, steps, candidates
    )
    H2, W2 = H - H % 2, W - W % 2  # H.264 4:2:0
    pixels = min(h, w) < SMALL_DRAWING
    frames = v.frames[:, :H2, :W2]  # written over in place: a long video is held once
    whole = (ch, cw) == (H, W)  # the edit stands for the whole frame, else it is pasted into it
    for i, f in enumerate(out):
        if whole:
            frames[i] = _resize(f, H2, W2, pixels)
        else:
            frames[i, y0 : y0 + ch, x0 : x0 + cw] = _resize(f, ch, cw, pixels)[: H2 - y0, : W2 - x0]
    track, track_sr = _video_audio(video_path, v, keep_audio, a)
    return write_video(out_path, frames, v.fps, track, track_sr)
