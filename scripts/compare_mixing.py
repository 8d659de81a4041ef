#!/usr/bin/env python
"""Compare the ways of mixing two sounds into one picture on draws that are not the reported one.

    python scripts/compare_mixing.py --seeds 1 2 --pairs 24 --methods waveform compose

Each seed is a draw of :func:`s2i.eval.studies.mixing_study` (pairs of held-out sounds of two
classes over one background; the studies stage reports seed 0), run with the profile's sampling
steps. Per seed and method it prints both objects drawn, both and no third class, and the
relative-volume Spearman, then the means over the seeds. The methods are
``s2i.eval.studies.MIX_METHODS``.
"""

from __future__ import annotations

import argparse
import json
import time

from benchlib import load_run, print_means, print_row


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--pairs", type=int, default=24)
    ap.add_argument("--ratio-pairs", type=int, default=8)
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--methods", nargs="+", default=["waveform", "compose"])
    ap.add_argument("--run-dir", default="results")
    ap.add_argument("--profile", default="toy")
    ap.add_argument("--model-dir", default="models/toy")
    a = ap.parse_args(argv)

    from s2i.eval.studies import mixing_study

    s2i = load_run(a.run_dir, a.profile, a.model_dir)
    ratios = [-12.0, -6.0, 0.0, 6.0, 12.0]
    rows = []
    for seed in a.seeds:
        for m in a.methods:
            t0 = time.perf_counter()
            kw = dict(methods=(m,), n_images=a.images, n_ratio_pairs=a.ratio_pairs)
            r = mixing_study(s2i, a.pairs, seed, ratios, **kw)[m]
            row = dict(
                seed=seed,
                method=m,
                both_present=r["both_present"],
                both_only=r["both_only"],
                ratio_spearman=r["ratio_spearman"],
                seconds=time.perf_counter() - t0,
            )
            rows.append(row)
            print_row(row)
    print_means(rows, "method")
    print(json.dumps(rows))
    return rows


if __name__ == "__main__":
    main()
