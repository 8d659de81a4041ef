"""Video: :class:`Video`, decoded frames to RGB (rotation, square crop and resize in swscale),
:func:`read_video` (frames and audio in one demux pass), :func:`read_videos_skipping`,
:func:`square_resize` / :func:`fit_resize` and the H.264 + AAC MP4 writer :func:`write_video`."""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from s2i.media.audio import _concat, _MonoAudio, _trim_mov_padding, encode_audio
from s2i.media.common import (
    SR,
    MediaError,
    _check_truncated,
    _open,
    _stream_duration,
    _video_streams,
    decoding,
)
from s2i.utils import atomic_path


@dataclass
class Video:
    """A decoded video: ``frames`` (T, H, W, 3) uint8, ``times`` (T,) seconds,
    ``audio`` (S,) float32 mono at ``sr`` (``None`` when the file has no audio); ``start``: the
    zero of ``times`` and ``audio`` in the file's own timestamps, in seconds."""

    path: str
    frames: np.ndarray
    times: np.ndarray
    fps: float
    audio: np.ndarray | None
    sr: int | None
    duration: float
    start: float = 0.0


# --------------------------------------------------------------------------------------------
# frames
# --------------------------------------------------------------------------------------------


_REFORMATTERS: dict[tuple[int, int], VideoReformatter] = {}


def _reformatter() -> VideoReformatter:
    """This process's and thread's swscale context: ``VideoFrame.reformat`` sets a new one up (filter
    coefficients, thread pool) for every frame, which was most of the time of a decode at 10 fps.
    Keyed by process too: a context is not carried over into a forked DataLoader worker."""
    key = (os.getpid(), threading.get_ident())
    if key not in _REFORMATTERS:
        _REFORMATTERS[key] = VideoReformatter()
    return _REFORMATTERS[key]


def _frame_rgb(fr, size: int | None) -> np.ndarray:
    """RGB uint8 array of a decoded frame, display rotation applied, optionally centre-cropped
    to a square and resized to ``size``. Scaling happens in swscale before RGB conversion of
    the full frame (fast for large videos)."""
    rot = 0
    try:
        r = fr.rotation
        rot = int(round((r or 0) / 90.0)) % 4
    except (AttributeError, ValueError, TypeError):  # older PyAV / no display matrix
        rot = 0
    # the frame's own colour range (full-range "JPEG" video exists); its colourspace (BT.601 /
    # BT.709 ...) is PyAV's default already
    kw = {"src_color_range": fr.color_range} if fr.color_range else {}
    w, h = fr.width, fr.height
    s = min(w, h)
    if size is None or s == size:
        img = _reformatter().reformat(fr, format="rgb24", **kw).to_ndarray()
    else:
        nw = max(size, int(round(w * size / s)))
        nh = max(size, int(round(h * size / s)))
        interp = "AREA" if s > size else "BICUBIC"
        img = _reformatter().reformat(fr, width=nw, height=nh, format="rgb24", interpolation=interp, **kw).to_ndarray()
    if size is not None:
        hh, ww = img.shape[:2]
        y0, x0 = (hh - size) // 2, (ww - size) // 2
        img = img[y0 : y0 + size, x0 : x0 + size]
    if rot:
        img = np.rot90(img, k=rot)
    return np.ascontiguousarray(img)


def _expected_frames(vs) -> int:
    """The frame count the container states, if it is plausible for the stated duration."""
    n = int(vs.frames or 0)
    dur, rate = _stream_duration(vs), vs.average_rate or vs.guessed_rate
    if n <= 0 or dur is None or not rate or n > 2 * dur * float(rate) + 16:
        return 0
    return n


class _Frames:
    """Collects equal-shaped frames. When the container states the frame count, frames go
    straight into one preallocated array (no list + ``np.stack`` copy: half the peak memory
    for long videos); otherwise, or on surprises (more frames, a size change), a list."""

    def __init__(self, expected: int):
        self.expected = expected if expected and expected > 0 else 0
        self.arr: np.ndarray | None = None
        self.items: list[np.ndarray] = []
        self.n = 0

    def append(self, img: np.ndarray) -> None:
        if self.items or not self.expected:
            self.items.append(img)
        elif self.arr is None:
            try:
                self.arr = np.empty((self.expected + 1,) + img.shape, np.uint8)
            except (MemoryError, ValueError):  # absurd stated count: collect in a list
                self.expected = 0
                self.items.append(img)
            else:
                self.arr[0] = img
        elif self.n < len(self.arr) and img.shape == self.arr.shape[1:]:
            self.arr[self.n] = img
        else:  # spill to the list
            self.items = list(self.arr[: self.n]) + [img]
            self.arr = None
        self.n += 1

    def __len__(self) -> int:
        return self.n

    def array(self) -> np.ndarray:
        if self.arr is not None:
            if self.n < len(self.arr) // 2:  # the stated count was far off: don't keep the slack
                return self.arr[: self.n].copy()
            return self.arr[: self.n]
        shapes = {f.shape for f in self.items}
        if len(shapes) > 1:  # resolution changed mid-stream: bring all to the first frame's size
            from PIL import Image

            h, w = self.items[0].shape[:2]
            self.items = [
                f if f.shape[:2] == (h, w) else np.asarray(Image.fromarray(f).resize((w, h), Image.BILINEAR))
                for f in self.items
            ]
        return np.stack(self.items)


