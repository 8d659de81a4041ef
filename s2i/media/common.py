"""What every reader shares: :class:`MediaError` and its ``"path: reason"`` messages, opening a
file with its checks (missing, empty, cut-off RIFF/WAVE), truncation against the stated durations,
stream choice (cover pictures left out) and :func:`probe`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import av

SR = 16000  # Hz: every sound is read at this rate, the rate the audio encoder hears


class MediaError(RuntimeError):
    """A file could not be decoded; the message names the file and the reason."""


class NonFiniteAudio(ValueError):
    """Decoded samples that are NaN or infinite (raised without the path; callers add it)."""


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


@contextmanager
def decoding(path: Path, container, what: str = "") -> Iterator[None]:
    """Decode from an open ``container``: any error becomes one :class:`MediaError` naming
    ``path`` (``what``: e.g. ``" audio"``), and the container is closed whatever happens."""
    try:
        yield
    except MediaError:
        raise
    except NonFiniteAudio as e:
        raise MediaError(f"{path}: {e}") from None
    except _AV_ERRORS as e:
        raise MediaError(f"{path}: cannot decode{what} (corrupt or unsupported data): {_reason(e)}") from None
    finally:
        container.close()


def _check_path(path: Path) -> None:
    if not path.exists():
        raise MediaError(f"{path}: file not found")
    if not path.is_file():
        raise MediaError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise MediaError(f"{path}: empty file (0 bytes)")


def _is_pcm_wav(path: Path) -> bool:
    """A RIFF/WAVE file whose first chunk is a ``fmt `` chunk of PCM, IEEE float or extensible
    samples: everything FFmpeg needs is in that header, so it is opened without probing."""
    try:
        with open(path, "rb") as f:
            head = f.read(22)
    except OSError:
        return False
    return (
        len(head) == 22
        and head[:4] == b"RIFF"
        and head[8:16] == b"WAVEfmt "
        and int.from_bytes(head[20:22], "little") in (1, 3, 0xFFFE)
    )


def _open(path: Path, check_riff: bool = True):
    """Open ``path`` for reading or raise MediaError. PCM WAVs skip FFmpeg's format probing
    (about 3 ms a file; their header says everything)."""
    _check_path(path)
    if check_riff:
        _check_riff_size(path)
    quick = dict(format="wav", options={"probesize": "2048"}) if _is_pcm_wav(path) else {}
    try:
        return av.open(str(path), mode="r", metadata_errors="ignore", **quick)
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
