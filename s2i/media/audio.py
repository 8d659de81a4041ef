"""Audio: decoded frames of any format to mono float32 at a target rate, :func:`read_audio`, the
window grid (:func:`audio_window_starts`) and streaming windows (:func:`iter_audio_windows`),
:func:`read_audio_track` (the track as it is heard, to write it again) and :func:`encode_audio`
for writers."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from s2i.media.common import (
    SR,
    MediaError,
    NonFiniteAudio,
    _check_path,
    _check_riff_size,
    _check_truncated,
    _is_pcm_wav,
    _open,
    _seconds,
    decoding,
)

# --------------------------------------------------------------------------------------------
# resample + downmix, robust to mid-stream format changes
# --------------------------------------------------------------------------------------------


_SCALE = {"flt": None, "fltp": None, "s16": 1.0 / 32768, "s16p": 1.0 / 32768}  # as libswresample converts


class _MonoAudio:
    """Turns decoded AudioFrames of any format/layout/rate into mono float32 chunks at ``sr``.

    Frames of 16-bit or float samples with one or two channels (what WAV, FLAC and the AAC,
    MP3, Vorbis and Opus decoders give) are converted in numpy exactly as libswresample converts
    them (a float kept, a 16-bit integer scaled by 2**-15), gathered into blocks of at least
    ``block`` samples, averaged over the channels, and only then resampled to ``sr`` by
    libswresample (one call per block, one channel). Other frames (more channels, other sample
    formats) are resampled channel by channel by libswresample and then averaged. Averaging
    before resampling differs from averaging after it only by float rounding; at ``sr`` already
    nothing is resampled. The resampler's output is *packed* float (``flt``: one plane, channels
    interleaved), never planar: PyAV reads a planar frame of eight or more channels past its
    plane pointers (``AVFrame.data`` holds eight; the rest are in ``extended_data``), which
    crashes the process. Timestamps are dropped, so the resampler works on sample counts. A
    change of format, layout or rate inside the stream flushes and restarts the conversion.
    Samples that are not finite raise :class:`NonFiniteAudio`: they would turn every later
    computation into NaN."""

    def __init__(self, sr: int, block: int = 16384):
        self.sr = int(sr)
        self.block = int(block)
        self._res = None  # the resampler: mono flt at self._rate, or the frames' own format
        self._key = None
        self._rate = None
        self._buf: list[np.ndarray] = []  # (samples, channels) float32 at self._rate
        self._buffered = 0

    @staticmethod
    def _mean(x: np.ndarray) -> np.ndarray:
        m = x[:, 0].astype(np.float32, copy=True) if x.shape[1] == 1 else x.mean(axis=1, dtype=np.float32)
        if not np.isfinite(m).all():
            raise NonFiniteAudio("audio samples are not finite (NaN or infinite values)")
        return m

    def _resample(self, frames) -> list[np.ndarray]:
        """Mono chunks of the resampler's packed float output frames."""
        out = []
        for fr in frames:
            x = fr.to_ndarray().reshape(-1, len(fr.layout.channels))  # flt: (1, samples * channels)
            if len(x):
                out.append(self._mean(x))
        return out

    def _release(self) -> list[np.ndarray]:
        """Average the buffered block over its channels; resample it unless already at ``sr``."""
        if not self._buf:
            return []
        x = self._buf[0] if len(self._buf) == 1 else np.concatenate(self._buf)
        self._buf, self._buffered = [], 0
        m = self._mean(x)
        if self._rate == self.sr:
            return [m]
        if self._res is None:
            self._res = av.AudioResampler(format="flt", layout="mono", rate=self.sr)
        fr = av.AudioFrame.from_ndarray(m[None], format="flt", layout="mono")
        fr.sample_rate = self._rate
        return self._resample(self._res.resample(fr))

    def push(self, frame) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        fmt, channels = frame.format.name, len(frame.layout.channels)
        key = (fmt, frame.layout.name, frame.sample_rate)
        if self._key is not None and key != self._key:
            out += self.flush()
        self._key = key
        if fmt in _SCALE and channels <= 2:
            self._rate = frame.sample_rate
            x = frame.to_ndarray()  # planar: (channels, samples); packed: (1, samples * channels)
            x = x.T if frame.format.is_planar else x.reshape(-1, channels)
            scale = _SCALE[fmt]
            x = x.astype(np.float32) * np.float32(scale) if scale is not None else x.astype(np.float32, copy=False)
            if len(x):
                self._buf.append(x)
                self._buffered += len(x)
            return out + (self._release() if self._buffered >= self.block else [])
        if self._res is None:
            self._res = av.AudioResampler(format="flt", rate=self.sr)
        frame.pts = None  # resample on sample counts, not on possibly odd timestamps
        return out + self._resample(self._res.resample(frame))

    def flush(self) -> list[np.ndarray]:
        out = self._release()
        if self._res is not None:
            out += self._resample(self._res.resample(None))
        self._res, self._key, self._rate = None, None, None
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
# reading whole files
# --------------------------------------------------------------------------------------------


