"""Tests of ``s2i.models.audio_encoder`` and ``s2i.method.alignment``: the alignment losses
against the patent's formula written out with explicit loops, their properties, loss parsing,
retrieval on embeddings whose answers are known by construction, the log-mel front end, the
training loop (learning, per-epoch checkpoint, resume) and the encoder's save/load. CPU only, a few seconds in all."""

from __future__ import annotations

import copy
import math
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

from s2i.method import alignment
from s2i.method.alignment import (
    AlignCfg,
    alignment_loss,
    infonce_cos,
    infonce_l2,
    l2_loss,
    parse_loss,
    retrieval,
    train_alignment,
)
from s2i.models.audio_encoder import AudioEncoder, AudioEncoderCfg, LogMel, conv_bn, encode_mels, log_mel, log_mel_grid
from s2i.utils import atomic_torch_save, read_json

SR = 16000


# --------------------------------------------------------------------------------------------
# reference implementations, written directly from the formulas with Python loops
# --------------------------------------------------------------------------------------------
def _dist(x, y) -> float:
    return math.sqrt(sum((float(p) - float(q)) ** 2 for p, q in zip(x, y)))


def _cos(x, y) -> float:
    nx = math.sqrt(sum(float(p) ** 2 for p in x))
    ny = math.sqrt(sum(float(q) ** 2 for q in y))
    return sum(float(p) * float(q) for p, q in zip(x, y)) / (nx * ny)


def _unit(x):
    n = math.sqrt(sum(float(p) ** 2 for p in x))
    return [float(p) / n for p in x]


def _infonce_dir(a, b, sim) -> float:
    """mean_j -log( exp(sim(a_j, b_j)) / sum_k exp(sim(a_j, b_k)) )"""
    tot = 0.0
    for j in range(len(a)):
        num = math.exp(sim(a[j], b[j]))
        den = sum(math.exp(sim(a[j], b[k])) for k in range(len(b)))
        tot += -math.log(num / den)
    return tot / len(a)


def ref_infonce_l2(a, b, T, normalize=False, symmetric=True) -> float:
    a, b = a.tolist(), b.tolist()
    if normalize:
        a, b = [_unit(x) for x in a], [_unit(y) for y in b]
    sim = lambda x, y: -_dist(x, y) / T  # noqa: E731  patent: d(a, b) = ||a - b||_2, with a temperature
    fwd = _infonce_dir(a, b, sim)
    return (fwd + _infonce_dir(b, a, sim)) / 2 if symmetric else fwd


def ref_infonce_cos(a, b, T, symmetric=True) -> float:
    a, b = a.tolist(), b.tolist()
    sim = lambda x, y: _cos(x, y) / T  # noqa: E731
    fwd = _infonce_dir(a, b, sim)
    return (fwd + _infonce_dir(b, a, sim)) / 2 if symmetric else fwd


def ref_l2(a, b) -> float:
    a, b = a.tolist(), b.tolist()
    return sum(_dist(x, y) for x, y in zip(a, b)) / len(a)


def _rand(n, d, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64) * scale


# --------------------------------------------------------------------------------------------
# losses against the formula
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("T", [1.0, 0.1, 0.5])
def test_infonce_l2_matches_patent_formula(normalize, symmetric, T):
    for seed, (n, d) in enumerate([(5, 3), (7, 4), (2, 6)]):
        a, b = _rand(n, d, 2 * seed), _rand(n, d, 2 * seed + 1)
        got = float(infonce_l2(a, b, temperature=T, normalize=normalize, symmetric=symmetric))
        assert got == pytest.approx(ref_infonce_l2(a, b, T, normalize, symmetric), rel=1e-9, abs=1e-9)


def test_infonce_l2_is_not_symmetric_in_one_direction():
    """The one-direction loss really is a->b (rows): swapping the arguments changes it, and the
    symmetric loss is the mean of the two directions."""
    a, b = _rand(6, 3, 0), _rand(6, 3, 1) * 3
    fwd, bwd = float(infonce_l2(a, b, 0.5, symmetric=False)), float(infonce_l2(b, a, 0.5, symmetric=False))
    assert abs(fwd - bwd) > 1e-6
    assert float(infonce_l2(a, b, 0.5)) == pytest.approx((fwd + bwd) / 2, rel=1e-12)


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("T", [0.07, 1.0])
def test_infonce_cos_matches_formula(symmetric, T):
    for seed, (n, d) in enumerate([(5, 3), (8, 5)]):
        a, b = _rand(n, d, 10 + seed), _rand(n, d, 20 + seed)
        got = float(infonce_cos(a, b, temperature=T, symmetric=symmetric))
        assert got == pytest.approx(ref_infonce_cos(a, b, T, symmetric), rel=1e-9, abs=1e-9)


