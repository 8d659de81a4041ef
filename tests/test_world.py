"""Tests of the toy audio-visual world (``s2i.toyworld.world``) and of its MP4s (``s2i.media``).

Every test checks observable behaviour against the world's documented contract (the
loudness law, the drawn area and box of each object, determinism, the MP4 streams, the
share of mismatched frames, the scene API, distinct looks and sounds), so each could fail
if the world were wrong. CPU only; the whole file runs in a few seconds.

Per-shape area factors ``area / (pi r^2)`` (continuum value of each shape's geometry in
``object_mask``; the pixel counts at radius 3..13 px scatter around it by lattice effects,
e.g. circle 0.84-1.09, bar 0.36-0.80; within +-25 % of it for r >= 6 px):

    circle 1.000   square 4*0.85^2/pi = 0.920   triangle 2/pi = 0.637
    diamond 2*1.2^2/pi = 0.917   ring 1-0.55^2 = 0.698   cross (8*0.35-4*0.35^2)/pi = 0.735
    bar 4*0.45/pi = 0.573   x (2*(1.6^2-(1.6-0.3*sqrt2)^2) - 2*(0.3*sqrt2)^2)/pi = 0.635
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the package is used from the checkout, not installed
    sys.path.insert(0, str(ROOT))

import av  # noqa: E402

from s2i.media import read_video
from s2i.toyworld import clips
from s2i.toyworld import world as W
from s2i.toyworld.stills import sample_scenes
from s2i.toyworld.world import Scene, SceneObject
from s2i.utils import read_json, write_json

FL = W.SR // W.FPS  # audio samples per video frame (2000)
T = int(W.DURATION * W.FPS)  # frames per clip (32)
N_AUDIO = int(W.DURATION * W.SR)  # samples per clip (64000)
RAMP_HALF = int(0.02 * W.SR) // 2  # envelope_to_samples smooths +-160 samples around frame edges

SQ2 = np.sqrt(2.0)
AREA_FACTOR = {  # continuum area / (pi r^2) of each shape, from object_mask's geometry
    "circle": 1.0,
    "square": 4 * 0.85**2 / np.pi,
    "triangle": 2 / np.pi,
    "diamond": 2 * 1.03**2 / np.pi,
    "ring": 1 - 0.55**2,
    "cross": (8 * 0.35 - 4 * 0.35**2) / np.pi,
    "bar": 4 * 0.45 / np.pi,
    "x": (2 * (1.6**2 - (1.6 - 0.3 * SQ2) ** 2) - 2 * (0.3 * SQ2) ** 2) / np.pi,
}
POS_LO, POS_HI = W.R_MAX + 0.5, W.IMG - W.R_MAX - 0.5  # sample_clip's range of object centres


# ----------------------------------------------------------------------------- helpers
def _rms(x) -> float:
    x = np.asarray(x, np.float64)
    return float(np.sqrt(np.mean(x**2)))


def _frame_centre_rms(x: np.ndarray) -> np.ndarray:
    """Per video frame RMS of ``x`` over the part of the frame the gain ramps do not touch."""
    x = np.asarray(x, np.float64).reshape(-1, FL)[:, RAMP_HALF + 40 : FL - RAMP_HALF - 40]
    return np.sqrt(np.mean(x**2, axis=1))


def _spec_per_class(world_seed: int = 5) -> dict[int, clips.ClipSpec]:
    """The first clip spec of each sound class among the clips of ``world_seed``."""
    out: dict[int, clips.ClipSpec] = {}
    for i in range(500):
        s = clips.sample_clip(f"clip{i:05d}", clips.clip_seed(world_seed, i))
        out.setdefault(s.cls, s)
        if len(out) == len(W.CLASSES):
            return out
    raise AssertionError(f"only classes {sorted(out)} among 500 clips")


SPECS = _spec_per_class()


def _mask_on_canvas(monkeypatch, c, r, cx, cy, lo: float, hi: float, n: int) -> tuple[np.ndarray, float]:
    """object_mask evaluated on an arbitrary square grid of n x n pixel centres in [lo, hi)."""
    step = (hi - lo) / n
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64) * step + lo + step / 2
    with monkeypatch.context() as m:
        m.setattr(W, "_YY", yy)
        m.setattr(W, "_XX", xx)
        mask = W.object_mask(c, r, cx, cy)
    return mask, step * step


def _colour_mask(img: np.ndarray, colour) -> np.ndarray:
    return np.all(img == np.array(W.colour_rgb(colour), np.uint8), axis=-1)


def _band_descriptor(x: np.ndarray, sr: int = W.SR, n: int = 1024, nb: int = 40, floor_db: float = 60) -> np.ndarray:
    """Mean-removed log energies in ``nb`` log-spaced bands 40 Hz..8 kHz (floored 60 dB below the peak)."""
    fr = np.lib.stride_tricks.sliding_window_view(np.asarray(x, np.float64), n)[:: n // 2] * np.hanning(n)
    p = (np.abs(np.fft.rfft(fr, axis=1)) ** 2).mean(0)
    f = np.fft.rfftfreq(n, 1 / sr)
    edges = np.geomspace(40, 8000, nb + 1)
    e = np.array([p[(f >= lo) & (f < hi)].sum() for lo, hi in zip(edges[:-1], edges[1:])])
    db = 10 * np.log10(e + 1e-20)
    db = np.maximum(db, db.max() - floor_db)
    d = db - db.mean()
    return d / np.linalg.norm(d)


def _peak_db(x: np.ndarray, f0: float, sr: int = W.SR) -> float:
    """Level (dB) of the strongest spectral line within +-4 Hz of ``f0``, relative to the spectrum's maximum."""
    x = np.asarray(x, np.float64)
    mag = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    f = np.fft.rfftfreq(len(x), 1 / sr)
    return float(20 * np.log10(mag[(f > f0 - 4) & (f < f0 + 4)].max() / mag.max() + 1e-300))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("world_a")
    index = clips.generate_world(d, 40, seed=0, progress=False)
    return d, index


