"""Tests of ``s2i.method``: audio windows around frames, top-k frame selection, selection
metrics on hand-made clips, the folder corpus (recursive, deterministic splits), decoding a
tiny toy world with bad files mixed in (skipped with reasons, never fatal), and the on-disk
pair format. CPU only, a few seconds."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from s2i.media import read_video, write_video
from s2i.method.selection import (
    ClipRef,
    DecodedClip,
    correspondence_scores,
    decode_clips,
    folder_clips,
    frame_windows,
    load_pairs,
    reference_sounds,
    save_pairs,
    select_frames,
    selection_metrics,
    subset,
    world_clips,
)
from s2i.toyworld import world
from s2i.toyworld.clips import generate_world, load_truth


# --------------------------------------------------------------------------------------------
# frame_windows
# --------------------------------------------------------------------------------------------
def _expected_window(audio, start, S):
    return np.array([audio[s] if 0 <= s < len(audio) else 0.0 for s in range(start, start + S)], np.float32)


@pytest.mark.parametrize("sr,fps,window_s", [(100, 10, 0.25), (100, 10, 0.2), (16000, 8, 0.5), (1000, 25, 0.1)])
def test_frame_windows_are_centred_on_each_frame_interval(sr, fps, window_s):
    n = int(2.0 * sr)
    audio = np.arange(1, n + 1, dtype=np.float32)  # a ramp: sample k holds k + 1, zeros mean padding
    times = np.arange(int(2.0 * fps)) / fps
    w = frame_windows(audio, times, fps, sr, window_s)
    S = int(round(window_s * sr))
    assert w.shape == (len(times), S)
    for i, t in enumerate(times):
        centre = int(round((t + 0.5 / fps) * sr))  # middle of [t, t + 1/fps)
        np.testing.assert_array_equal(w[i], _expected_window(audio, centre - S // 2, S))


def test_frame_windows_ramp_by_hand():
    """sr=100, fps=10, 0.25 s: 25 samples; frame 0's interval [0, 0.1) has its centre at sample 5,
    the window starts at 5 - 12 = -7: 7 zeros then samples 0..17 (ramp values 1..18)."""
    audio = np.arange(1, 201, dtype=np.float32)
    w = frame_windows(audio, np.array([0.0, 1.0, 1.9]), 10, 100, 0.25)
    np.testing.assert_array_equal(w[0], np.r_[np.zeros(7), np.arange(1, 19)])
    np.testing.assert_array_equal(w[1], np.arange(105 - 12, 105 + 13) + 1)  # interior: no padding
    # last frame [1.9, 2.0): centre 195, window 183..207, samples 200.. are past the end
    np.testing.assert_array_equal(w[2], np.r_[np.arange(184, 201), np.zeros(8)])


def test_frame_windows_without_frames():
    assert frame_windows(np.ones(100, np.float32), np.array([]), 2, 100, 0.3).shape == (0, 30)
    # no audio: frames whose window reaches into the (empty) padding only are all zeros
    assert not frame_windows(None, np.array([0.0]), 2, 100, 0.3).any()


_SHORT_AUDIO_BUG = (
    "BUG: frame_windows pads the audio with only one window of zeros on each side, so a frame "
    "more than one window past the end of the audio slices an empty/short piece and np.stack "
    "raises 'ValueError: all input arrays must have the same shape'. It happens for audio=None "
    "and for any video whose audio track ends early -- and decode_clips then dies instead of "
    "skipping or zero-padding the clip."
)


def test_frame_windows_audio_shorter_than_the_frames():
    audio = np.arange(1, 101, dtype=np.float32)  # 1 s at 100 Hz, frames for 3 s
    times = np.arange(30) / 10
    w = frame_windows(audio, times, 10, 100, 0.2)
    assert w.shape == (30, 20)
    for i, t in enumerate(times):
        np.testing.assert_array_equal(w[i], _expected_window(audio, int(round((t + 0.05) * 100)) - 10, 20))
    assert not w[15:].any()
    w0 = frame_windows(None, np.array([0.0, 0.5, 2.0]), 2, 100, 0.3)
    assert w0.shape == (3, 30) and not w0.any()


# --------------------------------------------------------------------------------------------
# select_frames
# --------------------------------------------------------------------------------------------
def test_select_frames_top_k_in_time_order():
    s = np.array([0.1, 0.9, 0.5, 0.8, 0.2, 0.7])
    np.testing.assert_array_equal(select_frames(s, 2, -np.inf), [1, 3])
    np.testing.assert_array_equal(select_frames(s, 3, -np.inf), [1, 3, 5])  # time order, not score order
    np.testing.assert_array_equal(select_frames(s, 10, -np.inf), np.arange(6))
    assert select_frames(s, 2, -np.inf).dtype.kind == "i"


def test_select_frames_threshold_and_fallback():
    s = np.array([0.1, 0.9, 0.5, 0.8, 0.2, 0.7])
    np.testing.assert_array_equal(select_frames(s, 4, 0.75), [1, 3])  # 0.7 is in the top 4 but below
    np.testing.assert_array_equal(select_frames(s, 4, 0.8), [1, 3])  # at the threshold is kept
    np.testing.assert_array_equal(select_frames(s, 4, 0.85), [1])
    np.testing.assert_array_equal(select_frames(s, 4, 5.0), [1])  # none passes: the single best
    np.testing.assert_array_equal(select_frames(-s, 3, 0.0), [0])  # all negative: best is the first frame
    # ties keep the earlier frame first (stable), so the result is deterministic
    np.testing.assert_array_equal(select_frames(np.array([0.5, 0.9, 0.9, 0.9]), 2, 0.0), [1, 2])


# --------------------------------------------------------------------------------------------
# correspondence_scores
# --------------------------------------------------------------------------------------------
def _colour_world(n_obj: int = 400, n_empty: int = 100, seed: int = 0):
    """Embeddings as in a world whose sounds say an object's shape and place but not its colour:
    a frame is background + shape + place + colour (one-hot blocks, + a little noise); its
    sound's prediction is the background plus half the shape and place (an unsure predictor's
    pull toward the average); an empty frame is its background, and its sound (ambience)
    predicts just that."""
    g = torch.Generator().manual_seed(seed)
    bgs, shapes, places, colours = (3.0 * torch.eye(16)).split(4)
    b, s, p, c = (torch.randint(0, 4, (n_obj,), generator=g) for _ in range(4))
    noise = lambda m: 0.1 * torch.randn(m, 16, generator=g)  # noqa: E731
    v_obj = bgs[b] + shapes[s] + places[p] + colours[c] + noise(n_obj)
    a_obj = bgs[b] + 0.5 * (shapes[s] + places[p]) + noise(n_obj)
    be = torch.randint(0, 4, (n_empty,), generator=g)
    return torch.cat([a_obj, bgs[be] + noise(n_empty)]), torch.cat([v_obj, bgs[be] + noise(n_empty)]), n_obj


@pytest.mark.parametrize("seed", [0, 1])
def test_correspondence_scores_prefer_the_heard_object_to_an_empty_scene(seed):
    """Every empty scene is nearer its own sound's prediction than any object is to its own, so
    the frames the plain distance ranks first are all empty; the score, which divides out how
    near all sounds put a frame, ranks frames of the heard object first, and the same frames
    with another clip's sound last."""
    a, v, n_obj = _colour_world(seed=seed)
    n_empty = len(v) - n_obj
    dist = (a - v).norm(dim=1).numpy()
    assert (np.argsort(dist)[:n_empty] >= n_obj).all()  # the failure of the plain distance
    s = correspondence_scores(a, v, a, temperature=0.3)
    assert s.shape == (len(v),) and s.dtype == np.float32
    assert (np.argsort(-s)[:n_empty] < n_obj).mean() >= 0.85  # the best-scoring frames show the object
    assert np.median(s[:n_obj]) > np.median(s[n_obj:]) + 0.5
    perm = torch.randperm(n_obj, generator=torch.Generator().manual_seed(seed))
    mismatched = correspondence_scores(a[:n_obj][perm], v[:n_obj], a, temperature=0.3)
    assert np.median(mismatched) < np.median(s[n_obj:]) - 3  # another clip's sound: far below


