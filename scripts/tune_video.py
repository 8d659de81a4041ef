#!/usr/bin/env python
"""Tune how a video's candidate edits are ranked, on draws that are not the reported one.

    python scripts/tune_video.py --seeds 1 2 3 4 --videos 8 --candidates 4 --out build/tune_video.json
    python scripts/tune_video.py --load build/tune_video.json --rank-first 4  # the rules again, no drawing

Each seed is a draw of the video study's inputs (:func:`s2i.eval.videos.video_inputs`). Video
``i`` of draw ``seed`` is edited once from each of its candidate seeds
(:func:`s2i.method.generate.candidate_seeds` of ``seed + i``; the first is the video the study
edits with one candidate), through the study's H.264 round trips (the input written and read
back, the edit written and read back), and for each candidate the script keeps the judge's
reads (:func:`s2i.eval.videos.judge_video`) and the raw scores a ranking may use
(:func:`s2i.method.video_edit.video_scores`, on the edit before it is written). Then, for each
ranking rule, it prints the study's figures over the candidates the rule keeps: size-envelope
r, heard class present, heard object alone, background kept, scene kept (the input's pixels
around the object, whole frame). ``first`` is one candidate (the
video from its own seed); ``direction + coherence`` is the product's ranking
(:func:`s2i.method.video_edit.video_score`); ``oracle r`` keeps the candidate the judge finds
best, an upper bound no ranking without the judge can pass. The judge plays no part in any
other rule. One draw of 8 videos x 4 candidates takes about a minute on 2 CPU cores.
``--region`` defaults to the product's for videos
(:data:`s2i.method.video_edit.VIDEO_REGION`, 0.875: a centred rectangle of 7/8 of each side).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from benchlib import cpu_model, load_run, region_arg


def _mean_or(x: np.ndarray, empty: float = 0.0) -> float:
    return float(np.mean(x)) if len(x) else empty


def _product(s: dict) -> float:
    from s2i.method.video_edit import video_score

    return video_score(s)


def _direction(s: dict) -> float:
    return _mean_or(np.where(s["changed"], s["direction"], -1.0))


RULES = {
    # the image edit's rule frame by frame: the mean direction, an unchanged frame -1
    "direction": _direction,
    "direction, unchanged frames as they score": lambda s: _mean_or(s["direction"]),
    "coherence": lambda s: _mean_or(s["coherence"]),
    "direction + coherence (video_score)": _product,
    "worst frame's direction": lambda s: float(np.where(s["changed"], s["direction"], -1.0).min()),
}
READS = ("corr", "present", "alone", "kept", "scene_kept")


def draw(a) -> list[dict]:
    """Every candidate of every video of every seed: its reads and scores (JSON-ready)."""
    from s2i.eval.videos import judge_video, video_inputs
    from s2i.media import read_video, write_video
    from s2i.method.edit import EDIT_STRENGTH, default_w_sound
    from s2i.method.generate import candidate_seeds
    from s2i.method.video_edit import VIDEO_REGION, edit_frames, frame_sound_embeddings, video_scores
    from s2i.toyworld import world

    s2i = load_run(a.run_dir, a.profile, a.model_dir, steps=a.steps)
    w_sound = default_w_sound(s2i.backbones) if a.w_sound is None else a.w_sound
    region = VIDEO_REGION if a.region is None else region_arg(a.region)
    strength = EDIT_STRENGTH if a.strength is None else a.strength
    print(f"w_sound {w_sound}, strength {strength}, region {region}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for seed in a.seeds:
            t0 = time.time()
            for i, x in enumerate(video_inputs(a.videos, seed)):
                v = read_video(write_video(Path(work) / "input.mp4", x.frames, world.FPS, None), need_audio=False)
                z_loud = frame_sound_embeddings(s2i, x.audio, v.times, v.fps)
                z_quiet = frame_sound_embeddings(s2i, x.audio * 10 ** (a.ambience_db / 20), v.times, v.fps)
                e_frames = s2i.backbones.encode_images(v.frames)
                for j, sd in enumerate(candidate_seeds(seed + i, a.candidates)):
                    out = edit_frames(
                        s2i,
                        v.frames,
                        x.audio,
                        v.times,
                        v.fps,
                        sd,
                        strength,
                        w_sound=w_sound,
                        ambience_db=a.ambience_db,
                        region=region,
                    )
                    s = video_scores(s2i.backbones, out, v.frames, e_frames, z_loud, z_quiet)
                    back = read_video(write_video(Path(work) / "edited.mp4", out, v.fps, None), need_audio=False)
                    rows.append(
                        dict(
                            seed=seed,
                            video=i,
                            candidate=j,
                            **judge_video(s2i.backbones, back.frames, x.cls, x.env, x.bg, v.frames),
                            **{k: np.asarray(val).tolist() for k, val in s.items()},
                        )
                    )
            print(f"seed {seed}: {a.videos} videos x {a.candidates} candidates [{time.time() - t0:.0f} s]", flush=True)
    return rows


def by_video(rows: list[dict]) -> list[list[dict]]:
    """The rows grouped by video: each video's candidates."""
    videos: dict[tuple[int, int], list[dict]] = {}
    for r in rows:
        videos.setdefault((r["seed"], r["video"]), []).append(r)
    return list(videos.values())


