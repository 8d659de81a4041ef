"""A tiny corpus of real-format videos, laid out like a VGGSound download, for CI: it lets the
real-video pipeline (corpus scan, frame sampling, sharded extraction, alignment) run end to end
with tiny random models in seconds, on files that look like the ones real downloads give.

:func:`make_video_corpus` writes into ``out_dir`` (file names ``{youtube_id}_{start:06d}.ext``,
ids from ``[A-Za-z0-9_-]``, one starting with ``-``):

Usable clips (``n_good``; class ``i % 3`` of :data:`CLASSES`): the picture is the class's shape
(circle / square / triangle) moving over a per-clip gradient, the sound is the class's pattern
(decaying bell partials / gated two-tone horn / bursts of filtered noise), so sound and picture
correlate. Stereo (right = delayed, quieter left + a little noise); the audio lasts ``seconds``, the
video too (within one frame: 90 frames at 29.97 fps are 3.003 s; the variable-rate clip ends <0.1 s early).
Clip ``i`` takes row ``i`` of :data:`FORMATS` (then cycles over the first three rows):

0. H.264 + AAC 44.1 kHz, 25 fps, 4:3 (``.mp4``)   -- the common case
1. H.264 + AAC 48 kHz, 30 fps, 16:9               -- the other audio rate
2. H.264 + AAC 48 kHz, 30000/1001 fps, 16:9       -- NTSC rate, non-integer frame times
3. H.264 + AAC 44.1 kHz, 8 fps, 4:3               -- fewer frames than a sampler may ask for
4. H.264 + AAC 44.1 kHz, variable frame rate      -- irregular pts (1/1000 time base, 20..90 ms gaps)
5. H.264 + AAC 48 kHz, 30 fps, portrait 9:16      -- height > width
6. VP8 + Vorbis 44.1 kHz, 25 fps, 4:3 (``.mkv``)  -- Matroska: no per-stream durations
7. VP9 + Opus 48 kHz, 30 fps, 16:9 (``.webm``)    -- WebM as yt-dlp downloads it

A missing VP8/VP9/Vorbis/Opus encoder makes that clip an H.264 + AAC ``.mp4`` (see ``formats``).

Unusable files (all ``.mp4``, listed in ``broken``): no audio stream; audio only (no video
stream); truncated (a good file cut to 40 % of its bytes, header intact, so only decoding finds
it); empty (0 bytes); not a video (the text of an HTML error page).

``vggsound.csv``: VGGSound's format -- no header, rows ``youtube_id,start_seconds,label,split``,
split ``train``/``test``, labels with commas quoted by :mod:`csv` -- listing the usable clips,
the unusable files and one clip that is not on disk (``missing``: a failed download).

Determinism: single-threaded encoders, x264 without mbtree, bit-exact muxing: the same
arguments give byte-identical files (checked with this PyAV build; across FFmpeg versions
only the decoded content is expected to agree). Every file is written to a temporary name
and renamed, so a killed run leaves no half file that looks complete.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from s2i.media import encode_audio
from s2i.utils import atomic_path

# VGGSound-style labels; one has commas, so the manifest must quote it
CLASSES = ("church bell ringing", "vehicle horn, car horn, honking", "dog barking")
SHAPES = ("circle", "square", "triangle")  # picture of class k

# (extension, video encoder, audio encoder, fps or None = variable, (width, height), audio rate)
FORMATS: list[tuple[str, str, str, Fraction | None, tuple[int, int], int]] = [
    ("mp4", "libx264", "aac", Fraction(25), (128, 96), 44100),
    ("mp4", "libx264", "aac", Fraction(30), (160, 90), 48000),
    ("mp4", "libx264", "aac", Fraction(30000, 1001), (128, 72), 48000),
    ("mp4", "libx264", "aac", Fraction(8), (96, 72), 44100),
    ("mp4", "libx264", "aac", None, (128, 72), 44100),
    ("mp4", "libx264", "aac", Fraction(30), (72, 128), 48000),
    ("mkv", "libvpx", "vorbis", Fraction(25), (128, 96), 44100),
    ("webm", "libvpx-vp9", "libopus", Fraction(30), (160, 90), 48000),
]
_MUXER = {"mp4": "mp4", "mkv": "matroska", "webm": "webm"}
_BITEXACT = {"flags": "+bitexact", "threads": "1"}
_VOPTS = {
    "libx264": {"crf": "23", "preset": "fast", "x264-params": "mbtree=0", "threads": "1"},
    "libvpx": {"deadline": "realtime", "cpu-used": "8", "b": "100k", "threads": "1"},
    "libvpx-vp9": {"deadline": "realtime", "cpu-used": "8", "crf": "35", "b": "0", "threads": "1"},
}
# native Vorbis is experimental; its quality is global_quality / 118 (default 8: ~300 kbit/s)
_AOPTS = {
    "aac": {"b": "64k"},
    "vorbis": {"strict": "experimental", "flags": "+bitexact+qscale", "global_quality": "354"},  # quality 3
    "libopus": {"b": "48k"},
}
_HTML = b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>\n<body>Video unavailable</body></html>\n"


def _has_encoder(name: str) -> bool:
    try:
        av.Codec(name, "w")
    except (av.FFmpegError, ValueError):
        return False
    return True


def youtube_id(seed: int, i: int) -> str:
    """A deterministic 11-character YouTube-like id (``[A-Za-z0-9_-]``) for clip ``i``."""
    digest = hashlib.sha256(f"s2i-synth:{seed}:{i}".encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()[:11]


def clip_audio(cls: int, seconds: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """(2, round(seconds * sr)) float32 stereo sound of class ``cls``."""
    t = np.arange(int(round(seconds * sr))) / sr
    f0 = rng.uniform(0.93, 1.07)
    if cls == 0:  # bell: inharmonic partials decaying every 0.5 s
        x = sum(np.sin(2 * np.pi * 660 * f0 * k * t) / k for k in (1.0, 2.76, 5.4)) * np.exp(-8 * (t % 0.5))
    elif cls == 1:  # horn: two buzzy tones, on 70 % of each second
        x = np.tanh(3 * np.sin(2 * np.pi * 415 * f0 * t)) + 0.6 * np.tanh(3 * np.sin(2 * np.pi * 523 * f0 * t))
        x = 0.6 * x * ((t % 1.0) < 0.7)
    else:  # dog: bursts of low-passed noise, 0.12 s every 0.45 s
        noise = np.convolve(rng.standard_normal(len(t)), np.ones(6) / 2.5, mode="same")
        ph = t % (0.45 * f0)
        x = noise * np.where(ph < 0.12, np.sin(np.pi * np.minimum(ph, 0.12) / 0.12), 0.0)
    x = 0.5 * x / max(float(np.abs(x).max()), 1e-6)
    d = int(rng.integers(5, 30))  # the right channel: later, quieter, with its own hiss
    right = 0.85 * np.concatenate([np.zeros(d), x[:-d]]) + 0.01 * rng.standard_normal(len(t))
    return np.stack([x, right]).astype(np.float32)


def clip_frames(cls: int, times: np.ndarray, seconds: float, size: tuple[int, int], rng) -> np.ndarray:
    """(T, H, W, 3) uint8: the class's shape crossing a gradient at ``times`` (seconds)."""
    w, h = size
    c0, c1, fg = rng.integers(0, 256, 3), rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    u = np.linspace(0.0, 1.0, w)[None, :, None]
    bg = (c0 * (1 - u) + c1 * u).astype(np.uint8)  # (1, W, 3)
    r = 0.22 * min(w, h)
    p = np.asarray(times, np.float64)[:, None, None] / seconds
    cx, cy = r + p * (w - 2 * r), h / 2 + 0.2 * h * np.sin(2 * np.pi * p + rng.uniform(0, 6.3))
    yy, xx = np.arange(h)[None, :, None], np.arange(w)[None, None, :]
    if cls == 0:
        mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    elif cls == 1:
        mask = (np.abs(xx - cx) <= r) & (np.abs(yy - cy) <= r)
    else:
        dy = yy - (cy - r)
        mask = (dy >= 0) & (dy <= 2 * r) & (np.abs(xx - cx) <= dy / 2)
    frames = np.broadcast_to(bg, (len(times), h, w, 3)).copy()
    frames[mask] = fg
    return frames


