"""The ``s2i`` command line, end to end in subprocesses (``python -m s2i``), on audio, image and
video files the tests write themselves in many formats, with the smoke models of
``build/nbval`` (the ``smoke_run`` fixture). Every subcommand has a test that succeeds and checks
what it wrote, beside the tests of its errors; ``test_cli_matrix.py`` runs malformed and unusual
files through every subcommand."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from s2i.toyworld import world

ROOT = Path(__file__).resolve().parents[1]
SUBCOMMANDS = ["generate", "mix", "edit", "video", "thumbnails"]


def s2i(*args, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # tiny models on a busy CPU: one thread is fastest
    return subprocess.run(
        [sys.executable, "-m", "s2i", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def s2i_here(*args, cwd: Path) -> subprocess.CompletedProcess:
    """The same command run by :func:`s2i.app.cli.main` in this process (torch and the models'
    code already imported: seconds faster than a subprocess), one torch thread as :func:`s2i`
    sets, stdout and stderr captured. For the further cases of a command whose first case ran
    in a subprocess (which alone checks what a user's terminal shows: no warnings)."""
    import contextlib
    import io

    import torch

    from s2i.app.cli import main

    out, err, threads, here = io.StringIO(), io.StringIO(), torch.get_num_threads(), os.getcwd()
    try:
        torch.set_num_threads(1)
        os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in args])
    finally:
        os.chdir(here)
        torch.set_num_threads(threads)
    return subprocess.CompletedProcess(["s2i", *map(str, args)], code, out.getvalue(), err.getvalue())


def smoke_args(run: Path) -> list[str]:
    """Options that point a command at the smoke run (one sampling step: fast)."""
    return ["--profile", "smoke", "--run-dir", str(run), "--model-dir", str(run / "models"), "--quiet", "--steps", "1"]


@pytest.fixture(scope="module")
def models(smoke_run) -> list[str]:
    return smoke_args(smoke_run)


def assert_clean_error(r: subprocess.CompletedProcess, name: str) -> None:
    """Non-zero exit, one line on stderr naming the file, no traceback."""
    assert r.returncode != 0
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, r.stderr
    assert name in lines[0] and "error" in lines[0], lines[0]


# ----------------------------------------------------------------------------- input files
def scene_sound(sr: int, seconds: float = 3.0, cls="horn", bg="meadow") -> np.ndarray:
    return world.render_sound(world.Scene(bg, [world.SceneObject(cls, gain=0.9)]), seconds, sr=sr, seed=2**41)


