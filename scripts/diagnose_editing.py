#!/usr/bin/env python
"""Where an image edit loses the heard object: each candidate's read, the ranking's, and the drawing's.

    python scripts/diagnose_editing.py                       # tuning draws 1-6, 8 candidates per edit
    python scripts/diagnose_editing.py --seeds 1 2 --candidates 4

On the editing study's edits (:func:`s2i.eval.studies.edit_inputs`) at 0 dB, with the product's
settings, every edit's ``--candidates`` candidates are drawn (:func:`s2i.method.edit.edit_candidates`)
and read by the judge (object added: the heard class and no class the input lacked). Per seed:

- ``one``: a candidate's read, the mean over all candidates (what one drawing gives);
- ``best4`` / ``bestK``: the candidate the product keeps among the first 4 / all K
  (:func:`s2i.method.edit.best_edits`), and ``judge4`` / ``judgeK``: whether any of them is
  right, the judge's own pick (an upper bound on any ranking);
- the drawing behind the first candidate, read before the object's mask cuts it out (object
  added / heard class present): ``region``, as the edit draws it, the sound's term inside the
  centre region with the input kept outside; ``whole``, the same drawing on the whole picture;
  ``plain``, the generator's plain drawing of the same prior sample at the same weight.

The reported draw (seed 0) is refused: tune and diagnose on the others.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from benchlib import load_run


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6])
    ap.add_argument("--edits", type=int, default=32)
    ap.add_argument("--candidates", type=int, default=8)
    ap.add_argument("--run-dir", default="results")
    ap.add_argument("--profile", default="toy")
    ap.add_argument("--model-dir", default="models/toy")
    a = ap.parse_args(argv)
    if 0 in a.seeds:
        ap.error("seed 0 is the reported draw: diagnose on the others")
    if a.candidates < 4:
        ap.error("--candidates must be at least 4 (the product keeps the best of 4)")

    import torch

    from s2i.eval.studies import edit_inputs, judged_exactly
    from s2i.method.edit import (
        EDIT_STRENGTH,
        best_edits,
        compose_edit,
        default_w_sound,
        edit_candidates,
        edit_embeddings,
    )
    from s2i.models.audio_encoder import SR
    from s2i.toyworld import world

    torch.manual_seed(0)
    s2i = load_run(a.run_dir, a.profile, a.model_dir)
    bb = s2i.backbones
    w = default_w_sound(bb)
    rows = {}
    for seed in a.seeds:
        t0 = time.time()
        r = {k: [] for k in ("one", "best4", "bestK", "judge4", "judgeK", "region", "whole", "plain")}
        present = {k: [] for k in ("region", "whole", "plain")}
        for i, e in enumerate(edit_inputs(a.edits, seed)):
            audio = e.sound.render()
            img, outs, scores = edit_candidates(s2i, e.still, audio, world.SR, seed=seed + i, candidates=a.candidates)
            ok = [judged_exactly(p, [e.heard], e.held) for p in bb.judge.report(outs[:, 0])["present"]]
            r["one"].append(np.mean(ok))
            r["best4"].append(ok[int(best_edits(outs[:4], img, scores[:4])[0])])
            r["bestK"].append(ok[int(best_edits(outs, img, scores)[0])])
            r["judge4"].append(any(ok[:4]))
            r["judgeK"].append(any(ok))
            # the first candidate's drawing, before the mask: in the region, on the whole picture, plain
            z_audio = s2i.embed_audio(s2i.load_audio(audio, world.SR), SR)[None]
            z, _ = edit_embeddings(s2i, z_audio, None, seed + i)
            drawn = {
                region: compose_edit(bb, None, [z], [w], img[None], 0.0, seed + i, EDIT_STRENGTH, region)[0]
                for region in ("centre", "all")
            }
            drawn["plain"] = bb.generate(z, guidance=w, seed=seed + i)[0]
            rep = bb.judge.report(np.stack([drawn["centre"], drawn["all"], drawn["plain"]]))
            for k, p in zip(("region", "whole", "plain"), rep["present"]):
                r[k].append(judged_exactly(p, [e.heard], e.held))
                present[k].append(bool(p[e.heard]))
        rows[seed] = {k: float(np.mean(v)) for k, v in r.items()}
        rows[seed].update({f"{k}_present": float(np.mean(v)) for k, v in present.items()})
        reads = " ".join(f"{k} {v:.3f}" for k, v in rows[seed].items())
        print(f"seed {seed}: {reads}  [{time.time() - t0:.0f} s]", flush=True)
    mean = {k: float(np.mean([row[k] for row in rows.values()])) for k in next(iter(rows.values()))}
    print("mean: " + " ".join(f"{k} {v:.3f}" for k, v in mean.items()), flush=True)
    out = dict(seeds=rows, mean=mean, candidates=a.candidates, edits=a.edits)
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