def test_correspondence_scores_chunking_normalisation_and_shapes():
    a, v, _ = _colour_world(n_obj=60, n_empty=20)
    ref = reference_sounds(a, np.arange(len(a)) % 2 == 0, n=30, seed=1)
    assert ref.shape == (30, 16)
    whole = correspondence_scores(a, v, ref, 0.5)
    np.testing.assert_allclose(correspondence_scores(a, v, ref, 0.5, batch=7), whole, rtol=1e-5, atol=1e-5)
    scaled = correspondence_scores(3 * a, 3 * v, 3 * ref, 0.5, normalize=True)  # scale-free when normalised
    np.testing.assert_allclose(scaled, correspondence_scores(a, v, ref, 0.5, normalize=True), atol=1e-4)
    with pytest.raises(ValueError, match="must be"):
        correspondence_scores(a, v[:5], ref, 0.5)
    # the reference is a seeded sample of training frames only
    np.testing.assert_array_equal(reference_sounds(a, np.arange(len(a)) % 2 == 0, n=30, seed=1), ref)
    assert len(reference_sounds(a, np.arange(len(a)) < 5, n=30)) == 5


# --------------------------------------------------------------------------------------------
# selection_metrics
# --------------------------------------------------------------------------------------------
def _clip(cid, match):
    T = 4 if match is None else len(match)
    return DecodedClip(
        ClipRef(cid, Path(f"{cid}.mp4"), "train"),
        np.zeros((T, 2, 2, 3), np.uint8),
        np.arange(T) / 8.0,
        np.zeros((T, 4), np.float32),
        None if match is None else np.array(match, bool),
    )


