"""The ``s2i`` command line, end to end in subprocesses (``python -m s2i``), on audio files the
tests write themselves in many formats, with the smoke models of ``build/nbval``."""
from __future__ import annotations

import json
import subprocess
import sys
import wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from s2i import world

ROOT = Path(__file__).resolve().parents[1]
NBVAL = ROOT / "build" / "nbval"
BUILD_NBVAL = ("mkdir -p build/nbval/notebooks; for n in 00_world 00_pretrain 01_frame_selection 02_extraction "
               "03_alignment; do .venv/bin/papermill notebooks/$n.ipynb build/nbval/notebooks/$n.ipynb -k python3; "
               "done")
SUBCOMMANDS = ["generate", "mix", "edit", "video", "thumbnails"]


def s2i(*args, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "s2i", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def models() -> list[str]:
    if not (NBVAL / "alignment" / "audio_encoder" / "audio_encoder.safetensors").exists() or \
            not (NBVAL / "models" / "manifest.json").exists():
        pytest.skip(f"no smoke models in {NBVAL}; create them with: {BUILD_NBVAL}")
    return ["--profile", "smoke", "--run-dir", str(NBVAL), "--model-dir", str(NBVAL / "models"), "--quiet",
            "--steps", "1"]


def assert_clean_error(r: subprocess.CompletedProcess, name: str) -> None:
    """Non-zero exit, one line on stderr naming the file, no traceback."""
    assert r.returncode != 0
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, r.stderr
    assert name in lines[0] and "error" in lines[0], lines[0]


# ----------------------------------------------------------------------------- input files
def scene_sound(sr: int, seconds: float = 3.0, cls="horn", bg="meadow") -> np.ndarray:
    return world.render_sound(world.Scene(bg, [world.SceneObject(cls, gain=0.9)]), seconds, sr=sr, seed=2 ** 41)


def encode(path: Path, fmt: str, codec: str, sr: int, data: np.ndarray, options=None) -> Path:
    """Write (C, n) float audio with PyAV."""
    data = np.ascontiguousarray(np.atleast_2d(data).astype(np.float32))
    with av.open(str(path), "w", format=fmt) as c:
        st = c.add_stream(codec, rate=sr, layout="mono" if len(data) == 1 else "stereo", options=options or {})
        for s in range(0, data.shape[1], 1024):
            fr = av.AudioFrame.from_ndarray(np.ascontiguousarray(data[:, s:s + 1024]), format="fltp",
                                            layout=st.layout.name)
            fr.sample_rate, fr.pts, fr.time_base = sr, s, Fraction(1, sr)
            for p in st.encode(fr):
                c.mux(p)
        for p in st.encode():
            c.mux(p)
    return path


def wav16(path: Path, sr: int, data: np.ndarray) -> Path:
    """16-bit PCM WAV with the standard library's ``wave`` module; (C, n) or (n,) data."""
    data = np.atleast_2d(data)
    with wave.open(str(path), "wb") as f:
        f.setnchannels(len(data)), f.setsampwidth(2), f.setframerate(sr)
        f.writeframes((np.clip(data.T, -1, 1) * 32767).astype("<i2").tobytes())
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cli_inputs")
    x16 = scene_sound(16000)
    x44 = scene_sound(44100)
    x48 = scene_sound(48000)
    out = {
        "wav16": wav16(d / "s16.wav", 16000, x16),
        "wavf32": encode(d / "f32.wav", "wav", "pcm_f32le", 22050, scene_sound(22050)),
        "mp3": encode(d / "a.mp3", "mp3", "libmp3lame", 44100, x44),
        "flac": encode(d / "a.flac", "flac", "flac", 16000, x16),
        "ogg": encode(d / "a.ogg", "ogg", "vorbis", 44100, np.stack([x44, x44]), {"strict": "experimental"}),
        "opus": encode(d / "a.opus", "ogg", "libopus", 48000, x48),
        "m4a": encode(d / "a.m4a", "ipod", "aac", 44100, x44),
        "stereo44k": wav16(d / "stereo44k.wav", 44100, np.stack([x44, scene_sound(44100, cls="bird")])),
        "wav8k": wav16(d / "w8k.wav", 8000, scene_sound(8000)),
    }
    # a longer file for thumbnails: horn, bird, horn (12 s)
    long = np.concatenate([scene_sound(16000, 4.0), scene_sound(16000, 4.0, cls="bird"), scene_sound(16000, 4.0)])
    out["long"] = wav16(d / "long.wav", 16000, long)
    out["corrupt"] = d / "corrupt.mp3"
    out["corrupt"].write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    good = out["wav16"].read_bytes()
    out["truncated"] = d / "truncated.wav"
    out["truncated"].write_bytes(good[:len(good) // 3])  # the RIFF header announces 3x more
    out["image"] = d / "picture.png"
    Image.fromarray(world.render_still(world.Scene("beach", []))).save(out["image"])
    return out


# ----------------------------------------------------------------------------- help and usage
@pytest.mark.parametrize("cmd", SUBCOMMANDS)
def test_help_of_each_subcommand(cmd, tmp_path):
    r = s2i(cmd, "--help", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"usage: s2i {cmd}" in r.stdout
    for opt in ("--profile", "--model-dir", "--run-dir", "--seed", "--out"):
        assert opt in r.stdout


def test_top_level_help_and_usage_errors(tmp_path):
    r = s2i("--help", cwd=tmp_path)
    assert r.returncode == 0 and all(c in r.stdout for c in SUBCOMMANDS)
    r = s2i(cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    r = s2i("generate", "x.wav", "--profile", "huge", cwd=tmp_path)
    assert r.returncode == 2 and "invalid choice" in r.stderr and "Traceback" not in r.stderr


# ----------------------------------------------------------------------------- bad inputs (no models needed)
def test_missing_file(tmp_path):
    for cmd in ("generate", "thumbnails"):
        r = s2i(cmd, "no_such_file.wav", cwd=tmp_path)
        assert_clean_error(r, "no_such_file.wav")
        assert "not found" in r.stderr


def test_corrupt_and_unsupported_files(files, tmp_path):
    r = s2i("generate", files["corrupt"], cwd=tmp_path)
    assert_clean_error(r, "corrupt.mp3")
    r = s2i("thumbnails", files["image"], cwd=tmp_path)  # an image is no audio file
    assert_clean_error(r, "picture.png")
    assert "no audio stream" in r.stderr
    r = s2i("mix", files["wav16"], files["flac"], "--gain", "0", cwd=tmp_path)
    assert_clean_error(r, "--gain")
    r = s2i("edit", files["corrupt"], files["wav16"], cwd=tmp_path)
    assert_clean_error(r, "corrupt.mp3")
    r = s2i("thumbnails", files["wav16"], "--window", "1", "--overlap", "1", cwd=tmp_path)
    assert_clean_error(r, "overlap_s")
    assert not (tmp_path / "s2i_out").exists()


def test_truncated_file_found_while_decoding(files, tmp_path):
    r = s2i("generate", files["truncated"], *models(), cwd=tmp_path)
    assert_clean_error(r, "truncated.wav")
    assert "truncated" in r.stderr.split("truncated.wav", 1)[1]


# ----------------------------------------------------------------------------- the real thing
def test_generate_from_many_formats(files, tmp_path):
    keys = ["wav16", "wavf32", "mp3", "flac", "ogg", "opus", "m4a", "stereo44k", "wav8k"]
    r = s2i("generate", *[files[k] for k in keys], "--n", "2", "--out", "out", *models(), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    names = {"wav16": "s16", "wavf32": "f32", "mp3": "a_mp3", "flac": "a_flac", "ogg": "a_ogg", "opus": "a_opus",
             "m4a": "a_m4a", "stereo44k": "stereo44k", "wav8k": "w8k"}  # stems collide: a.mp3, a.flac ...
    for k in keys:
        for i in range(2):
            im = np.asarray(Image.open(tmp_path / "out" / f"{names[k]}_{i:02d}.png"))
            assert im.shape == (128, 128, 3) and im.dtype == np.uint8  # 32 px, upscaled 4x (nearest)
            assert (im[::4, ::4] == im[1::4, 1::4]).all()
        assert (tmp_path / "out" / f"{names[k]}_grid.png").exists()
    assert len(r.stdout.strip().splitlines()) == len(keys)


def test_thumbnails_end_to_end(files, tmp_path):
    r = s2i("thumbnails", files["long"], files["mp3"], "--window", "1.0", "--overlap", "0.5", "--out", "th",
            *models(), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for stem, seconds in (("long", 12.0), ("a", 3.0)):
        d = tmp_path / "th" / stem
        rep = json.loads((d / "thumbnails.json").read_text())
        assert rep["window_s"] == 1.0 and rep["overlap_s"] == 0.5
        assert abs(rep["duration_s"] - seconds) < 0.1
        assert rep["n_windows"] == pytest.approx(2 * seconds - 1, abs=1)
        assert sum(c["size"] for c in rep["clusters"]) == rep["n_windows"] and len(rep["clusters"]) == rep["k"]
        for f in ("final.png", "contact_sheet.png", "slideshow.gif", *[c["thumbnail"] for c in rep["clusters"]]):
            assert (d / f).exists()
        assert Image.open(d / "slideshow.gif").n_frames == rep["k"]
        starts = [c["first_start"] for c in rep["clusters"]]
        assert starts == sorted(starts) and starts[0] == 0.0  # in order of first appearance