@pytest.fixture(scope="module")
def corpus_again(tmp_path_factory):
    d = tmp_path_factory.mktemp("world_b")
    index = clips.generate_world(d, 40, seed=0, progress=False, workers=1)  # `corpus`: 2 processes
    return d, index


# ============================================================================= 1. loudness
def test_loudness_law():
    assert W.gain_from_size(W.R_MAX) == 1.0
    assert W.gain_from_size(W.R_MIN) == pytest.approx(3 / 13)
    assert 20 * np.log10(W.gain_from_size(W.R_MIN)) == pytest.approx(-12.7, abs=0.05)  # documented range
    rs = np.linspace(W.R_MIN, W.R_MAX, 101)
    g = W.gain_from_size(rs)
    assert isinstance(g, np.ndarray) and np.all(np.diff(g) > 0)
    np.testing.assert_allclose(g, rs / W.R_MAX)  # amplitude proportional to radius
    np.testing.assert_allclose(W.size_from_gain(g), rs, rtol=1e-12)
    for r in (3.0, 7.25, 13.0):
        assert isinstance(W.gain_from_size(r), float)
        assert W.size_from_gain(W.gain_from_size(r)) == pytest.approx(r, rel=1e-12)
        assert W.gain_from_size(W.size_from_gain(r / 13)) == pytest.approx(r / 13, rel=1e-12)
    # doubling the radius doubles the amplitude (+6.02 dB)
    assert 20 * np.log10(W.gain_from_size(10.0) / W.gain_from_size(5.0)) == pytest.approx(6.0206, abs=1e-4)


def test_envelope_to_samples_holds_each_frame_and_ramps_smoothly():
    env = np.array([0.0, 1.0, 1.0, 0.5, 0.0, 0.25, 0.25, 1.0])
    n = len(env) * FL
    g = W.envelope_to_samples(env, n)
    assert g.shape == (n,)
    cen = g.reshape(-1, FL)[:, RAMP_HALF + 1 : FL - RAMP_HALF - 1]
    np.testing.assert_allclose(cen, np.repeat(env[:, None], cen.shape[1], axis=1), atol=1e-12)
    k = int(0.02 * W.SR)
    assert np.abs(np.diff(g)).max() <= 1.0 / k + 1e-12  # a 0 -> 1 step takes the whole 20 ms ramp: no clicks
    assert g.min() >= 0 and g.max() <= 1 + 1e-12


@pytest.mark.parametrize("cls", range(len(W.CLASSES)), ids=W.CLASSES)
def test_truth_gain_envelope_follows_visible_size(cls):
    spec = SPECS[cls]
    frames, audio, truth = clips.render_clip(spec)
    env = np.array(truth["sources"][0]["gain_envelope"])
    assert truth["sources"][0]["cls"] == spec.cls and truth["sources"][0]["rms_at_gain_1"] == W.REF_RMS
    assert truth["sources"][1]["gain_envelope"] == [spec.ambient_gain] * T
    assert truth["sources"][1]["rms_at_gain_1"] == W.AMBIENT_RMS
    assert len(env) == T == len(truth["frames"])
    # independent re-derivation from the segments: r is interpolated linearly across each segment
    expected = np.zeros(T)
    for seg in spec.segments:
        L = seg["end"] - seg["start"]
        a = np.arange(L) / max(L - 1, 1)
        r = seg["r0"] + a * (seg["r1"] - seg["r0"])
        if seg["type"] in ("match", "offscreen"):
            expected[seg["start"] : seg["end"]] = r / W.R_MAX
    np.testing.assert_allclose(env, expected, rtol=1e-12, atol=0)
    for f, fr in enumerate(truth["frames"]):
        kind = fr["segment"]
        if kind == "match":
            (v,) = fr["visible"]
            assert v["cls"] == spec.cls
            assert env[f] == pytest.approx(v["size"] / W.R_MAX, rel=1e-12)  # louder <=> bigger
            assert fr["sounding"][0]["gain"] == pytest.approx(env[f], rel=1e-12) and fr["match"]
        elif kind == "offscreen":
            assert fr["visible"] == [] and W.R_MIN / W.R_MAX <= env[f] <= 1.0 and not fr["match"]
        else:  # silent / ambient: nothing heard from the source
            assert env[f] == 0.0 and fr["sounding"] == [] and not fr["match"]
            assert len(fr["visible"]) == (kind == "silent")


