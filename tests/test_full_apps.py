"""Every application on the ``full`` profile, end to end, with tiny random OpenCLIP / Stable unCLIP
models saved in their real formats (:mod:`s2i.testing`) and a tiny audio encoder of their
dimension saved as a trained run's: ``s2i generate|mix|edit|video|thumbnails --profile full``
(in-process, the models named by a ``--config`` YAML's ``full:`` section, as a user points at
local model files) and the explorer's :func:`~s2i.app.explore.explore_once`.

The inputs are real-format files written here: stereo 44.1 kHz WAV and MP3 sounds, a 640x480
photo as PNG and JPEG, H.264 + AAC videos (16:9 at 25 fps, portrait at 30 fps, 16:9 at 8 fps)
and a VP9 + Opus WebM. An edited video must keep its input's frame rate, frame count, width x
height and audio track. The pictures of random models are noise: these tests check what is
written, not what it shows. (The composed-guidance arithmetic of the one sampler is checked by
hand in ``tests/test_full_profile.py``.)
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from cli_matrix import av_audio
from PIL import Image

from s2i.app.cli import main
from s2i.media import probe, read_audio_track, read_video, write_video

EMBED_DIM = 32


# ----------------------------------------------------------------------------- models and inputs
@pytest.fixture(scope="module")
def full(tmp_path_factory) -> dict[str, Path]:
    """Tiny full-profile models, a run folder holding a tiny audio encoder of their dimension,
    and the ``--config`` YAML that names them."""
    from s2i.models.audio_encoder import AudioEncoder, AudioEncoderCfg
    from s2i.testing import make_tiny_openclip_checkpoint, make_tiny_unclip_pipeline

    d = tmp_path_factory.mktemp("full_models")
    _, clip = make_tiny_openclip_checkpoint(d / "openclip", embed_dim=EMBED_DIM)
    unclip = make_tiny_unclip_pipeline(d / "stable-unclip", embed_dim=EMBED_DIM)
    torch.manual_seed(0)
    AudioEncoder(AudioEncoderCfg(embed_dim=EMBED_DIM, width=4, depth=2)).save(d / "run" / "alignment" / "audio_encoder")
    cfg = d / "full.yaml"
    cfg.write_text(
        "full:\n"
        "  device: cpu\n"
        f"  image_encoder: {{model: 'local-dir:{Path(clip).parent}', pretrained: null}}\n"
        f"  generator: {{path: '{unclip}', steps: 2, guidance: 3.0, dtype: float32}}\n"
    )
    return dict(config=cfg, run=d / "run")


def _sound(sr: int, seconds: float, f0: float = 440.0) -> np.ndarray:
    """(2, n) stereo: a tone under a slow loudness swell, with a little noise."""
    t = np.arange(int(round(sr * seconds))) / sr
    x = 0.4 * np.sin(2 * np.pi * f0 * t) * (0.55 + 0.45 * np.sin(2 * np.pi * 0.5 * t))
    x = x + 0.03 * np.random.default_rng(int(f0)).standard_normal(len(t))
    return np.stack([x, 0.7 * x]).astype(np.float32)


def _frames(width: int, height: int, n: int) -> np.ndarray:
    """A moving colour gradient, (n, height, width, 3) uint8."""
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 // width, yy * 255 // height, (xx + yy) * 127 // (width + height)], -1)
    return np.stack([np.roll(base + 5 * i, 2 * i, axis=1) % 256 for i in range(n)]).astype(np.uint8)


def _webm(path: Path, frames: np.ndarray, fps: int, audio: np.ndarray) -> Path:
    """VP9 + Opus (48 kHz stereo) in WebM."""
    with av.open(str(path), "w", format="webm") as c:
        vs = c.add_stream("libvpx-vp9", rate=fps, options={"deadline": "realtime", "cpu-used": "8"})
        vs.width, vs.height, vs.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        st = c.add_stream("libopus", rate=48000, layout="stereo")
        packets = []
        for i, f in enumerate(frames):
            fr = av.VideoFrame.from_ndarray(f, format="rgb24")
            fr.pts = i
            packets += vs.encode(fr)
        packets += vs.encode()
        for s in range(0, audio.shape[1], 960):
            fr = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio[:, s : s + 960]), format="fltp", layout="stereo")
            fr.sample_rate, fr.pts, fr.time_base = 48000, s, Fraction(1, 48000)
            packets += st.encode(fr)
        packets += st.encode()
        c.mux(packets)
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("full_inputs")
    yy, xx = np.mgrid[0:480, 0:640]
    photo = np.stack([xx * 255 // 640, yy * 255 // 480, (xx // 40 + yy // 40) % 2 * 200], -1).astype(np.uint8)
    Image.fromarray(photo).save(d / "photo.png")
    Image.fromarray(photo).save(d / "photo.jpg", quality=90)
    long = np.concatenate([_sound(16000, 40.0, f)[:1] for f in (300.0, 1200.0, 3000.0)], axis=1)
    return dict(
        wav=av_audio(d / "dog.wav", "wav", "pcm_s16le", _sound(44100, 1.5), 44100),
        mp3=av_audio(d / "water.mp3", "mp3", "libmp3lame", _sound(44100, 1.5, 900.0), 44100),
        png=d / "photo.png",
        jpg=d / "photo.jpg",
        long=av_audio(d / "programme.wav", "wav", "pcm_s16le", np.repeat(long, 2, 0), 16000),  # 2 minutes
        wide25=write_video(d / "wide25.mp4", _frames(160, 90, 25), 25, _sound(44100, 1.0), 44100),
        tall30=write_video(d / "tall30.mp4", _frames(72, 128, 30), 30, _sound(48000, 1.0, 660.0), 48000),
        wide8=write_video(d / "wide8.mp4", _frames(128, 72, 16), 8, _sound(44100, 2.0, 330.0), 44100),
        webm=_webm(d / "clip.webm", _frames(96, 64, 12), 12, _sound(48000, 1.0, 550.0)),
    )


def run(argv: list, capsys) -> tuple[int, str, str]:
    """``s2i ARGV`` in-process: exit status, stdout, stderr (no traceback allowed)."""
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Traceback" not in out
    return rc, out, err


def full_args(full: dict[str, Path]) -> list:
    return ["--profile", "full", "--config", full["config"], "--run-dir", full["run"], "--quiet"]


def png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


# ----------------------------------------------------------------------------- the five commands
def test_generate_batch_and_size(full, inputs, tmp_path, capsys) -> None:
    """Two files (WAV, MP3) -> -n images each; --size draws another aspect; seeded."""
    out = tmp_path / "gen"
    rc, stdout, err = run(["generate", inputs["wav"], inputs["mp3"], "-n", 2, "-o", out, *full_args(full)], capsys)
    assert rc == 0, err
    names = sorted(p.name for p in out.iterdir())
    assert names == ["dog_00.png", "dog_01.png", "dog_grid.png", "water_00.png", "water_01.png", "water_grid.png"]
    assert png(out / "dog_00.png").shape == (128, 128, 3)  # 32 px, shown x4
    again = tmp_path / "again"
    assert run(["generate", inputs["wav"], "-n", 2, "-o", again, *full_args(full)], capsys)[0] == 0
    np.testing.assert_array_equal(png(again / "dog_01.png"), png(out / "dog_01.png"))

    wide = tmp_path / "wide"
    rc, _, err = run(["generate", inputs["wav"], "-n", 1, "--size", "48x32", "-o", wide, *full_args(full)], capsys)
    assert rc == 0, err
    assert png(wide / "dog_00.png").shape == (128, 192, 3)  # 32 x 48, shown x4
    rc, _, err = run(["generate", inputs["wav"], "--size", "50x32", "-o", wide, *full_args(full)], capsys)
    assert rc == 1 and "multiples of 8" in err


def test_mix_two_sounds_with_gains(full, inputs, tmp_path, capsys) -> None:
    out = tmp_path / "mix"
    argv = ["mix", inputs["wav"], inputs["mp3"], "--gain", 0, -6, "-n", 2, "-o", out, *full_args(full)]
    rc, stdout, err = run(argv, capsys)
    assert rc == 0, err
    assert "dog.wav +0 dB, water.mp3 -6 dB: 2 images" in stdout
    assert png(out / "mix_00.png").shape == (128, 128, 3) and png(out / "mix_grid.png").ndim == 3
    rc, _, err = run([*argv[:-5], "--size", "48x32", "-o", tmp_path / "mixw", *full_args(full)], capsys)
    assert rc == 0, err
    assert png(tmp_path / "mixw" / "mix_00.png").shape == (128, 192, 3)


@pytest.mark.parametrize("photo", ["png", "jpg"])
def test_edit_photo_keeps_its_aspect(full, inputs, tmp_path, capsys, photo) -> None:
    """A 640x480 photo is edited at the generator's drawing size of its aspect (32 x 40 here)."""
    out = tmp_path / "edit"
    rc, stdout, err = run(["edit", inputs[photo], inputs["mp3"], "-o", out, *full_args(full)], capsys)
    assert rc == 0, err
    im = png(out / "photo_edited_00.png")
    assert im.shape == (128, 160, 3) and im.std() > 0


