#!/usr/bin/env python
"""Tune the final thumbnail's rule on toy programmes that are not the reported ones.

    python scripts/tune_thumbnails.py --first 5000 --n 48                     # the product's rule
    python scripts/tune_thumbnails.py --first 3000 --n 48 --max-dist 0.2      # a variant
    python scripts/tune_thumbnails.py --first 500 --n 12 --minutes 2 2        # 2-minute programmes

Programmes ``first .. first + n - 1`` (:func:`s2i.thumbnails.make_programme`, lengths evenly
spaced over ``--minutes``), each embedded once, clustered as the thumbnails stage does
(``seed`` 0), then the final cluster is chosen three ways and scored by its majority class
(the class heard in most of its windows; no generated thumbnail, no judge): ``object`` (the
product's rule, :func:`s2i.thumbnails.object_groups` with ``--weight`` / ``--max-dist``),
``largest`` (the largest cluster) and ``oracle`` (the clusters grouped by their true majority
class: the best any grouping can do with these clusters). The thumbnails stage reports
programmes ``1000 * seed ..`` (seed 0: 0-47); tune here, never on those. A programme of 1-10
minutes takes 4-12 s on 2 CPU cores.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np


def majority(labels: np.ndarray, truth: np.ndarray) -> dict[int, int]:
    """Cluster -> the class heard in most of its windows (windows without a class ignored)."""
    out = {}
    for c in np.unique(labels):
        t = truth[labels == c]
        t = t[t >= 0] if (t >= 0).any() else t
        v, n = np.unique(t, return_counts=True)
        out[int(c)] = int(v[np.argmax(n)])
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--first", type=int, default=5000, help="first programme seed")
    ap.add_argument("--n", type=int, default=48, help="number of programmes")
    ap.add_argument("--minutes", type=float, nargs=2, default=[1.0, 10.0], metavar=("MIN", "MAX"))
    ap.add_argument("--run-dir", default="results")
    ap.add_argument("--profile", default="toy")
    ap.add_argument("--model-dir", default="models/toy")
    ap.add_argument("--k-max", type=int, default=8)
    ap.add_argument("--weight", type=float, default=None, help="object picture's guidance weight (OBJECT_WEIGHT)")
    ap.add_argument("--max-dist", type=float, default=None, help="cut of the grouping tree (OBJECT_MAX_DIST)")
    a = ap.parse_args(argv)

    import torch

    from s2i.generate import AMBIENCE_DB, Sound2Image
    from s2i.thumbnails import (OBJECT_MAX_DIST, OBJECT_WEIGHT, cluster_embeddings, final_cluster, make_programme,
                                object_groups, programme_durations, window_embeddings, window_truth)

    torch.manual_seed(0)
    s2i = Sound2Image.from_run(a.run_dir, a.profile, a.model_dir)
    weight = OBJECT_WEIGHT if a.weight is None else a.weight
    max_dist = OBJECT_MAX_DIST if a.max_dist is None else a.max_dist
    durations = programme_durations(a.n, *a.minutes)
    right = dict(object=0, largest=0, oracle=0)
    rows = []
    for i, dur in enumerate(durations):
        t0 = time.time()
        prog = make_programme(a.first + i, float(dur))
        w = window_embeddings(s2i, prog.audio(), sr=prog.sr, window_s=2.0, overlap_s=1.0, quiet_db=AMBIENCE_DB)
        truth, longest = window_truth(prog, w.starts, 2.0), prog.longest_class()
        cl = cluster_embeddings(w.z, k_max=a.k_max, seed=0, min_run=2)  # as make_thumbnails' defaults
        sizes = np.bincount(cl.labels, minlength=cl.k)
        maj = majority(cl.labels, truth)
        groups = object_groups(s2i.backbones, w.z, w.zq, cl.labels, cl.k, seed=0, weight=weight, max_dist=max_dist)
        heard: dict[int, int] = {}
        for c in range(cl.k):
            heard[maj[c]] = heard.get(maj[c], 0) + int(sizes[c])
        row = dict(programme=a.first + i, minutes=round(prog.duration / 60, 2), k=cl.k,
                   n_classes=len(prog.class_seconds()),
                   object=maj[final_cluster(sizes, groups)] == longest,
                   largest=maj[final_cluster(sizes)] == longest,
                   oracle=max(heard, key=heard.get) == longest, seconds=round(time.time() - t0, 1))
        for k in right:
            right[k] += int(row[k])
        rows.append(row)
        print(json.dumps(row), flush=True)
    report = dict(programmes=[a.first, a.first + a.n - 1], minutes=a.minutes, weight=weight, max_dist=max_dist,
                  right=right, n=a.n, rate={k: round(v / a.n, 3) for k, v in right.items()})
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
