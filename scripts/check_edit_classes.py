#!/usr/bin/env python
"""How many classes does the judge read in an edited picture? A check on "object added".

    python scripts/check_edit_classes.py --seed 1 --edits 24 --settings 0.6,5 0.8,5 0.8,8 0.8,16

Empty held-out scenes (no object) are edited with one held-out sound each, at 0 dB, recorded at
another background; per setting (strength, w_sound) it prints the editing study's "object
added" (the heard class among the judge's present classes), the stricter "heard object alone"
(the heard class and no other), the mean number of classes present per edited picture (the
inputs have none), how often the judge's top class is the heard one, and the pixel standard
deviation (a crude read of saturation). Seed 0 is the reported draw: use others.
"""

from __future__ import annotations

import argparse

import numpy as np
from benchlib import load_run


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--edits", type=int, default=24)
    ap.add_argument("--settings", nargs="+", default=["0.6,5", "0.8,5", "0.8,8", "0.8,16"])
    ap.add_argument("--run-dir", default="results")
    ap.add_argument("--profile", default="toy")
    ap.add_argument("--model-dir", default="models/toy")
    ap.add_argument("--steps", type=int, default=None, help="sampling steps (default: the profile's sampling.steps)")
    a = ap.parse_args(argv)

    from s2i.eval.studies import TEST_SEED_OFFSET, TestSound
    from s2i.method.edit import edit_image
    from s2i.toyworld import world

    s2i = load_run(a.run_dir, a.profile, a.model_dir, steps=a.steps)
    judge = s2i.backbones.judge
    rng = np.random.default_rng(TEST_SEED_OFFSET + 11 + a.seed)
    nbg = len(world.BACKGROUNDS)
    items = []
    for i in range(a.edits):
        c, b = int(rng.integers(len(world.CLASSES))), int(rng.integers(nbg))
        snd = TestSound(c, (b + 1) % nbg, 0.5, TEST_SEED_OFFSET + 900_000 + i)
        items.append((c, world.render_still(world.Scene(b, [])), snd.render()))
    heard = np.array([it[0] for it in items])
    rows = []
    for setting in a.settings:
        strength, w_sound = (float(v) for v in setting.split(","))
        kw = dict(gain_db=0.0, strength=strength, w_sound=w_sound)
        outs = np.stack(
            [edit_image(s2i, img, audio, world.SR, seed=a.seed + i, **kw)[0] for i, (_, img, audio) in enumerate(items)]
        )
        rep = judge.report(outs)
        n_present = rep["present"].sum(1)
        added = rep["present"][np.arange(len(heard)), heard]
        row = dict(
            strength=strength,
            w_sound=w_sound,
            added=float(added.mean()),
            alone=float((added & (n_present == 1)).mean()),
            classes_per_picture=float(n_present.mean()),
            top_is_heard=float((rep["top_class"] == heard).mean()),
            pixel_sd=float(outs.astype(float).std(axis=(1, 2, 3)).mean()),
        )
        rows.append(row)
        print(" ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)
    return rows


if __name__ == "__main__":
    main()
