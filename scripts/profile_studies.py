#!/usr/bin/env python
"""Where the studies stage's time goes: the volume sweep and the mixing study of
``notebooks/05_studies.ipynb`` at a reduced size, under pyinstrument, with the generator's network
passes counted per mixing method.

    .venv/bin/python scripts/profile_studies.py [--pairs 4] [--html out.html]

Needs a finished run (``results/``: the trained audio encoder) and the toy models. Prints, per
part, the seconds and the network passes (images through the generator's network, the UNet or
the latent denoiser, summed over the sampling steps), then the top of the profile. The passes
scale linearly with the study's size, so the full stage's split follows from these shares.
"""

from __future__ import annotations

import argparse
import time

import torch
from benchlib import cpu_model, load_run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=4, help="mixing pairs (the toy profile: 48)")
    ap.add_argument("--html", default=None, help="write pyinstrument's HTML report here")
    args = ap.parse_args()

    from pyinstrument import Profiler

    from s2i.eval.studies import MIX_METHODS, mixing_study, volume_sweep
    from s2i.toyworld.heldout import sound_bank

    s2i = load_run("results", "toy", "models/toy", 0.5)
    dec = s2i.backbones.generator.decoder  # the pixel generator's UNet wrapper, or the latent denoiser
    net = getattr(dec, "unet", dec)
    passes = [0]
    net.register_forward_hook(lambda m, i, o: passes.__setitem__(0, passes[0] + i[0].shape[0]))
    gains = [-24.0, -18.0, -12.0, -6.0, -3.0, 0.0, 3.0, 6.0]
    ratios = [-12.0, -6.0, 0.0, 6.0, 12.0]
    print(f"CPU: {cpu_model()} | torch threads {torch.get_num_threads()}")
    rows = []
    prof = Profiler()
    prof.start()
    bank = sound_bank(1, 2, gain=0.5)
    for mode in ("whole", "object"):
        passes[0], t = 0, time.perf_counter()
        volume_sweep(s2i, bank, gains, 0, mode=mode)
        rows.append((f"volume ({mode}), {len(bank)} sounds", time.perf_counter() - t, passes[0]))
    for m in MIX_METHODS:
        passes[0], t = 0, time.perf_counter()
        mixing_study(s2i, args.pairs, 0, ratios, methods=(m,), n_images=4, n_ratio_pairs=args.pairs)
        rows.append((f"mixing: {m}, {args.pairs} pairs", time.perf_counter() - t, passes[0]))
    prof.stop()
    total_s, total_p = sum(r[1] for r in rows), sum(r[2] for r in rows)
    print(f"\n{'part':42s} {'seconds':>8s} {'share':>6s} {'net images':>12s} {'share':>6s}")
    for name, s, p in rows:
        print(f"{name:42s} {s:8.1f} {s / total_s:6.1%} {p:12d} {p / total_p:6.1%}")
    print(f"{'total':42s} {total_s:8.1f} {'':6s} {total_p:12d}")
    print(f"seconds per 1,000 network images: {1000 * total_s / max(total_p, 1):.2f}")
    print(prof.output_text(unicode=False, color=False, show_all=False)[:4000])
    if args.html:
        with open(args.html, "w") as f:
            f.write(prof.output_html())


if __name__ == "__main__":
    main()
