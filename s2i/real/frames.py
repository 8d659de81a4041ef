"""Frames at a fixed sampling rate and the audio around each, decoded from one real video.

**Which frame is "frame n at 10 fps".** A clip is sampled on the grid ``t_n = n / fps``
(``frame_selection.fps``, 10 as in Sound2Scene), ``n = 0 .. floor(duration * fps - 1e-6)``. The
frame taken at ``t_n`` is the one *on screen* at that time: the last decoded frame whose
presentation time is at most ``t_n`` (times counted from the stream's first frame). This is what
``ffmpeg -vf fps=10`` writes out as its n-th image, so Sound2Scene's 10-fps frame numbers map
onto any source rate: on a 30-fps video every third frame, on a 9- or 8-fps one (VGGSound has
such clips) some frames are taken twice, and a variable-frame-rate video is sampled by its
timestamps, not by frame counts.

**The audio of a frame** is a window of ``window_s`` seconds centred on ``t_n + 0.5 / fps`` (the
middle of the frame's interval), shifted to lie inside the clip when the clip is long enough, else
the whole clip zero-padded at the end. With ``window_s`` equal to the clip length (10 s for
VGGSound) every frame of a clip gets the clip's whole sound, which is what Sound2Scene and
Sound2Vision train on; shorter windows make pairs local in time (the toy world uses 0.5 s).

Decoding is cheap where it can be: only the first video and first audio streams are read, the
decoder stops after the last wanted time, and only wanted frames are scaled (swscale, shorter
side to ``size``: area filter when shrinking, bicubic when enlarging), converted to RGB, cropped
to the centre square and turned upright (display rotation), as :func:`s2i.media.read_video` does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from s2i.media import SR, MediaError, read_audio
from s2i.media.common import _open, _video_streams, decoding
from s2i.media.video import _frame_rgb


def sample_times(duration: float, fps: float) -> np.ndarray:
    """The sampling grid ``n / fps`` for ``n = 0 .. floor(duration * fps - 1e-6)`` (seconds)."""
    n = max(int(np.floor(duration * fps - 1e-6)) + 1, 1)
    return np.arange(n, dtype=np.float64) / fps


def window_starts(times: np.ndarray, fps: float, n_samples: int, window_s: float, sr: int = SR) -> np.ndarray:
    """First sample of each frame's audio window (module docstring): centred on the frame's
    interval, shifted inside ``[0, n_samples)`` when the clip is longer than the window."""
    S = int(round(window_s * sr))
    centre = np.round((np.asarray(times) + 0.5 / fps) * sr).astype(np.int64)
    start = centre - S // 2
    if n_samples >= S:
        return np.clip(start, 0, n_samples - S)
    return np.zeros_like(start)


def cut_windows(audio: np.ndarray, starts: np.ndarray, window_s: float, sr: int = SR) -> np.ndarray:
    """(K, S) float32 windows of ``audio`` from ``starts``, zero-padded past the end."""
    S = int(round(window_s * sr))
    out = np.zeros((len(starts), S), np.float32)
    for i, s in enumerate(starts):
        piece = audio[s : s + S]
        out[i, : len(piece)] = piece
    return out


def read_frames_at(path: str | os.PathLike, times: np.ndarray, size: int) -> np.ndarray:
    """The frames on screen at ``times`` (seconds from the first frame, increasing) as
    ``(K, size, size, 3)`` uint8; a time past the last frame gets the last frame.
    Raises :class:`MediaError` for an unreadable file or a video stream without frames."""
    path = Path(path)
    times = np.asarray(times, np.float64)
    if len(times) and np.any(np.diff(times) < 0):
        raise ValueError("times must be increasing")
    out = np.zeros((len(times), size, size, 3), np.uint8)
    c = _open(path)
    with decoding(path, c, "video"):
        streams = _video_streams(c)
        if not streams:
            raise MediaError(f"{path}: no video stream")
        vs = streams[0]
        vs.thread_type = "AUTO"
        t0, prev, prev_img, k, n_frames = None, None, None, 0, 0
        for fr in c.decode(vs):
            t = fr.time if fr.time is not None else n_frames / float(vs.average_rate or 25)
            n_frames += 1
            t0 = t if t0 is None else t0
            while k < len(times) and prev is not None and t - t0 > times[k] + 1e-6:
                prev_img = _frame_rgb(prev, size) if prev_img is None else prev_img
                out[k] = prev_img  # the frame on screen at times[k] is the previous one
                k += 1
            if k == len(times):
                break
            prev, prev_img = fr, None
        if n_frames == 0:
            raise MediaError(f"{path}: no decodable video frames")
        if k < len(times):  # at or past the last frame: the last frame
            out[k:] = _frame_rgb(prev, size) if prev_img is None else prev_img
    return out


@dataclass
class SampledClip:
    """A clip's sampled frames and their audio windows."""

    times: np.ndarray  # (K,) s
    frames: np.ndarray  # (K, size, size, 3) uint8
    windows: np.ndarray  # (K, S) float32 at SR


def read_clip(
    path: str | os.PathLike, times: np.ndarray, fps: float, window_s: float, size: int, sr: int = SR
) -> SampledClip:
    """Frames at ``times`` and their audio windows (module docstring) from one video file."""
    frames = read_frames_at(path, times, size)
    audio = read_audio(path, sr=sr)
    starts = window_starts(times, fps, len(audio), window_s, sr)
    return SampledClip(np.asarray(times), frames, cut_windows(audio, starts, window_s, sr))