@pytest.mark.parametrize("cls", range(len(W.CLASSES)), ids=W.CLASSES)
def test_audio_loudness_follows_gain_envelope(cls):
    """Decompose the clip's audio by re-rendering the same clip (same seed, so the same source
    and ambience waveforms) with the ambience off, with the source off, and with the source at a
    constant gain; the source part's per-frame RMS must then follow the recorded gain envelope."""
    spec = SPECS[cls]
    _, audio, truth = clips.render_clip(spec)
    env = np.array(truth["sources"][0]["gain_envelope"])
    audio = audio.astype(np.float64)
    _, src_only, _ = clips.render_clip(dataclasses.replace(spec, ambient_gain=0.0))
    _, amb_only, _ = clips.render_clip(
        dataclasses.replace(spec, segments=[dict(s, type="ambient") for s in spec.segments])
    )
    half = [dict(s, type="offscreen", r0=W.R_MAX / 2, r1=W.R_MAX / 2) for s in spec.segments]
    _, src_half, _ = clips.render_clip(dataclasses.replace(spec, ambient_gain=0.0, segments=half))
    src_only, amb_only, src_half = (x.astype(np.float64) for x in (src_only, amb_only, src_half))
    assert len(audio) == N_AUDIO and audio.dtype == np.float64

    # nothing in these re-renders may clip, or the decomposition is not exact
    unclipped = [np.abs(x).reshape(-1, FL).max(1) < 0.999 for x in (audio, src_only, amb_only)]
    ok = unclipped[0] & unclipped[1] & unclipped[2]
    assert ok.mean() > 0.9
    # the mix is the source plus the ambience
    np.testing.assert_allclose(audio.reshape(-1, FL)[ok], (src_only + amb_only).reshape(-1, FL)[ok], atol=2e-7)

    # levels: a source at gain g has RMS REF_RMS * g over the clip; the ambience AMBIENT_RMS * ambient_gain
    assert _rms(src_half) == pytest.approx(W.REF_RMS * 0.5, rel=1e-3)
    assert _rms(amb_only) == pytest.approx(W.AMBIENT_RMS * spec.ambient_gain, rel=1e-3)

    # per frame: (source part RMS) / (same waveform at gain 0.5) == envelope / 0.5
    a, u = _frame_centre_rms(src_only), _frame_centre_rms(src_half)
    live = ok & (env > 0) & (u > 1e-4)  # (bird chirps leave some frame centres silent)
    assert live.sum() >= 4
    np.testing.assert_allclose(a[live] / u[live] * 0.5, env[live], rtol=1e-3)
    assert np.all(a[env == 0] < 1e-9)  # silent / ambient frames carry no source at all
    # the brief's direct form: RMS of (audio - ambience) / REF_RMS vs the envelope. Exact for
    # steady sources; pulsed ones (bell, drum, bird, buzzer, engine) vary within a frame, so
    # only their clip-level RMS is checked above.
    if W.CLASSES[cls] in ("horn", "siren", "water"):
        direct = _frame_centre_rms(audio - amb_only) / W.REF_RMS
        sel = ok & (env > 0)
        np.testing.assert_allclose(direct[sel], env[sel], rtol=0.1)
        assert np.all(direct[ok & (env == 0)] < 1e-6)


def test_loudest_sources_have_headroom():
    n = N_AUDIO
    for c in range(len(W.CLASSES)):
        for s in range(20):
            x = W.source_signal(c, n, rng=np.random.default_rng(s), pitch=1.04, rate=1.04)
            assert W.REF_RMS * np.abs(x).max() + W.AMBIENT_RMS * 10 ** (W.AMBIENT_DB_RANGE / 20) * 4 < 1.0, W.CLASSES[c]


# ============================================================================= 2. drawn area
@pytest.mark.parametrize("world_seed", [0, 1])
def test_clip_objects_drawn_with_recorded_area_and_box(world_seed):
    n_checked = 0
    for i in range(12):
        spec = clips.sample_clip(f"c{i}", clips.clip_seed(world_seed, i))
        frames, _, truth = clips.render_clip(spec)
        bg = W.background_image(spec.background)
        assert frames.shape == (T, W.IMG, W.IMG, 3) and frames.dtype == np.uint8
        for f, fr in enumerate(truth["frames"]):
            img = frames[f]
            if not fr["visible"]:
                assert np.array_equal(img, bg)
                continue
            (v,) = fr["visible"]
            m = _colour_mask(img, v["colour"])
            assert int(m.sum()) == v["area"] > 0
            ys, xs = np.nonzero(m)
            assert v["box"] == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
            assert np.array_equal(m, W.object_mask(v["cls"], v["size"], v["x"], v["y"]))
            assert np.array_equal(img[~m], bg[~m])  # nothing else drawn
            # the object's centre lies inside its box, and the box is about 2r across
            x0, y0, x1, y1 = v["box"]
            assert x0 <= v["x"] <= x1 and y0 <= v["y"] <= y1
            assert max(x1 - x0, y1 - y0) <= 2 * 1.2 * v["size"] + 2
            assert W.R_MIN <= v["size"] <= W.R_MAX
            n_checked += 1
    assert n_checked > 100