@pytest.mark.parametrize("name", ["wide25", "tall30", "wide8", "webm"])
def test_video_keeps_rate_length_size_and_audio(full, inputs, tmp_path, capsys, name) -> None:
    """The edited video has the input's frame rate, frame count, width x height, and its audio
    track: same rate, channels and duration, the same signal (re-encoded)."""
    src = inputs[name]
    out = tmp_path / f"{name}_edited.mp4"
    rc, stdout, err = run(["video", src, inputs["wav"], "-o", out, *full_args(full)], capsys)
    assert rc == 0, err
    v_in, v_out = read_video(src), read_video(out)
    assert v_out.frames.shape == v_in.frames.shape
    assert v_out.fps == pytest.approx(v_in.fps)
    assert len(v_out.frames) / v_out.fps == pytest.approx(len(v_in.frames) / v_in.fps)  # the length
    info = probe(out)
    assert (info["video"]["codec"], info["audio"]["codec"]) == ("h264", "aac")
    assert (info["video"]["width"], info["video"]["height"]) == (v_in.frames.shape[2], v_in.frames.shape[1])
    a_in, sr_in, _ = read_audio_track(src)
    a_out, sr_out, _ = read_audio_track(out)
    assert (sr_out, a_out.shape[0]) == (sr_in, a_in.shape[0]) == (sr_in, 2)
    assert abs(a_out.shape[1] - a_in.shape[1]) <= 0.03 * sr_in  # same duration, to a codec frame
    n = min(a_in.shape[1], a_out.shape[1])
    assert np.corrcoef(a_in[0, :n], a_out[0, :n])[0, 1] > 0.9  # the input's own track, not the sound
    # the frames are edited, and every frame the same way (shared noise): no flicker between
    # neighbouring frames beyond what the input's motion and the sound's swell bring
    assert not np.array_equal(v_out.frames, v_in.frames)

    # --audio-track sound: the driving sound instead (mono 16 kHz), trimmed to the video
    out2 = tmp_path / f"{name}_sound.mp4"
    rc, _, err = run(["video", src, inputs["wav"], "-o", out2, "--audio-track", "sound", *full_args(full)], capsys)
    assert rc == 0, err
    a2, sr2, _ = read_audio_track(out2)
    assert (sr2, a2.shape[0]) == (16000, 1) and abs(a2.shape[1] / sr2 - v_in.duration) < 0.07