def scores_of(r: dict) -> dict:
    return {k: np.asarray(r[k]) for k in ("changed", "direction", "coherence")}


def report(rows: list[dict]) -> dict:
    """Each rule's figures over the candidates it keeps (printed, and returned by rule)."""
    videos = by_video(rows)
    choices = {"first": [c[0] for c in videos]}
    choices.update({name: [max(c, key=lambda r: rule(scores_of(r))) for c in videos] for name, rule in RULES.items()})
    choices["oracle r"] = [max(c, key=lambda r: r["corr"]) for c in videos]
    out = {}
    for name, ks in choices.items():
        fig = {k: float(np.mean([r[k] for r in ks])) for k in READS if k in ks[0]}
        seeds = dict.fromkeys(r["seed"] for r in ks)
        per_seed = {s: round(float(np.mean([r["corr"] for r in ks if r["seed"] == s])), 3) for s in seeds}
        out[name] = dict(fig, n=len(ks), corr_per_seed=per_seed)
        print(
            f"{name:45s} r {fig['corr']:.3f}  present {fig['present']:.3f}  alone {fig['alone']:.3f}  "
            f"kept {fig['kept']:.3f}  scene kept {fig.get('scene_kept', float('nan')):.3f}  "
            f"(n {len(ks)}; r per seed {per_seed})",
            flush=True,
        )
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4])
    ap.add_argument("--videos", type=int, default=8)
    ap.add_argument("--candidates", type=int, default=4)
    ap.add_argument("--ambience-db", type=float, default=-20.0)
    ap.add_argument("--w-sound", type=float, default=None, help="default: the product's (default_w_sound)")
    ap.add_argument("--strength", type=float, default=None, help="default: the product's (EDIT_STRENGTH)")
    ap.add_argument("--region", default=None, help="centre | half | all | a share of each side (default: VIDEO_REGION)")
    ap.add_argument("--run-dir", default="results")
    ap.add_argument("--profile", default="toy")
    ap.add_argument("--model-dir", default="models/toy")
    ap.add_argument("--steps", type=int, default=None, help="sampling steps (default: the profile's sampling.steps)")
    ap.add_argument("--out", help="write every candidate's reads and scores here (JSON)")
    ap.add_argument("--load", help="read them from here instead of drawing")
    ap.add_argument("--rank-first", type=int, default=None, help="rank only each video's first K candidates")
    a = ap.parse_args(argv)
    print(f"cpu: {cpu_model()}", flush=True)
    if a.load:
        rows = json.loads(Path(a.load).read_text())
    else:
        import torch

        torch.manual_seed(0)
        rows = draw(a)
        if a.out:
            Path(a.out).write_text(json.dumps(rows))
    if a.rank_first:
        rows = [r for r in rows if r["candidate"] < a.rank_first]
    return report(rows)


if __name__ == "__main__":
    main()