def test_area_grows_with_size_for_each_class():
    from scipy.stats import spearmanr

    by_cls: dict[int, list[tuple[float, int]]] = {c: [] for c in range(len(W.CLASSES))}
    for i in range(60):
        _, _, truth = clips.render_clip(clips.sample_clip(f"c{i}", clips.clip_seed(3, i)))
        for fr in truth["frames"]:
            for v in fr["visible"]:
                by_cls[v["cls"]].append((v["size"], v["area"]))
    for c, pairs in by_cls.items():
        assert len(pairs) >= 20, W.CLASSES[c]
        r, a = np.array(pairs).T
        assert spearmanr(r, a)[0] > 0.98, W.CLASSES[c]
        # no inversions between objects whose radii differ by 35 % or more
        big = r[None, :] >= 1.35 * r[:, None]
        assert not np.any(big & (a[None, :] <= a[:, None])), W.CLASSES[c]
    # at a fixed centre the area never shrinks as r grows (ring: its hole grows too, so 1 px steps)
    rs = np.linspace(W.R_MIN, W.R_MAX, 201)
    for c, shape in enumerate(W.SHAPES):
        step = rs if shape != "ring" else np.arange(W.R_MIN, W.R_MAX + 1e-9, 1.0)
        areas = [W.object_mask(c, r, 16.0, 16.0).sum() for r in step]
        assert np.all(np.diff(areas) >= 0), shape


@pytest.mark.parametrize("c", range(len(W.CLASSES)), ids=W.SHAPES)
def test_area_is_shape_factor_times_pi_r2(c, monkeypatch):
    shape = W.SHAPES[c]
    k = AREA_FACTOR[shape]
    # the documented factor is the shape's true (continuum) area: supersample a big copy
    m, pix = _mask_on_canvas(monkeypatch, c, 100.0, 0.0, 0.0, -130.0, 130.0, 1040)
    assert m.sum() * pix / (np.pi * 100.0**2) == pytest.approx(k, rel=0.01)
    # at the world's 32x32 pixel grid, over random radii and positions
    rng = np.random.default_rng(c)
    ratios, ratios_big = [], []
    for _ in range(400):
        r = rng.uniform(W.R_MIN, W.R_MAX)
        cx, cy = rng.uniform(POS_LO, POS_HI, 2)
        q = W.object_mask(c, r, cx, cy).sum() / (np.pi * r * r) / k
        ratios.append(q)
        if r >= 6:
            ratios_big.append(q)
    assert 0.55 < min(ratios) and max(ratios) < 1.5, (shape, min(ratios), max(ratios))
    assert 0.8 < min(ratios_big) and max(ratios_big) < 1.25, (shape, min(ratios_big), max(ratios_big))
    assert np.mean(ratios) == pytest.approx(1.0, abs=0.03)


def _clipped_pixels(monkeypatch, c) -> int:
    """Most pixels of class c's object cut off by the frame edge, over sample_clip's positions at R_MAX."""
    worst = 0
    for cx in (POS_LO, POS_HI):
        for cy in (POS_LO, POS_HI):
            full, _ = _mask_on_canvas(monkeypatch, c, W.R_MAX, cx, cy, -32.0, 64.0, 96)
            worst = max(worst, int(full.sum() - W.object_mask(c, W.R_MAX, cx, cy).sum()))
    return worst


@pytest.mark.parametrize(
    "c", [c for c, s in enumerate(W.SHAPES) if s != "diamond"], ids=[s for s in W.SHAPES if s != "diamond"]
)
def test_objects_stay_inside_the_frame(c, monkeypatch):
    assert _clipped_pixels(monkeypatch, c) == 0


def test_diamond_stays_inside_the_frame(monkeypatch):
    assert _clipped_pixels(monkeypatch, W.SHAPES.index("diamond")) == 0


# ============================================================================= 3. determinism
def test_render_clip_is_deterministic():
    for i in range(4):
        s1 = clips.sample_clip("c", clips.clip_seed(0, i))
        s2 = clips.sample_clip("c", clips.clip_seed(0, i))
        assert dataclasses.asdict(s1) == dataclasses.asdict(s2)
        f1, a1, t1 = clips.render_clip(s1)
        f2, a2, t2 = clips.render_clip(s2)
        assert np.array_equal(f1, f2)
        assert a1.dtype == np.float32 and a1.tobytes() == a2.tobytes()
        assert json.dumps(t1, sort_keys=True) == json.dumps(t2, sort_keys=True)


