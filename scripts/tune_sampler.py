#!/usr/bin/env python
"""How many sampling steps does the toy generator need? DDIM (and DPM-Solver++) at several step
counts, judged on draws that are not the reported ones.

    python scripts/tune_sampler.py --seeds 1 2 --samplers ddim:25 ddim:15 ddim:10 ddim:8 dpm:10

Per draw and sampler it prints what the stages report, measured the same way: generation from
held-out sounds (8 per class: top class, heard class present, background), the volume sweep (the
whole recording louder, 2 sounds per class x 8 gains: mean Spearman of gain and judged size) and
mixing by composition (``--pairs`` pairs of two sounds, 4 images each: both present; the relative
volume sweep on them: Spearman), plus the seconds it took. The reported draws are generation 0
and 1 (novel), studies 0 and volume 2: the sound banks here use 10 + seed and 20 + seed, and the
mixing pairs seed itself, so seeds 1 and up are tuning draws. Needs a finished toy run
(``results/``: the trained audio encoder). A sampler is ``ddim:STEPS`` or ``dpm:STEPS``
(diffusers' ``DPMSolverMultistepScheduler``, 2nd-order DPM-Solver++, built from the generator's
DDIM configuration), drawn in float32; ``ddim:STEPS:bf16`` draws under bfloat16 autocast, and
``ddim:STEPS:g3`` draws a picture from one embedding at guidance 3 (``backbones.guidance``; mixing's
composed terms keep their unit, ``compose_guidance``). Default: the profile's ``sampling.guidance``.
"""

from __future__ import annotations

import argparse
import json
import time

from benchlib import load_run, print_means, print_row


def _scheduler(kind: str, ddim):
    if kind == "ddim":
        return ddim
    if kind == "dpm":
        from diffusers import DPMSolverMultistepScheduler

        cfg = {k: v for k, v in ddim.config.items() if not k.startswith("_")}
        return DPMSolverMultistepScheduler.from_config(
            cfg, algorithm_type="dpmsolver++", solver_order=2, final_sigmas_type="zero"
        )
    raise ValueError(f"unknown sampler {kind!r} (ddim, dpm)")


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--samplers", nargs="+", default=["ddim:25", "ddim:15", "ddim:10", "ddim:8"])
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--run-dir", default="results")
    ap.add_argument("--profile", default="toy")
    ap.add_argument("--model-dir", default="models/toy")
    a = ap.parse_args(argv)

    from s2i.eval.studies import eval_generation, mixing_study, volume_sweep
    from s2i.toyworld.heldout import sound_bank

    s2i = load_run(a.run_dir, a.profile, a.model_dir)
    gen = s2i.backbones.generator
    ddim, default_steps, default_bf16, default_guidance = (
        gen.scheduler,
        gen.cfg.sample_steps,
        gen.cfg.sample_bf16,
        s2i.backbones.guidance,
    )
    gains = [-24.0, -18.0, -12.0, -6.0, -3.0, 0.0, 3.0, 6.0]
    ratios = [-12.0, -6.0, 0.0, 6.0, 12.0]
    rows = []
    for seed in a.seeds:
        for spec in a.samplers:
            kind, steps, *options = spec.split(":")
            gen.scheduler, gen.cfg.sample_steps = _scheduler(kind, ddim), int(steps)
            gen.cfg.sample_bf16 = "bf16" in options
            guidance = [float(o[1:]) for o in options if o.startswith("g")]
            s2i.backbones.guidance = guidance[-1] if guidance else default_guidance
            t0 = time.perf_counter()
            g = eval_generation(s2i, sound_bank(8, 10 + seed), 2, seed)
            v = volume_sweep(s2i, sound_bank(2, 20 + seed, gain=0.5), gains, seed, mode="whole")
            m = mixing_study(s2i, a.pairs, seed, ratios, methods=("compose",), n_images=4)["compose"]
            row = dict(
                seed=seed,
                sampler=spec,
                class_acc=g["class_acc"],
                present_acc=g["present_acc"],
                bg_acc=g["bg_acc"],
                volume_spearman=v["spearman"],
                mix_both_present=m["both_present"],
                mix_ratio_spearman=m["ratio_spearman"],
                seconds=time.perf_counter() - t0,
            )
            rows.append(row)
            print_row(row)
    gen.scheduler, gen.cfg.sample_steps, gen.cfg.sample_bf16 = ddim, default_steps, default_bf16
    s2i.backbones.guidance = default_guidance
    print_means(rows, "sampler")
    print(json.dumps(rows))
    return rows


if __name__ == "__main__":
    main()
