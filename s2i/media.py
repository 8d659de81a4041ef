"""Reading and writing audio/video files with PyAV (FFmpeg inside the wheel).

All decoding goes through here, so the toy world and real videos (``full``
profile) share one code path: whatever resolution, frame rate, codec and audio
rate PyAV decodes comes out as RGB uint8 frames with timestamps and mono float32
audio resampled to the requested rate.

Public API
----------
- :func:`read_video` -- one file, first video stream + first audio stream, decoded in a
  single demux pass, as a :class:`Video`.
- :func:`read_audio` -- first audio stream of any file as mono float32 at ``sr``.
- :func:`iter_audio_windows` -- stream an arbitrarily long file as batches of fixed-length
  windows (constant memory); :func:`audio_window_starts` gives the same window grid without
  decoding.
- :func:`probe` -- container and per-stream facts (codec, fps, duration, rate, channels, size).
- :func:`read_videos_skipping` -- decode many files, listing the bad ones instead of failing.
- :func:`write_video` -- H.264 + AAC MP4.

Every failure to read a file raises :class:`MediaError` whose message starts with the
file path, then ``": "`` and the reason; no raw PyAV/FFmpeg exception escapes.

Conventions
-----------
- Streams are chosen explicitly: the first video stream (cover pictures excluded) and the
  first audio stream in the file's stream order; other streams are never decoded.
- Multi-channel audio is downmixed by averaging the channels (``(L + R) / 2`` for stereo),
  after resampling each channel to ``sr`` with libswresample.
- In :class:`Video`, ``times`` and ``audio`` share one clock whose zero is the earliest
  first timestamp of the two decoded streams: ``audio[k]`` plays at ``k / sr`` seconds and
  frame ``i`` at ``times[i]`` seconds. An audio track that starts later than the video is
  padded with leading zeros; gaps inside a stream are not filled (samples are concatenated).
- Display rotation (phone videos) is applied, as the ``ffmpeg`` command line does.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from s2i.utils import atomic_path

__all__ = [
    "MediaError",
    "Video",
    "write_video",
    "read_video",
    "read_audio",
    "iter_audio_windows",
    "audio_window_starts",
    "probe",
    "read_videos_skipping",
    "square_resize",
]


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


# Exceptions PyAV/FFmpeg raise for unreadable input (av.FFmpegError subclasses also derive
# from OSError/ValueError/EOFError...). MediaError is a RuntimeError: always re-raise it first.
_AV_ERRORS = (
    av.FFmpegError,
    OSError,
    ValueError,
    EOFError,
    RuntimeError,
    IndexError,
    UnicodeError,
    OverflowError,
    ZeroDivisionError,
)

# Containers whose header/index states stream durations exactly; a decode that stops well
# short of the stated length there means the file was cut off. (Durations of mp3, ADTS, raw
# streams and MPEG-TS are estimates, so they are not checked.)
_INDEXED_FORMATS = ("mov", "mp4", "matroska", "webm", "wav", "w64", "flac", "avi", "aiff", "caf")
_TRUNCATION_SLACK = (0.9, 0.25)  # decoded < 0.9 * stated - 0.25 s  -> truncated


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------


def _reason(e: BaseException) -> str:
    """A short reason text for an FFmpeg/PyAV error (without repeating the file name)."""
    if isinstance(e, av.FFmpegError):
        text = e.strerror or str(e)
        return f"{text} ({type(e).__name__})"
    return f"{type(e).__name__}: {e}"


def _check_path(path: Path) -> None:
    if not path.exists():
        raise MediaError(f"{path}: file not found")
    if not path.is_file():
        raise MediaError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise MediaError(f"{path}: empty file (0 bytes)")


def _open(path: Path, check_riff: bool = True):
    """Open ``path`` for reading or raise MediaError."""
    _check_path(path)
    if check_riff:
        _check_riff_size(path)
    try:
        return av.open(str(path), mode="r", metadata_errors="ignore")
    except _AV_ERRORS as e:
        raise MediaError(f"{path}: cannot open: {_reason(e)}") from None


def _seconds(value, time_base) -> float | None:
    if value is None or time_base is None:
        return None
    return float(value * time_base)


def _stream_duration(stream) -> float | None:
    """The duration the file states for ``stream`` (seconds), or None."""
    d = _seconds(stream.duration, stream.time_base)
    return d if d is not None and d > 0 else None


def _is_indexed(container) -> bool:
    names = (container.format.name or "").split(",")
    return any(n in _INDEXED_FORMATS for n in names)


def _check_truncated(path: Path, container, decoded: dict) -> None:
    """Raise MediaError when a stream decoded to clearly less than the file states.

    ``decoded`` maps each decoded stream to the seconds of media it gave. Streams with a stated
    duration are checked one by one; when none has one (Matroska/WebM state only the segment
    duration) and every audio/video stream of the file was decoded, the longest decoded stream
    is checked against the container duration. Only containers with exact durations are
    checked (see ``_INDEXED_FORMATS``); RIFF/WAVE sizes are checked on opening."""
    if not _is_indexed(container):
        return
    frac, slack = _TRUNCATION_SLACK

    def fail(got: float, stated: float, what: str):
        raise MediaError(
            f"{path}: truncated or corrupt file: decoded {got:.3f} s of {what} but the file states {stated:.3f} s"
        )

    unknown = False
    for st, got in decoded.items():
        stated = _stream_duration(st)
        if stated is None:
            unknown = True
        elif got < frac * stated - slack:
            fail(got, stated, st.type)
    av_streams = [st for st in container.streams if st.type in ("audio", "video")]
    if unknown and container.duration is not None and decoded and all(st in decoded for st in av_streams):
        stated = container.duration / 1e6  # AV_TIME_BASE (microseconds)
        got = max(decoded.values())
        if stated > 0 and got < frac * stated - slack:
            fail(got, stated, "media")


def _check_riff_size(path: Path) -> None:
    """A WAV whose RIFF header announces (much) more data than the file holds was cut off.
    Placeholder sizes written by streaming encoders (0, 0xFFFFFFFF) are ignored."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
        size = path.stat().st_size
    except OSError:
        return
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return
    stated = int.from_bytes(head[4:8], "little") + 8
    if stated in (8, 0xFFFFFFFF + 8) or stated <= 44:
        return
    if size < 0.99 * stated:
        raise MediaError(f"{path}: truncated file: the WAV header announces {stated} bytes but the file has {size}")


