"""The real-video path (s2i.real) on the fullsmoke profile: tiny random OpenCLIP in its real format,
a generated corpus of real-format videos. Corpus scan, the frame grid, selection methods,
resumable sharded extraction, and alignment: resumable, and the same curve in 2 processes as in 1."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from s2i.paths import compose_profile, repo_root
from s2i.real import shards as shards_mod
from s2i.real.corpus import Clip, hash_split, read_manifest, scan_corpus, youtube_key
from s2i.real.frames import read_frames_at, sample_times, window_starts
from s2i.real.pipeline import prepare_fullsmoke, run_corpus, run_extract, run_select
from s2i.real.select import read_sound2scene_json, select_center, select_random, select_sound2scene
from s2i.real.shards import ExtractCfg, Pairs, extract_pairs


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """fullsmoke params with models and videos under a temporary folder, corpus scanned."""
    p = compose_profile("fullsmoke")
    p["real"]["out_dir"] = str(tmp_path_factory.mktemp("fullsmoke"))
    p = prepare_fullsmoke(p)
    corpus = run_corpus(p)
    return p, corpus


def _grey_video(path: Path, pts_ms: list[int], ext_format: str = "matroska") -> None:
    """A video whose frame i is uniformly grey level 20 * i + 10, at the given times (ms)."""
    with av.open(str(path), "w", format=ext_format) as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.time_base = Fraction(1, 1000)
        s.codec_context.time_base = Fraction(1, 1000)
        for i, t in enumerate(pts_ms):
            f = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 20 * i + 10, np.uint8), format="rgb24")
            f.pts, f.time_base = t, Fraction(1, 1000)
            for pkt in s.encode(f):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)


# ----------------------------------------------------------------------------- corpus
def test_scan_lists_every_unusable_file_with_its_reason(smoke):
    p, corpus = smoke
    reasons = {s["path"]: s["reason"] for s in corpus.skipped}
    assert sorted(reasons.values(), key=len)  # one line each
    assert any(r == "no audio stream" for r in reasons.values())
    assert any(r == "no video stream" for r in reasons.values())
    assert any(r.startswith("empty file") for r in reasons.values())
    assert any("cannot open" in r for r in reasons.values())  # the HTML page
    labels = {c.label for c in corpus.clips}
    assert "vehicle horn, car horn, honking" in labels  # quoted manifest label
    assert {c.split for c in corpus.clips} <= {"train", "val", "test"}
    rows = list(csv.reader(open(Path(p["real"]["video_dir"]) / "vggsound.csv")))
    test_ids = {(r[0], int(r[1])) for r in rows if r[3] == "test"}
    assert all((youtube_key(Path(c.path).stem) in test_ids) == (c.split == "test") for c in corpus.clips)


def test_manifest_forms_and_hash_split(tmp_path):
    assert youtube_key("-abcdefghij_000030") == ("-abcdefghij", 30)
    assert youtube_key("9fhhMaXTraI_44000_54000") == ("9fhhMaXTraI", 44)
    assert youtube_key("short_1") is None
    (tmp_path / "m.csv").write_text("file,label,split\na/x.mp4,dog,train\ny,cat,\n")
    m = read_manifest(tmp_path / "m.csv")
    assert m["by_file"] == {"a/x": ("dog", "train"), "y": ("cat", None)}
    (tmp_path / "bad.csv").write_text("abc,notanumber,dog,train\n")
    with pytest.raises(ValueError, match="bad.csv: line 1"):
        read_manifest(tmp_path / "bad.csv")
    assert hash_split("clip", seed=0) == hash_split("clip", seed=0)
    shares = [hash_split(f"c{i}") for i in range(2000)]
    assert abs(shares.count("train") / 2000 - 0.8) < 0.04


def test_class_folders_give_labels(tmp_path, smoke):
    p, corpus = smoke
    src = Path(p["real"]["video_dir"]) / corpus.clips[0].path
    for cls in ("dog", "cat"):
        (tmp_path / cls).mkdir()
        (tmp_path / cls / "a.mp4").write_bytes(src.read_bytes())
    c = scan_corpus(tmp_path, label_from="folder")
    assert sorted(x.label for x in c.clips) == ["cat", "dog"]
    assert len({x.clip_id for x in c.clips}) == 2
    with pytest.raises(FileNotFoundError, match="does not exist"):
        scan_corpus(tmp_path / "nope")


# ----------------------------------------------------------------------------- frame grid
def test_frames_on_screen_at_grid_times_variable_and_low_rate(tmp_path):
    pts = [0, 40, 190, 230, 260, 500, 510, 520, 900]  # variable frame rate, a 8-fps-like gap
    _grey_video(tmp_path / "vfr.mkv", pts)
    times = sample_times(1.0, 10)
    assert np.allclose(times, np.arange(10) / 10)
    frames = read_frames_at(tmp_path / "vfr.mkv", times, size=16)
    got = np.round((frames[:, 8, 8, 0].astype(float) - 10) / 20).astype(int)
    want = [max(i for i, t in enumerate(pts) if t <= 1000 * s + 1e-3) for s in times]
    assert got.tolist() == want  # the last frame shown at or before each grid time


def test_audio_windows_stay_inside_the_clip():
    starts = window_starts(np.array([0.0, 4.9, 9.9]), 10, 160_000, 2.0)
    assert starts.tolist() == [0, round(4.95 * 16000) - 16000, 160_000 - 32_000]  # centred on t + 0.5 / fps
    assert window_starts(np.array([0.5]), 10, 8000, 2.0).tolist() == [0]  # clip shorter than the window


# ----------------------------------------------------------------------------- selection
def test_selection_methods(tmp_path):
    clip = Clip("9fhhMaXTraI_000044", "9fhhMaXTraI_000044.mp4", "train", None, 10.0, 25.0, 64, 48, 16000, 2)
    assert select_center(clip, 10, 2) == [49, 50]
    assert select_random(clip, 10, 3, seed=1) == select_random(clip, 10, 3, seed=1)
    assert select_random(clip, 10, 3, seed=1) != select_random(clip, 10, 3, seed=2)
    (tmp_path / "s2s.json").write_text(
        json.dumps({"9fhhMaXTraI_44000_54000": [47, 46, 101, 23], "other0000ab_1000_11000": [1]})
    )
    table = read_sound2scene_json(tmp_path / "s2s.json")
    assert select_sound2scene(clip, table, 10, 3, first_frame=1) == [22, 45, 46]
    assert select_sound2scene(clip, table, 10, 2, first_frame=0) == [46, 47]
    other = Clip("x", "unrelated.mp4", "train", None, 10.0, 25.0, 64, 48, 16000, 2)
    assert select_sound2scene(other, table, 10, 3) is None
    (tmp_path / "bad.json").write_text(json.dumps({"not-a-clip": [1]}))
    with pytest.raises(ValueError, match="bad.json"):
        read_sound2scene_json(tmp_path / "bad.json")


# ----------------------------------------------------------------------------- extraction
def _encode_mean(frames: np.ndarray) -> torch.Tensor:
    """A stand-in image embedding for the shard mechanics tests: mean colour and brightness."""
    x = torch.from_numpy(frames).float() / 255
    return torch.cat([x.mean((1, 2)), x.std((1, 2)).mean(1, keepdim=True)], 1)


def _plan(corpus):
    return {c.clip_id: [(0, "selected"), (5, "selected"), (9, "random")] for c in corpus.clips}


def _read_all(folder: Path):
    p = Pairs(folder)
    idx = np.arange(len(p))
    return p.rows, p.z(idx).numpy(), p.windows(idx), p.skipped


def test_extraction_resumes_after_a_kill_and_splits_over_processes(smoke, tmp_path, monkeypatch):
    p, corpus = smoke
    cfg = ExtractCfg(fps=10, window_s=0.5, image_size=16, shard_clips=3, batch=4, workers=0, dtype="float32")
    plan = _plan(corpus)
    extract_pairs(corpus.root, corpus.clips, plan, _encode_mean, tmp_path / "whole", cfg, progress=False)
    whole = _read_all(tmp_path / "whole")
    assert len(whole[0]) == 3 * (len(corpus.clips) - len(whole[3]))
    assert whole[3] and "cannot decode" in whole[3][0]["reason"]  # the truncated file, found by decoding

    real_write, calls = shards_mod._write_shard, []

    def dies_on_third(*a, **k):
        calls.append(a[1])
        if len(calls) == 3:
            raise KeyboardInterrupt  # killed while writing the third shard
        real_write(*a, **k)

    monkeypatch.setattr(shards_mod, "_write_shard", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        extract_pairs(corpus.root, corpus.clips, plan, _encode_mean, tmp_path / "killed", cfg, progress=False)
    monkeypatch.setattr(shards_mod, "_write_shard", real_write)
    assert not (tmp_path / "killed" / "index.json").exists()
    done = sorted(d.name for d in (tmp_path / "killed").glob("shard-*"))
    assert done == ["shard-00000", "shard-00001"]
    mtimes = {d: (tmp_path / "killed" / d / "z_img.npy").stat().st_mtime_ns for d in done}
    extract_pairs(corpus.root, corpus.clips, plan, _encode_mean, tmp_path / "killed", cfg, progress=False)
    assert {d: (tmp_path / "killed" / d / "z_img.npy").stat().st_mtime_ns for d in done} == mtimes  # not redone
    for a, b in zip(whole, _read_all(tmp_path / "killed")):
        assert np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b

    # two processes: each writes every other shard, the main one indexes once all exist
    args = (corpus.root, corpus.clips, plan, _encode_mean, tmp_path / "two", cfg)
    assert extract_pairs(*args, process_index=1, num_processes=2, progress=False) is None
    assert not (tmp_path / "two" / "shard-00000").exists()
    extract_pairs(*args, process_index=0, num_processes=2, progress=False)
    for a, b in zip(whole, _read_all(tmp_path / "two")):
        assert np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b


def test_center_selection_and_extraction_with_the_tiny_openclip(smoke):
    p, corpus = smoke
    p = dict(p, real=dict(p["real"], selection=dict(p["real"]["selection"], method="center")))
    stats = run_select(p)
    assert stats["n_clips"] == len(corpus.clips) and stats["frames_per_clip"] == {2: len(corpus.clips)}
    index = run_extract(p)
    pairs = Pairs(Path(p["real"]["out_dir"]) / "pairs")
    assert index["n_pairs"] == len(pairs) > 0
    z = pairs.z(np.arange(len(pairs)))
    assert z.shape[1] == 32 and torch.isfinite(z).all() and z.norm(dim=1).std() > 0  # un-normalised
    assert {r["source"] for r in pairs.rows} == {"selected", "random"}
    assert all(r["source"] == "selected" for r in pairs.rows if r["split"] != "train")


# ----------------------------------------------------------------------------- alignment
ALIGN = ["--set", "real.alignment.epochs=2", "--set", "real.alignment.batch=8", "--set", "real.alignment.workers=0"]


def _cli(args, env_extra=None, launcher=None, timeout=300):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(repo_root()))
    env.update(env_extra or {})
    cmd = (launcher or [sys.executable]) + ["-m", "s2i.real", *args]
    r = subprocess.run(cmd, cwd=repo_root(), env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def test_alignment_two_processes_match_one_and_resume(smoke, tmp_path, monkeypatch):
    from s2i.real import align as align_mod
    from s2i.real.align import RealAlignCfg, train_real_alignment

    p, corpus = smoke
    p = dict(p, real=dict(p["real"], selection=dict(p["real"]["selection"], method="center")))
    run_select(p)
    run_extract(p)
    pairs = Path(p["real"]["out_dir"]) / "pairs"
    cfg = RealAlignCfg(**dict(p["real"]["alignment"], epochs=3, batch=8, ckpt_steps=2, workers=0))
    one = train_real_alignment(pairs, tmp_path / "one", cfg, seed=0, progress=False)
    hist_one = json.loads((tmp_path / "one" / "history.json").read_text())
    curve_one = [x for h in hist_one for x in h["losses"]]
    assert len(curve_one) == 3 * (one["n_train"] // 8) and np.isfinite(curve_one).all()
    for k in ("r1", "r5", "r10", "chance_r1", "class_r1"):
        assert k in one

    # killed mid-epoch: resumes from the checkpoint and ends where the uninterrupted run ends
    real_loss, n = align_mod.alignment_loss, []

    def dies(*a, **k):
        n.append(1)
        if len(n) == 4:
            raise KeyboardInterrupt
        return real_loss(*a, **k)

    monkeypatch.setattr(align_mod, "alignment_loss", dies)
    with pytest.raises(KeyboardInterrupt):
        train_real_alignment(pairs, tmp_path / "killed", cfg, seed=0, progress=False)
    monkeypatch.setattr(align_mod, "alignment_loss", real_loss)
    assert (tmp_path / "killed" / "ckpt" / "last.pt").exists() and not (tmp_path / "killed" / "metrics.json").exists()
    resumed = train_real_alignment(pairs, tmp_path / "killed", cfg, seed=0, progress=False)
    assert resumed["r1"] == pytest.approx(one["r1"]) and resumed["mean_l2"] == pytest.approx(one["mean_l2"], rel=1e-4)

    # the same run as 2 CPU processes (gloo) through `accelerate launch`: the same loss curve
    import yaml

    two = tmp_path / "two"
    two.mkdir()
    (two / "pairs").symlink_to(pairs)
    real = dict(p["real"], tiny=False, out_dir=str(two), alignment=dict(p["real"]["alignment"], **cfg.__dict__))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(dict(p, real=real)))
    launch = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
    ]  # torchrun; gloo on CPUs
    launch += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    _cli(["align", "--params", str(tmp_path / "params.yaml")], launcher=launch)
    hist_two = json.loads((two / "alignment" / "history.json").read_text())
    curve_two = [x for h in hist_two for x in h["losses"]]
    assert json.loads((two / "alignment" / "metrics.json").read_text())["processes"] == 2
    np.testing.assert_allclose(curve_two, curve_one, rtol=1e-4, atol=1e-5)


def test_alignment_learns_a_sound_to_embedding_map(tmp_path):
    """Shards where each pair's sound is one of 4 tones and its image embedding the tone's own
    vector: the trained encoder retrieves held-out pairs' tones far above chance."""
    from s2i.real.align import RealAlignCfg, train_real_alignment

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 8)).astype(np.float32) * 3
    t = np.arange(8000) / 16000
    rows, z, audio = [], [], []
    for i in range(96):
        c = i % 4
        audio.append((0.5 * np.sin(2 * np.pi * (300 * 2**c) * t + rng.uniform(0, 6))).astype(np.float32))
        z.append(centres[c] + 0.1 * rng.normal(size=8).astype(np.float32))
        split = "test" if i >= 80 else ("val" if i >= 72 else "train")
        rows.append(dict(clip_id=f"c{i}", frame=0, time=0.0, split=split, label=str(c), source="selected", audio=i))
    shard = dict(fingerprint="x", skipped=[], n_clips=96)
    audio16 = (np.stack(audio) * 32767).astype(np.int16)
    shards_mod._write_shard(tmp_path / "pairs", "shard-00000", torch.from_numpy(np.stack(z)), audio16, rows, shard)
    shards_mod.write_index(tmp_path / "pairs", 1, ExtractCfg(window_s=0.5))
    cfg = RealAlignCfg(encoder="s2i", width=8, depth=2, epochs=8, batch=16, lr=3e-3, workers=0, normalize=False)
    m = train_real_alignment(tmp_path / "pairs", tmp_path / "al", cfg, seed=0, progress=False)
    assert m["n"] == 16 and m["class_chance"] == pytest.approx(0.25)
    assert m["class_r1"] >= 0.75  # chance 0.25