def test_infonce_cos_is_scale_invariant_and_l2_is_not():
    a, b = _rand(6, 4, 3), _rand(6, 4, 4)
    assert float(infonce_cos(3 * a, 0.5 * b)) == pytest.approx(float(infonce_cos(a, b)), rel=1e-9)
    assert float(infonce_l2(3 * a, b)) != pytest.approx(float(infonce_l2(a, b)), rel=1e-3)
    # ... unless both sides are L2-normalised first
    assert float(infonce_l2(3 * a, 0.5 * b, normalize=True)) == pytest.approx(
        float(infonce_l2(a, b, normalize=True)), rel=1e-9
    )


def test_l2_loss_matches_formula():
    a, b = _rand(7, 5, 5), _rand(7, 5, 6)
    assert float(l2_loss(a, b)) == pytest.approx(ref_l2(a, b), rel=1e-12)
    assert float(l2_loss(a, a)) == 0.0
    # a known value: every pair 3-4-5 apart
    x = torch.zeros(4, 2, dtype=torch.float64)
    y = x + torch.tensor([3.0, 4.0], dtype=torch.float64)
    assert float(l2_loss(x, y)) == pytest.approx(5.0)


# --------------------------------------------------------------------------------------------
# properties
# --------------------------------------------------------------------------------------------
def _separated(n=6, d=8, scale=10.0):
    """n well-separated points: scaled one-hot vectors (pairwise distance scale*sqrt(2))."""
    return torch.eye(n, d, dtype=torch.float64) * scale


@pytest.mark.parametrize("loss", ["infonce_l2", "infonce_l2_norm", "infonce_cos", "l2"])
def test_aligned_pairs_beat_every_permutation(loss):
    import itertools

    v = _separated(5, 8)
    fn = {
        "infonce_l2": lambda a, b: infonce_l2(a, b, 0.1),
        "infonce_l2_norm": lambda a, b: infonce_l2(a, b, 0.1, normalize=True),
        "infonce_cos": lambda a, b: infonce_cos(a, b, 0.1),
        "l2": l2_loss,
    }[loss]
    aligned = float(fn(v.clone(), v))
    for perm in itertools.permutations(range(5)):
        if perm == tuple(range(5)):
            continue
        assert float(fn(v[list(perm)], v)) > aligned + 1e-6, perm


def test_permuting_more_pairs_raises_the_loss():
    v = _separated(6, 8, scale=3.0)
    one_swap = v[[1, 0, 2, 3, 4, 5]]
    all_moved = v[[1, 2, 3, 4, 5, 0]]
    l0, l1, l2 = (float(infonce_l2(x, v, 0.5)) for x in (v, one_swap, all_moved))
    assert l0 < l1 < l2


def test_aligned_loss_is_near_zero_for_separated_points_and_small_temperature():
    v = _separated(6, 8, scale=10.0)
    assert float(infonce_l2(v, v, 0.1)) < 1e-12
    assert float(infonce_l2(v, v, 0.1, normalize=True)) < 1e-5
    assert float(infonce_cos(v, v, 0.07)) < 1e-5
    # while random pairings are at least log(N)-ish above it
    noise = _rand(6, 8, 0)
    assert float(infonce_l2(noise, v, 0.1)) > 1.0
    # and with a large temperature the aligned loss tends to log(N) (all logits alike)
    assert float(infonce_l2(v, v, 1e6)) == pytest.approx(math.log(6), rel=1e-4)


# --------------------------------------------------------------------------------------------
# parse_loss / alignment_loss
# --------------------------------------------------------------------------------------------
def test_parse_loss():
    assert parse_loss("infonce_l2") == [(1.0, "infonce_l2")]
    assert parse_loss("infonce_l2+0.5*l2") == [(1.0, "infonce_l2"), (0.5, "l2")]
    assert parse_loss(" 2 * infonce_cos + l2 + 1e-1*infonce_l2 ") == [
        (2.0, "infonce_cos"),
        (1.0, "l2"),
        (0.1, "infonce_l2"),
    ]


