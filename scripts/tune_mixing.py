#!/usr/bin/env python
"""Tune the mixing of two sources on draws that are not the reported one.

    python scripts/tune_mixing.py --seeds 1 2                        # the product's settings
    python scripts/tune_mixing.py --seeds 1 2 --weight 3 --candidates 1
    python scripts/tune_mixing.py --seeds 1 2 --no-centred          # bands, every term on the whole picture
    python scripts/tune_mixing.py --seeds 1 2 --ambience-db -20 --ambience-weight 2.5  # a place term

Pairs of held-out sounds of two different classes over one background are drawn from each
seed (:func:`s2i.eval.studies.mix_pairs` with sound seeds offset by ``100 * seed``, so seed 0 is not
the mixing study's draw either), each pair -> ``--images`` images by
:meth:`s2i.method.generate.Sound2Image.generate_mixes` with the given settings (all pairs of a seed in
one batch; pair i's bands from seed + i), and the judge reports,
per seed: how often each source's object is drawn (first, second) and both together, and how
often the background is the pair's. The mixing study (stage ``studies``) reports seed 0 with
the settings in ``s2i.method.generate`` and ``s2i.method.mix``; tune here, never on that draw.
One seed (16 pairs x 4 images) takes about 30 s per candidate on 2 CPU cores (4: 2 min); the
spread between draws is about +-0.07 on both-drawn, so compare variants over several seeds.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from benchlib import load_run


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--pairs", type=int, default=16)
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--run-dir", default="results")
    ap.add_argument("--no-prior", action="store_true", help="draw Z^A itself, not the embedding prior's samples")
    ap.add_argument("--profile", default="toy")
    ap.add_argument("--model-dir", default="models/toy")
    ap.add_argument("--weight", type=float, default=None, help="each source's guidance weight (default: guidance)")
    ap.add_argument(
        "--ambience-weight", type=float, default=None, help="the place term's weight (default: guidance / 2)"
    )
    ap.add_argument(
        "--ambience-db",
        type=float,
        default=None,
        help="a place term: the mix turned down this much, each source minus itself turned down (default: none)",
    )
    ap.add_argument("--no-regions", action="store_true", help="every term over the whole picture")
    ap.add_argument("--no-centred", action="store_true", help="each band's terms predicted on the whole picture")
    ap.add_argument("--split", default="columns", choices=["columns", "rows", "any"], help="how the bands lie")
    ap.add_argument("--candidates", type=int, default=None, help="candidates per image (default: MIX_CANDIDATES)")
    a = ap.parse_args(argv)

    import torch

    import s2i.method.mix as mix
    from s2i.eval.studies import mix_pairs
    from s2i.method.mix import MIX_CANDIDATES
    from s2i.models.audio_encoder import SR

    torch.manual_seed(0)
    s2i = load_run(a.run_dir, a.profile, a.model_dir)
    if a.no_prior:
        s2i = s2i.without_prior()
    judge = s2i.backbones.judge
    kw = dict(
        weight=a.weight,
        ambience_weight=a.ambience_weight,
        regions=not a.no_regions,
        ambience_db=a.ambience_db,
        candidates=MIX_CANDIDATES if a.candidates is None else a.candidates,
        centred=not a.no_centred,
    )
    mix.BAND_SPLIT = a.split  # how the sources' bands lie, for this run
    report = dict(settings=kw | dict(split=a.split), seeds={})
    for seed in a.seeds:
        t0 = time.time()
        pairs = mix_pairs(a.pairs, seed, sound_seed=100 * seed)
        imgs = s2i.generate_mixes([[sa.render(), sb.render()] for sa, sb in pairs], n=a.images, seed=seed, sr=SR, **kw)
        rep = judge.report(imgs)
        k = np.repeat(np.arange(len(pairs)), a.images)
        ca, cb = np.array([sa.cls for sa, _ in pairs])[k], np.array([sb.cls for _, sb in pairs])[k]
        first = rep["present"][np.arange(len(k)), ca]
        second = rep["present"][np.arange(len(k)), cb]
        both = first & second
        bg = rep["bg"] == np.array([sa.bg for sa, _ in pairs])[k]
        row = dict(
            first=float(np.mean(first)),
            second=float(np.mean(second)),
            both=float(np.mean(both)),
            bg=float(np.mean(bg)),
            seconds=round(time.time() - t0, 1),
        )
        report["seeds"][seed] = row
        print(
            f"seed {seed}: both {row['both']:.3f} (first {row['first']:.2f}, second {row['second']:.2f}), "
            f"background {row['bg']:.3f}  [{row['seconds']} s]",
            flush=True,
        )
    report["mean_both"] = float(np.mean([r["both"] for r in report["seeds"].values()]))
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
