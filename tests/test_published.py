"""Tests of ``s2i.models.published``: the published Sound2Vision / Sound2Scene audio encoders.

The real checkpoints are not downloaded here: each test writes a randomly initialised one in the
very layout and file format their training scripts write (``torch.save(AVENet.state_dict())``,
keys ``audnet.*``) and loads it. The network is checked against torchvision's ResNet-18 (their
``models/resnet.py`` is torchvision's with a one-channel ``conv1``), the front end against
``scipy.signal.spectrogram`` as their data loader calls it. CPU only, small inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from s2i.backbones.openclip import MissingWeightsError
from s2i.media import SR
from s2i.method.generate import Sound2Image, windows_of
from s2i.models.published import (
    KINDS,
    CheckpointLayoutError,
    PublishedAudioEncoder,
    load_published_audio_encoder,
    published_spectrogram,
)


class _AVENet(nn.Module):
    """Their wrapper as their scripts save it: the ResNet under ``audnet``."""

    def __init__(self, kind: str):
        super().__init__()
        self.audnet = PublishedAudioEncoder(kind)


def _randomised(kind: str, seed: int = 0) -> _AVENet:
    g = torch.Generator().manual_seed(seed)
    net = _AVENet(kind)
    with torch.no_grad():
        for k, v in net.state_dict().items():
            if k.endswith("num_batches_tracked"):
                v.fill_(7)
            elif k.endswith("running_var"):
                v.copy_(0.5 + torch.rand(v.shape, generator=g))
            else:  # weights, biases, running means: random, of a size that keeps activations tame
                v.copy_(0.05 * torch.randn(v.shape, generator=g))
    return net.eval()


def _signal(seconds: float, seed: int = 0) -> np.ndarray:
    t = np.arange(int(round(seconds * SR))) / SR
    noise = np.random.default_rng(seed).standard_normal(len(t))
    return (0.6 * np.sin(2 * np.pi * 440 * t) + 0.3 * np.sin(2 * np.pi * 3000 * t) + 0.2 * noise).astype(np.float32)


def _scipy_reference(x: np.ndarray) -> np.ndarray:
    """Their loader's steps on one clip, as they write them (float64, like soundfile.read gives)."""
    from scipy import signal

    r = np.tile(x.astype(np.float64), 10)[:160000]
    r[r > 1.0] = 1.0
    r[r < -1.0] = -1.0
    _, _, s = signal.spectrogram(r, SR, nperseg=512, noverlap=353)
    s = np.log(s + 1e-7)
    return (s - np.mean(s)) / (np.std(s) + 1e-9)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """kind -> (path of a file saved like their training script saves it, the source wrapper)."""
    out = {}
    for i, kind in enumerate(KINDS):
        net = _randomised(kind, seed=i)
        path = tmp_path_factory.mktemp(kind) / KINDS[kind][0]
        torch.save(net.state_dict(), path)
        out[kind] = (path, net)
    return out


# --------------------------------------------------------------------------------------------
# front end
# --------------------------------------------------------------------------------------------
def test_front_end_matches_scipy_on_a_known_signal():
    x = _signal(3.0)  # repeated to 10 s, then 10 s = 160000 samples
    spec = published_spectrogram(x[None])
    assert spec.shape == (1, 1, 257, 1004) and spec.dtype == torch.float32
    ref = _scipy_reference(x)
    np.testing.assert_allclose(spec[0, 0].numpy(), ref, atol=2e-6)
    s = spec[0, 0].double()
    assert abs(float(s.mean())) < 1e-6 and abs(float(s.std(correction=0)) - 1) < 1e-6