def test_cli_runs_every_stage_on_a_folder_of_videos(smoke, tmp_path):
    """`python -m s2i.real all --profile fullsmoke --videos DIR`: the documented install check on
    your own videos (here: the generated ones, without their manifest), bootstrap selection."""
    p, corpus = smoke
    out = tmp_path / "run"
    _cli(["all", "--profile", "fullsmoke", "--videos", p["real"]["video_dir"], "--out", str(out)])
    scan = json.loads((out / "metrics" / "corpus.json").read_text())
    assert scan["n_usable"] == len(corpus.clips) and scan["n_skipped"] == len(corpus.skipped)
    assert {"train", "test"} <= set(scan["splits"])  # hash split without a manifest
    sel = json.loads((out / "metrics" / "selection.json").read_text())
    assert sel["method"] == "bootstrap" and sel["threshold"] <= sel["score_quantiles"]["0.5"]
    assert any("cannot decode" in s["reason"] for s in sel["skipped"])  # the truncated file, listed
    m = json.loads((out / "metrics" / "alignment.json").read_text())
    assert m["n"] == m["n_test"] > 1 and 0 <= m["r1"] <= 1 and m["r10"] >= m["r5"] >= m["r1"]
    assert (out / "alignment" / "audio_encoder" / "audio_encoder.safetensors").exists()
    pr = json.loads((out / "metrics" / "prior.json").read_text())
    assert pr["n_train_pairs"] >= 2 and pr["train_loss"] > 0
    assert (out / "prior" / "prior.safetensors").exists()
    ev = json.loads((out / "metrics" / "evaluation.json").read_text())
    assert ev["sound_prior"]["n"] == ev["sound"]["n"]  # the prior's samples drawn beside the sounds


