#!/usr/bin/env python
"""Each thumbnail drawn once, or the best of K drawings: judged on toy programmes that are not
the reported ones.

    python scripts/tune_thumbnail_candidates.py --first 5000 --n 24 --candidates 1 4
    python scripts/tune_thumbnail_candidates.py --first 5000 --n 24 --candidates 3 --guidance 5 3

Programmes ``first .. first + n - 1`` (lengths evenly spaced over ``--minutes``), each embedded
once; for every K the thumbnails are made as the thumbnails stage makes them (``seed`` 0, the
profile's settings) with ``make_thumbnails(..., candidates=K)`` and scored with the judge
(:func:`s2i.eval.thumbnails.evaluate_thumbnails`): class coverage and final pick, the two
figures the drawing sets (the clusters, and so purity, do not depend on it); with
``--guidance``, for each guidance scale (default: the profile's ``sampling.guidance``). The thumbnails
stage reports programmes 0-47; tune here, never on those.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from benchlib import load_run


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--first", type=int, default=5000, help="first programme seed")
    ap.add_argument("--n", type=int, default=24, help="number of programmes")
    ap.add_argument("--minutes", type=float, nargs=2, default=[1.0, 10.0], metavar=("MIN", "MAX"))
    ap.add_argument("--candidates", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--guidance", type=float, nargs="+", default=[None], help="guidance scales (default: the run's)")
    ap.add_argument("--run-dir", default="results")
    ap.add_argument("--profile", default="toy")
    ap.add_argument("--model-dir", default="models/toy")
    a = ap.parse_args(argv)

    from s2i.eval.thumbnails import evaluate_thumbnails, programme_durations
    from s2i.method.thumbnails import make_thumbnails, thumbnail_windows
    from s2i.paths import compose_profile
    from s2i.toyworld.programmes import make_programme

    p = compose_profile(a.profile)["thumbnails"]
    s2i = load_run(a.run_dir, a.profile, a.model_dir)
    kw = dict(k_max=p["k_max"], seed=0, min_silhouette=p["min_silhouette"], min_spread=p["min_spread"])
    seeds = range(a.first, a.first + a.n)
    runs = [(k, g) for g in a.guidance for k in a.candidates]
    scores = {run: dict(class_coverage=[], final_pick_correct=[], seconds=0.0) for run in runs}
    for seed, dur in zip(seeds, programme_durations(a.n, *a.minutes)):
        prog = make_programme(seed, float(dur))
        win = thumbnail_windows(s2i, prog.audio(), sr=prog.sr, window_s=p["window_s"], overlap_s=p["overlap_s"])
        for k, g in runs:
            t = time.time()
            res = make_thumbnails(s2i, None, windows=win, candidates=k, guidance=g, **kw)
            scores[k, g]["seconds"] += time.time() - t
            m = evaluate_thumbnails(res, prog, s2i.backbones.judge)
            for key in ("class_coverage", "final_pick_correct"):
                if m[key] is not None:
                    scores[k, g][key].append(float(m[key]))
    out = {
        f"{k} candidates" + ("" if g is None else f", guidance {g:g}"): dict(
            class_coverage=float(np.mean(v["class_coverage"])),
            final_pick_correct=float(np.mean(v["final_pick_correct"])),
            n_final_pick_correct=int(sum(v["final_pick_correct"])),
            seconds=round(v["seconds"], 1),
        )
        for (k, g), v in scores.items()
    }
    print(json.dumps(dict(first=a.first, n=a.n, candidates=out), indent=1))
    return out


if __name__ == "__main__":
    main()
