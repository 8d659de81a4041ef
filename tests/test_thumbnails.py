"""Thumbnails (claims 18-21): windows, clustering, representatives, ordering, report, files,
streaming, toy programmes and their metrics.

The mechanics are tested with a transparent stand-in for the trained models (band-energy
"embeddings", a generator that paints the class colour, a judge that reads it back), so the
assertions do not depend on model quality; one test runs the real smoke models."""

from __future__ import annotations

import json
import tracemalloc
import wave
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from s2i.eval.thumbnails import evaluate_programmes, evaluate_thumbnails, programme_durations, window_truth
from s2i.media import MediaError, audio_window_starts, read_audio
from s2i.method.clustering import (
    choose_representatives,
    cluster_embeddings,
    cosine_distances,
    cut_tree,
    kmeans,
    longest_run,
    merge_transient,
    relative_spread,
    silhouette,
)
from s2i.method.generate import Sound2Image, windows_of
from s2i.method.long_audio import _sub_windows, embed_long_windows, window_embeddings
from s2i.method.mix import AMBIENCE_DB
from s2i.method.thumbnails import (
    SOUND_MAX_DIST,
    _union_length,
    final_cluster,
    make_thumbnails,
    sound_distances,
    sound_groups,
    thumbnail_windows,
    time_ranges,
)
from s2i.models.audio_encoder import SR
from s2i.toyworld import clips, world
from s2i.toyworld.programmes import PROGRAMME_SEED_BASE, Segment, make_programme, segment_seed, write_programme

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- a transparent stand-in
def band_features(w: np.ndarray, n_bands: int = 16) -> np.ndarray:
    """(N, S) -> (N, n_bands): share of the energy in log-spaced bands (50 Hz - 8 kHz)."""
    spec = np.abs(np.fft.rfft(w, axis=1)) ** 2
    f = np.fft.rfftfreq(w.shape[1], 1 / SR)
    edges = np.geomspace(50, SR / 2, n_bands + 1)
    e = np.stack([spec[:, (f >= a) & (f < b)].sum(1) for a, b in zip(edges[:-1], edges[1:])], 1)
    return (e / (e.sum(1, keepdims=True) + 1e-12)).astype(np.float32)


PROTOS = np.stack(
    [
        band_features(
            world.render_sound(world.Scene(0, [world.SceneObject(c, gain=1.0)]), 2.0, seed=c, ambience=False)[None]
        ).mean(0)
        for c in range(len(world.CLASSES))
    ]
)  # (8, 16) one "embedding" per class


class FakeJudge:
    def report(self, images):
        cols = np.asarray(world.PALETTE, np.float64)
        mean = np.asarray(images, np.float64).reshape(len(images), -1, 3).mean(1)
        top = np.argmin(((mean[:, None] - cols[None]) ** 2).sum(-1), 1)
        return dict(top_class=top)


class FakeBackbones:
    judge = FakeJudge()

    def generate(self, z, n_per=1, guidance=None, steps=None, seed=0, **kw):
        z = np.asarray(z)
        cls = np.argmin(((z[:, None] - PROTOS[None]) ** 2).sum(-1), 1)  # nearest class prototype
        img = np.zeros((len(z) * n_per, world.IMG, world.IMG, 3), np.uint8)
        for i, c in enumerate(np.repeat(cls, n_per)):
            img[i] = world.PALETTE[c]
        return img


class FakeS2I(Sound2Image):
    """Sound2Image with band energies as the 'audio encoder' and a colour-painting generator."""

    def __init__(self, window_s: float = 0.5):
        self.backbones = FakeBackbones()
        self.audio_encoder = None  # embed_window_grid: through embed_windows
        self.window_s = window_s
        self.cache = None
        self.prior = None
        self.calls = []

    def embed_windows(self, windows):
        self.calls.append(len(windows))
        return torch.from_numpy(band_features(np.asarray(windows)))


def two_class_programme(seed=0):
    return make_programme(seed, segments=[("horn", "meadow", 10.0), ("bird", "meadow", 6.0), ("horn", "meadow", 8.0)])