def test_thumbnails_of_a_two_minute_sound(full, inputs, tmp_path, capsys) -> None:
    import json

    out = tmp_path / "thumbs"
    rc, stdout, err = run(["thumbnails", inputs["long"], "-o", out, *full_args(full)], capsys)
    assert rc == 0, err
    d = out / "programme"
    for f in ("final.png", "contact_sheet.png", "slideshow.gif", "thumbnails.json"):
        assert (d / f).is_file(), f
    report = json.loads((d / "thumbnails.json").read_text())
    assert report and "programme.wav:" in stdout and "windows" in stdout


# ----------------------------------------------------------------------------- the explorer
def test_explore_once_on_full(full, inputs) -> None:
    """The explorer's one function with the full profile: one sound, a mix, an edit of a
    non-square photo; no judge on real data."""
    from s2i.app.explore import EmbeddingCache, explore_once
    from s2i.app.inputs import read_config
    from s2i.backbones.full import FullBackbones
    from s2i.method.generate import Sound2Image
    from s2i.models.audio_encoder import AudioEncoder

    p = read_config(str(full["config"]))["full"]
    s2i = Sound2Image(FullBackbones.from_params(p), AudioEncoder.load(full["run"] / "alignment" / "audio_encoder"))
    cache = EmbeddingCache()
    one = explore_once(s2i, "bell", "meadow", 3.0, n=2, steps=2, cache=cache)
    assert one["method"] == "generate" and one["images"].shape == (2, 32, 32, 3)
    assert one["report"] is None and one["summary"] == ["(no judge for this profile)"] * 2
    again = explore_once(s2i, "bell", "meadow", 3.0, n=2, steps=2, cache=cache)
    np.testing.assert_array_equal(again["images"], one["images"])
    assert cache.hits > 0
    mix = explore_once(s2i, "bell", "meadow", second_class="engine", mix_db=-6, n=1, steps=2)
    assert mix["method"] == "compose" and mix["images"].shape == (1, 32, 32, 3)
    photo = png(inputs["jpg"])
    ed = explore_once(s2i, "bell", "meadow", image=photo, n=1, steps=2)
    assert ed["method"] == "edit" and ed["images"].shape == (1, 32, 40, 3) and ed["input_image"].shape == (32, 40, 3)
    still = explore_once(s2i, "bell", "meadow", image="beach", n=1, steps=2)
    assert still["images"].shape == (1, 32, 32, 3)


