"""s2i.real.synth: the generated real-format corpus is what it promises (codecs, rates, frame
times, broken files, VGGSound manifest), checked with PyAV directly and with s2i.media."""

from __future__ import annotations

import csv
import re
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from s2i.media import MediaError, read_video
from s2i.real.synth import CLASSES, make_video_corpus

SECONDS = 3.0
DECODED = {"libx264": "h264", "libvpx": "vp8", "libvpx-vp9": "vp9", "aac": "aac", "vorbis": "vorbis", "libopus": "opus"}
NAME = re.compile(r"^[A-Za-z0-9_-]{11}_\d{6}\.(mp4|mkv|webm)$")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("corpus")
    return out, make_video_corpus(out, n_good=12, seconds=SECONDS, seed=0)


def _has(encoder: str) -> bool:
    try:
        av.Codec(encoder, "w")
    except (av.FFmpegError, ValueError):
        return False
    return True


def _streams(path: Path) -> dict:
    with av.open(str(path)) as c:
        v = c.streams.video[0] if c.streams.video else None
        a = c.streams.audio[0] if c.streams.audio else None
        return {
            "format": c.format.name,
            "vcodec": v.codec_context.name if v else None,
            "acodec": a.codec_context.name if a else None,
            "rate": v.average_rate if v else None,
            "size": (v.codec_context.width, v.codec_context.height) if v else None,
            "sr": a.codec_context.sample_rate if a else None,
            "channels": a.codec_context.channels if a else None,
        }


def _frame_times(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.asarray([f.time for f in c.decode(video=0)])


def test_names_and_no_leftovers(corpus):
    out, r = corpus
    files = sorted(p.name for p in out.iterdir())
    assert files == sorted(r["videos"] + list(r["broken"]) + ["vggsound.csv"])  # no temporary files
    assert all(NAME.match(f) for f in r["videos"] + list(r["broken"]))
    assert any(f.startswith("-") for f in r["videos"])
    assert not (out / r["missing"]).exists()


def test_formats_of_good_clips(corpus):
    out, r = corpus
    info = {f: _streams(out / f) for f in r["videos"]}
    assert len(info) == 12
    assert {s["channels"] for s in info.values()} == {2}
    assert {44100, 48000} <= {s["sr"] for s in info.values()}
    rates = {s["rate"] for s in info.values()}
    assert {Fraction(25), Fraction(30), Fraction(8), Fraction(30000, 1001)} <= rates
    ratios = {Fraction(*s["size"]) for s in info.values()}
    assert {Fraction(4, 3), Fraction(16, 9), Fraction(9, 16)} <= ratios
    for f, s in info.items():  # what was encoded is what decodes
        venc, aenc = r["formats"][f][:2]
        assert (s["vcodec"], s["acodec"]) == (DECODED[venc], DECODED[aenc]), f
        assert s["format"].startswith("mov") == f.endswith(".mp4")
    by_ext = {(Path(f).suffix, s["vcodec"], s["acodec"]) for f, s in info.items()}
    assert (".mp4", "h264", "aac") in by_ext
    if all(_has(e) for e in ("libvpx", "libvpx-vp9", "vorbis", "libopus")):  # else those fall back to mp4
        assert {(".mkv", "vp8", "vorbis"), (".webm", "vp9", "opus")} <= by_ext


def test_variable_and_low_frame_rate(corpus):
    out, r = corpus
    vfr = [f for f, d in r["formats"].items() if d[2] is None]
    assert len(vfr) == 1
    gaps = np.diff(_frame_times(out / vfr[0]))
    assert (gaps > 0).all() and gaps.max() - gaps.min() > 0.04  # really irregular
    assert len(np.unique(np.round(gaps, 3))) >= 4
    eight = next(f for f, d in r["formats"].items() if d[2] == 8)
    assert np.allclose(np.diff(_frame_times(out / eight)), 1 / 8)


def test_stereo_channels_differ(corpus):
    out, r = corpus
    with av.open(str(out / r["videos"][0])) as c:
        x = np.concatenate([f.to_ndarray() for f in c.decode(audio=0)], axis=1)  # fltp: (2, S)
    assert x.shape[0] == 2 and np.abs(x).max() > 0.1
    assert 0.01 < np.abs(x[0] - x[1]).mean() < np.abs(x[0]).mean() + np.abs(x[1]).mean()


def test_broken_files_seen_by_pyav(corpus):
    out, r = corpus
    kind = {desc.split(":")[0].split(" (")[0]: out / f for f, desc in r["broken"].items()}
    assert set(kind) == {"no audio stream", "audio only", "truncated", "empty file", "not a video"}
    s = _streams(kind["no audio stream"])
    assert s["vcodec"] == "h264" and s["acodec"] is None
    s = _streams(kind["audio only"])
    assert s["vcodec"] is None and s["acodec"] == "aac"
    assert kind["empty file"].stat().st_size == 0
    with pytest.raises(av.FFmpegError):
        av.open(str(kind["not a video"]))
    good = out / r["videos"][0]
    assert kind["truncated"].stat().st_size < 0.6 * good.stat().st_size
    with av.open(str(kind["truncated"])) as c:  # the header is intact: it states the full length
        assert float(c.streams.video[0].duration * c.streams.video[0].time_base) == pytest.approx(SECONDS, abs=0.1)


def test_manifest(corpus):
    out, r = corpus
    text = (out / r["manifest"]).read_text()
    rows = list(csv.reader(text.splitlines()))
    assert len(rows) == 12 + 5 + 1 and all(len(row) == 4 for row in rows)
    assert not rows[0][1].isalpha()  # no header
    assert '"vehicle horn, car horn, honking"' in text
    assert {row[3] for row in rows} == {"train", "test"}
    assert {row[2] for row in rows} == set(CLASSES)
    listed = {f"{yid}_{int(start):06d}": label for yid, start, label, _ in rows}
    for f in r["videos"] + list(r["broken"]) + [r["missing"]]:
        assert listed[f.rsplit(".", 1)[0]] == r["labels"][f]


def test_read_video_good_and_broken(corpus):
    out, r = corpus
    for f in r["videos"]:
        v = read_video(out / f, need_audio=True)
        assert v.duration == pytest.approx(SECONDS, abs=0.1), f
        assert len(v.audio) / v.sr == pytest.approx(SECONDS, abs=0.03), f
        assert v.frames.shape[1:3] == r["formats"][f][3][::-1]
    for f in r["broken"]:
        with pytest.raises(MediaError):
            read_video(out / f, need_audio=True)


def test_deterministic(tmp_path):
    a = make_video_corpus(tmp_path / "a", n_good=8, seconds=1.0, seed=3)
    b = make_video_corpus(tmp_path / "b", n_good=8, seconds=1.0, seed=3)
    assert a == b
    for f in a["videos"] + list(a["broken"]) + ["vggsound.csv"]:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    c = make_video_corpus(tmp_path / "c", n_good=3, seconds=1.0, seed=4)
    assert set(c["videos"]).isdisjoint(a["videos"])
