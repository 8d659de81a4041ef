"""A matrix of malformed and unusual input files, and a runner that puts every one of them
through every ``s2i`` subcommand in one process.

``make_matrix(folder)`` writes the files and returns the cases: ``(name, argv, expect)`` where
``expect`` is ``"ok"`` (the command must write its outputs) or ``"error"`` (it must refuse the
file with one line naming it). ``run(cases, model_args, out_root)`` calls ``s2i.app.cli.main`` for each
case in this process, capturing what it prints, and returns one record per case. The models are
loaded once and reused (``load_model`` memoised): the matrix is about the inputs, and loading the
same models 150 times would only cost time.

Run as a script (``python tests/cli_matrix.py RUN_DIR WORK_DIR``) it prints the records as JSON:
a crash of the process (a segmentation fault in a decoder, say) ends the script, and the caller
sees a dead process instead of the JSON.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import time
import traceback
import wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

SR = 16000


# ----------------------------------------------------------------------------- writers
def _signal(sr: int, seconds: float, channels: int = 1, seed: int = 0) -> np.ndarray:
    """(C, n) float32 in [-0.6, 0.6]: a tone per channel plus a little noise."""
    n = max(1, int(round(sr * seconds)))
    t = np.arange(n) / sr
    rng = np.random.default_rng(seed)
    x = [0.4 * np.sin(2 * np.pi * (220 + 110 * c) * t) + 0.05 * rng.standard_normal(n) for c in range(channels)]
    return np.clip(np.stack(x), -0.6, 0.6).astype(np.float32)


def wav_std(path: Path, data: np.ndarray, sr: int, width: int = 2) -> Path:
    """Integer PCM WAV (8-, 16- or 32-bit) with the standard library's writer; (C, n) data."""
    scale = {1: 127, 2: 32767, 4: 2**31 - 1}[width]
    x = np.round(np.clip(data.T, -1, 1) * scale)
    raw = (x + 128).astype(np.uint8) if width == 1 else x.astype(f"<i{width}")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(len(data)), f.setsampwidth(width), f.setframerate(sr)
        f.writeframes(raw.tobytes())
    return path


def av_audio(
    path: Path, fmt: str, codec: str, data: np.ndarray, sr: int, sample_fmt: str = "flt", layout: str | None = None
) -> Path:
    """Any codec PyAV encodes, fed packed frames (PyAV cannot fill planar frames of 8+ channels)."""
    layout = layout or ("mono" if len(data) == 1 else "stereo" if len(data) == 2 else f"{len(data)}c")
    with av.open(str(path), "w", format=fmt) as c:
        st = c.add_stream(codec, rate=sr, layout=layout)
        conv = av.AudioResampler(format=st.codec_context.format.name, layout=layout, rate=sr)
        packed = np.ascontiguousarray(data.T.reshape(1, -1).astype(np.float32))
        fr = av.AudioFrame.from_ndarray(packed, format="flt", layout=layout)
        fr.sample_rate, fr.pts, fr.time_base = sr, 0, Fraction(1, sr)
        for f in [*conv.resample(fr), *conv.resample(None)]:
            for p in st.encode(f):
                c.mux(p)
        for p in st.encode():
            c.mux(p)
    return path


def video_file(path: Path, n_frames: int, size=(48, 64), fps: int = 8, audio: bool = True, fmt: str = "mp4") -> Path:
    """H.264 (+ AAC) with moving content; ``n_frames`` 0 gives a video stream without frames."""
    h, w = size
    with av.open(str(path), "w", format=fmt) as c:
        vs = c.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        ast = c.add_stream("aac", rate=SR, layout="mono") if audio else None
        for i in range(n_frames):
            img = np.zeros((h, w, 3), np.uint8)
            img[:, : (i * 7) % w] = (200, 80, 40)
            for p in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in vs.encode():
            c.mux(p)
        if ast is not None:
            x = _signal(SR, max(n_frames, 1) / fps)[0]
            conv = av.AudioResampler(format="fltp", layout="mono", rate=SR)
            fr = av.AudioFrame.from_ndarray(x[None], format="flt", layout="mono")
            fr.sample_rate, fr.pts, fr.time_base = SR, 0, Fraction(1, SR)
            for f in [*conv.resample(fr), *conv.resample(None)]:
                for p in ast.encode(f):
                    c.mux(p)
            for p in ast.encode():
                c.mux(p)
    return path