def test_spec_from_truth_rerenders_identically(tmp_path):
    for i in range(4):
        spec = clips.sample_clip(f"clip{i:05d}", clips.clip_seed(7, i))
        frames, audio, truth = clips.render_clip(spec)
        write_json(tmp_path / "t.json", truth)
        back = read_json(tmp_path / "t.json")  # through the JSON sidecar
        spec2 = clips.spec_from_truth(back)
        assert dataclasses.asdict(spec2) == dataclasses.asdict(spec)
        f2, a2, t2 = clips.render_clip(spec2)
        assert np.array_equal(frames, f2) and audio.tobytes() == a2.tobytes()
        assert json.dumps(t2, sort_keys=True) == json.dumps(truth, sort_keys=True)


def test_different_seed_differs():
    f1, a1, t1 = clips.render_clip(clips.sample_clip("c", 123))
    f2, a2, t2 = clips.render_clip(clips.sample_clip("c", 124))
    assert not np.array_equal(f1, f2)
    assert not np.allclose(a1, a2)
    assert t1["segments"] != t2["segments"]
    assert len({clips.clip_seed(0, i) for i in range(100)} | {clips.clip_seed(1, i) for i in range(100)}) == 200
    scen = {(s.background, s.cls, len(s.segments)) for s in (clips.sample_clip("c", k) for k in range(40))}
    assert len(scen) > 10


def _packets(path: Path, kind: str) -> list[bytes]:
    with av.open(str(path)) as c:
        s = c.streams.audio[0] if kind == "audio" else c.streams.video[0]
        return [bytes(p) for p in c.demux(s) if p.size]


def test_generate_world_is_deterministic(corpus, corpus_again):
    """The same files from the same seed, whether one process writes them or two."""
    (d1, i1), (d2, i2) = corpus, corpus_again
    assert i1 == i2
    assert (d1 / "index.json").read_bytes() == (d2 / "index.json").read_bytes()
    for row in i1["clips"]:
        assert (d1 / row["truth"]).read_bytes() == (d2 / row["truth"]).read_bytes()
    # the streams, and the decoded pictures and sound, agree too
    for row in i1["clips"][:10]:
        p1, p2 = d1 / row["video"], d2 / row["video"]
        assert _packets(p1, "audio") == _packets(p2, "audio")
        assert _packets(p1, "video") == _packets(p2, "video")
        v1, v2 = read_video(p1), read_video(p2)
        assert v1.audio.tobytes() == v2.audio.tobytes()
        assert v1.frames.shape == v2.frames.shape
        assert np.array_equal(v1.frames, v2.frames)


def test_generate_world_mp4_bytes_identical(corpus, corpus_again):
    """x264 through PyAV's implicit rgb24 -> yuv420p conversion inside encode() (auto-threaded
    swscale) gave run-to-run different bitstreams; write_video converts each frame explicitly."""
    (d1, i1), (d2, _) = corpus, corpus_again
    differ = [r["video"] for r in i1["clips"] if (d1 / r["video"]).read_bytes() != (d2 / r["video"]).read_bytes()]
    assert differ == []


def test_generate_world_resumes_without_rewriting(tmp_path):
    i1 = clips.generate_world(tmp_path, 3, seed=4, progress=False)
    stamps = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("clip*")}
    i2 = clips.generate_world(tmp_path, 3, seed=4, progress=False)
    assert i1 == i2
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("clip*")} == stamps


# ============================================================================= 4. the MP4s
def test_mp4_streams(corpus):
    d, index = corpus
    for row in index["clips"]:
        with av.open(str(d / row["video"])) as c:
            assert len(c.streams.video) == 1 and len(c.streams.audio) == 1 and len(c.streams) == 2
            vs, aus = c.streams.video[0], c.streams.audio[0]
            assert vs.codec_context.name == "h264"
            assert float(vs.average_rate) == W.FPS
            assert (vs.codec_context.width, vs.codec_context.height) == (W.IMG, W.IMG)
            assert aus.codec_context.name == "aac"
            assert aus.codec_context.sample_rate == W.SR and aus.codec_context.channels == 1
            assert c.duration / 1e6 == pytest.approx(W.DURATION, abs=0.1)


def test_mp4_decodes_close_to_the_render(corpus):
    d, index = corpus
    worst_clip, worst_frame, worst_corr = 0.0, 0.0, 1.0
    for row in index["clips"]:
        truth = read_json(d / row["truth"])
        frames, audio, _ = clips.render_clip(clips.spec_from_truth(truth))
        v = read_video(d / row["video"], sr=W.SR)
        assert v.frames.shape == (T, W.IMG, W.IMG, 3)
        assert v.fps == W.FPS and v.duration == pytest.approx(W.DURATION, abs=0.1)
        np.testing.assert_allclose(v.times, np.arange(T) / W.FPS, atol=1e-3)
        mad = np.abs(v.frames.astype(np.float64) - frames).mean(axis=(1, 2, 3))
        worst_clip, worst_frame = max(worst_clip, float(mad.mean())), max(worst_frame, float(mad.max()))
        assert v.sr == W.SR and N_AUDIO <= len(v.audio) <= N_AUDIO + 2048
        dec = v.audio[:N_AUDIO].astype(np.float64)
        corr = float(np.corrcoef(dec, audio.astype(np.float64))[0, 1])
        worst_corr = min(worst_corr, corr)
        assert _rms(dec) == pytest.approx(_rms(audio), rel=0.1)
    # yuv420p halves the chroma of 32x32 frames with saturated 1-px edges: ~4-6 levels per clip
    assert worst_clip < 8.0 and worst_frame < 12.0, (worst_clip, worst_frame)
    assert worst_corr > 0.95


