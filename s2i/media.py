"""Reading and writing audio/video files with PyAV (FFmpeg inside the wheel).

All decoding goes through here, so the toy world and real videos (``full``
profile) share one code path: whatever resolution, frame rate, codec and audio
rate PyAV decodes comes out as RGB uint8 frames with timestamps and mono float32
audio resampled to the requested rate.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


class MediaError(RuntimeError):
    """A file could not be decoded; the message names the file and the reason."""


@dataclass
class Video:
    """A decoded video: ``frames`` (T, H, W, 3) uint8, ``times`` (T,) seconds,
    ``audio`` (S,) float32 mono at ``sr`` (``None`` when the file has no audio)."""

    path: str
    frames: np.ndarray
    times: np.ndarray
    fps: float
    audio: np.ndarray | None
    sr: int | None
    duration: float


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: float,
                audio: np.ndarray | None = None, sr: int = 16000, crf: int = 12,
                audio_bitrate: int = 64000) -> Path:
    """Write an MP4 with H.264 video (yuv420p, plays anywhere) and, if given, AAC audio.

    ``frames``: (T, H, W, 3) uint8 with even H and W. ``audio``: (S,) or (C, S) float in [-1, 1].
    The file is written to a temporary name and renamed, so a kill leaves no half file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"{path}: frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    h, w = frames.shape[1:3]
    if h % 2 or w % 2:
        raise ValueError(f"{path}: H.264 yuv420p needs even width and height, got {w}x{h}")
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(tmp), mode="w", format="mp4") as c:
        vs = c.add_stream("libx264", rate=rate, options={"crf": str(crf), "threads": "1", "preset": "medium"})
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        as_ = None
        if audio is not None:
            audio = np.asarray(audio, dtype=np.float32)
            if audio.ndim == 1:
                audio = audio[None]
            layout = "mono" if audio.shape[0] == 1 else "stereo"
            as_ = c.add_stream("aac", rate=sr, layout=layout)
            as_.bit_rate = audio_bitrate
        for img in frames:
            for pkt in vs.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")):
                c.mux(pkt)
        for pkt in vs.encode():
            c.mux(pkt)
        if as_ is not None:
            hop = 1024
            clipped = np.clip(audio, -1.0, 1.0)
            for s in range(0, clipped.shape[1], hop):
                fr = av.AudioFrame.from_ndarray(np.ascontiguousarray(clipped[:, s:s + hop]), format="fltp",
                                                layout=as_.layout.name)
                fr.sample_rate, fr.pts = sr, s
                for pkt in as_.encode(fr):
                    c.mux(pkt)
            for pkt in as_.encode():
                c.mux(pkt)
    os.replace(tmp, path)
    return path


def _resampled_audio(container, stream, sr: int) -> np.ndarray:
    res = av.AudioResampler(format="fltp", layout="mono", rate=sr)
    chunks = []
    for frame in container.decode(stream):
        frame.pts = None  # let the resampler run on sample counts, not on possibly odd timestamps
        for out in res.resample(frame):
            chunks.append(out.to_ndarray()[0])
    for out in res.resample(None):
        chunks.append(out.to_ndarray()[0])
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)


def read_audio(path: str | os.PathLike, sr: int = 16000) -> np.ndarray:
    """Decode the first audio stream of any file PyAV reads (wav, flac, mp3, ogg, opus, m4a,
    the audio track of a video) to mono float32 at ``sr``. Raises :class:`MediaError`."""
    path = Path(path)
    if not path.exists():
        raise MediaError(f"{path}: file not found")
    try:
        with av.open(str(path)) as c:
            if not c.streams.audio:
                raise MediaError(f"{path}: no audio stream")
            return _resampled_audio(c, c.streams.audio[0], sr)
    except MediaError:
        raise
    except (av.FFmpegError, OSError, ValueError) as e:
        raise MediaError(f"{path}: cannot decode audio ({e})") from None


def read_video(path: str | os.PathLike, sr: int = 16000, size: int | None = None,
               need_audio: bool = True) -> Video:
    """Decode a video file's first video stream (RGB frames, resized to ``size`` x ``size``
    when given: centre crop to square, then area resize) and its first audio stream (mono,
    resampled to ``sr``). Raises :class:`MediaError` for a missing, corrupt or audio-less
    (when ``need_audio``) file."""
    path = Path(path)
    if not path.exists():
        raise MediaError(f"{path}: file not found")
    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise MediaError(f"{path}: no video stream")
            if need_audio and not c.streams.audio:
                raise MediaError(f"{path}: no audio stream")
            vs = c.streams.video[0]
            frames, times = [], []
            for fr in c.decode(vs):
                img = fr.to_ndarray(format="rgb24")
                if size is not None:
                    img = square_resize(img, size)
                frames.append(img)
                times.append(float(fr.time) if fr.time is not None else len(times) / float(vs.average_rate or 1))
            fps = float(vs.average_rate) if vs.average_rate else (len(frames) / max(times[-1], 1e-9) if frames else 0.0)
        audio = None
        with av.open(str(path)) as c2:  # second pass: streams are decoded independently
            if c2.streams.audio:
                audio = _resampled_audio(c2, c2.streams.audio[0], sr)
    except MediaError:
        raise
    except (av.FFmpegError, OSError, ValueError) as e:
        raise MediaError(f"{path}: cannot decode ({e})") from None
    if not frames:
        raise MediaError(f"{path}: no decodable video frames")
    t = np.asarray(times, np.float64)
    duration = float(t[-1] + 1.0 / fps) if fps else float(t[-1])
    return Video(str(path), np.stack(frames), t, fps, audio, sr if audio is not None else None, duration)


def square_resize(img: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop an RGB uint8 image to a square and resize it to ``size`` (area filter)."""
    from PIL import Image

    h, w = img.shape[:2]
    s = min(h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    img = img[y0:y0 + s, x0:x0 + s]
    if s == size:
        return np.ascontiguousarray(img)
    return np.asarray(Image.fromarray(img).resize((size, size), Image.BOX if s > size else Image.BICUBIC))