def _is_cover(stream) -> bool:
    """A cover picture / thumbnail (attached_pic) is stored as a one-frame "video" stream."""
    try:
        return bool(stream.disposition & (av.stream.Disposition.attached_pic | av.stream.Disposition.timed_thumbnails))
    except (AttributeError, TypeError):
        return False


def _video_streams(container) -> list:
    """Real video streams (cover pictures left out), in file order."""
    return [st for st in container.streams.video if not _is_cover(st)]


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


# --------------------------------------------------------------------------------------------
# audio: resample + downmix, robust to mid-stream format changes
# --------------------------------------------------------------------------------------------


class NonFiniteAudio(ValueError):
    """Decoded samples that are NaN or infinite (raised without the path; callers add it)."""


class _MonoAudio:
    """Turns decoded AudioFrames of any format/layout/rate into mono float32 chunks at ``sr``.

    Each channel is resampled by libswresample (layout kept), then the channels are averaged.
    The resampler's output is *packed* float (``flt``: one plane, channels interleaved), never
    planar: PyAV reads a planar frame of eight or more channels past its plane pointers
    (``AVFrame.data`` holds eight; the rest are in ``extended_data``), which crashes the process.
    Timestamps are dropped, so the resampler works on sample counts. A change of format, layout
    or rate inside the stream flushes and restarts the resampler. Samples that are not finite
    raise :class:`NonFiniteAudio`: they would turn every later computation into NaN."""

    def __init__(self, sr: int):
        self.sr = int(sr)
        self._res = None
        self._key = None

    @staticmethod
    def _mono(frames) -> list[np.ndarray]:
        out = []
        for fr in frames:
            channels = len(fr.layout.channels)
            x = fr.to_ndarray().reshape(-1, channels)  # flt: (1, samples * channels) -> (samples, channels)
            if x.shape[0] == 0:
                continue
            m = x[:, 0].astype(np.float32, copy=True) if channels == 1 else x.mean(axis=1, dtype=np.float32)
            if not np.isfinite(m).all():
                raise NonFiniteAudio("audio samples are not finite (NaN or infinite values)")
            out.append(m)
        return out

    def push(self, frame) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        key = (frame.format.name, frame.layout.name, frame.sample_rate)
        if self._res is not None and key != self._key:
            out += self.flush()
        if self._res is None:
            self._res = av.AudioResampler(format="flt", rate=self.sr)
            self._key = key
        frame.pts = None  # resample on sample counts, not on possibly odd timestamps
        out += self._mono(self._res.resample(frame))
        return out

    def flush(self) -> list[np.ndarray]:
        if self._res is None:
            return []
        out = self._mono(self._res.resample(None))
        self._res, self._key = None, None
        return out