# ============================================================================= 5. corpus
def test_corpus_mismatch_and_coverage(corpus):
    d, index = corpus
    st = clips.corpus_stats(d)
    assert st["n_clips"] == 40 and st["n_frames"] == 40 * T
    assert st["mismatch_share"] >= 1 / 3
    assert st["mismatch_share"] < 0.9  # and still mostly learnable
    assert all(n > 0 for n in st["class_counts"].values()), st["class_counts"]
    assert all(n > 0 for n in st["background_counts"].values()), st["background_counts"]
    assert all(st["frame_kind_share"][k] > 0 for k in W.SEGMENT_TYPES)
    assert sum(st["frame_kind_share"].values()) == pytest.approx(1.0)
    assert W.R_MIN <= st["size_min"] <= st["size_max"] <= W.R_MAX
    # recount from the sidecars: a frame matches iff the visible classes are the heard ones
    n_mis = 0
    for row in index["clips"]:
        t = read_json(d / row["truth"])
        assert t["sound_class"] == row["sound_class"] and t["background"] == row["background"]
        assert sum(f["match"] for f in t["frames"]) == row["n_match"] > 0  # every clip has a match segment
        for f in t["frames"]:
            seen, heard = {v["cls"] for v in f["visible"]}, {s["cls"] for s in f["sounding"]}
            match = bool(seen) and seen == heard
            assert f["match"] == match == (f["segment"] == "match")
            n_mis += not match
    assert st["mismatch_share"] == n_mis / (40 * T)


def test_splits_are_by_clip_and_deterministic(corpus, corpus_again):
    d, index = corpus
    ids = [r["clip_id"] for r in index["clips"]]
    assert len(ids) == len(set(ids)) == 40
    by_split: dict[str, set[str]] = {}
    for i, r in enumerate(index["clips"]):
        assert r["split"] in ("train", "val", "test")
        assert r["split"] == clips.split_of(i, 0) == read_json(d / r["truth"])["split"]
        by_split.setdefault(r["split"], set()).add(r["clip_id"])
    sets = list(by_split.values())
    assert all(a.isdisjoint(b) for j, a in enumerate(sets) for b in sets[j + 1 :])
    assert set().union(*sets) == set(ids)
    assert "train" in by_split and len(by_split["train"]) > 20
    assert [r["split"] for r in corpus_again[1]["clips"]] == [r["split"] for r in index["clips"]]
    # the hash gives the requested fractions and depends on the seed
    splits = [clips.split_of(i, 0) for i in range(4000)]
    assert splits.count("train") / 4000 == pytest.approx(0.8, abs=0.03)
    assert splits.count("val") / 4000 == pytest.approx(0.1, abs=0.02)
    assert splits != [clips.split_of(i, 1) for i in range(4000)]


# ============================================================================= 6. scene API
@pytest.mark.parametrize("c", range(len(W.CLASSES)), ids=W.CLASSES)
def test_render_still_draws_the_shape_in_its_colour_with_right_area(c):
    for bg in W.BACKGROUNDS:
        for k, (r, x, y) in enumerate([(3.0, 16.0, 16.0), (7.5, 14.2, 17.7), (13.0, 16.0, 16.0)]):
            colour = (c + 3 * k + W.background_index(bg)) % len(W.PALETTE)  # every class in several colours
            img = W.render_still(Scene(bg, [SceneObject(W.CLASSES[c], size=r, x=x, y=y, colour=colour)]))
            assert img.shape == (W.IMG, W.IMG, 3) and img.dtype == np.uint8
            m = _colour_mask(img, colour)
            assert np.array_equal(m, W.object_mask(c, r, x, y))
            assert 0.55 < m.sum() / (np.pi * r * r) / AREA_FACTOR[W.SHAPES[c]] < 1.5
            assert np.array_equal(img[~m], W.background_image(bg)[~m])
        for colour in range(len(W.PALETTE)):
            assert not _colour_mask(W.background_image(bg), colour).any()  # no palette colour in a background
    # gain instead of size: the radius follows the loudness law; no colour given: DEFAULT_COLOUR
    img = W.render_still(Scene(0, [SceneObject(c, gain=0.5)]))
    assert np.array_equal(_colour_mask(img, W.DEFAULT_COLOUR), W.object_mask(c, W.R_MAX / 2, 16, 16))
    # a colour by name or as RGB
    img = W.render_still(Scene(0, [SceneObject(c, size=8, colour="red")]))
    assert np.array_equal(_colour_mask(img, (220, 30, 30)), W.object_mask(c, 8, 16, 16))
    # invisible objects are not drawn
    img = W.render_still(Scene(0, [SceneObject(c, size=8, visible=False)]))
    assert np.array_equal(img, W.background_image(0))


