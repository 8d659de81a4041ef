#!/usr/bin/env python
"""Tune image editing with a sound on draws that are not the reported one.

    python scripts/tune_editing.py --seeds 1 2                          # the product's settings
    python scripts/tune_editing.py --seeds 1 2 --strength 0.8 --w-sound 2
    python scripts/tune_editing.py --seeds 1 2 --grid "0.6,0.8" "1,2,3,5"   # strength x w_sound

Each seed is a draw of :func:`s2i.eval.studies.edit_study` (held-out stills and sounds, the
sound recorded at another background) with the settings given; the editing stage reports seed
0 with the settings in ``params.yaml``, so tune here, never on that draw. Per seed and setting it
prints object added (the heard class and no class the input lacked), the heard class present
(among any others), background kept and the scene kept around the object at 0 dB, and the
volume Spearman, as the stage does;
with ``--videos N``, also the video study on N videos per seed (size-envelope r, heard class
present, heard object alone, background kept per frame), in the videos' own region
(``--video-region``, default the product's ``VIDEO_REGION``) and with ``--video-candidates``
(default 1; to compare video rankings, ``scripts/tune_video.py``).
One seed of 32 edits x 4 gains takes about 20 s per setting on 2 CPU cores (``--candidates 4``: about 65 s).
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

import numpy as np
from benchlib import load_run, region_arg


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--edits", type=int, default=32)
    ap.add_argument("--gains", default="-12,-6,0,6")
    ap.add_argument("--run-dir", default="results")
    ap.add_argument("--no-prior", action="store_true", help="draw Z^A itself, not the embedding prior's samples")
    ap.add_argument("--profile", default="toy")
    ap.add_argument("--model-dir", default="models/toy")
    ap.add_argument("--steps", type=int, default=None, help="sampling steps (default: the profile's sampling.steps)")
    ap.add_argument("--strength", type=float, default=None, help="default: the product's (EDIT_STRENGTH)")
    ap.add_argument("--w-sound", type=float, default=None, help="default: the product's (default_w_sound)")
    ap.add_argument("--w-image", type=float, default=0.0, help="the input image's term (the product: none)")
    ap.add_argument(
        "--ambience-db",
        type=lambda v: None if v.lower() == "none" else float(v),
        default=-20.0,
        help="the sound turned down by this much is the second drawing (the object is where they differ); "
        "'none': the whole region as drawn",
    )
    ap.add_argument("--region", default="centre", help="centre | half | all | a share of each side")
    ap.add_argument("--candidates", type=int, default=1, help="each edit the best of K (edit_image)")
    ap.add_argument("--grid", nargs=2, metavar=("STRENGTHS", "W_SOUNDS"), help="comma lists: every pair is run")
    ap.add_argument("--videos", type=int, default=0, help="also edit this many videos per seed (the video study)")
    ap.add_argument("--video-region", default=None, help="the videos' region (default: VIDEO_REGION)")
    ap.add_argument("--video-candidates", type=int, default=1, help="each video the best of K (edit_video)")
    a = ap.parse_args(argv)

    import tempfile

    import torch

    from s2i.eval.studies import edit_study
    from s2i.eval.videos import video_study
    from s2i.method.edit import EDIT_STRENGTH, default_w_sound
    from s2i.method.video_edit import VIDEO_REGION

    torch.manual_seed(0)
    s2i = load_run(a.run_dir, a.profile, a.model_dir, steps=a.steps)
    if a.no_prior:
        s2i = s2i.without_prior()
    gains = [float(g) for g in a.gains.split(",")]
    region = region_arg(a.region)
    video_region = VIDEO_REGION if a.video_region is None else region_arg(a.video_region)
    if a.grid:
        settings = list(itertools.product(*[[float(v) for v in s.split(",")] for s in a.grid]))
    else:
        strength = EDIT_STRENGTH if a.strength is None else a.strength
        settings = [(strength, default_w_sound(s2i.backbones) if a.w_sound is None else a.w_sound)]
    rows = []
    for strength, w_sound in settings:
        kw = dict(strength=strength, w_image=a.w_image, w_sound=w_sound, ambience_db=a.ambience_db, region=region)
        per_seed = {}
        for seed in a.seeds:
            t0 = time.time()
            r = edit_study(s2i, a.edits, seed, gains, candidates=a.candidates, **kw)
            keys = (
                "edit_object_added",
                "edit_heard_class_present",
                "edit_background_kept",
                "edit_scene_kept",
                "edit_input_object_kept",
                "edit_volume_spearman",
            )
            per_seed[seed] = {k: r[k] for k in keys}
            if a.videos:
                with tempfile.TemporaryDirectory() as work:
                    vkw = dict(kw, region=video_region, candidates=a.video_candidates)
                    v = video_study(s2i, a.videos, seed, work, **vkw)
                vkeys = ("video_size_envelope_corr", "video_object_present", "video_object_alone", "video_bg_kept")
                per_seed[seed].update({k: v[k] for k in vkeys})
                print(
                    f"  video seed {seed}: r {v['video_size_envelope_corr']:.3f}, "
                    f"present {v['video_object_present']:.3f}, alone {v['video_object_alone']:.3f}, "
                    f"kept {v['video_bg_kept']:.3f}",
                    flush=True,
                )
            print(
                f"strength {strength:.2f} w_sound {w_sound:.1f} seed {seed}: added {r['edit_object_added']:.3f} "
                f"(heard class present {r['edit_heard_class_present']:.3f}), "
                f"kept {r['edit_background_kept']:.3f}, scene kept {r['edit_scene_kept']:.3f}, "
                f"input's object kept {r['edit_input_object_kept']:.3f}, "
                f"volume {r['edit_volume_spearman']:.3f}  "
                f"[{time.time() - t0:.0f} s]",
                flush=True,
            )
        mean = {k: float(np.mean([v[k] for v in per_seed.values()])) for k in next(iter(per_seed.values()))}
        rows.append(dict(settings=dict(kw, region=a.region, candidates=a.candidates), seeds=per_seed, mean=mean))
        print(f"  mean: {json.dumps({k: round(v, 3) for k, v in mean.items()})}", flush=True)
    print(json.dumps(rows))
    return dict(rows=rows)


if __name__ == "__main__":
    main()