def _concat(chunks: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)


def _mov_audio_length(container, stream, sr: int) -> tuple[int, int] | None:
    """MP4/MOV state the exact audio length (edit list) but FFmpeg's AAC decoder still emits
    the encoder's padding of the last frame. Returns ``(stated samples at sr, largest excess
    that counts as padding)`` for such files, else None."""
    names = (container.format.name or "").split(",")
    if "mov" not in names and "mp4" not in names:
        return None
    stated = _seconds(stream.duration, stream.time_base)
    if stated is None or stated <= 0:
        return None
    src_rate = stream.codec_context.sample_rate or sr
    return int(round(stated * sr)), int(math.ceil(2 * 2048 * sr / src_rate))


def _trim_mov_padding(container, stream, audio: np.ndarray, sr: int) -> np.ndarray:
    """Cut AAC tail padding from MP4/MOV audio (see :func:`_mov_audio_length`)."""
    lim = _mov_audio_length(container, stream, sr)
    if lim is not None and 0 < len(audio) - lim[0] <= lim[1]:
        return audio[: lim[0]]
    return audio


# --------------------------------------------------------------------------------------------
# video frames
# --------------------------------------------------------------------------------------------


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
        img = fr.reformat(format="rgb24", **kw).to_ndarray()
    else:
        nw = max(size, int(round(w * size / s)))
        nh = max(size, int(round(h * size / s)))
        interp = "AREA" if s > size else "BICUBIC"
        img = fr.reformat(width=nw, height=nh, format="rgb24", interpolation=interp, **kw).to_ndarray()
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
    from PIL import Image

    h, w = img.shape[:2]
    s = min(h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    img = img[y0 : y0 + s, x0 : x0 + s]
    if s == size:
        return np.array(img)
    return np.array(Image.fromarray(img).resize((size, size), Image.BOX if s > size else Image.BICUBIC))


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------


def encode_audio(container, stream, chunks: Iterable[np.ndarray], sr: int, hop: int = 1024) -> None:
    """Encode float (C, S) chunks (clipped to [-1, 1]) into the audio ``stream`` of an open
    PyAV output ``container`` in frames of ``hop`` samples, mux them, and flush the encoder."""
    pts = 0
    for x in chunks:
        x = np.clip(np.asarray(x, np.float32), -1.0, 1.0)
        for s in range(0, x.shape[1], hop):
            fr = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(x[:, s : s + hop]), format="fltp", layout=stream.layout.name
            )
            fr.sample_rate, fr.pts, fr.time_base = sr, pts, Fraction(1, sr)
            pts += fr.samples
            for pkt in stream.encode(fr):
                container.mux(pkt)
    for pkt in stream.encode():
        container.mux(pkt)