def test_render_still_draws_later_objects_on_top():
    a = SceneObject("bell", size=10, x=14, y=16, colour="yellow")
    b = SceneObject("horn", size=6, x=18, y=16, colour="red")
    img = W.render_still(Scene("night", [a, b]))
    mb = W.object_mask("horn", 6, 18, 16)
    assert np.array_equal(_colour_mask(img, "red"), mb)
    assert np.array_equal(_colour_mask(img, "yellow"), W.object_mask("bell", 10, 14, 16) & ~mb)


def test_render_sound_rms_scales_with_gain():
    for cls in ("horn", "siren", "water", "bell"):
        rms = {}
        for g in (0.2, 0.4, 0.8):
            x = W.render_sound(Scene(0, [SceneObject(cls, gain=g)]), duration=1.0, seed=2, ambience=False)
            assert x.dtype == np.float32 and x.shape == (W.SR,)
            rms[g] = _rms(x)
            assert rms[g] == pytest.approx(W.REF_RMS * g, rel=0.01)
        assert rms[0.4] / rms[0.2] == pytest.approx(2.0, rel=0.01)
        assert rms[0.8] / rms[0.4] == pytest.approx(2.0, rel=0.01)
    # through the size: radius R_MAX is gain 1, half the radius half the amplitude
    full = _rms(W.render_sound(Scene(0, [SceneObject("horn", size=W.R_MAX)]), ambience=False))
    half = _rms(W.render_sound(Scene(0, [SceneObject("horn", size=W.R_MAX / 2)]), ambience=False))
    assert full == pytest.approx(W.REF_RMS, rel=0.01) and half / full == pytest.approx(0.5, rel=0.01)
    # an explicit gain wins over the size
    o = SceneObject("horn", size=13, gain=0.3)
    assert o.amp() == 0.3 and o.radius() == 13
    assert _rms(W.render_sound(Scene(0, [o]), ambience=False)) == pytest.approx(0.03, rel=0.01)


def test_render_sound_mix_contains_both_sources():
    for bg in W.BACKGROUNDS:
        horn, bell = SceneObject("horn", size=9), SceneObject("bell", size=9)
        mix = W.render_sound(Scene(bg, [horn, bell]), seed=1)
        only_horn = W.render_sound(Scene(bg, [horn]), seed=1)
        only_bell = W.render_sound(Scene(bg, [bell]), seed=1)
        muted = W.render_sound(Scene(bg, [horn, SceneObject("bell", size=9, audible=False)]), seed=1)
        assert _peak_db(mix, 196) > -10 and _peak_db(mix, 1046) > -10, bg
        assert _peak_db(only_horn, 196) > -10 and _peak_db(only_horn, 1046) < -25, bg
        assert _peak_db(only_bell, 1046) > -10 and _peak_db(only_bell, 196) < -25, bg
        assert _peak_db(muted, 1046) < -25, bg
        # the mix is the sum of its parts (same seed, same waveforms) up to the shared ambience
        bell_alone = W.render_sound(
            Scene(bg, [SceneObject("horn", size=9, audible=False), bell]), seed=1, ambience=False
        )
        np.testing.assert_allclose(mix, muted.astype(np.float64) + bell_alone, atol=1e-6)


def test_ambience_flag():
    for bg in range(len(W.BACKGROUNDS)):
        silent = W.render_sound(Scene(bg, [], ambient_gain=1.5), seed=3, ambience=False)
        assert silent.shape == (W.SR,) and not silent.any()
        amb = W.render_sound(Scene(bg, [], ambient_gain=1.5), seed=3, ambience=True)
        assert _rms(amb) == pytest.approx(W.AMBIENT_RMS * 1.5, rel=0.01)
        one = SceneObject("siren", gain=0.5)
        with_amb = W.render_sound(Scene(bg, [one], ambient_gain=1.5), seed=3)
        without = W.render_sound(Scene(bg, [one], ambient_gain=1.5), seed=3, ambience=False)
        assert _rms(with_amb.astype(np.float64) - without) == pytest.approx(W.AMBIENT_RMS * 1.5, rel=0.01)
        assert _rms(without) == pytest.approx(W.REF_RMS * 0.5, rel=0.01)


def test_unknown_names_raise():
    with pytest.raises(ValueError, match="dragon"):
        W.render_still(Scene(0, [SceneObject("dragon", size=5)]))
    with pytest.raises(ValueError, match="dragon"):
        W.render_sound(Scene(0, [SceneObject("dragon", size=5)]))
    with pytest.raises(ValueError, match="99"):
        W.render_still(Scene(0, [SceneObject(99, size=5)]))
    with pytest.raises(ValueError, match="desert"):
        W.render_still(Scene("desert", []))
    with pytest.raises(ValueError, match="desert"):
        W.render_sound(Scene("desert", []))
    for bad in ("mauve", 8, (1, 2), (0, 0, 300)):
        with pytest.raises(ValueError, match="colour"):
            W.render_still(Scene(0, [SceneObject("bell", size=5, colour=bad)]))
    with pytest.raises(ValueError, match="size or a gain"):
        W.render_still(Scene(0, [SceneObject("bell")]))