# ----------------------------------------------------------------------------- evaluation
def test_image_retrieval_and_baseline_arithmetic():
    from s2i.real.evaluate import derangement, image_retrieval

    frames = torch.eye(4)
    exact = image_retrieval(frames.clone(), frames, ["a", "a", "b", "b"])
    assert exact["r1"] == 1.0 and exact["class_r1"] == 1.0 and exact["class_chance"] == 0.5
    shifted = image_retrieval(frames[[1, 0, 3, 2]], frames, ["a", "a", "b", "b"])
    assert shifted["r1"] == 0.0 and shifted["r5"] == 1.0 and shifted["class_r1"] == 1.0  # right class, wrong clip
    p = derangement(7, seed=3)
    assert sorted(p) == list(range(7)) and not np.any(p == np.arange(7))


def test_evaluation_protocol_on_the_tiny_models(smoke, monkeypatch, tmp_path):
    from s2i.models.prior import EmbeddingPrior
    from s2i.real.pipeline import run_align, run_evaluate, run_prior

    p, corpus = smoke
    p = dict(p, real=dict(p["real"], selection=dict(p["real"]["selection"], method="center")))
    run_select(p)
    run_extract(p)
    run_align(p)
    pm = run_prior(p)
    prior = EmbeddingPrior.load(Path(p["real"]["out_dir"]) / "prior")
    assert prior.cfg.dim == 32 and prior.cfg.width == p["real"]["prior"]["width"]  # the tiny OpenCLIP's width
    assert pm["n_train_pairs"] >= 2 and pm["train_loss"] > 0
    assert ("val_loss" in pm) == (pm["n_val_pairs"] >= 2)  # held-out figures where there are pairs to hold out
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))  # no Inception weights here
    m = run_evaluate(p)
    for name in ("sound", "sound_prior", "baseline_random_frame", "upper_bound_true_embedding"):
        assert m[name]["n"] == m["n"] >= 2 and 0 <= m[name]["r1"] <= m[name]["r5"] <= m[name]["r10"] <= 1
        assert "class_r1" in m[name]
    vol = {row["gain_db"]: row for row in m["volume"]}
    assert sorted(vol) == [-12, -6, 0, 6, 12] and vol[0]["z_shift"] == 0 and vol[0]["image_shift"] < 1e-6
    assert vol[12]["z_shift"] > 0  # s2i's log-mel front end hears level
    ed = m["editing"]
    assert ed["n"] >= 3 and set(ed) >= {"sound", "baseline_other_sound", "upper_bound_true_embedding"}
    assert all(
        -1 <= ed[k]["kept"] <= 1 and -2 <= ed[k]["reflected"] <= 2 for k in ("sound", "upper_bound_true_embedding")
    )
    assert ed["sound"]["lpips"].startswith("LPIPS needs torchvision's AlexNet weights")
    assert m["fid_is"]["skipped"].startswith(f"torch-fidelity's Inception weights are not in {tmp_path}")
    grid = Path(p["real"]["out_dir"]) / "figures" / "evaluation_grid.png"
    from PIL import Image

    w, h = Image.open(grid).size
    assert h > 3 * 32 and w > min(m["n"], 8) * 32  # three rows of n_grid images of the generator's size


