"""Tests of ``s2i.real.features``: the real path's batched float32 audio front ends.

``"sound2scene"`` is compared with the float64 reference :func:`s2i.models.published.published_spectrogram`
(itself tested against scipy in test_published.py), ``"logmel"`` with s2i's own
:func:`s2i.models.audio_encoder.log_mel`. The signals are the hard cases for float32: pure tones
(most bins at the 1e-7 floor, the clip's std small), a DC offset far above the rest of the signal
(the per-segment mean removal), dither-level noise (the whole clip near the floor), clipping."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from s2i.models.audio_encoder import log_mel
from s2i.models.published import published_spectrogram
from s2i.real import features
from s2i.real.features import FRONT_ENDS, audio_features, feature_shape

SR = 16000
TOL_S2S = 1e-4  # max abs difference after standardisation (measured: <= 3e-5)
TOL_LOGMEL = 1e-5  # max abs difference of log(mel + 1e-6) (measured: <= 2e-6)


def _windows(seconds: float, seed: int = 0) -> np.ndarray:
    """Noise, tones (low, mid, near Nyquist, a chirp), DC offset + faint noise, dither, clipped."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    rows = [
        0.1 * rng.standard_normal(n),
        0.5 * np.sin(2 * np.pi * 69.0 * t),
        0.7 * np.sin(2 * np.pi * 1234.5 * t + 0.3),
        0.4 * np.sin(2 * np.pi * 7900.0 * t),
        0.8 * np.sin(2 * np.pi * (50 + 400 * t) * t),
        0.9 + 1e-3 * rng.standard_normal(n),
        3e-5 * rng.standard_normal(n),
        3.0 * rng.standard_normal(n),
    ]
    return np.stack(rows).astype(np.float32)


@pytest.mark.parametrize("seconds", [10.0, 1.0, 0.37])
def test_sound2scene_equals_the_published_front_end(seconds):
    x = _windows(seconds)
    got, ref = audio_features(x, "sound2scene"), published_spectrogram(x)
    assert got.shape == ref.shape == (len(x), *feature_shape("sound2scene", x.shape[1]))
    assert got.dtype == torch.float32
    err = (got - ref).abs().amax(dim=(1, 2, 3))
    assert err.max() < TOL_S2S, f"max abs difference per window: {err.tolist()}"


def test_sound2scene_tolerance_tells_wrong_windows_apart(monkeypatch):
    """The tolerance is tight enough to fail a plausible mistake: scipy's symmetric Tukey window
    (the periodic one is scipy.signal.spectrogram's) or a Hann window."""
    from scipy.signal import get_window

    def folded(w: np.ndarray) -> tuple[torch.Tensor]:  # as features._constants folds the PSD scale in
        return (torch.from_numpy(w * np.sqrt(2e7 / (SR * np.square(w).sum()))).float(),)

    x = _windows(10.0)[:3]
    ref = published_spectrogram(x)
    periodic = get_window(("tukey", 0.25), 512)
    for w, ok in ((periodic, True), (get_window(("tukey", 0.25), 512, fftbins=False), False), (np.hanning(512), False)):
        monkeypatch.setattr(features, "_constants", lambda kind, w=w: folded(w))
        err = (audio_features(x, "sound2scene") - ref).abs().max()
        assert err < TOL_S2S if ok else err > 10 * TOL_S2S


def test_sound2scene_accepts_tensors_and_cuts_long_windows():
    x = _windows(10.5)[:3]
    want = published_spectrogram(x)
    assert want.shape[-1] == 1004  # cut to 160000 samples
    got = audio_features(torch.from_numpy(x), "sound2scene")
    assert (got - want).abs().max() < TOL_S2S


@pytest.mark.parametrize("seconds", [10.0, 1.0, 1.01])  # 1001 frames (odd), 101 (odd), 102 (even)
def test_logmel_equals_log_mel(seconds):
    x = _windows(seconds)
    got, ref = audio_features(x, "logmel"), log_mel(x)
    assert got.shape == ref.shape == (len(x), *feature_shape("logmel", x.shape[1]))
    assert (got - ref).abs().max() < TOL_LOGMEL


@pytest.mark.parametrize("kind", FRONT_ENDS)
@pytest.mark.parametrize("samples", [300, 512, 16000, 16160, 80000, 160000, 170000])
def test_feature_shape_is_the_output_shape(kind, samples):
    if kind == "sound2scene" and samples * 10 < 512:
        pytest.skip("too short")
    x = np.zeros((2, samples), np.float32)
    assert tuple(audio_features(x, kind).shape) == (2, *feature_shape(kind, samples))


def test_known_shapes():
    assert feature_shape("sound2scene", 160000) == (1, 257, 1004)
    assert feature_shape("sound2scene", 16000) == (1, 257, 1004)  # repeated 10x
    assert feature_shape("logmel", 160000) == (1, 64, 501)


def test_bad_kind_and_bad_input():
    x = np.zeros((1, 16000), np.float32)
    for call in (lambda: audio_features(x, "mfcc"), lambda: feature_shape("mfcc", 16000)):
        with pytest.raises(ValueError, match="logmel.*sound2scene"):
            call()
    with pytest.raises(ValueError, match="too short"):
        audio_features(np.zeros((1, 40), np.float32), "sound2scene")
    with pytest.raises(ValueError, match="too short"):
        audio_features(np.zeros((1, 200), np.float32), "logmel")
    with pytest.raises(ValueError, match=r"\(N, samples\)"):
        audio_features(np.zeros(16000, np.float32), "logmel")


@pytest.mark.parametrize("kind", FRONT_ENDS)
def test_threads_split_the_clips_and_restore_torch_threads(kind):
    x = _windows(1.0)
    n = torch.get_num_threads()
    one = audio_features(x, kind, threads=1)
    assert torch.equal(audio_features(x, kind, threads=3), one)  # same single-threaded kernels per clip
    assert torch.get_num_threads() == n