# ----------------------------------------------------------------------------- windows and ranges
def test_sub_windows_follow_windows_of():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 2 * SR)).astype(np.float32)
    sub = _sub_windows(x, 0.5)
    assert sub.shape == (3, 7, SR // 2)  # 2 s at a 0.25 s hop: starts 0, 0.25, ..., 1.5
    for i in range(3):
        np.testing.assert_array_equal(sub[i], windows_of(x[i], 0.5))
    short = _sub_windows(x[:, :3000], 0.5)  # shorter than the encoder window: centred, zero-padded
    assert short.shape == (3, 1, 8000)
    np.testing.assert_array_equal(short[:, 0], np.stack([windows_of(a, 0.5)[0] for a in x[:, :3000]]))


def test_consecutive_windows_embed_each_shared_sub_window_once():
    s2i = FakeS2I()
    x = np.random.default_rng(2).standard_normal(12 * SR).astype(np.float32) * 0.1
    w = np.stack([x[i * SR : i * SR + 2 * SR] for i in range(10)])  # 2 s windows every 1 s
    plain = embed_long_windows(s2i, w)
    shared = embed_long_windows(s2i, w, hop=SR)
    np.testing.assert_allclose(shared, plain, atol=1e-6)
    assert s2i.calls == [10 * 7, 9 * 4 + 7]  # 7 sub-windows per window, 4 new ones per second
    s2i.calls.clear()
    embed_long_windows(s2i, w, hop=SR // 3)  # not on the sub-window grid: each window on its own
    assert s2i.calls == [10 * 7]


@pytest.mark.parametrize(
    "seconds,window_s,overlap_s",
    [(10.0, 2.0, 1.0), (10.0, 2.0, 0.0), (9.3, 2.0, 0.5), (1.2, 2.0, 1.0), (7.0, 1.0, 0.75)],
)
def test_window_count_and_starts(seconds, window_s, overlap_s):
    s2i = FakeS2I()
    x = np.random.default_rng(1).standard_normal(int(seconds * SR)).astype(np.float32) * 0.1
    w = window_embeddings(s2i, x, sr=SR, window_s=window_s, overlap_s=overlap_s, batch=4)
    hop = window_s - overlap_s
    n_full = int(np.floor((seconds - window_s) / hop + 1e-9)) + 1 if seconds >= window_s else 0
    tail = seconds - n_full * hop  # audio from the next start to the end
    expected = n_full + (1 if (n_full == 0 or tail >= 0.5 * window_s) and tail > 1e-9 else 0)
    assert len(w.starts) == expected == len(w.z)
    np.testing.assert_allclose(w.starts, np.arange(expected) * hop, atol=1e-9)
    assert w.duration == pytest.approx(seconds, abs=1 / SR)
    assert w.z.shape[1] == 16


def test_window_embedding_is_embed_audio_of_the_window():
    s2i = FakeS2I()
    prog = two_class_programme()
    a = prog.audio()
    w = window_embeddings(s2i, a, sr=SR, window_s=2.0, overlap_s=1.0, batch=5)
    for i in (0, 7, len(w.starts) - 2):
        s = int(round(w.starts[i] * SR))
        np.testing.assert_allclose(w.z[i], s2i.embed_audio(a[s : s + 2 * SR], SR).numpy(), atol=1e-6)
    # the last window runs past the end: embedded from its real part only (no silence padding)
    s = int(round(w.starts[-1] * SR))
    assert s + 2 * SR > len(a)
    np.testing.assert_allclose(w.z[-1], s2i.embed_audio(a[s:], SR).numpy(), atol=1e-6)
    assert w.objects is None and w.object_windows is None and w.quiet_db is None


def test_object_sounds_are_sampled_in_the_same_pass(tmp_path):
    """quiet_db: each sampled window's object sound is its central encoder window's embedding
    minus the same audio turned down; every window while there are at most max_objects, then
    every ceil(n / max_objects)-th (the last included when it falls on the stride), from an
    array and from a streamed file alike."""

    class LevelFake(FakeS2I):  # hears the level too (band energies x RMS)
        def embed_windows(self, windows):
            x = np.asarray(windows)
            return torch.from_numpy(band_features(x) * np.sqrt((x**2).mean(1, keepdims=True)))

    s2i = LevelFake()
    a = two_class_programme().audio()
    w = window_embeddings(s2i, a, sr=SR, window_s=2.0, overlap_s=1.0, batch=5, quiet_db=-20.0)
    n = len(w.starts)
    assert w.quiet_db == -20.0 and w.object_windows.tolist() == list(range(n))
    np.testing.assert_allclose(w.z, window_embeddings(s2i, a, sr=SR, window_s=2.0, overlap_s=1.0, batch=5).z)
    for i in (0, 7, n - 2):
        s = int(round(w.starts[i] * SR)) + 3 * SR // 4  # the central half second of the 2-s window
        c = a[s : s + SR // 2]
        want = s2i.embed_windows(c[None]).numpy() - s2i.embed_windows(c[None] * np.float32(0.1)).numpy()
        np.testing.assert_allclose(w.objects[i], want[0], rtol=1e-5, atol=1e-9)
    assert np.abs(w.objects).max() > 0  # a level-blind encoder would give zeros
    few = window_embeddings(s2i, a, sr=SR, window_s=2.0, overlap_s=1.0, batch=5, quiet_db=-20.0, max_objects=5)
    stride = -(-n // 5)
    assert few.object_windows.tolist() == list(range(0, n, stride))
    np.testing.assert_allclose(few.objects, w.objects[::stride], rtol=1e-5, atol=1e-9)
    path = tmp_path / "p.wav"
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1), f.setsampwidth(2), f.setframerate(SR)
        f.writeframes((np.clip(a, -1, 1) * 32767).astype("<i2").tobytes())
    wf = window_embeddings(s2i, path, window_s=2.0, overlap_s=1.0, batch=4, quiet_db=-20.0, max_objects=5)
    ref = window_embeddings(s2i, read_audio(path, SR), sr=SR, window_s=2.0, overlap_s=1.0, batch=4, quiet_db=-20.0)
    assert wf.object_windows.tolist() == list(range(0, len(wf.starts), -(-len(wf.starts) // 5)))
    np.testing.assert_allclose(wf.objects, ref.objects[wf.object_windows], rtol=1e-4, atol=1e-9)


def test_read_ahead_keeps_order_raises_in_place_and_stops_when_closed():
    import threading
    import time

    from s2i.method.long_audio import read_ahead

    assert list(read_ahead(iter(range(50)), depth=3)) == list(range(50))

    def failing():
        yield 1
        yield 2
        raise MediaError("x.flac: corrupt packet")

    got = []
    with pytest.raises(MediaError, match="corrupt packet"):
        for v in read_ahead(failing()):
            got.append(v)
    assert got == [1, 2]  # the items before the error, then the error

    produced = []

    def endless():
        for i in range(10_000):
            produced.append(i)
            yield i

    it = read_ahead(endless(), depth=2)
    assert next(it) == 0
    time.sleep(0.2)
    it.close()  # stops the producer: it had read ahead a few items only
    assert len(produced) <= 5
    assert not any(t.name == "s2i-read-ahead" and t.is_alive() for t in threading.enumerate())


def test_array_needs_sr_and_windows_must_be_valid():
    s2i = FakeS2I()
    with pytest.raises(ValueError, match="sample rate"):
        window_embeddings(s2i, np.zeros(SR, np.float32))
    for T, N in [(0.0, 0.0), (2.0, 2.0), (2.0, -1.0)]:
        with pytest.raises(ValueError):
            window_embeddings(s2i, np.zeros(SR, np.float32), sr=SR, window_s=T, overlap_s=N)


def test_time_ranges_merge_consecutive_windows():
    starts = np.arange(8) * 1.0  # hop 1 s, windows of 2 s
    labels = np.array([0, 0, 1, 1, 0, 0, 0, 2])
    assert time_ranges(starts, labels, 0, 2.0, 8.5) == [[0.0, 3.0], [4.0, 8.0]]
    assert time_ranges(starts, labels, 1, 2.0, 8.5) == [[2.0, 5.0]]
    assert time_ranges(starts, labels, 2, 2.0, 8.5) == [[7.0, 8.5]]  # clipped to the duration
    assert time_ranges(starts, labels, 3, 2.0, 8.5) == []
    # windows overlapping by more than half: runs one window apart overlap; seconds count once
    r = time_ranges(np.arange(5) * 0.5, np.array([0, 0, 1, 0, 0]), 0, 2.0, 4.0)
    assert r == [[0.0, 2.5], [1.5, 4.0]] and _union_length(r) == 4.0


# ----------------------------------------------------------------------------- clustering
def blobs(sequence, n_per=20, D=8, spread=0.05, seed=0):
    """Embeddings in time order: runs of ``n_per`` windows around one centre per label."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(sequence) + 1, D)) * 2 + 5
    z = np.concatenate([centres[c] + spread * rng.standard_normal((n_per, D)) for c in sequence])
    return z.astype(np.float32), np.repeat(sequence, n_per)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_silhouette_matches_scikit_learn(seed):
    """The numpy silhouette gives scikit-learn's on the same points: clusters of unequal sizes,
    overlapping, one of a single point (its silhouette is 0)."""
    from sklearn.metrics import silhouette_score

    rng = np.random.default_rng(seed)
    z = np.concatenate([rng.standard_normal((n, 6)) + m for n, m in ((40, 0.0), (25, 1.5), (70, -1.0), (1, 9.0))])
    labels = np.repeat([3, 0, 7, 5], [40, 25, 70, 1])
    assert silhouette(z, labels, chunk=16) == pytest.approx(silhouette_score(z, labels), abs=1e-10)
    noisy = rng.integers(0, 4, len(z))  # a poor partition: silhouette near 0 or below
    assert silhouette(z, noisy) == pytest.approx(silhouette_score(z, noisy), abs=1e-10)
    sub = silhouette(z, labels, sample=60, seed=seed)  # a seeded sample: the same twice
    assert sub == silhouette(z, labels, sample=60, seed=seed) and -1 <= sub <= 1
    with pytest.raises(ValueError, match="2 to n - 1 clusters"):
        silhouette(z, np.zeros(len(z), int))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kmeans_matches_scikit_learn(seed):
    """Separated blobs: the very partition scikit-learn's KMeans finds. Structureless data: an
    inertia within 2 % of scikit-learn's (both are local optima from random seeds)."""
    from sklearn.cluster import KMeans

    z, truth = blobs([0, 1, 2, 3, 4], n_per=30, D=8, spread=0.3, seed=seed)
    ours = kmeans(z, 5, seed=seed)
    theirs = KMeans(n_clusters=5, random_state=seed, n_init=4).fit_predict(z.astype(np.float64))
    pairs = lambda lab: lab[:, None] == lab[None]  # noqa: E731  (the partition, whatever the numbering)
    np.testing.assert_array_equal(pairs(ours), pairs(theirs))
    np.testing.assert_array_equal(pairs(ours), pairs(truth))

    x = np.random.default_rng(seed).standard_normal((500, 16))

    def inertia(lab):
        return sum(((x[lab == c] - x[lab == c].mean(0)) ** 2).sum() for c in np.unique(lab))

    ours = inertia(kmeans(x, 6, seed=seed))
    theirs = inertia(KMeans(n_clusters=6, random_state=seed, n_init=4).fit_predict(x))
    assert ours <= 1.02 * theirs
    assert (kmeans(x, 6, seed=seed) == kmeans(x, 6, seed=seed)).all()  # seeded
    assert len(np.unique(kmeans(np.repeat(x[:3], 4, axis=0), 3))) == 3  # duplicates: still k clusters
    with pytest.raises(ValueError, match="k must be in"):
        kmeans(x[:4], 5)


def test_clustering_recovers_a_two_class_programme_in_order_of_appearance():
    z, truth = blobs([1, 0, 1, 0])  # class 1 is heard first
    cl = cluster_embeddings(z, k_max=6, seed=0)
    assert cl.method == "silhouette" and cl.k == 2
    assert cl.labels[0] == 0  # cluster 0 = the first heard
    np.testing.assert_array_equal(cl.labels, (truth == 0).astype(int))
    assert set(cl.silhouettes) == set(range(2, 7)) and max(cl.silhouettes, key=cl.silhouettes.get) == 2


def test_clustering_finds_k_and_honours_a_given_k():
    z, truth = blobs([2, 0, 3, 1, 2], n_per=15)
    cl = cluster_embeddings(z, k_max=8, seed=0)
    assert cl.k == 4
    first = [int(cl.labels[truth == c][0]) for c in (2, 0, 3, 1)]
    assert first == [0, 1, 2, 3]
    cl2 = cluster_embeddings(z, k=2, seed=0)
    assert cl2.method == "given" and cl2.k == 2 and cl2.labels[0] == 0
    assert cluster_embeddings(z, k=1).k == 1


def test_transition_windows_do_not_make_a_cluster():
    """Windows straddling a change are mixtures of the two sounds: a tight cluster of isolated
    windows, which must not become a thumbnail of its own."""
    rng = np.random.default_rng(0)
    A, B = np.zeros(8), np.full(8, 4.0)
    run = lambda c, n: c + 0.02 * rng.standard_normal((n, 8))  # noqa: E731
    z = np.concatenate([run(A, 10), run((A + B) / 2, 1), run(B, 10), run((A + B) / 2, 1), run(A, 10)])
    assert longest_run(np.array([1, 1, 0, 1, 1, 1, 0], bool)) == 3 and longest_run(np.zeros(3, bool)) == 0
    assert cluster_embeddings(z, min_run=1).k == 3  # the mixtures on their own
    cl = cluster_embeddings(z, min_run=2)
    assert cl.k == 2
    assert (cl.labels[:10] == 0).all() and (cl.labels[11:21] == 1).all() and (cl.labels[22:] == 0).all()
    labels, n = merge_transient(z, np.array([0] * 10 + [2] + [1] * 10 + [2] + [0] * 10), 2)
    assert n == 1 and set(labels.tolist()) == {0, 1}


def test_one_cluster_cases():
    z, _ = blobs([0], n_per=40, spread=0.001)  # one steady sound: tiny spread
    assert relative_spread(z) < 0.01
    cl = cluster_embeddings(z)
    assert cl.k == 1 and cl.method == "single" and "spread" in cl.reason
    assert (cl.labels == 0).all()
    rng = np.random.default_rng(0)
    cl = cluster_embeddings(rng.standard_normal((200, 64)), min_spread=0.0)  # no structure at all
    assert cl.k == 1 and "silhouette" in cl.reason
    assert cluster_embeddings(np.ones((5, 4))).k == 1  # identical embeddings
    assert cluster_embeddings(np.ones((5, 4)), k=3).k == 1
    assert cluster_embeddings(np.eye(2)).k == 1  # two windows: nothing to compare
    z3 = np.repeat(np.eye(3) * 10, 2, axis=0)
    assert cluster_embeddings(z3, k=5).k == 3  # k clamped to the distinct embeddings
    with pytest.raises(ValueError):
        cluster_embeddings(np.zeros((0, 4)))
    with pytest.raises(ValueError):
        cluster_embeddings(z, k_max=1)


def test_representatives():
    z = np.array([[0, 0], [1, 0], [3, 0], [10, 10], [11, 11]], np.float32)
    labels = np.array([0, 0, 0, 1, 1])
    cent = np.array([[4 / 3, 0], [10.5, 10.5]], np.float32)
    reps, idx = choose_representatives(z, labels, cent, "nearest")
    assert idx.tolist() == [1, 3]  # nearest member; the tie in cluster 1 goes to the earlier window
    np.testing.assert_array_equal(reps, z[[1, 3]])
    reps, idx = choose_representatives(z, labels, cent, "centroid")
    assert idx is None
    np.testing.assert_array_equal(reps, cent)
    with pytest.raises(ValueError):
        choose_representatives(z, labels, cent, "medoid")


# ----------------------------------------------------------------------------- the whole method, files
def test_make_thumbnails_report_and_files(tmp_path):
    s2i = FakeS2I()
    prog = two_class_programme()
    res = make_thumbnails(s2i, prog.audio(), sr=SR, window_s=2.0, overlap_s=1.0, out_dir=tmp_path / "t")
    assert res.k == 2 and res.images.shape == (2, 32, 32, 3)
    assert res.final == 0  # horn: 18 s of 24
    rep = json.loads((tmp_path / "t" / "thumbnails.json").read_text())
    for key in (
        "duration_s",
        "window_s",
        "overlap_s",
        "n_windows",
        "k",
        "k_method",
        "silhouettes",
        "representative",
        "final_cluster",
        "final_thumbnail",
        "contact_sheet",
        "slideshow",
        "clusters",
    ):
        assert key in rep
    assert rep["n_windows"] == len(res.starts) and rep["k"] == 2 and rep["final_cluster"] == 0
    c0, c1 = rep["clusters"]
    assert c0["size"] + c1["size"] == rep["n_windows"] and c0["size"] > c1["size"]
    # horn 0-10 s and 16-24 s, bird 10-16 s (windows of 2 s straddling a change go either way)
    assert len(c0["ranges"]) == 2 and len(c1["ranges"]) == 1
    assert c0["ranges"][0][0] == 0.0 and c0["ranges"][-1][1] == pytest.approx(24.0)
    assert 8.0 <= c1["ranges"][0][0] <= 10.0 and 16.0 <= c1["ranges"][0][1] <= 18.0
    assert c0["first_start"] < c1["first_start"]
    for c in rep["clusters"]:
        assert (tmp_path / "t" / c["thumbnail"]).exists()
        assert rep["clusters"][c["id"]]["representative_time"] == res.starts[c["representative_window"]]
    sheet = Image.open(tmp_path / "t" / rep["contact_sheet"])
    assert sheet.width >= 2 * 128 and sheet.height >= 128  # upscaled to be viewable
    gif = Image.open(tmp_path / "t" / rep["slideshow"])
    assert gif.n_frames == 2
    gif.seek(0)
    first = np.asarray(gif.convert("RGB"))
    assert tuple(first[64, 64]) == world.PALETTE[world.class_index("horn")]  # the first heard comes first
    final = np.asarray(Image.open(tmp_path / "t" / rep["final_thumbnail"]))
    assert final.shape == (128, 128, 3) and tuple(final[0, 0]) == world.PALETTE[1]
    m = evaluate_thumbnails(res, prog, s2i.backbones.judge)
    assert m["cluster_purity"] >= 0.9 and m["class_coverage"] == 1.0 and m["final_pick_correct"]
    assert m["cluster_coverage"] == 1.0 and m["final_cluster_correct"] and m["n_classes"] == 2


def test_one_cluster_slideshow_has_one_frame(tmp_path):
    s2i = FakeS2I()
    prog = make_programme(0, segments=[("horn", "night", 8.0)])
    res = make_thumbnails(s2i, prog.audio(), sr=SR, out_dir=tmp_path)
    assert res.k == 1 and res.final == 0
    assert Image.open(tmp_path / "slideshow.gif").n_frames == 1
    assert json.loads((tmp_path / "thumbnails.json").read_text())["clusters"][0]["ranges"] == [[0.0, 8.0]]


def _has(codec):
    try:
        av.codec.Codec(codec, "w")
        return True
    except Exception:
        return False


@pytest.mark.parametrize(
    "suffix,codec",
    [(".wav", "pcm_s16le"), (".flac", "flac"), (".opus", "libopus"), (".mp3", "libmp3lame"), (".m4a", "aac")],
)
def test_streaming_files_of_several_formats(tmp_path, suffix, codec):
    if not _has(codec):
        pytest.skip(f"PyAV has no {codec} encoder")
    s2i = FakeS2I()
    prog = two_class_programme()
    path = write_programme(prog, tmp_path / f"prog{suffix}")
    res = make_thumbnails(s2i, path, window_s=2.0, overlap_s=1.0, batch=3)
    ref = make_thumbnails(FakeS2I(), prog.audio(), sr=SR, window_s=2.0, overlap_s=1.0)
    assert abs(len(res.starts) - len(ref.starts)) <= 1  # lossy codecs pad a frame
    assert res.windows.source == str(path)
    assert res.k == 2
    n = min(len(res.labels), len(ref.labels))
    assert (res.labels[:n] == ref.labels[:n]).mean() >= 0.9
    assert max(s2i.calls) <= 3 * 7  # batches of 3 windows of 7 encoder windows each


def test_streaming_memory_does_not_grow_with_length(tmp_path):
    """Peak Python-heap memory of embedding a 40 s and a 400 s WAV (16-bit, written with the
    ``wave`` module) differ by far less than the 400 s signal (12.8 MB as float32): by at most
    the few batches of windows in flight (1 MB each: 8 windows of 2 s), which the read-ahead
    thread's timing can vary."""
    s2i = FakeS2I()
    rng = np.random.default_rng(0)

    def wav(path, seconds):
        with wave.open(str(path), "wb") as f:
            f.setnchannels(1), f.setsampwidth(2), f.setframerate(SR)
            for _ in range(int(seconds)):
                f.writeframes((rng.standard_normal(SR) * 3000).astype("<i2").tobytes())
        return path

    peaks = []
    for seconds in (40, 400):
        p = wav(tmp_path / f"n{seconds}.wav", seconds)
        tracemalloc.start()
        w = window_embeddings(s2i, p, window_s=2.0, overlap_s=1.0, batch=8)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert len(w.starts) == len(audio_window_starts(seconds * SR, SR, 2.0, overlap_s=1.0))
    assert peaks[1] - peaks[0] < 4e6, peaks


def test_unreadable_files_raise_media_error(tmp_path):
    s2i = FakeS2I()
    with pytest.raises(MediaError, match="missing.wav"):
        make_thumbnails(s2i, tmp_path / "missing.wav")
    bad = tmp_path / "bad.flac"
    bad.write_bytes(b"\x00garbage" * 200)
    with pytest.raises(MediaError, match="bad.flac"):
        make_thumbnails(s2i, bad)


# ----------------------------------------------------------------------------- programmes
def test_programme_durations_span_the_range():
    d = programme_durations(4, 1.0, 10.0)
    assert d.tolist() == pytest.approx([60.0, 240.0, 420.0, 600.0])
    assert programme_durations(1, 2.0, 2.0).tolist() == [120.0]
    for bad in [(0, 1.0, 2.0), (3, 0.0, 2.0), (3, 5.0, 2.0)]:
        with pytest.raises(ValueError):
            programme_durations(*bad)


def test_evaluate_programmes_takes_one_length_per_programme():
    rows, summary = evaluate_programmes(FakeS2I(), [5, 6], [20.0, 40.0], k_max=4)
    assert [r["programme"] for r in rows] == [5, 6]
    assert [r["duration_s"] for r in rows] == pytest.approx([20.0, 40.0], abs=0.05)
    assert rows[1]["n_windows"] > rows[0]["n_windows"]
    one_process, _ = evaluate_programmes(FakeS2I(), [5, 6], [20.0, 40.0], k_max=4, workers=1)
    assert one_process == rows  # the audio rendered in worker processes is the same
    same, _ = evaluate_programmes(FakeS2I(), [5, 6], 20.0, k_max=4)
    assert [r["duration_s"] for r in same] == pytest.approx([20.0, 20.0], abs=0.05)
    assert 0.0 <= summary["nearest"]["final_pick_correct"] <= 1.0
    with pytest.raises(ValueError, match="3 durations for 2 programmes"):
        evaluate_programmes(FakeS2I(), [5, 6], [20.0, 30.0, 40.0])


def test_programme_plan_is_deterministic_and_measurable():
    p, q = make_programme(3, 180.0), make_programme(3, 180.0)
    assert p.segments == q.segments and make_programme(4, 180.0).segments != p.segments
    tl = p.timeline
    assert tl[0]["start"] == 0 and all(a["end"] == b["start"] for a, b in zip(tl, tl[1:]))
    assert p.duration == pytest.approx(180.0, abs=0.1)
    assert all(5.0 - 0.01 <= s.duration <= 60.0 for s in p.segments)
    secs = p.class_seconds()
    assert 2 <= len(secs) <= 4 and min(secs.values()) >= 0.12 * 180 - 0.1
    top, second = sorted(secs.values())[::-1][:2]
    assert top >= 1.2 * second - 0.1 and p.longest_class() == max(secs, key=secs.get)
    assert p.present_classes() == sorted(secs)


def test_programme_audio_and_seeds():
    p = make_programme(7, segments=[Segment("bell", "beach", 1.5, gain=1.0), ("drum", 2, 1.0), (None, "city", 0.5)])
    a = p.audio()
    assert a.dtype == np.float32 and len(a) == p.total_samples == 3 * SR
    np.testing.assert_array_equal(a, p.audio())  # deterministic
    np.testing.assert_array_equal(np.concatenate(list(p.iter_audio())), a)
    assert [r["name"] for r in p.timeline] == ["bell", "drum", None]
    seeds = [segment_seed(7, i) for i in range(3)]
    assert len(set(seeds)) == 3 and min(seeds) >= PROGRAMME_SEED_BASE > 2**33
    # a training clip's seed (uint32) can never be a programme seed
    assert clips.clip_seed(0, 0) < 2**32 < PROGRAMME_SEED_BASE
    with pytest.raises(ValueError):
        make_programme(0, segments=[("bell", 0, 0.0)])


def test_window_truth():
    p = make_programme(0, segments=[("horn", 0, 3.0), ("bird", 0, 1.0), (None, 0, 2.0)])
    truth = window_truth(p, np.array([0.0, 1.0, 2.5, 3.5, 4.0, 5.0]), 2.0)
    h, b = world.class_index("horn"), world.class_index("bird")
    assert truth.tolist() == [h, h, b, b, -1, -1]  # [2.5, 4.5]: 0.5 s horn, 1 s bird


# ----------------------------------------------------------------------------- the real (smoke) models
def test_with_the_smoke_models(smoke_s2i, tmp_path):
    prog = two_class_programme()
    path = write_programme(prog, tmp_path / "prog.flac")
    res = make_thumbnails(smoke_s2i, path, window_s=2.0, overlap_s=1.0, k=2, steps=1, out_dir=tmp_path / "out")
    assert res.images.shape == (2, 32, 32, 3) and res.images.dtype == np.uint8
    assert res.windows.z.shape == (len(res.starts), smoke_s2i.audio_encoder.cfg.embed_dim)
    a = read_audio(path, SR)
    s = int(round(res.starts[3] * SR))  # a window's embedding is embed_audio of that window
    np.testing.assert_allclose(
        res.windows.z[3], smoke_s2i.embed_audio(a[s : s + 2 * SR], SR).numpy(), rtol=1e-3, atol=1e-4
    )
    m = evaluate_thumbnails(res, prog, smoke_s2i.backbones.judge)
    assert 0.5 <= m["cluster_purity"] <= 1.0 and len(m["thumbnail_classes"]) == 2
    assert Image.open(tmp_path / "out" / "slideshow.gif").n_frames == 2


def test_each_thumbnail_can_be_the_best_of_several_drawings(smoke_s2i):
    prog = two_class_programme()
    win = window_embeddings(smoke_s2i, prog.audio(), sr=prog.sr, window_s=2.0, overlap_s=1.0, quiet_db=AMBIENCE_DB)
    one = make_thumbnails(smoke_s2i, None, windows=win, k=2, steps=1)
    best = make_thumbnails(smoke_s2i, None, windows=win, k=2, steps=1, candidates=3)
    np.testing.assert_array_equal(best.labels, one.labels)  # the clusters do not depend on the drawing
    reps, _ = choose_representatives(win.z, best.labels, best.clustering.centroids, "nearest")
    # each candidate from its own prior sample, the one nearest the representative's sound
    want, _ = smoke_s2i.draw_from_sounds(torch.from_numpy(reps), 1, 3, seed=0, steps=1)
    np.testing.assert_array_equal(best.images, want)
    z_draw = smoke_s2i.image_embeddings(torch.from_numpy(reps), 1, seed=0)  # the prior's samples
    plain = smoke_s2i.backbones.generate(z_draw, n_per=1, seed=0, steps=1)
    np.testing.assert_array_equal(one.images, plain)
    assert not np.array_equal(best.images, one.images)


# ----------------------------------------------------------------------------- the final pick
def test_final_cluster_counts_the_clusters_of_one_object_together():
    sizes = np.array([30, 25, 40, 5])
    assert final_cluster(sizes) == 2  # plain: the largest cluster
    assert final_cluster(sizes, np.array([0, 0, 1, 2])) == 0  # object 0 heard 55 windows: its largest cluster
    assert final_cluster(sizes, np.array([0, 1, 2, 3])) == 2  # every cluster its own object: the plain rule
    assert final_cluster(np.array([10, 20, 20]), np.array([0, 1, 1])) == 1  # ties: the earliest
    assert final_cluster(np.array([30, 10, 20]), np.array([0, 1, 1])) == 0  # groups tie at 30: the earliest group


def test_final_cluster_with_distances_takes_the_groups_centre():
    # cluster 0 (40 windows) was let into the group of clusters 1-3 (30 each) by the cut, but it
    # is far from them: the group's largest cluster is the intruder, its centre is cluster 2
    sizes = np.array([40, 30, 30, 30, 50])
    d = np.array(
        [
            [0.0, 0.30, 0.32, 0.34, 0.9],
            [0.30, 0.0, 0.05, 0.10, 0.9],
            [0.32, 0.05, 0.0, 0.05, 0.9],
            [0.34, 0.10, 0.05, 0.0, 0.9],
            [0.9, 0.9, 0.9, 0.9, 0.0],
        ]
    )
    groups = np.array([0, 0, 0, 0, 1])
    assert final_cluster(sizes, groups) == 0 and final_cluster(sizes, groups, d) == 2
    assert final_cluster(sizes, np.arange(5), d) == 4  # every cluster its own group: the largest
    assert final_cluster(np.array([10, 10]), np.array([0, 0]), np.array([[0, 0.2], [0.2, 0]])) == 0  # ties


def test_cut_tree_and_cosine_distances():
    v = np.array([[1.0, 0.0], [2.0, 0.1], [0.0, 1.0], [0.1, 3.0]])
    d = cosine_distances(v)
    assert d.shape == (4, 4) and np.allclose(np.diag(d), 0) and np.allclose(d, d.T) and (d >= 0).all()
    assert d[0, 1] < 0.01 and abs(d[0, 2] - 1.0) < 1e-9  # scale-free; orthogonal rows: 1
    assert cut_tree(d, 0.1).tolist() == [0, 0, 1, 1] and cut_tree(d, 1e-4).tolist() == [0, 1, 2, 3]
    assert cut_tree(d[[2, 0, 1, 3]][:, [2, 0, 1, 3]], 0.1).tolist() == [0, 1, 1, 0]  # numbered by first appearance
    assert cut_tree(np.zeros((1, 1)), 0.1).tolist() == [0]


def test_sound_groups_put_one_source_heard_in_two_places_together():
    """Windows = source + place (+ noise); k-means-like labels split the sources by place. The
    clusters of one source group together, whatever the place; the loudness of a window does not
    weigh (each is scaled to unit length before the means)."""
    rng = np.random.default_rng(0)
    src, place = np.eye(8)[:3] * 1.0, np.eye(8)[3:6] * 0.45
    plan = [(0, 0), (1, 1), (0, 2), (2, 0), (1, 2)]  # (source, place) of clusters 0..4
    z, labels = [], []
    for c, (a, b) in enumerate(plan):
        gain = rng.uniform(0.2, 5.0, size=(20, 1))  # loud and quiet windows
        z.append(gain * (src[a] + place[b] + 0.03 * rng.standard_normal((20, 8))))
        labels += [c] * 20
    z, labels = np.concatenate(z).astype(np.float32), np.asarray(labels)
    groups, d = sound_groups(z, labels, 5)
    assert groups.tolist() == [0, 1, 0, 2, 1]
    np.testing.assert_allclose(d, sound_distances(z, labels, 5))
    assert d[0, 2] < 0.35 < d[0, 1]
    assert sound_groups(z, labels, 5, max_dist=0.01)[0].tolist() == [0, 1, 2, 3, 4]
    one, d1 = sound_groups(z, np.zeros(len(z), int), 1)
    assert one.tolist() == [0] and d1.shape == (1, 1)


def test_object_sounds_group_one_source_where_the_place_is_louder_than_it():
    """Windows = an encoder's saturating response to source x gain + place; the place weighs
    more than the source, so the windows as heard group by place (wrongly), while their object
    sounds (each window minus the same window turned down 20 dB, where only the place is left),
    sampled in every other window, group by source, whatever the place and the gain. A rule
    that ignored the object sounds fails here; a cluster none of whose windows was sampled
    groups with no other."""
    rng = np.random.default_rng(0)
    src, place = np.eye(8)[:3], np.eye(8)[3:6] * 2.5
    plan = [(0, 0), (1, 1), (0, 2), (2, 0), (1, 2), (2, 2)]  # (source, place) of clusters 0..5
    z, zq, labels = [], [], []
    for c, (a, b) in enumerate(plan):
        gain = rng.uniform(0.5, 2.0, size=(20, 1))
        noise = 0.05 * rng.standard_normal((20, 8))
        z.append(np.tanh(gain * src[a] + place[b] + noise))
        zq.append(np.tanh(0.1 * gain * src[a] + place[b] + noise))
        labels += [c] * 20
    z, zq, labels = np.concatenate(z), np.concatenate(zq), np.asarray(labels)
    heard, _ = sound_groups(z, labels, 6)
    assert heard.tolist() != [0, 1, 0, 2, 1, 2]  # as heard, the place wins
    idx = np.arange(0, len(z), 2)
    groups, d = sound_groups(z, labels, 6, objects=(z - zq)[idx], object_windows=idx)
    assert groups.tolist() == [0, 1, 0, 2, 1, 2]
    np.testing.assert_allclose(d, sound_distances(z, labels, 6, (z - zq)[idx], idx))
    unsampled = idx[labels[idx] != 3]  # cluster 3 (source 2) has no sampled window
    g3, d3 = sound_groups(z, labels, 6, objects=(z - zq)[unsampled], object_windows=unsampled)
    assert g3.tolist() == [0, 1, 0, 2, 1, 3] and np.all(np.delete(d3[3], 3) == 1.0)
    with pytest.raises(ValueError, match="window index"):
        sound_groups(z, labels, 6, objects=(z - zq)[idx], object_windows=idx[:-1])


def test_final_rules():
    s2i = FakeS2I()
    prog = two_class_programme()
    res = make_thumbnails(s2i, prog.audio(), sr=SR, window_s=2.0, overlap_s=1.0)  # default: sound grouping
    assert res.final == 0 and res.final_rule.startswith("sound")
    groups = [c["group"] for c in res.clusters]
    g, d = sound_groups(
        res.windows.z, res.labels, res.k, objects=res.windows.objects, object_windows=res.windows.object_windows
    )
    assert res.windows.objects is not None and res.windows.quiet_db == AMBIENCE_DB
    assert groups == g.tolist() and res.final == final_cluster([c["size"] for c in res.clusters], g, d)
    assert res.report()["final_rule"] == res.final_rule
    res = make_thumbnails(s2i, prog.audio(), sr=SR, window_s=2.0, overlap_s=1.0, final="largest")
    assert res.final_rule == "largest: the largest cluster" and res.report()["final_rule"] == res.final_rule
    with pytest.raises(ValueError, match="final"):
        make_thumbnails(s2i, prog.audio(), sr=SR, final="longest")
    with pytest.raises(ValueError, match="final"):
        make_thumbnails(s2i, prog.audio(), sr=SR, final="object")  # the object-picture rule is retired
    assert thumbnail_windows(s2i, prog.audio(), "largest", sr=SR).objects is None
    assert thumbnail_windows(s2i, prog.audio(), sr=SR).quiet_db == AMBIENCE_DB
    plain = window_embeddings(s2i, prog.audio(), sr=SR, window_s=2.0, overlap_s=1.0)  # no object sounds
    with pytest.raises(ValueError, match="quiet_db"):
        make_thumbnails(s2i, None, windows=plain)
    assert make_thumbnails(s2i, None, windows=plain, final="largest").final == res.largest


@pytest.fixture(scope="module")
def toy_s2i():
    if (
        not (ROOT / "models" / "toy" / "generator").exists()
        or not (ROOT / "results" / "alignment" / "audio_encoder" / "audio_encoder.safetensors").exists()
    ):
        pytest.skip("the trained toy run is missing: run `dvc repro` (profile toy) first")
    return Sound2Image.from_run(ROOT / "results", profile="toy", model_dir=ROOT / "models" / "toy")


def test_toy_final_thumbnail_is_the_object_heard_longest_when_its_clusters_sound_alike(toy_s2i):
    """A horn heard 50 s in two places against a bird heard 35 s in one: the largest cluster is
    the bird's; the horn's two clusters sound nearer each other than either sounds to the bird's,
    and the final thumbnail is drawn from the horn's exactly when the two are within the cut of
    the sound tree. (One case, not a metric: with the committed run's audio encoder the horn's
    clusters are 0.39 apart, beyond the cut of 0.35, so here the bird's is final; the
    thumbnails stage's cluster-level final pick measures how often the rule is right.)"""
    prog = make_programme(0, segments=[("horn", "meadow", 25.0), ("bird", "night", 35.0), ("horn", "beach", 25.0)])
    res = make_thumbnails(toy_s2i, prog.audio(), sr=SR, window_s=2.0, overlap_s=1.0)
    m = evaluate_thumbnails(res, prog, toy_s2i.backbones.judge)
    horn, bird = world.class_index("horn"), world.class_index("bird")
    assert m["cluster_majority"][res.largest] == bird and m["largest_cluster_correct"] is False
    horns = [c for c in range(res.k) if m["cluster_majority"][c] == horn]
    birds = [c for c in range(res.k) if m["cluster_majority"][c] == bird]
    assert len(horns) == 2 and len(birds) == 1
    w = res.windows
    _, dist = sound_groups(w.z, res.labels, res.k, objects=w.objects, object_windows=w.object_windows)
    within = dist[horns[0], horns[1]]
    assert within < min(dist[h, birds[0]] for h in horns)
    assert (m["cluster_majority"][res.final] == horn) == bool(within <= SOUND_MAX_DIST)