@pytest.mark.parametrize(
    "spec,bad", [("infonce_l3", "infonce_l3"), ("infonce_l2+0.5*mse", "mse"), ("l2+", ""), ("cosine", "cosine")]
)
def test_parse_loss_rejects_unknown_names(spec, bad):
    with pytest.raises(ValueError) as e:
        parse_loss(spec)
    assert repr(bad) in str(e.value)
    assert "infonce_l2" in str(e.value)  # lists the valid names


@pytest.mark.parametrize("normalize", [False, True])
def test_alignment_loss_is_the_weighted_sum_of_its_terms(normalize):
    a, b = _rand(6, 4, 7), _rand(6, 4, 8)
    T = 0.3
    got = float(alignment_loss(a, b, "infonce_l2+0.5*l2+2*infonce_cos", temperature=T, normalize=normalize))
    want = ref_infonce_l2(a, b, T, normalize) + 0.5 * ref_l2(a, b) + 2 * ref_infonce_cos(a, b, T)
    assert got == pytest.approx(want, rel=1e-9)
    assert float(alignment_loss(a, b, "l2")) == pytest.approx(ref_l2(a, b), rel=1e-12)
    assert float(alignment_loss(a, b, "3*l2")) == pytest.approx(3 * ref_l2(a, b), rel=1e-12)


# --------------------------------------------------------------------------------------------
# retrieval
# --------------------------------------------------------------------------------------------
def _line(xs):
    """Points (x, 1) in 2-D: distances are |x - x'|, cosines are well defined."""
    x = torch.tensor(xs, dtype=torch.float32)
    return torch.stack([x, torch.ones_like(x)], 1)


def test_retrieval_identity():
    v = _separated(7, 7).float()
    r = retrieval(v.clone(), v, classes=np.array([0, 0, 1, 1, 2, 2, 2]))
    assert r["r1"] == r["r5"] == r["r10"] == 1.0
    assert r["median_rank"] == 1.0 and r["n"] == 7 and r["chance_r1"] == pytest.approx(1 / 7)
    assert r["mean_l2"] == 0.0 and r["mean_cos"] == pytest.approx(1.0)
    assert r["class_r1"] == 1.0
    assert r["class_chance"] == pytest.approx((2 / 7) ** 2 + (2 / 7) ** 2 + (3 / 7) ** 2)


def test_retrieval_known_ranks():
    """Images on a line at 0..4; each sound placed so that its true image has a rank worked out
    by hand (nearest first):
        a0 = 4.0 -> 4,3,2,1,0      rank 5       a1 = 0.1 -> 0,1       rank 2
        a2 = 3.9 -> 4,3,2          rank 3       a3 = 1.9 -> 2,1,3     rank 3
        a4 = 2.9 -> 3,2,4          rank 3
    """
    v = _line([0, 1, 2, 3, 4])
    a = _line([4.0, 0.1, 3.9, 1.9, 2.9])
    r = retrieval(a, v, classes=np.array([0, 0, 1, 1, 1]), ks=(1, 2, 3, 5))
    assert r["r1"] == 0.0
    assert r["r2"] == pytest.approx(1 / 5)
    assert r["r3"] == pytest.approx(4 / 5)
    assert r["r5"] == 1.0
    assert r["median_rank"] == 3.0
    assert r["mean_l2"] == pytest.approx((4 + 0.9 + 1.9 + 1.1 + 1.1) / 5, rel=1e-6)
    # top-1 images: 4, 0, 4, 2, 3 -> classes 1, 0, 1, 1, 1 against 0, 0, 1, 1, 1
    assert r["class_r1"] == pytest.approx(4 / 5)
    assert r["class_chance"] == pytest.approx(0.4**2 + 0.6**2)


def test_retrieval_cyclic_permutation_has_no_hits():
    v = _separated(5, 5).float()
    a = v[[1, 2, 3, 4, 0]] + 0.01 * v  # nearest: the next image; then its own (0.01 closer than the rest)
    r = retrieval(a, v, classes=np.arange(5))
    assert r["r1"] == 0.0 and r["class_r1"] == 0.0
    assert r["median_rank"] == 2.0
    assert r["r5"] == 1.0


