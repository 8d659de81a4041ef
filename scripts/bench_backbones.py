#!/usr/bin/env python
"""Benchmark the toy backbones: seconds per training step of each part (at the profile's
batch sizes) and the generator's sampling throughput (images/s), on this machine.

    .venv/bin/python scripts/bench_backbones.py [--profile toy] [--steps 5]

Prints one line per figure. Training figures are measured on fresh models (a few steps after
one warm-up step); sampling uses the shipped models of the profile (``pretrain.model_dir``).
"""

import argparse
import time

import torch

from s2i import load_profile
from s2i.backbones.toy import ToyBackbones
from s2i.models.common import resolve_device
from s2i.models.generator import GeneratorCfg
from s2i.toyworld.stills import make_stills
from s2i.train.encoder import EncoderCfg, train_encoder
from s2i.train.generator import train_generator
from s2i.train.judge import JudgeCfg, train_judge


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn, n):
    fn()  # warm-up
    sync()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    sync()
    return (time.perf_counter() - t) / n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="toy")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--n-images", type=int, default=64)
    ap.add_argument("--device", default=None, help="cpu, cuda, ... (default: a GPU when present, else the CPU)")
    a = ap.parse_args()
    dev = resolve_device(a.device)
    p = load_profile(a.profile)["pretrain"]
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, cuda {torch.cuda.is_available()}, device {dev}"
    )
    data = make_stills(512, 0)
    enc = EncoderCfg(model=p["enc_model"], steps=1, batch=p["enc_batch"])
    t = timed(lambda: train_encoder(data, enc, 0, device=dev), a.steps)
    print(f"encoder  s/step (batch {enc.batch}x2 views): {t:.3f}")
    jc = JudgeCfg(steps=1, batch=p["judge_batch"], width=p["judge_width"])
    print(f"judge    s/step (batch {jc.batch}): {timed(lambda: train_judge(data, jc, 0, device=dev), a.steps):.3f}")
    gc = GeneratorCfg(
        block_out_channels=tuple(int(c) for c in p["gen_channels"].split(",")),
        attn_levels=p["gen_attn_levels"],
        n_tokens=p["gen_tokens"],
        steps=1,
        batch=p["gen_batch"],
    )
    e = torch.randn(len(data.images), 256 if a.profile != "smoke" else 128)
    t = timed(lambda: train_generator(e, data.images, gc, 0, device=dev), a.steps)
    print(f"generator s/step (batch {gc.batch}): {t:.3f}")
    bb = ToyBackbones.load(p["model_dir"]).to(dev)
    z = bb.encode_images(data.images[: a.n_images])
    t = time.perf_counter()
    bb.generate(z, seed=0)
    sync()
    dt = time.perf_counter() - t
    print(
        f"generator sampling: {a.n_images / dt:.1f} images/s "
        f"({bb.generator.cfg.sample_steps} DDIM steps, guidance {bb.generator.cfg.guidance}, batch {a.n_images})"
    )
    t = time.perf_counter()
    bb.encode_images(data.images)
    print(f"image encoder: {len(data.images) / (time.perf_counter() - t):.0f} images/s")


if __name__ == "__main__":
    main()