def test_selection_metrics_on_hand_made_clips():
    clips = [_clip("a", [1, 1, 0, 0]), _clip("b", [0, 0, 0, 1, 1]), _clip("c", None)]  # c: no ground truth
    sel = {"a": np.array([0, 1]), "b": np.array([3]), "c": np.array([0])}
    m = selection_metrics(clips, sel, k=10, seed=0)  # k >= T: the "random" frames are all frames
    assert m["selection_precision"] == 1.0
    assert m["center_frame_precision"] == 0.0  # a[2] = 0, b[2] = 0
    assert m["match_share_all_frames"] == pytest.approx(4 / 9)
    assert m["random_frame_precision"] == pytest.approx(4 / 9)
    assert m["n_selected"] == 3 and m["n_clips_measured"] == 2

    bad = {"a": np.array([2, 3]), "b": np.array([0, 1, 2])}
    m = selection_metrics(clips[:2], bad, k=2, seed=0)
    assert m["selection_precision"] == 0.0 and m["n_selected"] == 5
    assert 0.0 <= m["random_frame_precision"] <= 1.0
    assert selection_metrics(clips[:2], bad, k=2, seed=0) == m  # seeded


def test_selection_metrics_random_frames_are_k_distinct_per_clip():
    clips = [_clip("a", [1] * 3 + [0] * 5)]
    vals = {selection_metrics(clips, {"a": np.array([0])}, k=3, seed=s)["random_frame_precision"] for s in range(40)}
    assert vals <= {0.0, 1 / 3, 2 / 3, 1.0}  # k = 3 frames, no repeats
    assert len(vals) > 1  # really random across seeds
    assert selection_metrics([_clip("x", [1, 1])], {"x": np.array([0])}, k=5, seed=0)["random_frame_precision"] == 1.0


def test_selection_metrics_without_ground_truth_is_empty():
    assert selection_metrics([_clip("c", None)], {"c": np.array([0])}, k=2, seed=0) == {}
    assert selection_metrics([], {}, k=2, seed=0) == {}


# --------------------------------------------------------------------------------------------
# folder_clips
# --------------------------------------------------------------------------------------------
def _touch(p: Path):
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"")


def test_folder_clips_finds_videos_recursively(tmp_path):
    for rel in [
        "a.mp4",
        "sub/b.MOV",
        "sub/deeper/c.mkv",
        "d.webm",
        "e.avi",
        "f.m4v",
        "notes.txt",
        "g.wav",
        "sub/h.jpg",
    ]:
        _touch(tmp_path / rel)
    refs = folder_clips(tmp_path)
    assert [r.clip_id for r in refs] == ["a", "d", "e", "f", "sub__b", "sub__deeper__c"]  # sorted by path
    assert refs[-1].path == tmp_path / "sub" / "deeper" / "c.mkv"
    assert all(r.truth is None and r.split in ("train", "val", "test") for r in refs)


