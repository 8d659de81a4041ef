"""The command line with a published audio encoder (``--audio-encoder``): Sound2Vision's network
in the format its training script saves (``torch.save`` of the wrapper's state dict, keys
``audnet.*``, random weights), run in-process through :func:`s2i.app.cli.main`. With the smoke
models it must stop on the dimension mismatch; with the ``full`` profile pointed (``--config``)
at tiny OpenCLIP / Stable unCLIP models of its dimension (1024) it draws images."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from s2i.app.cli import main
from s2i.media import SR
from s2i.models.published import KINDS, PublishedAudioEncoder


def published_checkpoint(path: Path, kind: str = "sound2vision", seed: int = 0) -> Path:
    torch.manual_seed(seed)
    sd = {f"audnet.{k}": v for k, v in PublishedAudioEncoder(kind).state_dict().items()}
    torch.save(sd, path)
    return path


def write_wav(path: Path, seconds: float = 1.0) -> Path:
    t = np.arange(int(seconds * SR)) / SR
    x = 0.5 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.random.default_rng(0).standard_normal(len(t))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def run(argv: list[str], capsys) -> tuple[int, list[str], str]:
    """Exit status, the non-empty stderr lines and stdout of ``s2i ARGV``, in-process."""
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Traceback" not in out
    return rc, [x for x in err.splitlines() if x.strip()], out


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return published_checkpoint(tmp_path_factory.mktemp("published") / KINDS["sound2vision"][0])


def test_dimension_mismatch_is_one_line(smoke_run: Path, ckpt: Path, tmp_path: Path, capsys) -> None:
    wav = write_wav(tmp_path / "x.wav")
    args = ["generate", "--profile", "smoke", "--model-dir", smoke_run / "models", "--run-dir", smoke_run]
    rc, err, _ = run([*args, "--quiet", "--audio-encoder", ckpt, "-o", tmp_path / "out", wav], capsys)
    assert rc == 1 and len(err) == 1, err
    assert ckpt.name in err[0] and "1024-d" in err[0] and "128-d" in err[0] and "--profile full" in err[0], err[0]
    assert not (tmp_path / "out").exists()


def test_missing_audio_encoder_is_one_line(smoke_run: Path, tmp_path: Path, capsys) -> None:
    wav = write_wav(tmp_path / "x.wav")
    missing = tmp_path / "nowhere" / "sound2vision_env.pth"
    for sub in (["generate", wav], ["thumbnails", wav], ["mix", wav, wav]):
        rc, err, _ = run(
            [*sub, "--profile", "smoke", "--model-dir", smoke_run / "models", "--audio-encoder", missing], capsys
        )
        assert rc == 1 and len(err) == 1, err
        assert str(missing) in err[0] and err[0].startswith(f"s2i {sub[0]}: error:"), err[0]


def test_bad_config_is_one_line(tmp_path: Path, capsys) -> None:
    wav = write_wav(tmp_path / "x.wav")
    for text, what in [(None, "no such settings file"), ("- a list\n", "YAML mapping"), ("a: [\n", "YAML")]:
        cfg = tmp_path / "cfg.yaml"
        cfg.unlink(missing_ok=True)
        if text is not None:
            cfg.write_text(text)
        rc, err, _ = run(["generate", "--config", cfg, wav], capsys)
        assert rc == 1 and len(err) == 1 and str(cfg) in err[0] and what in err[0], err


def test_full_profile_with_sound2vision_draws_images(ckpt: Path, tmp_path: Path, capsys) -> None:
    """End to end, no trained run: tiny 1024-d full-profile models named by --config, Sound2Vision
    by --audio-encoder; the images are written."""
    from s2i.testing import make_tiny_openclip_checkpoint, make_tiny_unclip_pipeline

    _, clip = make_tiny_openclip_checkpoint(tmp_path / "openclip", embed_dim=1024)
    unclip = make_tiny_unclip_pipeline(tmp_path / "stable-unclip", embed_dim=1024)
    cfg = tmp_path / "full.yaml"
    cfg.write_text(
        "full:\n"
        "  device: cpu\n"
        f"  image_encoder: {{model: 'local-dir:{Path(clip).parent}', pretrained: null}}\n"
        f"  generator: {{path: '{unclip}', steps: 2, guidance: 3.0, dtype: float32}}\n"
    )
    wav = write_wav(tmp_path / "dog.wav")
    out = tmp_path / "out"
    argv = ["generate", "--profile", "full", "--config", cfg, "--run-dir", tmp_path / "no-run", "--quiet"]
    rc, err, stdout = run([*argv, "--audio-encoder", ckpt, "-n", "2", "-o", out, wav], capsys)
    assert rc == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["dog_00.png", "dog_01.png", "dog_grid.png"]
    im = np.array(Image.open(out / "dog_00.png"))
    assert im.shape[-1] == 3 and im.shape[0] >= 32 and im.std() > 0
    assert "dog.wav: 2 images" in stdout

    # a 2048-d Sound2Scene checkpoint does not fit the 1024-d generator: one line, before drawing
    s2s = published_checkpoint(tmp_path / "sound2scene.pth", "sound2scene")
    rc, err, _ = run(
        [*argv, "--audio-encoder", s2s, "--audio-encoder-kind", "sound2scene", "-o", tmp_path / "o2", wav], capsys
    )
    assert rc == 1 and len(err) == 1 and "sound2scene.pth gives 2048-d" in err[0] and "1024-d" in err[0], err