# --------------------------------------------------------------------------------------------
# log-mel
# --------------------------------------------------------------------------------------------
def test_logmel_shape_half_second():
    x = torch.randn(3, SR // 2)
    m = LogMel()(x)
    # 8000 samples, hop 160, centred STFT -> 51 frames; average-pooled 2x (ceil) -> 26
    assert m.shape == (3, 1, 64, 26)
    assert LogMel(pool=1)(x).shape == (3, 1, 64, 51)
    assert log_mel(x.numpy()).shape == (3, 1, 64, 26)
    assert torch.allclose(log_mel(x.numpy(), batch=2), m, atol=1e-5)  # batching changes nothing


def test_logmel_time_pooling_is_an_average():
    x = torch.randn(2, SR // 2, generator=torch.Generator().manual_seed(0))
    full = LogMel(pool=1)(x)
    pooled = LogMel(pool=2)(x)
    assert torch.allclose(pooled[..., :25], (full[..., 0:50:2] + full[..., 1:50:2]) / 2, atol=1e-5)
    assert torch.allclose(pooled[..., 25], full[..., 50], atol=1e-5)  # odd tail: ceil_mode, mean of one


@pytest.mark.parametrize("gain", [0.5, 2.0, 3.0])
def test_logmel_gain_shifts_by_twice_log_gain(gain):
    x = 0.1 * torch.randn(2, SR // 2, generator=torch.Generator().manual_seed(1))
    lm = LogMel()
    d = lm(gain * x) - lm(x)
    assert torch.allclose(d, torch.full_like(d, 2 * math.log(gain)), atol=1e-3)


def test_logmel_tone_peaks_at_its_frequency():
    t = torch.arange(SR // 2) / SR
    lo, hi = LogMel()(torch.stack([torch.sin(2 * math.pi * 300 * t), torch.sin(2 * math.pi * 3000 * t)]))
    assert int(lo[0].mean(-1).argmax()) < int(hi[0].mean(-1).argmax())


@pytest.mark.parametrize(
    "samples, window, hop",
    [
        (16_000 * 33, 8000, 4000),  # the long-audio grid: half-second windows every quarter second
        (8000, 8000, 4000),  # one window
        (20_000, 8000, 160),  # every STFT frame a window start
        (20_500, 8100, 4000),  # a window that is not a whole number of STFT hops
        (9000, 1200, 320),  # short windows: two inner frames
        (20_000, 8000, 1000),  # a hop off the STFT grid: log_mel itself
    ],
)
def test_log_mel_grid_is_log_mel_of_the_windows(samples, window, hop):
    x = np.random.default_rng(0).standard_normal(samples).astype(np.float32) * 0.1
    windows = np.lib.stride_tricks.sliding_window_view(x, window)[::hop]
    torch.testing.assert_close(log_mel_grid(x, window, hop), log_mel(windows.copy()), rtol=0, atol=1e-5)


def test_log_mel_grid_needs_a_whole_window():
    with pytest.raises(ValueError, match="5000 samples holds no window of 8000"):
        log_mel_grid(np.zeros(5000, np.float32), 8000, 4000)


def test_the_encoder_embeds_a_grid_as_its_windows():
    torch.manual_seed(0)
    enc = AudioEncoder(AudioEncoderCfg(embed_dim=16, width=8, depth=2)).eval()
    x = np.random.default_rng(1).standard_normal(3 * SR).astype(np.float32) * 0.1
    windows = np.lib.stride_tricks.sliding_window_view(x, SR // 2)[:: SR // 4].copy()
    got = enc.embed_grid(x, SR // 2, SR // 4)
    assert got.shape == (11, 16)
    torch.testing.assert_close(got, enc.embed_windows(windows), rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------------------------
# training on a tiny synthetic problem
# --------------------------------------------------------------------------------------------
FREQS = [300.0, 700.0, 1500.0, 3200.0]
D = 16


def _synthetic(n_per_class, seed):
    """Tones of 4 frequencies (random phase, amplitude, a little noise) -> log-mel; targets are
    a fixed random vector per class plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(SR // 2) / SR
    wavs, cls = [], []
    for c, f in enumerate(FREQS):
        for _ in range(n_per_class):
            amp = rng.uniform(0.05, 0.5)
            w = amp * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) + 0.01 * rng.standard_normal(len(t))
            wavs.append(w)
            cls.append(c)
    cls = np.array(cls)
    centres = torch.from_numpy(np.random.default_rng(1234).standard_normal((len(FREQS), D))).float() * 2
    z = centres[cls] + 0.1 * torch.from_numpy(rng.standard_normal((len(cls), D))).float()
    return log_mel(np.stack(wavs)), z, cls


@pytest.fixture(scope="module")
def synthetic():
    return _synthetic(12, 0), _synthetic(6, 1)


ENC = AudioEncoderCfg(embed_dim=D, width=8, depth=2)
CFG = AlignCfg(loss="infonce_l2", temperature=0.5, epochs=15, batch=16, lr=1e-2)


def test_train_alignment_learns_the_classes(synthetic, tmp_path):
    (mels, z, _), (vm, vz, vcls) = synthetic
    model, hist = train_alignment(mels, z, ENC, CFG, seed=0, val=(vm, vz))
    assert [h["epoch"] for h in hist] == list(range(1, CFG.epochs + 1))
    assert {"train_loss", "val_loss", "val_r1"} <= set(hist[0])
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    r = retrieval(encode_mels(model, vm), vz, vcls)
    assert r["class_chance"] == pytest.approx(0.25)
    assert r["class_r1"] >= 0.75, r  # chance is 0.25
    # the returned model is the best-validation epoch's
    best = min(h["val_loss"] for h in hist)
    assert float(alignment_loss(encode_mels(model, vm), vz, CFG.loss, CFG.temperature)) == pytest.approx(best, rel=1e-5)


def test_train_alignment_writes_a_checkpoint_every_epoch(synthetic, tmp_path, monkeypatch):
    (mels, z, _), _ = synthetic
    saved = []
    real = atomic_torch_save

    def spy(obj, path):
        saved.append((obj["epoch"], len(obj["history"]), str(path)))
        return real(obj, path)

    monkeypatch.setattr(alignment, "atomic_torch_save", spy)
    cfg = replace(CFG, epochs=3)
    train_alignment(mels[:24], z[:24], ENC, cfg, seed=0, ckpt_dir=tmp_path)
    assert [s[:2] for s in saved] == [(1, 1), (2, 2), (3, 3)]
    assert all(s[2] == str(tmp_path / "last.pt") for s in saved)
    ck = torch.load(tmp_path / "last.pt", weights_only=False)
    assert ck["epoch"] == 3 and len(ck["history"]) == 3
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp files left behind


class _Killed(Exception):
    pass


def test_train_alignment_resumes_after_a_kill_exactly(synthetic, tmp_path):
    """A 4-epoch run killed after its epoch-2 checkpoint, rerun with the same arguments, gives
    exactly the history and weights of an uninterrupted 4-epoch run."""
    (mels, z, _), (vm, vz, _) = synthetic
    mels, z = mels[:32], z[:32]
    cfg = replace(CFG, epochs=4)

    def kill_at_3(row):
        if row["epoch"] == 3:  # logged before the epoch-3 checkpoint: last.pt holds epoch 2
            raise _Killed

    with pytest.raises(_Killed):
        train_alignment(mels, z, ENC, cfg, seed=0, val=(vm, vz), ckpt_dir=tmp_path, log=kill_at_3)
    assert torch.load(tmp_path / "last.pt", weights_only=False)["epoch"] == 2

    rows = []
    m_res, h_res = train_alignment(mels, z, ENC, cfg, seed=0, val=(vm, vz), ckpt_dir=tmp_path, log=rows.append)
    assert [r["epoch"] for r in rows] == [3, 4]  # really resumed: epochs 1-2 were not retrained
    m_ref, h_ref = train_alignment(mels, z, ENC, cfg, seed=0, val=(vm, vz))
    assert len(h_res) == len(h_ref) == 4
    for r, q in zip(h_res, h_ref):
        assert r.keys() == q.keys()
        for k in r:
            assert r[k] == pytest.approx(q[k], abs=1e-5), (k, r, q)
    x = vm[:5]
    assert torch.allclose(encode_mels(m_res, x), encode_mels(m_ref, x), atol=1e-5)


def test_train_alignment_extends_a_finished_run(synthetic, tmp_path):
    """Train 2 epochs with ckpt_dir, then call again with epochs=4 and the same ckpt_dir: the
    history has 4 epochs and its first 2 rows are the first run's.

    (It cannot also equal an uninterrupted 4-epoch run: OneCycleLR's learning rate at every
    step depends on the total number of epochs, so epochs 1-2 of a 2-epoch run and of a
    4-epoch run are trained with different learning rates -- compare
    test_train_alignment_resumes_after_a_kill_exactly for exact resumption.)"""
    (mels, z, _), _ = synthetic
    mels, z = mels[:32], z[:32]
    _, h2 = train_alignment(mels, z, ENC, replace(CFG, epochs=2), seed=0, ckpt_dir=tmp_path)
    _, h4 = train_alignment(mels, z, ENC, replace(CFG, epochs=4), seed=0, ckpt_dir=tmp_path)
    assert len(h4) == 4
    assert h4[:2] == h2


def test_train_alignment_does_not_resume_a_different_configuration(synthetic, tmp_path):
    (mels, z, _), _ = synthetic
    mels, z = mels[:32], z[:32]
    cfg_a = replace(CFG, epochs=2, loss="l2")
    cfg_b = replace(CFG, epochs=2, loss="infonce_l2")
    train_alignment(mels, z, ENC, cfg_a, seed=0, ckpt_dir=tmp_path)
    try:
        _, h = train_alignment(mels, z, ENC, cfg_b, seed=0, ckpt_dir=tmp_path)
    except ValueError:
        return  # refusing a mismatching checkpoint with a clear error is an acceptable fix
    _, h_fresh = train_alignment(mels, z, ENC, cfg_b, seed=0)
    assert [r["train_loss"] for r in h] == pytest.approx([r["train_loss"] for r in h_fresh], abs=1e-5)


# --------------------------------------------------------------------------------------------
# encoder
# --------------------------------------------------------------------------------------------
def test_audio_encoder_forward_shape():
    enc = AudioEncoder(AudioEncoderCfg(embed_dim=24, width=4, depth=3)).eval()
    assert enc(torch.randn(5, 1, 64, 26)).shape == (5, 24)
    assert encode_mels(enc, torch.randn(7, 1, 64, 26), batch=3).shape == (7, 24)


def test_audio_encoder_layout_follows_its_width():
    """Channels-last where every stage's width is a multiple of 8 and the first at least 16; the
    same weights give the same embeddings in either layout."""
    torch.manual_seed(0)
    wide = AudioEncoder(AudioEncoderCfg(embed_dim=16, width=16, depth=2))
    assert wide.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert wide.stages[1].c1.weight.is_contiguous(memory_format=torch.channels_last)
    for width in (4, 8, 12):
        narrow = AudioEncoder(AudioEncoderCfg(embed_dim=16, width=width, depth=2))
        assert not narrow.stages[0].c1.weight.is_contiguous(memory_format=torch.channels_last), width
    plain = copy.deepcopy(wide).to(memory_format=torch.contiguous_format)
    plain.memory_format = torch.contiguous_format
    assert not plain.stages[1].c1.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(6, 1, 64, 26)
    torch.testing.assert_close(encode_mels(wide, x), encode_mels(plain, x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("width", [8, 16])
def test_the_encoder_trains_on_odd_batches_of_log_mels(width):
    """A training step on batches of odd size, the remainder of an epoch (the shape that broke
    oneDNN's channels-last backward pass for 8-channel skip convolutions on an AVX-512 CPU)."""
    torch.manual_seed(0)
    enc = AudioEncoder(AudioEncoderCfg(embed_dim=16, width=width, depth=2)).train()
    for batch in (51, 17, 3):
        enc.zero_grad()
        enc(torch.randn(batch, 1, 64, 26)).square().mean().backward()
        assert all(torch.isfinite(p.grad).all() for p in enc.parameters() if p.grad is not None)


@pytest.mark.parametrize("bias", [False, True])
def test_conv_bn_folds_the_norm_in_eval_mode_only(bias):
    torch.manual_seed(0)
    conv, bn = torch.nn.Conv2d(3, 8, 3, 2, 1, bias=bias), torch.nn.BatchNorm2d(8)
    with torch.no_grad():  # statistics and affine parameters off their defaults
        (
            bn.running_mean.uniform_(-1, 1),
            bn.running_var.uniform_(0.5, 2),
            bn.weight.uniform_(0.5, 2),
            bn.bias.uniform_(-1, 1),
        )
    x = torch.randn(4, 3, 16, 12)
    torch.testing.assert_close(conv_bn(conv, bn, x), bn(conv(x)), rtol=0, atol=0)  # training: the two modules
    bn.eval()
    folded = conv_bn(conv, bn, x)
    torch.testing.assert_close(folded, bn(conv(x)), rtol=1e-5, atol=1e-5)
    assert not torch.equal(folded, conv(x))  # the norm is applied


def test_the_encoder_in_eval_mode_is_its_trained_function():
    """Eval mode folds each batch norm into its convolution: the same embeddings (up to float
    rounding) as the layers run one after the other with the norms' running statistics."""
    torch.manual_seed(0)
    enc = AudioEncoder(AudioEncoderCfg(embed_dim=16, width=8, depth=3))
    enc.train()
    with torch.no_grad():
        for _ in range(3):
            enc(torch.randn(16, 1, 64, 26) * 2 + 1)  # running statistics off their defaults
    enc.eval()
    x = torch.randn(5, 1, 64, 26).contiguous(memory_format=enc.memory_format)

    def unfolded(m: AudioEncoder, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(m.stem[1](m.stem[0](m.norm(x))))
        for b in m.stages:
            skip = b.skip(h)
            h = torch.relu(b.b2(b.c2(torch.relu(b.b1(b.c1(h))))) + skip)
        return m.proj(h.mean(dim=(2, 3)))

    with torch.no_grad():
        torch.testing.assert_close(enc(x), unfolded(enc, x), rtol=1e-4, atol=1e-5)


def test_a_four_channel_encoder_trains_to_the_end():
    """Four channels stay contiguous: in channels-last, the backward pass of their stride-2 1x1
    skip convolution never returns on these shapes (torch 2.11, CPU). A subprocess, so that a
    hang is a failure and not a stuck suite."""
    code = (
        "import torch\n"
        "from s2i.models.audio_encoder import AudioEncoder, AudioEncoderCfg\n"
        "m = AudioEncoder(AudioEncoderCfg(embed_dim=16, width=4, depth=2))\n"
        "for T in (26, 51):\n"
        "    for _ in range(10):\n"
        "        m(torch.randn(16, 1, 64, T)).pow(2).mean().backward()\n"
        "print('trained')\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert p.returncode == 0 and "trained" in p.stdout, p.stderr[-2000:]


@pytest.mark.parametrize("width", [4, 8])
def test_audio_encoder_save_load_roundtrip(tmp_path, width):
    torch.manual_seed(0)
    enc = AudioEncoder(AudioEncoderCfg(embed_dim=12, width=width, depth=2))
    # move the BatchNorm running statistics off their defaults, so that buffers matter too
    enc.train()
    with torch.no_grad():
        enc(torch.randn(8, 1, 64, 26) * 3 + 1)
    enc.eval()
    enc.save(tmp_path / "enc", extra=dict(loss="infonce_l2", note="x"))
    assert (tmp_path / "enc" / "audio_encoder.safetensors").exists()
    assert not list((tmp_path / "enc").glob(".*tmp*"))
    meta = read_json(tmp_path / "enc" / "audio_encoder.json")
    assert meta["cfg"] == dict(embed_dim=12, width=width, depth=2, n_mels=64) and meta["loss"] == "infonce_l2"
    back = AudioEncoder.load(tmp_path / "enc")
    assert not back.training
    x = torch.randn(4, 1, 64, 26)
    assert torch.equal(encode_mels(enc, x), encode_mels(back, x))
    fresh = AudioEncoder(AudioEncoderCfg(embed_dim=12, width=width, depth=2)).eval()
    assert not torch.allclose(encode_mels(fresh, x), encode_mels(back, x))


def test_align_cfg_parses_command_line_booleans():
    """DVC writes booleans as `false` into the papermill command line; papermill keeps them as text."""
    from s2i.method.alignment import AlignCfg
    from s2i.utils import as_bool

    assert AlignCfg(normalize="false").normalize is False
    assert AlignCfg(normalize="true").normalize is True
    assert AlignCfg(normalize=False).normalize is False
    assert as_bool("False") is False and as_bool("on") is True and as_bool(1) is True
    with pytest.raises(ValueError, match="not a boolean"):
        AlignCfg(normalize="maybe")