def square_resize(img: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop an RGB uint8 image to a square and resize it to ``size`` (area filter).
    The result is a new, writable array (``torch.as_tensor`` warns about read-only ones)."""
    return fit_resize(img, size, size)


def aspect_crop(height: int, width: int, aspect: float) -> tuple[int, int, int, int]:
    """``(y0, x0, h, w)``: the largest centred crop of a ``height`` x ``width`` picture whose
    width / height is ``aspect`` (rounded to whole pixels)."""
    if width > height * aspect:
        h, w = height, max(1, min(width, int(round(height * aspect))))
    else:
        h, w = max(1, min(height, int(round(width / aspect)))), width
    return (height - h) // 2, (width - w) // 2, h, w


def fit_resize(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Centre-crop an RGB uint8 image to the aspect of ``height`` x ``width`` (:func:`aspect_crop`)
    and resize it to that size (area filter when shrinking, bicubic when enlarging). A new,
    writable array; :func:`square_resize` is the square case."""
    from PIL import Image

    y0, x0, h, w = aspect_crop(img.shape[0], img.shape[1], width / height)
    img = img[y0 : y0 + h, x0 : x0 + w]
    if (h, w) == (height, width):
        return np.array(img)
    return np.array(Image.fromarray(img).resize((width, height), Image.BOX if h > height else Image.BICUBIC))


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------


def read_video(path: str | os.PathLike, sr: int = SR, size: int | None = None, need_audio: bool = True) -> Video:
    """Decode a video file's first video stream and first audio stream in one demux pass.

    Frames: RGB uint8 (display rotation applied); with ``size``, centre-cropped to a square
    and resized to ``size`` x ``size`` (area filter when shrinking). ``times``: presentation
    time of each frame in seconds, increasing; ``fps``: the stream's average rate;
    ``duration``: last frame time + one frame. Audio: mono float32 at ``sr`` on the same clock
    as ``times`` (see :mod:`s2i.media`), ``None`` when the file has no audio stream and
    ``need_audio`` is false. Raises :class:`MediaError` for a missing, corrupt or truncated
    file, a file without video stream, or without audio stream when ``need_audio``."""
    path = Path(path)
    c = _open(path)
    with decoding(path, c, ""):
        videos = _video_streams(c)
        if not videos:
            cover = " (only a cover picture)" if c.streams.video else ""
            raise MediaError(f"{path}: no video stream{cover}")
        if need_audio and not c.streams.audio:
            raise MediaError(f"{path}: no audio stream")
        vs = videos[0]
        ast = c.streams.audio[0] if c.streams.audio else None
        vs.thread_type = "AUTO"  # frame/slice threads: faster decode, same frames
        rate = vs.average_rate or vs.guessed_rate
        frames = _Frames(_expected_frames(vs))
        times: list[float | None] = []
        conv = _MonoAudio(sr) if ast is not None else None
        chunks: list[np.ndarray] = []
        a_first = None
        streams = [vs] if ast is None else [vs, ast]
        for pkt in c.demux(*streams):
            if pkt.stream.index == vs.index:
                for fr in pkt.decode():
                    frames.append(_frame_rgb(fr, size))
                    times.append(fr.time)
            else:
                for fr in pkt.decode():
                    if a_first is None and fr.time is not None:
                        a_first = fr.time
                    chunks += conv.push(fr)
        if conv is not None:
            chunks += conv.flush()
        if not frames:
            raise MediaError(f"{path}: no decodable video frames")

        fps = float(rate) if rate else 0.0
        if not fps:
            known = [t for t in times if t is not None]
            if len(known) >= 2 and known[-1] > known[0]:
                fps = (len(known) - 1) / (known[-1] - known[0])
            else:
                fps = 25.0  # nothing better to go on; only used for the fallback clock
        if any(t is None for t in times) or np.any(np.diff(np.asarray(times, np.float64)) <= 0):
            t0 = next((t for t in times if t is not None), 0.0)
            t = t0 + np.arange(len(frames), dtype=np.float64) / fps  # broken pts: frame clock
        else:
            t = np.asarray(times, np.float64)

        audio = None
        if ast is not None:
            audio = _concat(chunks)
            audio = _trim_mov_padding(c, ast, audio, sr)
        origin = float(t[0]) if a_first is None else min(float(t[0]), float(a_first))
        if audio is not None and a_first is not None and a_first > origin:
            pad = int(round((a_first - origin) * sr))
            if pad:
                audio = np.concatenate([np.zeros(pad, np.float32), audio])
        t = t - origin
        duration = float(t[-1] + 1.0 / fps)

        frame_array = frames.array()
        decoded = {vs: duration}
        if audio is not None:
            decoded[ast] = len(audio) / sr
        _check_truncated(path, c, decoded)
        if need_audio and (audio is None or not len(audio)):
            raise MediaError(f"{path}: no decodable audio in the audio stream")
    return Video(str(path), frame_array, t, fps, audio, sr if audio is not None else None, duration, origin)


def read_videos_skipping(paths: Iterable[str | os.PathLike], **kw) -> tuple[list[Video], list[dict]]:
    """:func:`read_video` over many files (``kw`` passed on): returns ``(videos, skipped)``
    where ``skipped`` lists ``{"path": str, "reason": str}`` for every file that raised
    :class:`MediaError` (missing, corrupt, truncated, no video/audio stream), in input order."""
    videos: list[Video] = []
    skipped: list[dict] = []
    for p in paths:
        try:
            videos.append(read_video(p, **kw))
        except MediaError as e:
            msg, prefix = str(e), f"{Path(p)}: "
            skipped.append({"path": str(p), "reason": msg[len(prefix) :] if msg.startswith(prefix) else msg})
    return videos, skipped


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------


def _nice_rate(fps) -> Fraction:
    """An exact frame rate: Fractions kept, NTSC floats (23.976, 29.97, 59.94...) snapped to
    N*1000/1001, others limited to a small denominator."""
    if isinstance(fps, Fraction):
        return fps
    f = float(fps)
    if not (f > 0 and math.isfinite(f)):
        raise ValueError(f"fps must be positive and finite, got {fps!r}")
    for n in (24, 30, 48, 60, 120, 240):
        ntsc = Fraction(n * 1000, 1001)
        if abs(f - float(ntsc)) < 0.006:
            return ntsc
    return Fraction(f).limit_denominator(1001)


def write_video(
    path: str | os.PathLike,
    frames: np.ndarray,
    fps: float,
    audio: np.ndarray | None = None,
    sr: int = SR,
    crf: int = 12,
    audio_bitrate: int = 64000,
) -> Path:
    """Write an MP4 with H.264 video (yuv420p, plays anywhere) and, if given, AAC audio.

    ``frames``: (T, H, W, 3) uint8 with even H and W. ``fps``: a number or a Fraction
    (29.97 / 23.976 / 59.94 are written as the exact NTSC rates 30000/1001 ...).
    ``audio``: (S,) or (C, S) with C in {1, 2}, float in [-1, 1]. The moov atom is put in
    front (``+faststart``) so browsers and notebooks can stream it. The file is written to a
    temporary name and renamed, so a kill leaves no half file. The same input gives the same
    bytes (single-threaded colour conversion and encoding)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"{path}: frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    h, w = frames.shape[1:3]
    if h % 2 or w % 2:
        raise ValueError(f"{path}: H.264 yuv420p needs even width and height, got {w}x{h}")
    if audio is not None:
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim == 1:
            audio = audio[None]
        if audio.ndim != 2 or audio.shape[0] not in (1, 2):
            raise ValueError(f"{path}: audio must be (S,) or (C, S) with C in (1, 2), got {audio.shape}")
    rate = _nice_rate(fps)
    with atomic_path(path) as tmp, av.open(str(tmp), mode="w", format="mp4", options={"movflags": "+faststart"}) as c:
        # threads=1 and mbtree=0: x264's macroblock-tree rate control gives run-to-run
        # different bitstreams for identical input even single-threaded (seen with small
        # frames); without it the encoder is deterministic
        vs = c.add_stream(
            "libx264",
            rate=rate,
            options={"crf": str(crf), "threads": "1", "preset": "medium", "x264-params": "mbtree=0"},
        )
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.codec_context.time_base = 1 / rate
        as_ = None
        if audio is not None:
            layout = "mono" if audio.shape[0] == 1 else "stereo"
            as_ = c.add_stream("aac", rate=sr, layout=layout)
            as_.bit_rate = audio_bitrate
        for i, img in enumerate(frames):
            # explicit single-threaded RGB -> yuv420p conversion: the encoder's implicit one
            # runs swscale with the codec's (auto) thread count, whose slice boundaries make
            # the output vary between runs and machines
            fr = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            fr = fr.reformat(format="yuv420p", threads=1)
            fr.pts = i
            for pkt in vs.encode(fr):
                c.mux(pkt)
        for pkt in vs.encode():
            c.mux(pkt)
        if as_ is not None:
            encode_audio(c, as_, [audio], sr, hop=1024)
    return path