# ----------------------------------------------------------------------------- drawing sizes
def test_drawing_sizes_and_non_square_compose(full, monkeypatch) -> None:
    """``drawing_size`` keeps a frame's aspect (shorter side at the generator's, sides in its size
    step, at most 2:1); ``compose`` draws such a size, masks and regions at it, and keeps the
    input's latents outside the region."""
    from s2i.app.inputs import read_config
    from s2i.backbones.full import FullBackbones
    from s2i.method.edit import edit_region

    fb = FullBackbones.from_params(read_config(str(full["config"]))["full"], load_generator=True)
    assert (fb.image_size, fb.size_step) == (32, 8)
    assert fb.drawing_size(1080, 1920) == (32, 56) and fb.drawing_size(1920, 1080) == (56, 32)
    assert fb.drawing_size(480, 640) == (32, 40) and fb.drawing_size(500, 500) == (32, 32)
    assert fb.drawing_size(100, 1000) == (32, 64)  # at most 2:1: a panorama is drawn in its centre
    img = np.asarray(Image.fromarray(np.full((90, 160, 3), 90, np.uint8)))
    z = fb.encode_images(img[None])
    init = fb.encode_latents(img[None], (32, 56))
    assert init.shape == (1, 4, 16, 28)
    assert edit_region("half", (32, 56), seed=0).shape == edit_region("centre", (32, 56)).shape == (32, 56)
    region = np.zeros((32, 56), np.float32)
    region[:, :24] = 1  # drawn in the left 24 columns: latent columns 12-27 are kept
    seen = []
    decode = fb.decode_latents
    monkeypatch.setattr(fb, "decode_latents", lambda lat, batch=None: seen.append(lat) or decode(lat, batch))
    out = fb.compose([z, -z], [1.0, 3.0], init_images=img[None], strength=0.6, region=region, size=(32, 56), steps=3)
    assert out.shape == (1, 32, 56, 3)
    torch.testing.assert_close(seen[0][..., 12:], init[..., 12:], rtol=0, atol=1e-5)
    assert (seen[0][..., :12] - init[..., :12]).abs().mean() > 0.05  # the inside is drawn anew
    with pytest.raises(ValueError, match="multiples of 8"):
        fb.compose([z], [1.0], size=(32, 50))
    with pytest.raises(ValueError, match="32x56"):
        fb.compose([z], [1.0], masks=np.ones((1, 32, 32)), size=(32, 56))


def test_toy_video_pastes_its_square_back_into_the_frame(smoke_s2i, tmp_path) -> None:
    """The toy generator draws 32x32 squares: a 16:9 video is edited in its centre square and
    keeps its size, frame rate, frame count and audio; outside the square the frames are the
    input's (to the codec's rounding)."""
    from s2i.method.video_edit import edit_video

    frames = _frames(64, 36, 8)
    src = write_video(tmp_path / "wide.mp4", frames, 8, _sound(44100, 1.0), 44100)
    out = edit_video(smoke_s2i, src, _sound(16000, 1.0)[0], tmp_path / "edited.mp4", sr=16000, steps=2)
    v_in, v_out = read_video(src), read_video(out)
    assert v_out.frames.shape == v_in.frames.shape == (8, 36, 64, 3) and v_out.fps == pytest.approx(8.0)
    side = np.abs(v_out.frames[:, :, :12].astype(int) - v_in.frames[:, :, :12]).mean()  # left of the square
    assert side < 3, side
    a_in, a_out = read_audio_track(src)[0], read_audio_track(out)[0]
    assert a_out.shape[0] == 2 and abs(a_out.shape[1] - a_in.shape[1]) <= 0.03 * 44100


def test_toy_generator_draws_its_square_only(smoke_s2i) -> None:
    """The toy backbones say so through the interface: their drawing size is their square for
    any frame, and another size is one clear error (``s2i generate --size`` on the toy)."""
    bb = smoke_s2i.backbones
    assert bb.drawing_size(1080, 1920) == bb.drawing_size(32, 32) == (32, 32)
    z = torch.zeros(1, bb.embed_dim)
    with pytest.raises(ValueError, match="draws 32x32 pictures only, not 48x32"):
        bb.generate(z, height=32, width=48)
    with pytest.raises(ValueError, match="draws 32x32 pictures only"):
        bb.compose([z], [1.0], size=(32, 48))