def write_video(
    path: str | os.PathLike,
    frames: np.ndarray,
    fps: float,
    audio: np.ndarray | None = None,
    sr: int = 16000,
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


# --------------------------------------------------------------------------------------------
# probing
# --------------------------------------------------------------------------------------------


def _codec_name(st) -> str | None:
    """The codec's canonical name ("mp3", "h264"), not the decoder's ("mp3float")."""
    try:
        codec = st.codec_context.codec
        return codec.canonical_name or codec.name
    except (AttributeError, ValueError, av.FFmpegError):
        return None


def _stream_info(container, st) -> dict:
    cc = st.codec_context
    info = {
        "index": st.index,
        "type": st.type,
        "codec": _codec_name(st),
        "duration": _stream_duration(st) or (container.duration / 1e6 if container.duration else None),
        "start_time": _seconds(st.start_time, st.time_base),
        "frames": int(st.frames) if st.frames else None,
        "bit_rate": (cc.bit_rate if cc is not None else None) or None,
        "cover": st.type == "video" and _is_cover(st),
        "fps": None,
        "fps_fraction": None,
        "width": None,
        "height": None,
        "pix_fmt": None,
        "sample_rate": None,
        "channels": None,
        "layout": None,
        "sample_fmt": None,
    }
    if st.type == "video":
        rate = st.average_rate or st.guessed_rate or st.base_rate
        info.update(
            fps=float(rate) if rate else None,
            fps_fraction=str(rate) if rate else None,
            width=cc.width,
            height=cc.height,
            pix_fmt=cc.pix_fmt,
        )
    elif st.type == "audio":
        info.update(
            sample_rate=cc.sample_rate,
            channels=cc.channels,
            layout=cc.layout.name if cc.layout else None,
            sample_fmt=cc.format.name if cc.format else None,
        )
    return info


def probe(path: str | os.PathLike) -> dict:
    """Describe a media file without decoding it (PyAV's answer to ``ffprobe``).

    Returns ``{"path", "format", "duration" (s or None), "bit_rate", "streams": [...],
    "video": first video stream (not a cover picture) or None, "audio": first audio stream or
    None}`` where each stream is a dict with keys ``index, type, codec, duration, start_time,
    frames, bit_rate, cover, fps, fps_fraction, width, height, pix_fmt, sample_rate, channels,
    layout, sample_fmt`` (``None`` where not applicable; ``fps_fraction`` is the exact rate as
    text, e.g. ``"30000/1001"``). A stream's ``duration`` falls back to the container's when
    the file states none per stream (Matroska/WebM).
    Raises :class:`MediaError` for a missing or unreadable file."""
    path = Path(path)
    c = _open(path, check_riff=False)
    try:
        streams = [_stream_info(c, st) for st in c.streams]
        out = {
            "path": str(path),
            "format": c.format.name,
            "duration": c.duration / 1e6 if c.duration is not None else None,
            "bit_rate": c.bit_rate or None,
            "streams": streams,
            "video": next((s for s in streams if s["type"] == "video" and not s["cover"]), None),
            "audio": next((s for s in streams if s["type"] == "audio"), None),
        }
    except _AV_ERRORS as e:
        raise MediaError(f"{path}: cannot probe: {_reason(e)}") from None
    finally:
        c.close()
    return out


# --------------------------------------------------------------------------------------------
# reading whole files
# --------------------------------------------------------------------------------------------


def read_audio(path: str | os.PathLike, sr: int = 16000) -> np.ndarray:
    """Decode the first audio stream of any file PyAV reads (wav 8/16/24/32-bit and float,
    flac, mp3, ogg/vorbis, opus, m4a/aac, the audio track of a video) to mono float32 at
    ``sr``. Its length is the stream's duration times ``sr`` within one codec frame.
    Raises :class:`MediaError` (missing, corrupt or truncated file, no audio stream, no samples,
    samples that are not finite)."""
    path = Path(path)
    c = _open(path)
    try:
        if not c.streams.audio:
            raise MediaError(f"{path}: no audio stream")
        st = c.streams.audio[0]
        conv, chunks = _MonoAudio(sr), []
        for pkt in c.demux(st):
            for fr in pkt.decode():
                chunks += conv.push(fr)
        chunks += conv.flush()
        audio = _concat(chunks)
        _check_truncated(path, c, {st: len(audio) / sr})
        if not len(audio):
            raise MediaError(f"{path}: no audio samples (the audio stream is empty)")
        return _trim_mov_padding(c, st, audio, sr)
    except MediaError:
        raise
    except NonFiniteAudio as e:
        raise MediaError(f"{path}: {e}") from None
    except _AV_ERRORS as e:
        raise MediaError(f"{path}: cannot decode audio (corrupt or unsupported data): {_reason(e)}") from None
    finally:
        c.close()


def read_video(path: str | os.PathLike, sr: int = 16000, size: int | None = None, need_audio: bool = True) -> Video:
    """Decode a video file's first video stream and first audio stream in one demux pass.

    Frames: RGB uint8 (display rotation applied); with ``size``, centre-cropped to a square
    and resized to ``size`` x ``size`` (area filter when shrinking). ``times``: presentation
    time of each frame in seconds, increasing; ``fps``: the stream's average rate;
    ``duration``: last frame time + one frame. Audio: mono float32 at ``sr`` on the same clock
    as ``times`` (see module docs), ``None`` when the file has no audio stream and
    ``need_audio`` is false. Raises :class:`MediaError` for a missing, corrupt or truncated
    file, a file without video stream, or without audio stream when ``need_audio``."""
    path = Path(path)
    c = _open(path)
    try:
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
    except MediaError:
        raise
    except NonFiniteAudio as e:
        raise MediaError(f"{path}: {e}") from None
    except _AV_ERRORS as e:
        raise MediaError(f"{path}: cannot decode (corrupt or unsupported data): {_reason(e)}") from None
    finally:
        c.close()
    return Video(str(path), frame_array, t, fps, audio, sr if audio is not None else None, duration)


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
# streaming fixed-length windows
# --------------------------------------------------------------------------------------------


def _window_params(sr: int, window_s: float, hop_s: float | None, overlap_s: float | None) -> tuple[int, int]:
    if hop_s is not None and overlap_s is not None:
        raise ValueError("give hop_s or overlap_s, not both")
    if overlap_s is not None:
        hop_s = window_s - overlap_s
    if hop_s is None:
        hop_s = window_s
    win, hop = int(round(window_s * sr)), int(round(hop_s * sr))
    if win <= 0 or hop <= 0:
        raise ValueError(f"window ({window_s} s) and hop ({hop_s} s) must be at least one sample at {sr} Hz")
    return win, hop


def audio_window_starts(
    n_samples: int,
    sr: int,
    window_s: float,
    hop_s: float | None = None,
    *,
    overlap_s: float | None = None,
    min_fill: float = 0.5,
) -> np.ndarray:
    """Start sample indices of the windows :func:`iter_audio_windows` yields for a signal of
    ``n_samples`` samples (same arguments, same policy)."""
    win, hop = _window_params(sr, window_s, hop_s, overlap_s)
    if n_samples <= 0:
        return np.zeros(0, np.int64)
    n_full = 0 if n_samples < win else (n_samples - win) // hop + 1
    starts = list(range(0, n_full * hop, hop))
    nxt = n_full * hop
    if nxt < n_samples and (n_full == 0 or (n_samples - nxt) >= min_fill * win):
        starts.append(nxt)
    return np.asarray(starts, np.int64)


def iter_audio_windows(
    path: str | os.PathLike,
    sr: int = 16000,
    window_s: float = 1.0,
    hop_s: float | None = None,
    batch: int = 64,
    *,
    overlap_s: float | None = None,
    min_fill: float = 0.5,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Stream the first audio stream of ``path`` (any format :func:`read_audio` reads, any
    length) as batches of fixed-length mono windows at ``sr``, decoding chunk by chunk so
    memory stays bounded by about ``batch`` windows plus one decoded packet.

    Windows are ``W = round(window_s * sr)`` samples long and start every
    ``H = round(hop_s * sr)`` samples (``hop_s`` defaults to ``window_s``, i.e. no overlap;
    or give ``overlap_s`` and get ``hop_s = window_s - overlap_s``). Sample 0 is the first
    decoded sample.

    Yields ``(windows, starts)``: ``windows`` float32 ``(B, W)`` with ``1 <= B <= batch``
    (only the last batch may be smaller) and ``starts`` float64 ``(B,)`` window start times in
    seconds (``start_index / sr``).

    Last partial window policy: every window that lies entirely inside the signal is yielded.
    After them, at most one partial window (the first one that runs past the end, which covers
    the whole remaining tail) is yielded, zero-padded, if at least ``min_fill`` of it is real
    signal (default: at least half full); otherwise the tail is dropped. A signal shorter than
    one window (but not empty) always yields that single zero-padded window. An empty audio
    stream yields nothing. :func:`audio_window_starts` computes the same start grid.

    The file is opened and checked (exists, readable, has an audio stream) when this function
    is called, so those errors raise :class:`MediaError` immediately; decoding errors further
    into the file raise :class:`MediaError` from the iteration, and so does a file found to be
    truncated at its end (before the last batch is yielded)."""
    path = Path(path)
    win, hop = _window_params(sr, window_s, hop_s, overlap_s)
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    c = _open(path)
    try:
        if not c.streams.audio:
            raise MediaError(f"{path}: no audio stream")
    except BaseException:
        c.close()
        raise
    return _window_gen(path, c, sr, win, hop, batch, min_fill)


def _window_gen(
    path: Path, c, sr: int, win: int, hop: int, batch: int, min_fill: float
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    out_w = np.zeros((batch, win), np.float32)
    out_s = np.zeros(batch, np.float64)
    n_out = 0
    emitted = 0
    buf = np.zeros(0, np.float32)  # samples [buf_start, buf_start + len(buf))
    buf_start = 0
    next_start = 0

    def take_full(buf, buf_start, next_start, end):
        """Cut the complete windows ending at or before sample ``end`` out of the buffer;
        return them and the buffer with the samples no later window needs dropped."""
        got = []
        while next_start + win <= end:
            a = next_start - buf_start
            got.append((buf[a : a + win], next_start))
            next_start += hop
        drop = min(max(next_start - buf_start, 0), len(buf))
        return got, buf[drop:], buf_start + drop, next_start

    try:
        st = c.streams.audio[0]
        conv = _MonoAudio(sr)
        # MP4/MOV: samples past the stated length may be codec padding (cut at the end, as
        # read_audio does), so windows reaching past it wait until the end is known.
        mov = _mov_audio_length(c, st, sr)
        hold = mov[0] if mov is not None else None

        def chunks_of_file():
            for pkt in c.demux(st):
                for fr in pkt.decode():
                    yield from conv.push(fr)
            yield from conv.flush()

        def emit(got):
            nonlocal n_out, emitted
            for w, s in got:
                out_w[n_out], out_s[n_out] = w, s / sr
                n_out += 1
                emitted += 1
                if n_out == batch:
                    yield out_w.copy(), out_s.copy()
                    n_out = 0

        for chunk in chunks_of_file():
            buf = np.concatenate([buf, chunk]) if len(buf) else chunk
            end = buf_start + len(buf)
            if hold is not None and end > hold + mov[1]:
                hold = None  # far more than padding: the stated length is wrong, keep it all
            if hold is not None:
                end = min(end, hold)
            got, buf, buf_start, next_start = take_full(buf, buf_start, next_start, end)
            yield from emit(got)
        total = buf_start + len(buf)
        if mov is not None and 0 < total - mov[0] <= mov[1]:
            total = mov[0]
        got, buf, buf_start, next_start = take_full(buf, buf_start, next_start, total)
        yield from emit(got)
        _check_truncated(path, c, {st: total / sr})
        if total == 0:
            raise MediaError(f"{path}: no audio samples (the audio stream is empty)")
        if next_start < total:
            fill = total - next_start
            if emitted == 0 or fill >= min_fill * win:
                a = next_start - buf_start
                out_w[n_out] = 0.0
                out_w[n_out, :fill] = buf[a : a + fill]
                out_s[n_out] = next_start / sr
                n_out += 1
        if n_out:
            yield out_w[:n_out].copy(), out_s[:n_out].copy()
    except MediaError:
        raise
    except NonFiniteAudio as e:
        raise MediaError(f"{path}: {e}") from None
    except _AV_ERRORS as e:
        raise MediaError(f"{path}: cannot decode audio (corrupt or unsupported data): {_reason(e)}") from None
    finally:
        c.close()