@contextmanager
def _first_audio_stream(path: str | os.PathLike) -> Iterator[tuple[Path, av.container.InputContainer, av.AudioStream]]:
    """``(path, container, its first audio stream)``, decoded under :func:`decoding` (errors name the
    file; the container is closed at the end); :class:`MediaError` when there is no audio stream."""
    path = Path(path)
    c = _open(path)
    with decoding(path, c, " audio"):
        if not c.streams.audio:
            raise MediaError(f"{path}: no audio stream")
        yield path, c, c.streams.audio[0]


def _read_wav_at(path: Path, sr: int) -> np.ndarray | None:
    """A 16-bit or float WAV already at ``sr``, read whole by libsndfile (a few times faster than
    decoding it packet by packet; the samples are the same to the bit: 16-bit scaled by 2**-15,
    floats kept); None for anything else, or when libsndfile cannot read it (FFmpeg then decodes
    it and reports what is wrong)."""
    import soundfile as sf

    _check_path(path)
    _check_riff_size(path)
    if not _is_pcm_wav(path):
        return None
    try:
        with sf.SoundFile(str(path)) as f:
            if f.samplerate != sr or f.subtype not in ("PCM_16", "FLOAT") or f.frames == 0:
                return None
            x = f.read(dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError):
        return None
    m = x[:, 0].copy() if x.shape[1] == 1 else x.mean(axis=1, dtype=np.float32)
    if not np.isfinite(m).all():
        raise MediaError(f"{path}: audio samples are not finite (NaN or infinite values)")
    return m


def read_audio(path: str | os.PathLike, sr: int = SR) -> np.ndarray:
    """Decode the first audio stream of any file PyAV reads (wav 8/16/24/32-bit and float,
    flac, mp3, ogg/vorbis, opus, m4a/aac, the audio track of a video) to mono float32 at
    ``sr``. Its length is the stream's duration times ``sr`` within one codec frame.
    Raises :class:`MediaError` (missing, corrupt or truncated file, no audio stream, no samples,
    samples that are not finite)."""
    wav = _read_wav_at(Path(path), sr)
    if wav is not None:
        return wav
    with _first_audio_stream(path) as (path, c, st):
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


AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)


def read_audio_track(path: str | os.PathLike) -> tuple[np.ndarray, int, float]:
    """The first audio stream of a file as it is heard, to be written again (e.g. as the audio of
    an edited video): ``(audio, sr, start)``.

    ``audio`` is float32 (C, S): mono stays mono, everything else becomes stereo (more than two
    channels are downmixed by libswresample); ``sr`` is the stream's own sample rate, or 48 kHz
    where AAC cannot store it (:data:`AAC_RATES`); ``start`` is the time of its first sample in
    the file's timestamps, in seconds (0 when unknown). AAC tail padding of MP4/MOV files is cut,
    as in :func:`read_audio`. Raises :class:`MediaError` like :func:`read_audio`."""
    with _first_audio_stream(path) as (path, c, st):
        rate = int(st.codec_context.sample_rate or 0)
        sr = rate if rate in AAC_RATES else 48000
        layout = "mono" if st.codec_context.channels == 1 else "stereo"
        channels = 1 if layout == "mono" else 2
        chunks: list[np.ndarray] = []
        start, res, key = None, None, None

        def take(frames) -> None:  # packed float (see _MonoAudio): (1, S * C) -> (S, C)
            for fr in frames:
                chunks.append(fr.to_ndarray().reshape(-1, channels).astype(np.float32, copy=False))

        for pkt in c.demux(st):
            for fr in pkt.decode():
                if start is None and fr.time is not None:
                    start = float(fr.time)
                k = (fr.format.name, fr.layout.name, fr.sample_rate)
                if res is not None and k != key:  # a format change mid-stream: flush, restart
                    take(res.resample(None))
                    res = None
                if res is None:
                    res, key = av.AudioResampler(format="flt", layout=layout, rate=sr), k
                fr.pts = None
                take(res.resample(fr))
        if res is not None:
            take(res.resample(None))
        audio = np.concatenate(chunks) if chunks else np.zeros((0, channels), np.float32)
        if not np.isfinite(audio).all():
            raise NonFiniteAudio("audio samples are not finite (NaN or infinite values)")
        _check_truncated(path, c, {st: len(audio) / sr})
        if not len(audio):
            raise MediaError(f"{path}: no audio samples (the audio stream is empty)")
        audio = _trim_mov_padding(c, st, audio, sr)  # along the first axis: samples
        return np.ascontiguousarray(audio.T), sr, start or 0.0


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
    sr: int = SR,
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

    with decoding(path, c, " audio"):
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
