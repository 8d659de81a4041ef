#!/usr/bin/env python
"""Tune the final thumbnail's rule on toy programmes that are not the reported ones.

    python scripts/tune_thumbnails.py --first 5000 --n 48                     # the product's rule
    python scripts/tune_thumbnails.py --first 3000 --n 48 --sound-max-dist 0.3  # a variant
    python scripts/tune_thumbnails.py --first 500 --n 12 --minutes 2 2        # 2-minute programmes

Programmes ``first .. first + n - 1`` (:func:`s2i.toyworld.programmes.make_programme`, lengths evenly
spaced over ``--minutes``), each embedded once and given thumbnails as the thumbnails stage
does (``seed`` 0); :func:`s2i.eval.thumbnails.evaluate_thumbnails` (without the judge: each
cluster's majority class, no judged thumbnail) scores the final cluster three ways: ``sound``
(the product's rule, :func:`s2i.method.thumbnails.sound_groups` on the windows' object sounds,
cut at ``--sound-max-dist``), ``largest`` (the largest cluster) and ``oracle`` (the clusters
grouped by their majority class: the best any grouping can do with these clusters). The
thumbnails stage reports programmes ``1000 * seed ..`` (seed 0: 0-47); tune here, never on those. A programme of 1-10
minutes takes 5-15 s on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter

from benchlib import load_run


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--first", type=int, default=5000, help="first programme seed")
    ap.add_argument("--n", type=int, default=48, help="number of programmes")
    ap.add_argument("--minutes", type=float, nargs=2, default=[1.0, 10.0], metavar=("MIN", "MAX"))
    ap.add_argument("--run-dir", default="results")
    ap.add_argument("--profile", default="toy")
    ap.add_argument("--model-dir", default="models/toy")
    ap.add_argument("--k-max", type=int, default=8)
    ap.add_argument("--sound-max-dist", type=float, default=None, help="cut of the sound tree (SOUND_MAX_DIST)")
    a = ap.parse_args(argv)

    import torch

    from s2i.eval.thumbnails import evaluate_thumbnails, programme_durations
    from s2i.method.thumbnails import SOUND_MAX_DIST, make_thumbnails, thumbnail_windows
    from s2i.toyworld.programmes import make_programme

    torch.manual_seed(0)
    s2i = load_run(a.run_dir, a.profile, a.model_dir)
    sound_max_dist = SOUND_MAX_DIST if a.sound_max_dist is None else a.sound_max_dist
    right = dict(sound=0, largest=0, oracle=0)
    rows = []
    for i, dur in enumerate(programme_durations(a.n, *a.minutes)):
        t0 = time.time()
        prog = make_programme(a.first + i, float(dur))
        w = thumbnail_windows(s2i, prog.audio(), sr=prog.sr, window_s=2.0, overlap_s=1.0)
        res = make_thumbnails(s2i, None, windows=w, k_max=a.k_max, seed=0, sound_max_dist=sound_max_dist)
        ev = evaluate_thumbnails(res, prog, judge=None)
        heard = Counter()  # windows per majority class: the clusters grouped by what they truly hold
        for c in res.clusters:
            heard[ev["cluster_majority"][c["id"]]] += c["size"]
        row = dict(
            programme=a.first + i,
            minutes=round(prog.duration / 60, 2),
            k=res.k,
            n_classes=ev["n_classes"],
            sound=ev["final_cluster_correct"],
            largest=ev["largest_cluster_correct"],
            oracle=max(heard, key=heard.get) == ev["longest_class"],
            seconds=round(time.time() - t0, 1),
        )
        for k in right:
            right[k] += int(row[k])
        rows.append(row)
        print(json.dumps(row), flush=True)
    report = dict(
        programmes=[a.first, a.first + a.n - 1],
        minutes=a.minutes,
        sound_max_dist=sound_max_dist,
        right=right,
        n=a.n,
        rate={k: round(v / a.n, 3) for k, v in right.items()},
    )
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