def encode(path: Path, fmt: str, codec: str, sr: int, data: np.ndarray, options=None) -> Path:
    """Write (C, n) float audio with PyAV."""
    data = np.ascontiguousarray(np.atleast_2d(data).astype(np.float32))
    with av.open(str(path), "w", format=fmt) as c:
        st = c.add_stream(codec, rate=sr, layout="mono" if len(data) == 1 else "stereo", options=options or {})
        for s in range(0, data.shape[1], 1024):
            fr = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(data[:, s : s + 1024]), format="fltp", layout=st.layout.name
            )
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
    out["truncated"].write_bytes(good[: len(good) // 3])  # the RIFF header announces 3x more
    out["image"] = d / "picture.png"
    Image.fromarray(world.render_still(world.Scene("beach", []))).save(out["image"])
    return out


# ----------------------------------------------------------------------------- help and usage
@pytest.mark.parametrize("cmd", SUBCOMMANDS)
def test_help_of_each_subcommand(cmd, tmp_path):
    r = s2i(cmd, "--help", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"usage: s2i {cmd}" in r.stdout
    for opt in ("--profile", "--model-dir", "--run-dir", "--audio-encoder", "--config", "--seed", "--out"):
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
    r = s2i("mix", files["wav16"], files["flac"], "--gain", "0", "-6", "3", cwd=tmp_path)
    assert_clean_error(r, "--gain")
    r = s2i("edit", files["corrupt"], files["wav16"], cwd=tmp_path)
    assert_clean_error(r, "corrupt.mp3")
    r = s2i("thumbnails", files["wav16"], "--window", "1", "--overlap", "1", cwd=tmp_path)
    assert_clean_error(r, "overlap_s")
    assert not (tmp_path / "s2i_out").exists()


def test_truncated_file_found_while_decoding(files, models, tmp_path):
    r = s2i("generate", files["truncated"], *models, cwd=tmp_path)
    assert_clean_error(r, "truncated.wav")
    assert "truncated" in r.stderr.split("truncated.wav", 1)[1]


# ----------------------------------------------------------------------------- the real thing
def test_generate_from_many_formats(files, models, tmp_path):
    keys = ["wav16", "wavf32", "mp3", "flac", "ogg", "opus", "m4a", "stereo44k", "wav8k"]
    r = s2i("generate", *[files[k] for k in keys], "--n", "2", "--out", "out", *models, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    names = {
        "wav16": "s16",
        "wavf32": "f32",
        "mp3": "a_mp3",
        "flac": "a_flac",
        "ogg": "a_ogg",
        "opus": "a_opus",
        "m4a": "a_m4a",
        "stereo44k": "stereo44k",
        "wav8k": "w8k",
    }  # stems collide: a.mp3, a.flac ...
    for k in keys:
        for i in range(2):
            im = np.asarray(Image.open(tmp_path / "out" / f"{names[k]}_{i:02d}.png"))
            assert im.shape == (128, 128, 3) and im.dtype == np.uint8  # 32 px, upscaled 4x (nearest)
            assert (im[::4, ::4] == im[1::4, 1::4]).all()
        assert (tmp_path / "out" / f"{names[k]}_grid.png").exists()
    assert len(r.stdout.strip().splitlines()) == len(keys)


def test_generate_keeps_the_best_of_its_candidates(files, models, smoke_s2i, tmp_path):
    r = s2i_here(
        "generate", files["wav16"], "--n", "2", "--candidates", "3", "--scale", "1", "-o", "k3", *models, cwd=tmp_path
    )
    assert r.returncode == 0, r.stderr
    got = np.stack([np.asarray(Image.open(tmp_path / "k3" / f"s16_{i:02d}.png")) for i in range(2)])
    want = smoke_s2i.generate(files["wav16"], n=2, seed=0, steps=1, candidates=3)
    np.testing.assert_array_equal(got, want)
    assert not np.array_equal(want, smoke_s2i.generate(files["wav16"], n=2, seed=0, steps=1))
    r = s2i_here("generate", files["wav16"], "--candidates", "0", *models, cwd=tmp_path)
    assert r.returncode == 1 and "--candidates must be >= 1" in r.stderr


def test_generate_draws_the_prior_samples_unless_told_not_to(files, models, smoke_s2i, tmp_path):
    for flag, model in (([], smoke_s2i), (["--no-prior"], smoke_s2i.without_prior())):
        r = s2i_here("generate", files["wav16"], "--n", "2", "--scale", "1", "-o", "p", *flag, *models, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        got = np.stack([np.asarray(Image.open(tmp_path / "p" / f"s16_{i:02d}.png")) for i in range(2)])
        want = model.generate(files["wav16"], n=2, seed=0, steps=1)  # under this process's torch threads
        np.testing.assert_allclose(got.astype(int), want.astype(int), atol=2)
    assert not np.array_equal(got, smoke_s2i.generate(files["wav16"], n=2, seed=0, steps=1))


def test_thumbnails_end_to_end(files, models, tmp_path):
    r = s2i(
        "thumbnails",
        files["long"],
        files["mp3"],
        "--window",
        "1.0",
        "--overlap",
        "0.5",
        "--out",
        "th",
        *models,
        cwd=tmp_path,
    )
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


def test_thumbnails_keep_the_best_of_their_candidates(files, models, tmp_path):
    r = s2i_here("thumbnails", files["long"], "--k", "2", "--candidates", "2", "--out", "k2", *models, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r1 = s2i_here("thumbnails", files["long"], "--k", "2", "--out", "k1", *models, cwd=tmp_path)
    assert r1.returncode == 0, r1.stderr
    k1, k2 = (json.loads((tmp_path / d / "long" / "thumbnails.json").read_text()) for d in ("k1", "k2"))
    assert [c["size"] for c in k1["clusters"]] == [c["size"] for c in k2["clusters"]]  # the drawing alone differs
    assert all((tmp_path / "k2" / "long" / c["thumbnail"]).exists() for c in k2["clusters"])
    r = s2i_here("thumbnails", files["long"], "--candidates", "0", *models, cwd=tmp_path)
    assert r.returncode == 1 and "--candidates must be >= 1" in r.stderr


def test_mix_end_to_end(files, models, tmp_path):
    """One to three files, gains written as users type them (negative ones included)."""
    cases = {
        "one": [files["wav16"]],
        "two": [files["wav16"], files["flac"], "--gain", "0", "-6"],
        "equals": [files["mp3"], files["ogg"], "--gain=-3", "--gain=0"],
        "three": [files["wav16"], files["stereo44k"], files["m4a"], "--gain", "-6", "0", "-12", "-n", "2"],
    }
    for name, argv in cases.items():
        run = s2i if name == "one" else s2i_here  # one subprocess: what a terminal shows
        r = run("mix", *argv, "-o", name, *models, cwd=tmp_path)
        assert r.returncode == 0, (name, r.stderr)
        assert r.stderr == "", r.stderr  # no warnings, no progress bars with --quiet
        n = 2 if name == "three" else 1
        written = sorted(q.name for q in (tmp_path / name).iterdir())
        assert written == [*(f"mix_{i:02d}.png" for i in range(n)), "mix_grid.png"]
        im = np.asarray(Image.open(tmp_path / name / "mix_00.png"))
        assert im.shape == (128, 128, 3) and im.std() > 0  # a picture, not a flat field
    out = s2i_here("mix", files["wav16"], files["flac"], "--gain", "0", "-6", "-o", "again", *models, cwd=tmp_path)
    assert out.returncode == 0 and "s16.wav +0 dB, a.flac -6 dB" in out.stdout
    assert (tmp_path / "again" / "mix_00.png").read_bytes() == (tmp_path / "two" / "mix_00.png").read_bytes()


def test_edit_end_to_end(files, models, tmp_path):
    r = s2i("edit", files["image"], files["wav16"], "-n", "2", "-o", "ed", "--gain-db", "-6", *models, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stderr == "", r.stderr  # no warnings
    written = sorted(q.name for q in (tmp_path / "ed").iterdir())
    assert written == ["picture_edited_00.png", "picture_edited_01.png", "picture_edited_grid.png"]
    im = np.asarray(Image.open(tmp_path / "ed" / "picture_edited_00.png"))
    assert im.shape == (128, 128, 3) and im.dtype == np.uint8


def test_video_end_to_end(files, models, tmp_path):
    from s2i.media import probe, write_video

    frames = np.stack([np.full((48, 64, 3), 40 + 8 * i, np.uint8) for i in range(12)])
    clip = write_video(tmp_path / "clip.mp4", frames, 6.0, scene_sound(16000, 2.0), 16000)
    r = s2i("video", clip, files["wav16"], "-o", "edited.mp4", *models, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stderr == "", r.stderr
    info = probe(tmp_path / "edited.mp4")
    assert info["video"]["frames"] == 12 and info["video"]["fps"] == pytest.approx(6.0)
    assert info["audio"] is not None and info["audio"]["duration"] == pytest.approx(2.0, abs=0.1)
    r = s2i("video", clip, files["wav16"], "-o", "best.mp4", "--candidates", "2", *models, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert probe(tmp_path / "best.mp4")["video"]["frames"] == 12
    r = s2i("video", clip, files["wav16"], "-o", "edited.avi", *models, cwd=tmp_path)
    assert_clean_error(r, "edited.avi")


def test_a_broken_file_in_a_batch_is_reported_and_the_others_are_written(files, models, tmp_path):
    """generate and thumbnails: each file is processed or reported on one line; the summary
    says how many; the exit status is 1 because one failed; the good files' outputs are whole."""
    batch = [files["wav16"], files["corrupt"], tmp_path / "missing.wav", files["flac"]]
    r = s2i("generate", *batch, "-n", "1", "-o", "gen", *models, cwd=tmp_path)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 3, r.stderr
    assert "corrupt.mp3" in lines[0] and "missing.wav" in lines[1] and "not found" in lines[1]
    assert lines[2] == "s2i generate: 2 of 4 files done, 2 failed"
    assert sorted(q.name for q in (tmp_path / "gen").iterdir()) == [
        "a_00.png",
        "a_grid.png",
        "s16_00.png",
        "s16_grid.png",
    ]
    for q in (tmp_path / "gen").iterdir():
        Image.open(q).load()  # complete PNGs

    r = s2i("thumbnails", files["wav16"], files["image"], files["mp3"], "-o", "th", *models, cwd=tmp_path)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 2 and "picture.png" in lines[0] and "no audio stream" in lines[0], r.stderr
    assert lines[1] == "s2i thumbnails: 2 of 3 files done, 1 failed"
    assert sorted(q.name for q in (tmp_path / "th").iterdir()) == ["a", "s16"]
    assert (tmp_path / "th" / "a" / "thumbnails.json").exists()

    r = s2i_here("generate", files["wav16"], files["flac"], "-o", "ok", *models, cwd=tmp_path)
    assert r.returncode == 0 and r.stderr.strip() == "s2i generate: 2 of 2 files done, 0 failed"


def test_short_options(tmp_path):
    for cmd in SUBCOMMANDS:
        r = s2i(cmd, "--help", cwd=tmp_path)
        assert "-o OUT, --out OUT" in r.stdout, cmd
        if cmd not in ("video", "thumbnails"):
            assert "-n N, --n N" in r.stdout, cmd
    assert "--gain 0 -6" in s2i("mix", "--help", cwd=tmp_path).stdout