def test_folder_clips_splits_deterministically(tmp_path):
    for i in range(300):
        _touch(tmp_path / f"d{i % 3}" / f"v{i:03d}.mp4")
    a, b = folder_clips(tmp_path, seed=0), folder_clips(tmp_path, seed=0)
    assert [(r.clip_id, r.split) for r in a] == [(r.clip_id, r.split) for r in b]
    counts = {s: sum(r.split == s for r in a) for s in ("train", "val", "test")}
    assert 200 <= counts["train"] <= 280 and 10 <= counts["val"] <= 55 and 10 <= counts["test"] <= 55, counts
    # the split of a file depends on its relative path only: a new file does not reshuffle others
    _touch(tmp_path / "d0" / "zzz_new.mp4")
    c = {r.clip_id: r.split for r in folder_clips(tmp_path, seed=0)}
    assert all(c[r.clip_id] == r.split for r in a)
    # another seed gives another split; fractions are honoured
    other = {r.clip_id: r.split for r in folder_clips(tmp_path, seed=1)}
    assert other.keys() == c.keys() and other != c
    assert {r.split for r in folder_clips(tmp_path, fractions=(1.0, 0.0, 0.0))} == {"train"}
    assert {r.split for r in folder_clips(tmp_path, fractions=(0.0, 0.0, 1.0))} == {"test"}


def test_folder_clips_split_is_the_documented_hash(tmp_path):
    _touch(tmp_path / "x" / "y.mp4")
    (r,) = folder_clips(tmp_path, seed=7)
    h = int(hashlib.sha256(b"7:x/y.mp4").hexdigest()[:8], 16) / 0xFFFFFFFF
    assert r.split == ("train" if h < 0.8 else "val" if h < 0.9 else "test")


def test_folder_clips_ids_are_unique(tmp_path):
    for rel in ["x.mp4", "x.mov", "a/b.mp4", "a__b.mp4"]:
        _touch(tmp_path / rel)
    ids = [r.clip_id for r in folder_clips(tmp_path)]
    assert len(set(ids)) == len(ids), ids