def _vfr_pts(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Irregular frame times in milliseconds (gaps of 20..90 ms, as phones and screen captures do)."""
    gaps = rng.choice([20, 33, 40, 50, 67, 90], size=int(seconds * 60))
    pts = np.concatenate([[0], np.cumsum(gaps)])
    return pts[pts <= seconds * 1000 - 45]


def _write(path: Path, ext: str, video, audio, keep: float = 1.0) -> None:
    """Encode ``video = (encoder, frames, pts, time_base, rate)`` and ``audio = (encoder, (2, S), sr)``
    (either may be None) into ``path`` atomically; ``keep < 1`` cuts the result to that share."""
    opts = {"fflags": "+bitexact"} | ({"movflags": "+faststart"} if ext == "mp4" else {})
    with atomic_path(path) as tmp:
        with av.open(str(tmp), mode="w", format=_MUXER[ext], options=opts) as c:
            vs = as_ = None
            if video is not None:
                enc, frames, pts, tb, rate = video
                vs = c.add_stream(enc, rate=rate, options=_VOPTS[enc])
                vs.height, vs.width = frames.shape[1:3]
                vs.pix_fmt, vs.codec_context.time_base = "yuv420p", tb
            if audio is not None:
                enc, samples, sr = audio
                as_ = c.add_stream(enc, rate=sr, layout="stereo", options=_BITEXACT | _AOPTS[enc])
            if vs is not None:
                for img, p in zip(frames, pts):
                    fr = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p", threads=1)
                    fr.pts, fr.time_base = int(p), tb
                    for pkt in vs.encode(fr):
                        c.mux(pkt)
                for pkt in vs.encode():
                    c.mux(pkt)
            if as_ is not None:
                encode_audio(c, as_, [samples], sr, hop=1024)
        if keep < 1:
            os.truncate(tmp, int(tmp.stat().st_size * keep))


def _write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def make_video_corpus(out_dir, n_good: int = 12, seconds: float = 3.0, seed: int = 0) -> dict:
    """Write the corpus described in the module docstring into ``out_dir`` (created).

    Returns ``{"videos": [usable clip file names], "manifest": "vggsound.csv", "broken": {file
    name: what is wrong}, "missing": file name listed in the manifest but not written,
    "labels": {file name: label}, "formats": {usable file name: (video codec, audio codec, fps
    or None for variable, (width, height), sample rate)}}``; file names are relative to ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ids = [youtube_id(seed, i) for i in range(n_good + 6)]
    ids[1] = "-" + ids[1][1:]  # real ids may start with '-' (a trap for command lines)
    starts = [int(s) for s in rng.integers(0, 300, len(ids))]
    name = lambda i, ext="mp4": f"{ids[i]}_{starts[i]:06d}.{ext}"
    have = {enc: _has_encoder(enc) for enc in ("libx264", "aac", "libvpx", "libvpx-vp9", "vorbis", "libopus")}
    videos, formats, labels, rows = [], {}, {}, []

    def clip(i: int, fmt) -> tuple:
        ext, venc, aenc, fps, size, sr = fmt
        if not (have[venc] and have[aenc]):
            ext, venc, aenc = "mp4", "libx264", "aac"
        if fps is None:
            pts, tb = _vfr_pts(seconds, rng), Fraction(1, 1000)
            times = pts / 1000.0
        else:
            pts, tb = np.arange(int(round(seconds * fps))), 1 / fps
            times = pts * float(tb)
        cls = i % len(CLASSES)
        video = (venc, clip_frames(cls, times, seconds, size, rng), pts, tb, fps or Fraction(25))  # nominal if variable
        return ext, video, (aenc, clip_audio(cls, seconds, sr, rng), sr), (venc, aenc, fps, size, sr)

    for i in range(n_good):
        fmt = FORMATS[i] if i < len(FORMATS) else FORMATS[(i - len(FORMATS)) % 3]
        ext, video, audio, desc = clip(i, fmt)
        _write(out / name(i, ext), ext, video, audio)
        videos.append(name(i, ext))
        formats[name(i, ext)] = desc
    b = n_good  # the unusable files, then the missing one
    _, video, audio, _ = clip(b, FORMATS[0])
    _write(out / name(b), "mp4", video, None)
    _write(out / name(b + 1), "mp4", None, audio)
    _write(out / name(b + 2), "mp4", video, audio, keep=0.4)
    _write_bytes(out / name(b + 3), b"")
    _write_bytes(out / name(b + 4), _HTML)
    broken = {
        name(b): "no audio stream",
        name(b + 1): "audio only: no video stream",
        name(b + 2): "truncated: cut to 40 % of its bytes",
        name(b + 3): "empty file (0 bytes)",
        name(b + 4): "not a video: an HTML error page",
    }
    for i in range(n_good + 6):
        label = CLASSES[i % len(CLASSES)]
        rows.append([ids[i], starts[i], label, "test" if i % 4 == 3 else "train"])
        labels[videos[i] if i < n_good else name(i)] = label
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    _write_bytes(out / "vggsound.csv", text.getvalue().encode())
    return {
        "videos": videos,
        "manifest": "vggsound.csv",
        "broken": broken,
        "missing": name(n_good + 5),
        "labels": labels,
        "formats": formats,
    }