def test_level_reaches_both_front_ends_the_log_mel_more():
    """The volume documentation's figures: -6 dB on a tone in noise moves Sound2Scene's standardised
    log spectrogram by ~0.2 (its 1e-7 floor sits near quiet bins' power) and s2i's log-mel by ~0.8."""
    from s2i.real.features import audio_features

    t = np.arange(16000) / 16000
    w = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.random.default_rng(0).normal(size=t.size)).astype(np.float32)
    quiet = (w * 10 ** (-6 / 20)).astype(np.float32)
    rel = {}
    for kind in ("sound2scene", "logmel"):
        a, b = audio_features(quiet[None], kind), audio_features(w[None], kind)
        rel[kind] = float((a - b).norm() / b.norm())
    assert 0.1 < rel["sound2scene"] < 0.4 and rel["logmel"] > 2 * rel["sound2scene"]


def test_cli_generates_with_an_encoder_trained_by_s2i_real(smoke, tmp_path):
    """`s2i generate --profile full --audio-encoder <out_dir>/alignment/audio_encoder`."""
    import yaml

    from s2i.real.pipeline import run_align

    p, corpus = smoke
    p = dict(p, real=dict(p["real"], selection=dict(p["real"]["selection"], method="center")))
    run_select(p)
    run_extract(p)
    run_align(p)
    (tmp_path / "full.yaml").write_text(yaml.safe_dump(dict(full=p["full"])))
    sound = Path(p["real"]["video_dir"]) / corpus.clips[0].path
    env = dict(os.environ, PYTHONPATH=str(repo_root()), OMP_NUM_THREADS="1")
    enc = Path(p["real"]["out_dir"]) / "alignment" / "audio_encoder"
    cmd = [sys.executable, "-m", "s2i", "generate", "--profile", "full", "--config", str(tmp_path / "full.yaml")]
    cmd += ["--audio-encoder", str(enc), "-n", "2", "-o", str(tmp_path / "out"), "--quiet", str(sound)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    pngs = sorted((tmp_path / "out").glob("*_0?.png"))
    assert len(pngs) == 2