# --------------------------------------------------------------------------------------------
# decode_clips on a tiny world with bad files mixed in
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory):
    d = tmp_path_factory.mktemp("world")
    generate_world(d, 6, seed=0, progress=False)
    bad = tmp_path_factory.mktemp("bad")
    (bad / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    frames = np.stack([np.full((32, 32, 3), 40 * i, np.uint8) for i in range(6)])
    write_video(bad / "silent.mp4", frames, 8, audio=None)
    good = (d / "clip00000.mp4").read_bytes()
    (bad / "truncated.mp4").write_bytes(good[: len(good) // 3])
    return d, bad


def test_decode_clips_world(tiny_world):
    d, _ = tiny_world
    refs = world_clips(d)
    assert [r.clip_id for r in refs] == [f"clip{i:05d}" for i in range(6)]
    clips, skipped = decode_clips(refs, window_s=0.5)
    assert skipped == [] and len(clips) == 6
    for c in clips:
        truth = load_truth(d, c.ref.clip_id)
        T = truth["n_frames"]
        assert c.frames.shape == (T, world.IMG, world.IMG, 3) and c.frames.dtype == np.uint8
        assert c.windows.shape == (T, 8000) and c.windows.dtype == np.float32
        np.testing.assert_allclose(c.times, np.arange(T) / world.FPS, atol=1e-3)
        np.testing.assert_array_equal(c.match, [f["match"] for f in truth["frames"]])
        # the windows are the decoded audio's windows around each frame
        v = read_video(c.ref.path, sr=16000, size=world.IMG)
        np.testing.assert_array_equal(c.windows, frame_windows(v.audio, v.times, v.fps, 16000, 0.5))


def test_decode_clips_windows_follow_the_sounding_sources(tiny_world):
    """Loudness check against the ground truth: the window RMS rises with the summed gain of
    the sources sounding at that frame."""
    d, _ = tiny_world
    clips, _ = decode_clips(world_clips(d), window_s=0.25)
    rms, gain = [], []
    for c in clips:
        truth = load_truth(d, c.ref.clip_id)
        for i, f in enumerate(truth["frames"][2:-2], start=2):  # skip the zero-padded ends
            rms.append(float(np.sqrt(np.mean(c.windows[i] ** 2))))
            gain.append(sum(s["gain"] for s in f["sounding"]))
    assert np.corrcoef(rms, gain)[0, 1] > 0.5


def test_decode_clips_skips_bad_files_with_reasons(tiny_world):
    d, bad = tiny_world
    good = world_clips(d)
    refs = [
        ClipRef("corrupt", bad / "corrupt.mp4", "train"),
        good[0],
        ClipRef("silent", bad / "silent.mp4", "train"),
        good[1],
        ClipRef("truncated", bad / "truncated.mp4", "train"),
        ClipRef("missing", bad / "nope.mp4", "train"),
    ]
    clips, skipped = decode_clips(refs, window_s=0.5)
    assert [c.ref.clip_id for c in clips] == ["clip00000", "clip00001"]
    assert [s["clip_id"] for s in skipped] == ["corrupt", "silent", "truncated", "missing"]
    for s, name in zip(skipped, ["corrupt.mp4", "silent.mp4", "truncated.mp4", "nope.mp4"]):
        assert name in s["path"] and name in s["reason"], s
    assert "audio" in skipped[1]["reason"]


def test_decode_clips_video_whose_audio_ends_early(tmp_path):
    frames = np.zeros((32, 32, 32, 3), np.uint8)  # 4 s of picture at 8 fps
    tone = (0.1 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)).astype(np.float32)  # 1 s of sound
    write_video(tmp_path / "short_audio.mp4", frames, 8, tone, 16000)
    clips, skipped = decode_clips([ClipRef("short_audio", tmp_path / "short_audio.mp4", "train")], window_s=0.5)
    assert len(clips) + len(skipped) == 1  # decoded (zero-padded) or skipped with a reason, never fatal
    if clips:
        assert clips[0].windows.shape == (32, 8000) and not clips[0].windows[-8:].any()


def test_decode_clips_frames_subset(tiny_world):
    d, _ = tiny_world
    refs = world_clips(d)[:2]
    full, _ = decode_clips(refs, window_s=0.5)
    sub, _ = decode_clips(refs, window_s=0.5, frames_subset={"clip00000": [3, 0, 17]})
    assert len(sub[0].frames) == 3 and len(sub[1].frames) == 0  # clips absent from the dict keep nothing
    np.testing.assert_array_equal(sub[0].frames, full[0].frames[[3, 0, 17]])
    np.testing.assert_array_equal(sub[0].windows, full[0].windows[[3, 0, 17]])
    np.testing.assert_array_equal(sub[0].times, full[0].times[[3, 0, 17]])
    np.testing.assert_array_equal(sub[0].match, full[0].match[[3, 0, 17]])


# --------------------------------------------------------------------------------------------
# pairs on disk
# --------------------------------------------------------------------------------------------
def test_save_load_pairs_roundtrip(tmp_path):
    g = torch.Generator().manual_seed(0)
    rows = [
        dict(
            clip_id=f"c{i}",
            frame=i,
            time=i / 8,
            split=["train", "val", "test"][i % 3],
            source=["selected", "random"][i % 2],
            sound_class=i % 4,
        )
        for i in range(10)
    ]
    z = torch.randn(10, 6, generator=g)
    mels = torch.log(torch.rand(10, 1, 64, 26, generator=g) + 1e-6)
    save_pairs(tmp_path / "pairs", rows, z, mels)
    assert sorted(p.name for p in (tmp_path / "pairs").iterdir()) == ["index.json", "mel.npy", "z_img.npy"]
    assert np.load(tmp_path / "pairs" / "mel.npy").dtype == np.float16
    r2, z2, m2 = load_pairs(tmp_path / "pairs")
    assert r2 == rows
    assert z2.dtype == torch.float32 and torch.equal(z2, z)
    assert m2.dtype == torch.float32 and m2.shape == mels.shape
    torch.testing.assert_close(m2, mels, rtol=1e-3, atol=1e-3)  # float16 storage
    # subset picks split and source
    sr, sz, sm = subset(r2, z2, m2, "train", "selected")
    idx = [i for i, r in enumerate(rows) if r["split"] == "train" and r["source"] == "selected"]
    assert [r["clip_id"] for r in sr] == [rows[i]["clip_id"] for i in idx]
    assert torch.equal(sz, z[idx]) and sm.shape[0] == len(idx)