def test_front_end_long_short_clipped_and_batched_windows():
    long = _signal(12.0, seed=1)  # longer than 10 s: only its first 160000 samples count
    np.testing.assert_allclose(published_spectrogram(long[None])[0, 0].numpy(), _scipy_reference(long), atol=2e-6)
    loud = 3 * _signal(0.5, seed=2)  # clipped to [-1, 1] before the spectrogram
    np.testing.assert_allclose(published_spectrogram(loud[None])[0, 0].numpy(), _scipy_reference(loud), atol=2e-6)
    short = np.stack([_signal(0.2, seed=3), 0.01 * _signal(0.2, seed=4)])  # 10 x 0.2 s = 2 s
    spec = published_spectrogram(short)
    assert spec.shape == (2, 1, 257, (32000 - 512) // 159 + 1)
    for i in range(2):  # each window standardised on its own
        np.testing.assert_allclose(spec[i, 0].numpy(), _scipy_reference(short[i]), atol=2e-6)
    with pytest.raises(ValueError, match="too short"):
        published_spectrogram(np.zeros((1, 40), np.float32))
    with pytest.raises(ValueError, match="windows must be"):
        published_spectrogram(np.zeros(16000, np.float32))


# --------------------------------------------------------------------------------------------
# network
# --------------------------------------------------------------------------------------------
def _torchvision_twin(kind: str) -> nn.Module:
    import torchvision

    tv = torchvision.models.resnet18(num_classes=KINDS[kind][1])
    tv.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return tv


@pytest.mark.parametrize("kind", list(KINDS))
def test_network_is_torchvision_resnet18_on_one_channel(kind):
    net = _randomised(kind).audnet
    tv = _torchvision_twin(kind)
    ours = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in tv.state_dict().items()}
    d = KINDS[kind][1]
    if kind == "sound2vision":  # their ResNet_: fc2 after fc's ReLU
        theirs |= {"fc2.weight": (d, d), "fc2.bias": (d,)}
    assert ours == theirs
    tv.load_state_dict({k: v for k, v in net.state_dict().items() if not k.startswith("fc2.")}, strict=True)
    x = torch.randn(2, 1, 257, 120, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = torch.relu(tv.eval()(x))
        ref = net.fc2(ref) if net.fc2 is not None else ref
        torch.testing.assert_close(net(x), ref)
    assert net(x).shape == (2, d)


# --------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(KINDS))
def test_load_their_checkpoint_strictly(checkpoints, kind):
    path, src = checkpoints[kind]
    assert all(k.startswith("audnet.") for k in torch.load(path, weights_only=True))
    enc = load_published_audio_encoder(path, kind=kind)
    assert enc.kind == kind and enc.checkpoint == str(path) and not enc.training
    for k, v in src.audnet.state_dict().items():
        assert torch.equal(enc.state_dict()[k], v), k
    w = np.stack([_signal(0.2, seed=5), _signal(0.2, seed=6), _signal(0.2, seed=7)])
    z = enc.embed_windows(w, batch=2)
    assert z.shape == (3, KINDS[kind][1]) and z.dtype == torch.float32 and torch.isfinite(z).all()
    torch.testing.assert_close(enc.embed_windows(w), z)  # deterministic, batching aside
    with torch.no_grad():
        torch.testing.assert_close(z, src.audnet(published_spectrogram(w)))
    assert not torch.equal(z[0], z[1])
    if kind == "sound2scene":  # ends in a ReLU
        assert (z >= 0).all()


def test_load_unwraps_containers_and_dataparallel(checkpoints, tmp_path):
    path, src = checkpoints["sound2vision"]
    sd = torch.load(path, weights_only=True)
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"epoch": 3, "model_state_dict": {"module." + k: v for k, v in sd.items()}}, wrapped)
    enc = load_published_audio_encoder(wrapped, kind="sound2vision")
    torch.testing.assert_close(enc.fc2.weight, src.audnet.fc2.weight)
    bare = tmp_path / "bare.pth"  # already without the wrapper, and without num_batches_tracked
    torch.save({k[len("audnet.") :]: v for k, v in sd.items() if "num_batches_tracked" not in k}, bare)
    load_published_audio_encoder(bare, kind="sound2vision")


def test_missing_file_says_where_to_download(tmp_path):
    missing = tmp_path / "nowhere" / "sound2vision_env.pth"
    with pytest.raises(MissingWeightsError) as e:
        load_published_audio_encoder(missing)
    msg = str(e.value)
    assert str(missing) in msg and KINDS["sound2vision"][3] in msg and "models/published/sound2vision_env.pth" in msg
    with pytest.raises(MissingWeightsError, match="sound2scene.pth"):
        load_published_audio_encoder(tmp_path / "x.pth", kind="sound2scene")
    with pytest.raises(ValueError, match="unknown published encoder"):
        load_published_audio_encoder(tmp_path / "x.pth", kind="sound2sound")


def test_wrong_layout_lists_the_keys(checkpoints, tmp_path):
    path, _ = checkpoints["sound2vision"]
    sd = torch.load(path, weights_only=True)
    bad = dict(sd)
    del bad["audnet.layer3.1.bn2.running_mean"]
    bad["audnet.head.weight"] = torch.zeros(3)
    bad["audnet.fc.bias"] = torch.zeros(5)
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(CheckpointLayoutError) as e:
        load_published_audio_encoder(tmp_path / "bad.pth")
    msg = str(e.value)
    assert "Missing keys (1): layer3.1.bn2.running_mean" in msg
    assert "Unexpected keys (1): head.weight" in msg
    assert "fc.bias (5,) != (1024,)" in msg
    with pytest.raises(CheckpointLayoutError) as e:
        load_published_audio_encoder(path, kind="sound2scene")
    assert "kind='sound2vision'?" in str(e.value) and "Unexpected keys (2): fc2.bias, fc2.weight" in str(e.value)
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(CheckpointLayoutError, match="not a state dict"):
        load_published_audio_encoder(tmp_path / "list.pth")


def test_sound2image_embeds_with_a_published_encoder(checkpoints):
    enc = load_published_audio_encoder(checkpoints["sound2vision"][0])
    s2i = Sound2Image(None, enc, window_s=0.2)  # embedding needs no backbones
    x = _signal(0.5, seed=8)
    z = s2i.embed_audio(x, sr=SR)
    assert z.shape == (1024,)
    torch.testing.assert_close(z, enc.embed_windows(windows_of(x, 0.2)).mean(0))
    assert enc.window_s == 10.0
