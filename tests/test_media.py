"""s2i.media: decoding real-world-ish files (made here with PyAV), streaming windows, probing,
errors. Every test file is generated inside ``tmp_path``; the whole module runs in seconds."""

from __future__ import annotations

import tracemalloc
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from s2i.media import (
    MediaError,
    Video,
    audio_window_starts,
    iter_audio_windows,
    probe,
    read_audio,
    read_video,
    read_videos_skipping,
    square_resize,
    write_video,
)

SR = 16000  # target rate of all reads

# --------------------------------------------------------------------------------------------
# generators
# --------------------------------------------------------------------------------------------


def tones(sr: int, n: int, freqs, amps) -> np.ndarray:
    """(C, n) float32: channel c is a sine at freqs[c] with amplitude amps[c]."""
    t = np.arange(n) / sr
    return np.stack([a * np.sin(2 * np.pi * f * t) for f, a in zip(freqs, amps)]).astype(np.float32)


def pattern(i: int, h: int, w: int) -> np.ndarray:
    """A smooth RGB frame whose content moves with i (compresses well, differs per frame)."""
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([(x * 255 // max(w - 1, 1)), (y * 255 // max(h - 1, 1)), np.full_like(x, (i * 16) % 256)], -1)
    return img.astype(np.uint8)


def _audio_packets(st, data: np.ndarray, sr: int, chunk: int = 1000) -> list:
    out = []
    for s in range(0, data.shape[1], chunk):
        fr = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(data[:, s : s + chunk]), format="fltp", layout=st.layout.name
        )
        fr.sample_rate, fr.pts, fr.time_base = sr, s, Fraction(1, sr)
        out += st.encode(fr)
    return out + st.encode()


def _mux_interleaved(c, packets) -> None:
    """Mux packets of several streams in decode-time order (as real files are interleaved)."""

    def key(p):
        t = p.dts if p.dts is not None else (p.pts or 0)
        return float(t * p.time_base) if p.time_base else 0.0

    for p in sorted(packets, key=key):
        c.mux(p)


def make_audio(
    path: Path,
    fmt: str,
    codec: str,
    sr: int,
    channels: int = 1,
    dur: float = 1.0,
    freqs=(440.0, 1000.0),
    amps=(0.5, 0.3),
    options=None,
) -> np.ndarray:
    """Write an audio-only file; return the (C, n) float signal that was encoded."""
    data = tones(sr, int(round(dur * sr)), freqs[:channels], amps[:channels])
    with av.open(str(path), "w", format=fmt) as c:
        st = c.add_stream(codec, rate=sr, layout="mono" if channels == 1 else "stereo", options=options or {})
        _mux_interleaved(c, _audio_packets(st, data, sr))
    return data


def make_video(
    path: Path,
    *,
    fmt: str,
    vcodec: str,
    w: int,
    h: int,
    rate,
    n_frames: int,
    pix_fmt: str = "yuv420p",
    voptions=None,
    acodec: str | None = None,
    a_sr: int = 16000,
    a_ch: int = 1,
    freqs=(440.0, 1000.0),
    amps=(0.5, 0.3),
    aoptions=None,
    rotation: float | None = None,
) -> np.ndarray | None:
    """Write a video (optionally with audio lasting exactly as long as the video)."""
    rate = Fraction(rate)
    dur = n_frames / rate
    data = None
    with av.open(str(path), "w", format=fmt) as c:
        vs = c.add_stream(vcodec, rate=rate, options=voptions or {})
        vs.width, vs.height, vs.pix_fmt = w, h, pix_fmt
        if rotation is not None:
            vs.set_display_rotation(rotation)
        ast = None
        if acodec is not None:
            ast = c.add_stream(acodec, rate=a_sr, layout="mono" if a_ch == 1 else "stereo", options=aoptions or {})
        packets = []
        for i in range(n_frames):
            fr = av.VideoFrame.from_ndarray(pattern(i, h, w), format="rgb24")
            fr.pts = i
            fr.time_base = 1 / rate
            packets += vs.encode(fr)
        packets += vs.encode()
        if ast is not None:
            data = tones(a_sr, int(round(float(dur) * a_sr)), freqs[:a_ch], amps[:a_ch])
            packets += _audio_packets(ast, data, a_sr)
        _mux_interleaved(c, packets)
    return data


def peak_hz(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(spec)])


def tone_amp(x: np.ndarray, sr: int, f: float) -> float:
    """Amplitude of the sine at f in x (least-squares fit of sin + cos at f)."""
    t = np.arange(len(x)) / sr
    basis = np.stack([np.sin(2 * np.pi * f * t), np.cos(2 * np.pi * f * t)], 1)
    coef, *_ = np.linalg.lstsq(basis, x.astype(np.float64), rcond=None)
    return float(np.hypot(*coef))


def has_encoder(name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
        return True
    except Exception:
        return False


def vorbis_encoder() -> tuple[str, dict] | None:
    """libvorbis if the wheel has it, else FFmpeg's native (experimental, stereo-only) one."""
    if has_encoder("libvorbis"):
        return "libvorbis", {}
    if has_encoder("vorbis"):
        return "vorbis", {"strict": "experimental"}
    return None


# codec frame (samples at the source rate) = allowed length slack from padding/priming
CODEC_FRAME = {
    "aac": 1024,
    "libopus": 960,
    "mp3": 1152,
    "libmp3lame": 1152,
    "vorbis": 2048,
    "libvorbis": 2048,
    "flac": 0,
    "pcm_s16le": 0,
    "pcm_u8": 0,
    "pcm_s24le": 0,
    "pcm_f32le": 0,
}


def len_tol(codec: str, src_sr: int) -> int:
    """Allowed |len(audio) - duration * SR| in samples at SR: one codec frame + resampler slack."""
    return int(np.ceil(CODEC_FRAME[codec] * SR / src_sr)) + 8


def check_tones(x: np.ndarray, channels: int, lossless: bool) -> None:
    """Mono input -> the 440 Hz peak; stereo (440 Hz left at 0.5, 1000 Hz right at 0.3) ->
    the average of the channels: 440 Hz at 0.25 and 1000 Hz at 0.15."""
    x = x[: (len(x) // 2) * 2]
    if channels == 1:
        assert abs(peak_hz(x, SR) - 440.0) <= 2.0
        assert tone_amp(x, SR, 440.0) == pytest.approx(0.5, rel=0.03 if lossless else 0.2)
    else:
        rel = 0.03 if lossless else 0.2
        assert tone_amp(x, SR, 440.0) == pytest.approx(0.25, rel=rel)
        assert tone_amp(x, SR, 1000.0) == pytest.approx(0.15, rel=rel)
        assert abs(peak_hz(x, SR) - 440.0) <= 2.0


# --------------------------------------------------------------------------------------------
# videos of many shapes
# --------------------------------------------------------------------------------------------

FAST_VP9 = {"deadline": "realtime", "cpu-used": "8"}
VIDEO_CASES = {
    # id: (file name, make_video kwargs)
    "h264-aac-64x48-8fps-8k-mono": (
        "a.mp4",
        dict(fmt="mp4", vcodec="libx264", w=64, h=48, rate=8, n_frames=12, acodec="aac", a_sr=8000, a_ch=1),
    ),
    "h264-aac-320x240-12.5fps-22k-stereo": (
        "b.mp4",
        dict(
            fmt="mp4",
            vcodec="libx264",
            w=320,
            h=240,
            rate=Fraction(25, 2),
            n_frames=20,
            acodec="aac",
            a_sr=22050,
            a_ch=2,
        ),
    ),
    "h264-aac-160x120-29.97fps-44k-mono": (
        "c.mp4",
        dict(
            fmt="mp4",
            vcodec="libx264",
            w=160,
            h=120,
            rate=Fraction(30000, 1001),
            n_frames=45,
            acodec="aac",
            a_sr=44100,
            a_ch=1,
        ),
    ),
    "vp9-opus-webm-96x64-25fps-48k-stereo": (
        "d.webm",
        dict(
            fmt="webm",
            vcodec="libvpx-vp9",
            w=96,
            h=64,
            rate=25,
            n_frames=25,
            voptions=FAST_VP9,
            acodec="libopus",
            a_sr=48000,
            a_ch=2,
        ),
    ),
    "ffv1-pcm-mkv-odd-33x31-25fps-48k-stereo": (
        "e.mkv",
        dict(
            fmt="matroska",
            vcodec="ffv1",
            w=33,
            h=31,
            rate=25,
            n_frames=25,
            pix_fmt="yuv444p",
            acodec="pcm_s16le",
            a_sr=48000,
            a_ch=2,
        ),
    ),
    "mpeg4-pcm-avi-64x48-25fps-22k-mono": (
        "f.avi",
        dict(fmt="avi", vcodec="mpeg4", w=64, h=48, rate=25, n_frames=25, acodec="pcm_s16le", a_sr=22050, a_ch=1),
    ),
    "h264-flac-mkv-64x48-29.97fps-44k-mono": (
        "g.mkv",
        dict(
            fmt="matroska",
            vcodec="libx264",
            w=64,
            h=48,
            rate=Fraction(30000, 1001),
            n_frames=30,
            acodec="flac",
            a_sr=44100,
            a_ch=1,
        ),
    ),
}
LOSSLESS_AUDIO = {"pcm_s16le", "flac"}
LOSSLESS_VIDEO = {"ffv1"}


@pytest.mark.parametrize("case", list(VIDEO_CASES))
def test_read_video_many_formats(tmp_path, case):
    name, kw = VIDEO_CASES[case]
    path = tmp_path / name
    make_video(path, **kw)
    rate, n, w, h = Fraction(kw["rate"]), kw["n_frames"], kw["w"], kw["h"]
    dur = float(n / rate)

    v = read_video(path, sr=SR)
    assert isinstance(v, Video) and v.path == str(path)
    # frames: RGB uint8, count ~ fps * duration, the right content in the right order
    assert v.frames.dtype == np.uint8 and v.frames.shape[1:] == (h, w, 3)
    assert abs(len(v.frames) - n) <= 1
    tol_px = 1.0 if kw["vcodec"] in LOSSLESS_VIDEO else 12.0
    for i in (0, len(v.frames) // 2, len(v.frames) - 1):
        err = np.abs(v.frames[i].astype(np.int16) - pattern(i, h, w).astype(np.int16)).mean()
        assert err < tol_px, (i, err)
    # times: start at 0, strictly increasing, one frame apart (Matroska rounds to 1 ms)
    assert v.times.dtype == np.float64 and len(v.times) == len(v.frames)
    assert v.times[0] == pytest.approx(0.0, abs=1e-6)
    assert np.all(np.diff(v.times) > 0)
    np.testing.assert_allclose(np.diff(v.times), 1 / float(rate), atol=2e-3)
    assert v.fps == pytest.approx(float(rate), rel=1e-3)
    assert v.duration == pytest.approx(dur, abs=3e-3)
    # audio: mono float32 at SR, as long as the video within one codec frame, tones kept
    assert v.sr == SR and v.audio.dtype == np.float32 and v.audio.ndim == 1
    assert abs(len(v.audio) - v.duration * SR) <= len_tol(kw["acodec"], kw["a_sr"]), len(v.audio)
    check_tones(v.audio[: int(dur * SR)], kw["a_ch"], kw["acodec"] in LOSSLESS_AUDIO)

    info = probe(path)
    vi, ai = info["video"], info["audio"]
    assert vi["width"] == w and vi["height"] == h
    assert vi["fps"] == pytest.approx(float(rate), rel=1e-3)
    assert ai["sample_rate"] == kw["a_sr"] and ai["channels"] == kw["a_ch"]
    assert info["duration"] == pytest.approx(dur, abs=0.1)
    assert [s["type"] for s in info["streams"]] == ["video", "audio"]


def test_read_video_size_crops_and_resizes(tmp_path):
    path = tmp_path / "wide.mp4"
    make_video(path, fmt="mp4", vcodec="libx264", w=320, h=240, rate=25, n_frames=6, acodec="aac", a_sr=16000)
    full = read_video(path, sr=SR)
    small = read_video(path, sr=SR, size=32)
    assert small.frames.shape == (6, 32, 32, 3) and small.frames.dtype == np.uint8
    ref = np.stack([square_resize(f, 32) for f in full.frames])
    assert np.abs(small.frames.astype(int) - ref.astype(int)).mean() < 3.0
    np.testing.assert_array_equal(small.times, full.times)
    np.testing.assert_array_equal(small.audio, full.audio)
    up = read_video(path, sr=SR, size=300)  # upscaling path
    assert up.frames.shape == (6, 300, 300, 3)


def test_read_video_applies_display_rotation(tmp_path):
    path = tmp_path / "rot.mp4"
    make_video(path, fmt="mp4", vcodec="libx264", w=64, h=48, rate=25, n_frames=3, rotation=90)
    v = read_video(path, need_audio=False)
    assert v.frames.shape == (3, 64, 48, 3)
    want = np.rot90(pattern(0, 48, 64), k=1)
    assert np.abs(v.frames[0].astype(int) - want.astype(int)).mean() < 12


def test_video_audio_share_one_clock_when_audio_starts_late(tmp_path):
    """An audio track starting 0.5 s after the video is padded so audio[k] plays at k / sr."""
    path = tmp_path / "late.mkv"
    rate, n, a_sr = 25, 50, 16000
    with av.open(str(path), "w", format="matroska") as c:
        vs = c.add_stream("libx264", rate=rate)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        ast = c.add_stream("pcm_s16le", rate=a_sr, layout="mono")
        packets = []
        for i in range(n):
            fr = av.VideoFrame.from_ndarray(pattern(i, 48, 64), format="rgb24")
            fr.pts, fr.time_base = i, Fraction(1, rate)
            packets += vs.encode(fr)
        packets += vs.encode()
        data = tones(a_sr, int(1.5 * a_sr), [440.0], [0.5])
        for s in range(0, data.shape[1], 1000):
            fr = av.AudioFrame.from_ndarray(np.ascontiguousarray(data[:, s : s + 1000]), format="fltp", layout="mono")
            fr.sample_rate, fr.pts, fr.time_base = a_sr, s + a_sr // 2, Fraction(1, a_sr)
            packets += ast.encode(fr)
        packets += ast.encode()
        _mux_interleaved(c, packets)
    v = read_video(path, sr=SR)
    assert v.times[0] == pytest.approx(0.0, abs=1e-6)
    lead = np.abs(v.audio[: SR // 2 - 16]).max()
    assert lead < 1e-3  # silence until the audio track starts
    assert np.abs(v.audio[SR // 2 + 16 : SR]).max() > 0.4
    assert len(v.audio) == pytest.approx(2.0 * SR, abs=16)


# --------------------------------------------------------------------------------------------
# audio formats
# --------------------------------------------------------------------------------------------


def _audio_cases():
    vorbis = vorbis_encoder()
    mp3 = "libmp3lame" if "libmp3lame" in av.codecs_available else None
    cases = [
        pytest.param("wav", "pcm_u8", 8000, 1, {}, ".wav", id="wav-u8-8k-mono"),
        pytest.param("wav", "pcm_s16le", 22050, 2, {}, ".wav", id="wav-s16-22k-stereo"),
        pytest.param("wav", "pcm_s24le", 44100, 1, {}, ".wav", id="wav-s24-44k-mono"),
        pytest.param("wav", "pcm_f32le", 48000, 2, {}, ".wav", id="wav-f32-48k-stereo"),
        pytest.param("flac", "flac", 44100, 1, {}, ".flac", id="flac-44k-mono"),
        pytest.param(
            "mp3",
            mp3 or "libmp3lame",
            44100,
            2,
            {},
            ".mp3",
            id="mp3-44k-stereo",
            marks=pytest.mark.skipif(mp3 is None, reason="PyAV wheel has no libmp3lame"),
        ),
        # FFmpeg's native vorbis encoder (used when the wheel lacks libvorbis) only does stereo
        # and smears channels of different content: give it the same tone in both channels.
        pytest.param(
            "ogg",
            vorbis[0] if vorbis else "vorbis",
            44100,
            2,
            dict(vorbis[1] if vorbis else {}, same_channels=True),
            ".ogg",
            id="ogg-vorbis-44k-stereo",
            marks=pytest.mark.skipif(vorbis is None, reason="PyAV wheel has no vorbis encoder"),
        ),
        pytest.param(
            "ogg",
            "libopus",
            48000,
            1,
            {},
            ".opus",
            id="opus-48k-mono",
            marks=pytest.mark.skipif(not has_encoder("libopus"), reason="no libopus"),
        ),
        pytest.param("ipod", "aac", 44100, 2, {}, ".m4a", id="m4a-aac-44k-stereo"),
        pytest.param("ipod", "aac", 22050, 1, {}, ".m4a", id="m4a-aac-22k-mono"),
    ]
    return cases


@pytest.mark.parametrize("fmt,codec,sr,ch,opts,ext", _audio_cases())
def test_read_audio_formats(tmp_path, fmt, codec, sr, ch, opts, ext):
    path = tmp_path / f"tone{ext}"
    dur = 1.5
    opts = dict(opts)
    same = opts.pop("same_channels", False)
    make_audio(
        path, fmt, codec, sr, ch, dur=dur, options=opts, **(dict(freqs=(440.0, 440.0), amps=(0.5, 0.5)) if same else {})
    )
    x = read_audio(path, sr=SR)
    assert x.dtype == np.float32 and x.ndim == 1
    assert abs(len(x) - dur * SR) <= len_tol(codec, sr), len(x)
    lossless = codec.startswith("pcm") or codec == "flac"
    check_tones(x[: int(dur * SR)], 1 if same else ch, lossless)
    if lossless:  # exact within resampling error
        want = tones(SR, int(dur * SR), [440.0, 1000.0][:ch], [0.5, 0.3][:ch]).mean(0)
        tol = 0.02 if codec == "pcm_u8" else 2e-3
        assert np.abs(x[200:-200] - want[200:-200]).max() < tol
    info = probe(path)
    assert info["audio"]["sample_rate"] == sr and info["audio"]["channels"] == ch
    assert info["video"] is None
    assert info["audio"]["duration"] == pytest.approx(dur, abs=0.06)


def test_read_audio_of_a_video_and_other_rates(tmp_path):
    path = tmp_path / "v.mp4"
    make_video(path, fmt="mp4", vcodec="libx264", w=64, h=48, rate=25, n_frames=25, acodec="aac", a_sr=48000, a_ch=1)
    for sr in (8000, 16000, 44100):
        x = read_audio(path, sr=sr)
        assert abs(len(x) - sr) <= int(np.ceil(1024 * sr / 48000)) + 8
        assert abs(peak_hz(x, sr) - 440.0) <= 2.0


# --------------------------------------------------------------------------------------------
# streaming windows
# --------------------------------------------------------------------------------------------


def _noise_wav(path: Path, seconds: float, sr: int = SR, seed: int = 0) -> np.ndarray:
    x = (np.random.default_rng(seed).standard_normal(int(round(seconds * sr))) * 0.1).astype(np.float32)
    with av.open(str(path), "w", format="wav") as c:
        st = c.add_stream("pcm_f32le", rate=sr, layout="mono")
        _mux_interleaved(c, _audio_packets(st, x[None], sr, chunk=4096))
    return x


def test_windows_count_starts_and_content(tmp_path):
    x = _noise_wav(tmp_path / "n.wav", 3.3)
    batches = list(iter_audio_windows(tmp_path / "n.wav", sr=SR, window_s=1.0, hop_s=0.5, batch=4))
    assert [b[0].shape for b in batches] == [(4, SR), (2, SR)]
    starts = np.concatenate([b[1] for b in batches])
    np.testing.assert_allclose(starts, [0, 0.5, 1.0, 1.5, 2.0, 2.5])
    wins = np.concatenate([b[0] for b in batches])
    assert wins.dtype == np.float32
    for wdw, s in zip(wins, starts):
        a = int(round(s * SR))
        seg = x[a : a + SR]
        np.testing.assert_allclose(wdw[: len(seg)], seg, atol=1e-7)
        assert not wdw[len(seg) :].any()  # the last window (0.8 full) is zero-padded
    # overlap_s is the same grid as hop_s = window_s - overlap_s
    same = list(iter_audio_windows(tmp_path / "n.wav", sr=SR, window_s=1.0, overlap_s=0.5, batch=4))
    np.testing.assert_array_equal(np.concatenate([b[1] for b in same]), starts)


def test_windows_concatenate_to_the_signal(tmp_path):
    x = _noise_wav(tmp_path / "n.wav", 3.3)
    # no overlap, default policy: the 0.3-full tail is dropped
    wins = np.concatenate([w for w, _ in iter_audio_windows(tmp_path / "n.wav", SR, 1.0, batch=2)])
    assert wins.shape == (3, SR)
    np.testing.assert_allclose(wins.reshape(-1), x[: 3 * SR], atol=1e-7)
    # keep any tail: the concatenation is the signal followed by zeros
    wins = np.concatenate([w for w, _ in iter_audio_windows(tmp_path / "n.wav", SR, 1.0, batch=2, min_fill=0.0)])
    flat = wins.reshape(-1)
    assert wins.shape == (4, SR)
    np.testing.assert_allclose(flat[: len(x)], x, atol=1e-7)
    assert not flat[len(x) :].any()


def test_windows_file_shorter_than_one_window(tmp_path):
    x = _noise_wav(tmp_path / "short.wav", 0.3)
    out = list(iter_audio_windows(tmp_path / "short.wav", SR, window_s=1.0, min_fill=0.9))
    assert len(out) == 1
    w, s = out[0]
    assert w.shape == (1, SR) and s.tolist() == [0.0]
    np.testing.assert_allclose(w[0, : len(x)], x, atol=1e-7)
    assert not w[0, len(x) :].any()


@pytest.mark.parametrize(
    "n,win,hop,min_fill",
    [
        (48000, 1.0, 1.0, 0.5),
        (48000, 1.0, 0.25, 0.5),
        (40000, 1.0, 0.25, 0.5),
        (40000, 1.0, 0.25, 0.0),
        (39999, 0.5, 0.5, 1.0),
        (8000, 1.0, 0.5, 0.5),
        (0, 1.0, 1.0, 0.5),
        (16000, 1.0, 1.5, 0.5),
        (44000, 1.0, 1.5, 0.5),
    ],
)
def test_window_starts_policy(n, win, hop, min_fill):
    W, H = int(win * SR), int(hop * SR)
    full = [s for s in range(0, max(n - W + 1, 0), H)]
    nxt = len(full) * H
    want = list(full)
    if nxt < n and (not full or n - nxt >= min_fill * W):
        want.append(nxt)
    got = audio_window_starts(n, SR, win, hop, min_fill=min_fill)
    assert got.tolist() == want


def test_windows_match_read_audio_when_resampling(tmp_path):
    path = tmp_path / "t.flac"
    make_audio(path, "flac", "flac", 44100, 2, dur=2.2)
    ref = read_audio(path, sr=SR)
    out = list(iter_audio_windows(path, SR, window_s=0.5, batch=3, min_fill=0.0))
    flat = np.concatenate([w for w, _ in out]).reshape(-1)
    np.testing.assert_allclose(flat[: len(ref)], ref, atol=1e-6)
    assert len(flat) - len(ref) < SR // 2
    starts = np.concatenate([s for _, s in out])
    np.testing.assert_allclose(starts, audio_window_starts(len(ref), SR, 0.5, min_fill=0.0) / SR)


def test_windows_of_a_video_track(tmp_path):
    path = tmp_path / "v.mp4"
    make_video(path, fmt="mp4", vcodec="libx264", w=64, h=48, rate=25, n_frames=50, acodec="aac", a_sr=44100, a_ch=2)
    out = list(iter_audio_windows(path, SR, window_s=0.5, hop_s=0.25, batch=100))
    assert len(out) == 1
    w, s = out[0]
    np.testing.assert_allclose(s, np.arange(len(s)) * 0.25)
    # 2.0 s: starts 0 .. 1.5 are full windows; the one at 1.75 is exactly half full: kept, padded
    assert len(s) == 8
    assert not w[-1, SR // 4 + 8 :].any()  # AAC tail padding trimmed as in read_audio
    np.testing.assert_allclose(w[:, : SR // 4].reshape(-1), read_audio(path, SR)[: 8 * SR // 4], atol=1e-6)
    check_tones(w[1], 2, lossless=False)


def test_window_arguments():
    np.testing.assert_array_equal(
        audio_window_starts(40000, SR, 1.0, overlap_s=0.75), audio_window_starts(40000, SR, 1.0, 0.25)
    )
    with pytest.raises(ValueError):
        audio_window_starts(100, SR, 1.0, 0.5, overlap_s=0.5)
    with pytest.raises(ValueError):
        audio_window_starts(100, SR, 1.0, overlap_s=1.0)  # hop 0


def test_windows_memory_does_not_grow_with_length(tmp_path):
    path = tmp_path / "long.wav"
    _noise_wav(path, 120.0)  # 7.7 MB of float32 at 16 kHz
    n = 0
    tracemalloc.start()
    try:
        for w, _ in iter_audio_windows(path, SR, window_s=1.0, batch=4):
            n += len(w)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n == 120
    assert peak < 2_000_000, peak  # a few batches of 4 x 64 kB, not the 7.7 MB signal


# --------------------------------------------------------------------------------------------
# errors and the skipping batch reader
# --------------------------------------------------------------------------------------------


def _good_mp4(path: Path, n: int = 25) -> Path:
    frames = np.stack([pattern(i, 48, 64) for i in range(n)])
    audio = tones(SR, int(n / 25 * SR), [440.0], [0.5])[0]
    return write_video(path, frames, 25, audio, SR)


def _assert_media_error(fn, path, *words):
    with pytest.raises(MediaError) as ei:
        fn(path)
    msg = str(ei.value)
    assert msg.startswith(str(path) + ": "), msg
    for w in words:
        assert w in msg, msg
    return msg


def test_no_audio_stream(tmp_path):
    path = tmp_path / "silent.mp4"
    make_video(path, fmt="mp4", vcodec="libx264", w=64, h=48, rate=25, n_frames=10)
    _assert_media_error(read_video, path, "no audio stream")
    _assert_media_error(read_audio, path, "no audio stream")
    _assert_media_error(lambda p: iter_audio_windows(p, SR, 1.0), path, "no audio stream")
    v = read_video(path, need_audio=False)
    assert v.audio is None and v.sr is None and len(v.frames) == 10
    assert probe(path)["audio"] is None


def test_no_video_stream(tmp_path):
    path = tmp_path / "tone.wav"
    make_audio(path, "wav", "pcm_s16le", 16000, 1)
    _assert_media_error(read_video, path, "no video stream")
    _assert_media_error(lambda p: read_video(p, need_audio=False), path, "no video stream")


@pytest.mark.skipif("libmp3lame" not in av.codecs_available, reason="PyAV wheel has no libmp3lame")
def test_cover_picture_is_not_a_video(tmp_path):
    """An mp3 with embedded cover art has a one-picture "video" stream: not a video."""
    path = tmp_path / "song.mp3"
    with av.open(str(path), "w", format="mp3") as c:
        st = c.add_stream("libmp3lame", rate=22050, layout="mono")
        vs = c.add_stream("mjpeg", rate=1)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuvj420p"
        vs.disposition = av.stream.Disposition.attached_pic
        fr = av.VideoFrame.from_ndarray(pattern(0, 48, 64), format="rgb24")
        fr.pts = 0
        for p in vs.encode(fr) + vs.encode():
            c.mux(p)
        for p in _audio_packets(st, tones(22050, 22050, [440.0], [0.5]), 22050):
            c.mux(p)
    info = probe(path)
    assert [s["cover"] for s in info["streams"]] == [False, True]
    assert info["video"] is None and info["audio"]["codec"] == "mp3"
    _assert_media_error(read_video, path, "no video stream", "cover")
    x = read_audio(path)
    assert abs(len(x) - SR) <= len_tol("mp3", 22050) and abs(peak_hz(x, SR) - 440) <= 2


def test_missing_empty_and_garbage_files(tmp_path):
    for fn in (read_video, read_audio, probe, lambda p: iter_audio_windows(p, SR, 1.0)):
        _assert_media_error(fn, tmp_path / "nope.mp4", "not found")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    _assert_media_error(read_video, empty, "empty")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    for fn in (read_video, read_audio, probe):
        _assert_media_error(fn, text, "cannot open")


def test_corrupt_files(tmp_path):
    good = _good_mp4(tmp_path / "good.mp4", n=50)
    b = good.read_bytes()
    rng = np.random.default_rng(0)
    head = tmp_path / "garbage_head.mp4"
    head.write_bytes(rng.integers(0, 256, 256, dtype=np.uint8).tobytes() + b[256:])
    half = tmp_path / "half.mp4"
    half.write_bytes(b[: len(b) // 2])
    for p in (head, half):
        _assert_media_error(read_video, p)
        _assert_media_error(read_audio, p)
    # a Matroska file cut in half (its demuxer stops quietly: caught by the stated duration)
    mkv = tmp_path / "good.mkv"
    make_video(mkv, fmt="matroska", vcodec="libx264", w=64, h=48, rate=25, n_frames=50, acodec="pcm_s16le", a_sr=16000)
    half_mkv = tmp_path / "half.mkv"
    half_mkv.write_bytes(mkv.read_bytes()[: mkv.stat().st_size // 2])
    _assert_media_error(read_video, half_mkv, "truncated")
    # a WAV cut in half (the RIFF header states the full size)
    wav = tmp_path / "tone.wav"
    make_audio(wav, "wav", "pcm_s16le", 16000, 1, dur=2.0)
    half_wav = tmp_path / "half.wav"
    half_wav.write_bytes(wav.read_bytes()[: wav.stat().st_size // 2])
    _assert_media_error(read_audio, half_wav, "truncated")
    _assert_media_error(lambda p: list(iter_audio_windows(p, SR, 1.0)), half_wav, "truncated")
    assert len(read_audio(wav)) == 2 * SR  # the intact originals still read
    assert len(read_video(mkv).frames) == 50


def test_read_videos_skipping(tmp_path):
    a = _good_mp4(tmp_path / "a.mp4")
    silent = tmp_path / "silent.mp4"
    make_video(silent, fmt="mp4", vcodec="libx264", w=64, h=48, rate=25, n_frames=10)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(a.read_bytes()[: a.stat().st_size // 3])
    b = _good_mp4(tmp_path / "b.mp4", n=10)
    missing = tmp_path / "missing.mp4"
    videos, skipped = read_videos_skipping([a, silent, broken, missing, b], sr=SR, size=32)
    assert [v.path for v in videos] == [str(a), str(b)]
    assert all(v.frames.shape[1:] == (32, 32, 3) for v in videos)
    assert [s["path"] for s in skipped] == [str(silent), str(broken), str(missing)]
    assert skipped[0]["reason"] == "no audio stream"
    assert "not found" in skipped[2]["reason"]
    assert all(set(s) == {"path", "reason"} and s["reason"] for s in skipped)
    videos, skipped = read_videos_skipping([a, silent], need_audio=False)
    assert len(videos) == 2 and not skipped and videos[1].audio is None


# --------------------------------------------------------------------------------------------
# internals: audio format changes mid-stream, frame collection
# --------------------------------------------------------------------------------------------


def test_mono_audio_survives_format_changes_mid_stream():
    from s2i.media.audio import _MonoAudio

    conv, out = _MonoAudio(SR), []
    for sr_in, layout, n_ch in ((8000, "mono", 1), (44100, "stereo", 2), (22050, "mono", 1)):
        data = tones(sr_in, sr_in // 2, [440.0, 440.0][:n_ch], [0.5, 0.5][:n_ch])
        for s in range(0, data.shape[1], 700):
            fr = av.AudioFrame.from_ndarray(np.ascontiguousarray(data[:, s : s + 700]), format="fltp", layout=layout)
            fr.sample_rate = sr_in
            out += conv.push(fr)
    out += conv.flush()
    x = np.concatenate(out)
    assert abs(len(x) - 1.5 * SR) <= 8  # three half seconds, each resampled to SR
    assert abs(peak_hz(x, SR) - 440.0) <= 2.0
    assert tone_amp(x[SR // 2 + 100 : SR - 100], SR, 440.0) == pytest.approx(0.5, rel=0.02)


def test_frame_collector():
    from s2i.media.video import _Frames

    imgs = [np.full((4, 6, 3), i, np.uint8) for i in range(5)]
    for expected in (0, 3, 5, 9, 10**15):  # unknown, too few, exact, too many, absurd
        fc = _Frames(expected)
        for im in imgs:
            fc.append(im)
        arr = fc.array()
        assert arr.shape == (5, 4, 6, 3) and [int(a[0, 0, 0]) for a in arr] == list(range(5))
    fc = _Frames(4)  # resolution change mid-stream: later frames are resized to the first's
    fc.append(imgs[0])
    fc.append(np.full((8, 12, 3), 7, np.uint8))
    arr = fc.array()
    assert arr.shape == (2, 4, 6, 3) and arr[1].min() == 7


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fps,fraction", [(29.97, "30000/1001"), (12.5, "25/2"), (8, "8")])
def test_write_video_probe(tmp_path, fps, fraction):
    n = 30
    frames = np.stack([pattern(i, 48, 64) for i in range(n)])
    dur = n / float(Fraction(fraction))
    audio = tones(SR, int(round(dur * SR)), [440.0, 1000.0], [0.5, 0.3])
    path = write_video(tmp_path / "out" / "w.mp4", frames, fps, audio, SR)
    assert path.exists() and not list(path.parent.glob(".*tmp*"))
    info = probe(path)
    assert info["video"]["codec"] == "h264" and info["audio"]["codec"] == "aac"
    assert info["video"]["fps_fraction"] == fraction
    assert info["video"]["fps"] == pytest.approx(float(Fraction(fraction)))
    assert info["video"]["duration"] == pytest.approx(dur, abs=1e-3)
    assert info["audio"]["duration"] == pytest.approx(dur, abs=1024 / SR)
    assert info["audio"]["sample_rate"] == SR and info["audio"]["channels"] == 2
    assert (info["video"]["width"], info["video"]["height"]) == (64, 48)
    v = read_video(path, sr=SR)
    assert len(v.frames) == n and v.duration == pytest.approx(dur, abs=1e-3)
    assert abs(len(v.audio) - dur * SR) <= 1024 + 8
    check_tones(v.audio[: int(dur * SR) // 2 * 2], 2, lossless=False)


def test_write_video_is_deterministic(tmp_path):
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, (12, 32, 48, 3), dtype=np.uint8)
    audio = tones(SR, SR // 2, [440.0], [0.5])[0]
    a = write_video(tmp_path / "a.mp4", frames, 24, audio, SR).read_bytes()
    b = write_video(tmp_path / "b.mp4", frames, 24, audio, SR).read_bytes()
    assert a == b


def test_write_video_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="even"):
        write_video(tmp_path / "odd.mp4", np.zeros((2, 31, 33, 3), np.uint8), 25)
    with pytest.raises(ValueError):
        write_video(tmp_path / "f.mp4", np.zeros((2, 32, 32, 3), np.float32), 25)
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------------------------
# channel counts, non-finite samples, absurd headers
# --------------------------------------------------------------------------------------------


def wav_pcm16(path: Path, data: np.ndarray, sr: int) -> Path:
    """(C, n) float in [-1, 1] -> 16-bit PCM WAV with the standard library's writer."""
    import wave

    with wave.open(str(path), "wb") as f:
        f.setnchannels(len(data)), f.setsampwidth(2), f.setframerate(sr)
        f.writeframes((np.clip(data.T, -1, 1) * 32767).round().astype("<i2").tobytes())
    return path


@pytest.mark.parametrize("channels", [1, 2, 6, 8, 16, 32])
def test_any_channel_count_is_read_and_averaged(tmp_path, channels):
    """Eight or more planar channels used to crash the process (PyAV reads past AVFrame.data);
    the resampler's output is packed, so every count is read, in a subprocess-free test."""
    rng = np.random.default_rng(channels)
    data = rng.uniform(-0.5, 0.5, (channels, 3200)).astype(np.float32)
    path = wav_pcm16(tmp_path / f"c{channels}.wav", data, SR)
    pcm = np.round(np.clip(data, -1, 1) * 32767) / 32768  # what the file holds, as float
    expected = pcm.mean(axis=0)
    got = read_audio(path, SR)
    assert got.shape == (3200,) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-5)
    wins = np.concatenate([w for w, _ in iter_audio_windows(path, sr=SR, window_s=0.1, hop_s=0.1)])
    np.testing.assert_allclose(wins.reshape(-1)[:3200], expected, atol=1e-5)
    rs = read_audio(path, 8000)  # resampled: every channel through libswresample, then averaged
    assert rs.shape == (1600,) and np.isfinite(rs).all()


def test_many_channels_in_a_planar_codec(tmp_path):
    """AAC decodes to planar float: a 7.1 AAC file sends eight planar channels into the resampler.
    (The file is made through a resampler too: PyAV cannot fill an 8-plane frame from NumPy.)"""
    sr, n = 48000, 9600
    data = tones(sr, n, [300.0 * (c + 1) for c in range(8)], [0.1] * 8)
    path = tmp_path / "octo.m4a"
    with av.open(str(path), "w", format="ipod") as c:
        st = c.add_stream("aac", rate=sr, layout="7.1")
        to_planar = av.AudioResampler(format="fltp", layout="7.1", rate=sr)
        packed = np.ascontiguousarray(data.T.reshape(1, -1))
        fr = av.AudioFrame.from_ndarray(packed, format="flt", layout="7.1")
        fr.sample_rate, fr.pts, fr.time_base = sr, 0, Fraction(1, sr)
        for planar in [*to_planar.resample(fr), *to_planar.resample(None)]:
            for p in st.encode(planar):
                c.mux(p)
        for p in st.encode():
            c.mux(p)
    assert probe(path)["audio"]["channels"] == 8
    got = read_audio(path, SR)
    assert abs(len(got) - n // 3) <= 1024 and np.isfinite(got).all()
    assert 0.01 < np.abs(got).max() < 0.5  # the mean of eight 0.1 tones


def write_float_wav(path: Path, x: np.ndarray, sr: int = SR) -> Path:
    with av.open(str(path), "w", format="wav") as c:
        st = c.add_stream("pcm_f32le", rate=sr, layout="mono")
        fr = av.AudioFrame.from_ndarray(np.ascontiguousarray(x[None], np.float32), format="flt", layout="mono")
        fr.sample_rate, fr.pts, fr.time_base = sr, 0, Fraction(1, sr)
        for p in [*st.encode(fr), *st.encode()]:
            c.mux(p)
    return path


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_are_refused(tmp_path, bad):
    x = np.sin(np.arange(8000) / 10).astype(np.float32)
    x[4321] = bad
    path = write_float_wav(tmp_path / "bad.wav", x)
    for read in (lambda: read_audio(path, SR), lambda: list(iter_audio_windows(path, sr=SR, window_s=0.5))):
        with pytest.raises(MediaError, match=r"bad\.wav: audio samples are not finite"):
            read()


def test_sample_rate_zero_is_refused(tmp_path):
    path = wav_pcm16(tmp_path / "sr0.wav", np.zeros((1, 1600), np.float32), SR)
    b = bytearray(path.read_bytes())
    b[24:32] = bytes(8)  # the fmt chunk's sample rate and byte rate
    path.write_bytes(bytes(b))
    for read in (read_audio, probe):
        with pytest.raises(MediaError, match=r"sr0\.wav: "):
            read(path)


def test_an_empty_audio_stream_is_refused(tmp_path):
    path = wav_pcm16(tmp_path / "header_only.wav", np.zeros((1, 0), np.float32), SR)
    for read in (lambda: read_audio(path, SR), lambda: list(iter_audio_windows(path, sr=SR, window_s=0.5))):
        with pytest.raises(MediaError, match=r"header_only\.wav: no audio samples"):
            read()


def test_wav_at_the_target_rate_reads_the_same_samples_as_ffmpeg(tmp_path, monkeypatch):
    """16-bit and float WAVs at 16 kHz are read whole by libsndfile: the same mono samples to the
    bit as FFmpeg's packets, the same checks."""
    import soundfile as sf

    from s2i.media import audio as A

    rng = np.random.default_rng(5)
    x = (rng.standard_normal((SR * 2, 2)) * 0.2).clip(-1, 1)
    paths = []
    for ch in (1, 2):
        for sub in ("PCM_16", "FLOAT"):
            paths.append(tmp_path / f"a{ch}_{sub}.wav")
            sf.write(paths[-1], x[:, :ch], SR, subtype=sub)
    fast = [read_audio(p) for p in paths]
    assert all(A._read_wav_at(p, SR) is not None for p in paths)  # the libsndfile path was taken
    with monkeypatch.context() as m:
        m.setattr(A, "_read_wav_at", lambda path, sr: None)
        for p, got in zip(paths, fast):
            np.testing.assert_array_equal(got, read_audio(p))
    # another rate or a 24-bit WAV: FFmpeg decodes it
    sf.write(tmp_path / "b.wav", x, 22050, subtype="PCM_24")
    assert A._read_wav_at(tmp_path / "b.wav", SR) is None
    assert abs(len(read_audio(tmp_path / "b.wav")) - 2 * SR * SR / 22050) < 16  # 1.45 s at 16 kHz
    bad = x.astype(np.float32)
    bad[100, 0] = np.nan
    sf.write(tmp_path / "nan.wav", bad, SR, subtype="FLOAT")
    with pytest.raises(MediaError, match=r"nan\.wav: audio samples are not finite"):
        read_audio(tmp_path / "nan.wav")