# ----------------------------------------------------------------------------- the matrix
def make_audio(d: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, expected outcome) for the audio inputs."""
    out: dict[str, tuple[Path, str]] = {}
    for ch in (1, 2, 6, 8, 16, 32):
        out[f"{ch}ch"] = (wav_std(d / f"ch{ch}.wav", _signal(SR, 1.0, ch), SR), "ok")
    x = _signal(SR, 1.0)
    out["u8"] = (wav_std(d / "u8.wav", x, SR, 1), "ok")
    out["s32"] = (wav_std(d / "s32.wav", x, SR, 4), "ok")
    out["s24"] = (av_audio(d / "s24.wav", "wav", "pcm_s24le", x, SR), "ok")
    out["f32"] = (av_audio(d / "f32.wav", "wav", "pcm_f32le", x, SR), "ok")
    out["f64"] = (av_audio(d / "f64.wav", "wav", "pcm_f64le", x, SR), "ok")
    for sr in (8000, 11025, 96000, 192000):
        out[f"{sr}Hz"] = (wav_std(d / f"r{sr}.wav", _signal(sr, 1.0), sr), "ok")
    out["flac8ch"] = (av_audio(d / "eight.flac", "flac", "flac", _signal(48000, 1.0, 8), 48000, layout="7.1"), "ok")
    out["aac8ch"] = (av_audio(d / "eight.m4a", "ipod", "aac", _signal(48000, 1.0, 8), 48000, layout="7.1"), "ok")
    out["10ms"] = (wav_std(d / "short.wav", _signal(SR, 0.01), SR), "ok")
    out["silence"] = (wav_std(d / "silence.wav", np.zeros((1, SR), np.float32), SR), "ok")
    out["clipped"] = (wav_std(d / "clipped.wav", np.sign(_signal(SR, 1.0)) * 1.0, SR), "ok")
    out["wav_as_mp3"] = (d / "really_a_wav.mp3", "ok")
    out["wav_as_mp3"][0].write_bytes(out["1ch"][0].read_bytes())
    out["video_with_audio"] = (video_file(d / "talking.mp4", 8), "ok")

    bad = np.sin(np.arange(SR) / 9).astype(np.float32)[None]
    for name, v in (("nan", np.nan), ("inf", np.inf)):
        y = bad.copy()
        y[0, 1234] = v
        out[name] = (av_audio(d / f"{name}.wav", "wav", "pcm_f32le", y, SR), "error")
    sr0 = bytearray(wav_std(d / "sr0.wav", x, SR).read_bytes())
    sr0[24:32] = bytes(8)  # sample rate and byte rate 0
    (d / "sr0.wav").write_bytes(bytes(sr0))
    out["sr0"] = (d / "sr0.wav", "error")
    (d / "empty.wav").write_bytes(b"")
    out["zero_bytes"] = (d / "empty.wav", "error")
    out["no_samples"] = (wav_std(d / "header_only.wav", np.zeros((1, 0), np.float32), SR), "error")
    whole = out["1ch"][0].read_bytes()
    (d / "cut.wav").write_bytes(whole[: len(whole) // 3])
    out["truncated"] = (d / "cut.wav", "error")
    (d / "notes.wav").write_text("this is a text file, not a recording\n" * 40)
    out["text"] = (d / "notes.wav", "error")
    (d / "noise.mp3").write_bytes(np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    out["garbage"] = (d / "noise.mp3", "error")
    out["video_no_audio"] = (video_file(d / "mute.mp4", 8, audio=False), "error")
    (d / "folder.wav").mkdir()
    out["directory"] = (d / "folder.wav", "error")
    out["missing"] = (d / "absent.wav", "error")
    return out


def make_images(d: Path) -> dict[str, tuple[Path, str]]:
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    out = {}
    Image.fromarray(rgb).convert("RGBA").save(d / "rgba.png")
    out["rgba"] = (d / "rgba.png", "ok")
    Image.fromarray(rgb).convert("L").save(d / "gray.png")
    out["gray"] = (d / "gray.png", "ok")
    Image.fromarray(rgb[..., 0].astype(np.uint16) * 257).save(d / "deep.png")
    out["16bit"] = (d / "deep.png", "ok")
    Image.fromarray(rgb).convert("CMYK").save(d / "print.jpg")
    out["cmyk"] = (d / "print.jpg", "ok")
    Image.fromarray(rgb[:1, :1]).save(d / "dot.png")
    out["1x1"] = (d / "dot.png", "ok")
    Image.fromarray(rgb).save(d / "photo.png")
    (d / "half.png").write_bytes((d / "photo.png").read_bytes()[:200])
    out["truncated"] = (d / "half.png", "error")
    (d / "fake.png").write_text("not an image")
    out["text"] = (d / "fake.png", "error")
    out["missing"] = (d / "absent.png", "error")
    return out


def make_videos(d: Path) -> dict[str, tuple[Path, str]]:
    out = {}
    out["plain"] = (video_file(d / "plain.mp4", 10), "ok")
    out["no_audio"] = (video_file(d / "silent_film.mp4", 10, audio=False), "ok")  # the sound comes separately
    out["portrait_mkv"] = (video_file(d / "portrait.mkv", 6, size=(36, 22), fmt="matroska"), "ok")
    out["zero_frames"] = (video_file(d / "no_frames.mp4", 0, audio=False), "error")
    out["audio_only"] = (av_audio(d / "voice.m4a", "ipod", "aac", _signal(SR, 1.0), SR), "error")
    whole = out["plain"][0].read_bytes()
    (d / "cut.mp4").write_bytes(whole[: len(whole) // 2])
    out["truncated"] = (d / "cut.mp4", "error")
    return out


def make_matrix(d: Path) -> list[tuple[str, list[str], str, str]]:
    """Every case: ``(name, argv, expect, the file under test)``."""
    d.mkdir(parents=True, exist_ok=True)
    audio, images, videos = make_audio(d), make_images(d), make_videos(d)
    good_audio, good_image, good_video = audio["1ch"][0], images["rgba"][0], videos["plain"][0]
    cases = []
    for name, (f, expect) in audio.items():
        cases += [
            (f"generate/{name}", ["generate", str(f), "-n", "1"], expect, f),
            (f"thumbnails/{name}", ["thumbnails", str(f), "--window", "0.5", "--overlap", "0.25"], expect, f),
            (f"mix/{name}", ["mix", str(good_audio), str(f), "--gain", "0", "-6"], expect, f),
            (f"edit/{name}", ["edit", str(good_image), str(f)], expect, f),
            (f"video/{name}", ["video", str(good_video), str(f)], expect, f),
        ]
    for name, (f, expect) in images.items():
        cases.append((f"edit-image/{name}", ["edit", str(f), str(good_audio)], expect, f))
    for name, (f, expect) in videos.items():
        cases.append((f"video-video/{name}", ["video", str(f), str(good_audio)], expect, f))
    return [(n, a, e, str(f)) for n, a, e, f in cases]


# ----------------------------------------------------------------------------- the runner
def _memoise_models() -> None:
    from s2i.app import cli

    loaded: dict = {}
    load = cli.load_model

    def once(args):
        key = (args.profile, args.run_dir, args.model_dir, args.encoder_window)
        if key not in loaded:
            loaded[key] = load(args)
        return loaded[key]

    cli.load_model = once


def run(cases, model_args: list[str], out_root: Path) -> list[dict]:
    from s2i.app import cli

    _memoise_models()
    records = []
    for i, (name, argv, expect, path) in enumerate(cases):
        out = out_root / f"{i:03d}"
        target = str(out / "out.mp4") if argv[0] == "video" else str(out)
        err, std = io.StringIO(), io.StringIO()
        t0 = time.perf_counter()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(std):
            try:
                code = cli.main([*argv, *model_args, "-o", target])
            except BaseException:  # noqa: BLE001 -- the harness records whatever escapes
                code = "raised"
                err.write(traceback.format_exc())
        written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) if out.exists() else []
        records.append(
            dict(
                name=name,
                expect=expect,
                file=path,
                code=code,
                seconds=time.perf_counter() - t0,
                stderr=err.getvalue(),
                stdout=std.getvalue(),
                written=written,
                out=str(out),
            )
        )
    return records


if __name__ == "__main__":
    import torch

    torch.set_num_threads(1)  # as in the test process (conftest): tiny models, a busy CPU
    run_dir, work = Path(sys.argv[1]), Path(sys.argv[2])
    model_args = [
        "--profile",
        "smoke",
        "--run-dir",
        str(run_dir),
        "--model-dir",
        str(run_dir / "models"),
        "--quiet",
        "--steps",
        "1",
    ]
    records = run(make_matrix(work / "inputs"), model_args, work / "outputs")
    (work / "records.json").write_text(json.dumps(records, indent=1))
    print(f"{len(records)} cases")