# ============================================================================= 7. distinct classes
def test_classes_look_distinct():
    assert len(W.CLASSES) == len(W.SHAPES) == len(W.PALETTE) == len(W.COLOUR_NAMES) == 8
    assert len(set(W.SHAPES)) == 8 and len(set(W.PALETTE)) == 8
    cols = np.array(W.PALETTE, np.float64)
    dist = np.linalg.norm(cols[:, None] - cols[None], axis=-1) + np.eye(8) * 1e9
    assert dist.min() > 60
    for r in (W.R_MIN, 8.0, W.R_MAX):
        ms = [W.object_mask(c, r, 16.0, 16.0) for c in range(8)]
        for i in range(8):
            for j in range(i + 1, 8):
                iou = (ms[i] & ms[j]).sum() / (ms[i] | ms[j]).sum()
                assert iou < 0.95, (r, W.SHAPES[i], W.SHAPES[j], iou)


def test_classes_sound_distinct():
    desc = np.array(
        [
            _band_descriptor(W.render_sound(Scene(0, [SceneObject(c, size=13)]), duration=2.0, seed=3, ambience=False))
            for c in range(8)
        ]
    )
    cos = desc @ desc.T
    np.fill_diagonal(cos, -1)
    assert cos.max() < 0.9, (np.unravel_index(cos.argmax(), cos.shape), cos.max())
    # other draws (noise, phases) with the training clips' timbre variation (+-4 %) and another
    # gain are still nearest their own class (the ambience is left out: with 64 ms frames its
    # broadband noise fills this descriptor's 60 dB range)
    for c in range(8):
        for p in (0.96, 1.04):
            x = W.render_sound(
                Scene(0, [SceneObject(c, size=10)]), duration=2.0, seed=11 + c, pitch=p, rate=p, ambience=False
            )
            assert int(np.argmax(desc @ _band_descriptor(x))) == c, (W.CLASSES[c], p)


# ============================================================================= 8. colour is not a class cue
def _majority_colour_reader_acc(cls: np.ndarray, col: np.ndarray) -> float:
    """Accuracy of the best possible colour -> class rule (the majority class per colour)."""
    hits = sum(np.bincount(cls[col == k], minlength=8).max() for k in np.unique(col))
    return hits / len(cls)


def test_stills_draw_every_class_in_every_colour():
    scenes = sample_scenes(4000, seed=0)
    objs = [o for s in scenes for o in s.objects]
    cls = np.array([o.cls for o in objs])
    col = np.array([o.colour for o in objs])
    counts = np.zeros((8, 8))
    np.add.at(counts, (cls, col), 1)
    expected = len(objs) / 64
    assert counts.min() > 0.6 * expected and counts.max() < 1.4 * expected
    assert _majority_colour_reader_acc(cls, col) < 0.2  # chance is 1/8
    # the colours come from their own stream: the rest of the scenes is what the seed drew before
    rng = np.random.default_rng(0)
    k = int(rng.choice(3, p=(0.1, 0.45, 0.45)))
    assert [o.cls for o in scenes[0].objects] == list(rng.choice(8, size=k, replace=False))


def test_clips_draw_segment_colours_independently_of_class():
    cls, col = [], []
    for i in range(600):
        spec = clips.sample_clip(f"c{i}", clips.clip_seed(0, i))
        for seg in spec.segments:
            cls.append(seg["cls"])
            col.append(seg["colour"])
    cls, col = np.array(cls), np.array(col)
    assert set(col.tolist()) == set(range(8))
    assert _majority_colour_reader_acc(cls, col) < 0.2


def test_object_cover_finds_each_object_on_every_place_and_nothing_else():
    """The share of each 4x4 cell an object covers, found from the codec's pictures alone: in
    all, between what its mask covers shrunk by a pixel and grown by two (the codec blurs an
    edge in 2x2 blocks of colour, and a thin ring over the sky blends into it), and most where
    the mask is; a place without an object, the meadow's sky-over-grass edge included, covers
    nothing."""
    from scipy.ndimage import binary_dilation, binary_erosion

    from s2i.toyworld.stills import make_stills, object_cover

    stills, scenes = make_stills(160, seed=11), sample_scenes(160, seed=11)
    cover = object_cover(stills.images, stills.bg, 8)
    assert cover.shape == (160, 1, 8, 8) and cover.dtype == np.float32
    empty = np.array([not s.objects for s in scenes])
    assert empty.any() and 0 in stills.bg[empty] and cover[empty].max() == 0.0
    for i in np.flatnonzero(~empty):
        mask = np.zeros((W.IMG, W.IMG), bool)
        for o in scenes[i].objects:
            mask |= W.object_mask(o.cls, o.radius(), o.x, o.y)
        cells = mask.reshape(8, 4, 8, 4).mean((1, 3))
        inner, outer = binary_erosion(mask).sum() / 16, binary_dilation(mask, iterations=2).sum() / 16
        assert inner - 1.0 <= cover[i].sum() <= outer, i
        assert cover[i, 0][np.unravel_index(cells.argmax(), cells.shape)] >= 0.5, i
    with pytest.raises(ValueError, match="does not split"):
        object_cover(stills.images, stills.bg, 7)
