"""Retrain the toy generator's denoiser alone, longer, on a GPU; and the autoencoder it draws through.

The ``pretrain`` stage builds every toy backbone on 2 CPU cores in under an hour; within that
budget its latent denoiser (6,000 steps of 64 pictures) is still learning: the shapes it draws
are read right about two times in three, while a linear probe reads them from the image
embeddings nine times in ten (``docs/results.md``). This module trains the denoiser again on the
stage's training stills, with the shipped image encoder and autoencoder frozen, with the
batches and steps a GPU affords, and installs the result in the model folder. Everything else
in the folder (image encoder, autoencoder, judge) is left as the stage built it.

The commands (the stills pass through the H.264 codec, PyAV, which a GPU machine may lack:
``train`` reads no media, but ``s2i`` imports PyAV; where it is missing, a stand-in module named
``av`` lets it import):

1. ``export OUT.npz [--n-stills N]``: the training stills (``pretrain.n_stills``, or ``N`` for a
   long run that would see the stage's 16,000 hundreds of times; ``base.seed``) and a tuning set
   of stills of a seed of their own, as uint8 arrays;
2. ``train OUT.npz RUN_DIR --batch B --lr LR ...`` on the GPU machine: embeds the stills with
   the shipped image encoder, encodes them with the shipped autoencoder (or ``--autoencoder
   AE_DIR``'s), trains a fresh denoiser, draws the tuning stills back from their embeddings and
   has the judge read them (shape and size, the figures the stage reports on held-out stills,
   and the shape by shape and by size); writes the EMA weights and ``recipe.json``. Its
   training state is saved in ``RUN_DIR/checkpoint.pt`` every ``--checkpoint-every`` steps: the
   same command after a stop resumes there. With
   ``--init installed`` (or ``--init RUN_DIR``) the denoiser starts from those weights instead of
   a fresh initialisation: a warm restart, the rate warmed up and decayed again, the record of
   the run it continues kept in ``recipe.json`` (``init``). With ``--object-weight W`` the
   squared error of a latent cell an object covers weighs ``1 + W`` against the place's 1
   (:func:`s2i.toyworld.stills.object_cover`, found from each still and its place; each
   still's weights of mean 1), so that a small object's few cells are not outweighed by the
   place around it;
3. ``install RUN_DIR``: those weights into ``models/toy/generator`` (with the run's autoencoder,
   if it had one of its own), the recipe into ``s2i_generator.json`` and ``manifest.json``, and
   the stage's measurements redone (``backbones.json``, the recon grid; ``measure`` alone redoes
   them, e.g. after a change to how the generator draws).

And for the autoencoder, whose reconstructions bound every shape a drawing keeps
(:mod:`s2i.train.autoencoder`):

- ``autoencoder OUT.npz AE_DIR --halvings H --channels C --steps S``: a new autoencoder (8x8 or
  16x16 latents), its reconstructions of the tuning stills judged beside the shipped one's; a
  denoiser is then trained on it with ``train --autoencoder AE_DIR``;
- ``decoder OUT.npz AE_DIR --steps S``: the shipped autoencoder's decoder trained further with
  its encoder frozen (the latent space, hence the shipped denoiser, stays valid), judged on
  reconstructions and on the shipped denoiser's drawings; ``install-decoder AE_DIR`` puts it in.

The tuning stills are never the held-out stills the stage reports (``base.seed + 1,000,003``).

It stays one module of some 500 lines because it is the ``python -m s2i.train.denoiser`` tool
whole: its commands share the exported stills, the training targets, the run folder's record
and checkpoint, and the install step, and each is a few dozen lines. The stage's own
measurements live in :mod:`s2i.train.pretrain`, the autoencoder's training and judging in
:mod:`s2i.train.autoencoder`.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from s2i.models.common import resolve_device, to_tensor
from s2i.models.latent import LatentGenerator, build
from s2i.train.autoencoder import (
    AE_JSON,
    autoencoder_cmd,
    decoder_cmd,
    device_name,
    install_decoder,
    installed_cfg,
    load_autoencoder,
    shape_reads,
    singles,
)
from s2i.train.pretrain import write_measurements
from s2i.utils import atomic_path, read_json, write_json

TUNING_SEED_OFFSET = 5_000_003  # the tuning stills' seed: base.seed + this
SHARD_MB = 15  # denoiser weights are written in safetensors shards of at most this size
CHECKPOINT = "checkpoint.pt"  # a train run's training state, in its folder until the weights are written


def export_stills(out: str | os.PathLike, n_stills: int, seed: int, n_tuning: int = 512) -> Path:
    """The training stills of the pretrain stage (``make_stills(n_stills, seed)``, bit for bit,
    with their places, from which ``train --object-weight`` finds their objects) and ``n_tuning``
    tuning stills (seed ``seed + TUNING_SEED_OFFSET``) with their ground truth, in one compressed
    ``.npz``."""
    from s2i.toyworld.stills import make_stills

    train, tune = make_stills(n_stills, seed), make_stills(n_tuning, seed + TUNING_SEED_OFFSET)
    out = Path(out)
    with atomic_path(out) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(
            f,
            images=train.images,
            bg=train.bg,
            tuning_images=tune.images,
            tuning_presence=tune.presence,
            tuning_sizes=tune.sizes,
            tuning_bg=tune.bg,
            seed=seed,
        )
    return out


def training_targets(model_dir: str | os.PathLike, images: np.ndarray, device=None, ae_dir=None):
    """(latents, embeddings) of uint8 ``images``: the shipped autoencoder's scaled latents (or
    those of the autoencoder in ``ae_dir``, see :func:`fit_autoencoder`) and the shipped image
    encoder's embeddings, both on the CPU."""
    from s2i.models.image_encoder import ImageEncoder, embed

    dev = resolve_device(device)
    model_dir = Path(model_dir)
    with torch.no_grad():
        enc = ImageEncoder.load(model_dir / "image_encoder").to(dev).eval()
        x = to_tensor(images)
        e = torch.cat([embed(enc, x[s : s + 4096].to(dev)).cpu() for s in range(0, len(x), 4096)])
        z = load_autoencoder(model_dir, ae_dir).to(dev).encode_all(x).cpu()
    return z, e


def train_denoiser(
    model_dir: str | os.PathLike,
    latents: torch.Tensor,
    emb: torch.Tensor,
    recipe: dict,
    seed: int,
    device=None,
    log=None,
    ae_dir=None,
    init: dict | None = None,
    ckpt_path: str | os.PathLike | None = None,
    ckpt_every: int = 1000,
    cover: torch.Tensor | None = None,
) -> LatentGenerator:
    """A denoiser of the shipped architecture trained on ``(latents, emb)`` with the shipped
    diffusion recipe but for ``recipe`` (any of ``GeneratorCfg``'s ``steps``, ``batch``, ``lr``,
    ``ema_decay``, ``bf16``): the loop of :func:`s2i.train.generator.train_generator`. Fresh, or
    started from the weights ``init`` (a state dict, see :func:`init_state`: a warm restart, with
    a new warm-up and cosine decay of the rate and the EMA starting from those weights). With
    ``ckpt_path`` the whole training state is saved there every ``ckpt_every`` steps and a run
    that finds it resumes from it (the same weights as a run never stopped). With
    ``recipe["object_weight"]``, ``cover`` is each still's object cover on the latent grid
    (:func:`s2i.toyworld.stills.object_cover`). Returns a
    :class:`LatentGenerator` with the shipped autoencoder (or ``ae_dir``'s, whose latents
    ``latents`` must then be), on the CPU."""
    from s2i.train.generator import _exists, _fit

    model_dir = Path(model_dir)
    cfg, meta = installed_cfg(model_dir, ae_dir)
    cfg = replace(cfg, **recipe)
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed + 2)
    dev = resolve_device(device)
    _, den = build(cfg, meta["embed_dim"], meta["image_size"])
    if init is not None:
        den.load_state_dict(init)
    ck = torch.load(ckpt_path, weights_only=False, map_location=dev) if _exists(ckpt_path) else None
    ema, emb_rms = _fit(den.to(dev), latents, emb, cfg, g, log, ckpt_path, ckpt_every, dev, ck, cover=cover)
    return LatentGenerator(ema.cpu(), load_autoencoder(model_dir, ae_dir), cfg, emb_rms, meta["image_size"])


def init_state(source: str | os.PathLike, model_dir: str | os.PathLike) -> dict:
    """The denoiser weights a run starts from: ``"installed"`` (``model_dir``'s generator) or a
    ``train`` run's folder."""
    if str(source) == "installed":
        return LatentGenerator.load(Path(model_dir) / "generator").decoder.state_dict()
    return load_denoiser_state(source)


def seconds_per_step(model_dir, latents, emb, recipe: dict, device=None, n: int = 60, ae_dir=None, cover=None) -> float:
    """Wall time of one training step of ``recipe`` on ``device`` (the mean of ``n`` after 20;
    ``cover`` as for :func:`train_denoiser`)."""
    from s2i.train.generator import _fit

    cfg, meta = installed_cfg(Path(model_dir), ae_dir)
    dev = resolve_device(device)
    _, den = build(cfg, meta["embed_dim"], meta["image_size"])
    den = den.to(dev)
    g = torch.Generator().manual_seed(0)
    _fit(copy.deepcopy(den), latents, emb, replace(cfg, **recipe, steps=20), g, None, None, 0, dev, None, cover=cover)
    _sync(dev)
    t = time.perf_counter()
    _fit(den, latents, emb, replace(cfg, **recipe, steps=n), g, None, None, 0, dev, None, cover=cover)
    _sync(dev)
    return (time.perf_counter() - t) / n


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def judge_tuning(gen: LatentGenerator, judge, images, presence, sizes, bg, emb, seed: int, device=None) -> dict:
    """Draw each tuning still back from its embedding (the generator's own sampler and guidance)
    and judge it against the still's ground truth: ``recon_*`` figures of
    :func:`s2i.eval.stills.judge_scores`, and under ``shape_read`` the same drawings' shape
    read by shape and by size (:func:`s2i.train.autoencoder.shape_reads`)."""
    from s2i.eval.stills import judge_scores
    from s2i.toyworld.stills import StillSet

    dev = resolve_device(device)
    gen = copy.deepcopy(gen).to(dev)
    drawn = gen(emb.to(dev), n_per=1, seed=seed, batch=512)
    scores = judge_scores(judge.report(drawn), StillSet(images, presence, sizes, bg), "recon")
    one, shape, tercile = singles(presence, sizes)
    return dict(scores, shape_read=shape_reads(judge, drawn[one], shape, tercile))


def save_denoiser(gen: LatentGenerator, run_dir: str | os.PathLike) -> list[Path]:
    """The denoiser's weights as safetensors shards of at most ``SHARD_MB`` MB each
    (``denoiser-00001-of-0000N.safetensors``), whole tensors per shard."""
    from safetensors.torch import save_file

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in gen.decoder.state_dict().items()}
    shards, cur, size = [], {}, 0
    for k, v in state.items():
        nbytes = v.numel() * v.element_size()
        if cur and size + nbytes > SHARD_MB * 1e6:
            shards.append(cur)
            cur, size = {}, 0
        cur[k], size = v, size + nbytes
    shards.append(cur)
    paths = []
    for i, shard in enumerate(shards, 1):
        p = run_dir / f"denoiser-{i:05d}-of-{len(shards):05d}.safetensors"
        with atomic_path(p) as tmp:
            save_file(shard, str(tmp))
        paths.append(p)
    return paths


def load_denoiser_state(run_dir: str | os.PathLike) -> dict:
    """The state dict :func:`save_denoiser` wrote, shards merged."""
    from safetensors.torch import load_file

    paths = sorted(Path(run_dir).glob("denoiser-*-of-*.safetensors"))
    if not paths:
        raise FileNotFoundError(f"{run_dir}: no denoiser-*-of-*.safetensors shards")
    state = {}
    for p in paths:
        state.update(load_file(str(p)))
    return state


def load_run(run_dir: str | os.PathLike, model_dir: str | os.PathLike) -> LatentGenerator:
    """The generator a ``train`` run made: its denoiser and recipe, with its own autoencoder if
    it had one, else ``model_dir``'s."""
    run_dir = Path(run_dir)
    recipe = read_json(run_dir / "recipe.json")
    ae_dir = run_dir if (run_dir / AE_JSON).exists() else None
    cfg, meta = installed_cfg(Path(model_dir), ae_dir)
    cfg = replace(cfg, **recipe["recipe"])
    _, den = build(cfg, meta["embed_dim"], meta["image_size"])
    den.load_state_dict(load_denoiser_state(run_dir))
    return LatentGenerator(den, load_autoencoder(model_dir, ae_dir), cfg, recipe["emb_rms"], meta["image_size"])


def install(run_dir: str | os.PathLike, model_dir: str | os.PathLike) -> LatentGenerator:
    """Put the denoiser trained in ``run_dir`` into ``model_dir/generator``: its weights, its
    recipe in the generator's config, and the recipe (with the machine it ran on) under
    ``generator_retrained`` in ``manifest.json``; where it was trained on an autoencoder of its
    own (``train --autoencoder``: ``run_dir`` holds it), that autoencoder and its settings too.
    The other backbones stay."""
    run_dir, model_dir = Path(run_dir), Path(model_dir)
    recipe = read_json(run_dir / "recipe.json")
    gen = load_run(run_dir, model_dir)
    gen.save(model_dir / "generator")
    manifest = read_json(model_dir / "manifest.json")
    # the run's record but for its loss curve (recipe.json keeps it) and the embedding scale
    manifest["generator_retrained"] = {k: v for k, v in recipe.items() if k not in ("emb_rms", "loss")}
    write_json(model_dir / "manifest.json", manifest)
    return gen


def _install_cmd(a, params) -> None:
    install(a.run_dir, a.model_dir)
    write_measurements(a.model_dir, params)


def _train_cmd(a) -> None:
    from s2i.models.judge import Judge

    dev = resolve_device(a.device)
    torch.set_num_threads(a.threads)
    d = np.load(a.stills)
    train = d["images"][: a.n_stills]  # all of them by default
    n, ae_dir = len(train), a.autoencoder  # the training and tuning stills through the models, at once
    z, e_all = training_targets(a.model_dir, np.concatenate([train, d["tuning_images"]]), dev, ae_dir)
    z, e, e_tune = z[:n], e_all[:n], e_all[n:]
    bf16 = {"true": True, "false": False}.get(a.bf16, a.bf16)
    recipe = dict(batch=a.batch, lr=a.lr, ema_decay=a.ema_decay, bf16=bf16, snr_floor=a.snr_floor)
    cover = None
    if a.object_weight:
        recipe["object_weight"] = a.object_weight
        cover = torch.from_numpy(_object_cover(a.stills, d, n, z.shape[-1]))
    if a.min_snr_gamma is not None:
        recipe["min_snr_gamma"] = a.min_snr_gamma
    steps = a.steps
    if steps is None:  # as many thousands of steps as fit in --seconds
        per_step = seconds_per_step(a.model_dir, z, e, recipe, dev, ae_dir=ae_dir, cover=cover)
        steps = max(1000, int(a.seconds / per_step) // 1000 * 1000)
        print(f"{a.run_dir}: {per_step * 1e3:.1f} ms a step of {a.batch} on {dev}", flush=True)
    recipe["steps"] = steps
    print(f"{a.run_dir}: training {steps} steps", flush=True)
    losses = []

    def log(row):
        losses.append((row["step"], round(row["loss"], 5)))

    init = None if a.init is None else init_state(a.init, a.model_dir)
    ckpt = _checkpoint(a, recipe, n)  # a run stopped midway resumes from its last checkpoint
    t = time.time()
    gen = train_denoiser(
        a.model_dir, z, e, recipe, int(d["seed"]), dev, log, ae_dir, init, ckpt, a.checkpoint_every, cover
    )
    train_s = time.time() - t
    save_denoiser(gen, a.run_dir)  # the weights and the recipe first: judging is extra
    ckpt.unlink(missing_ok=True)
    ckpt.with_suffix(".json").unlink(missing_ok=True)
    if ae_dir is not None:  # the run holds the autoencoder its latents came from: install takes both
        for name in ("autoencoder.safetensors", AE_JSON):
            shutil.copyfile(Path(ae_dir) / name, Path(a.run_dir) / name)
    record = dict(
        recipe=recipe,
        seed=int(d["seed"]),
        device=device_name(dev),
        torch=torch.__version__,
        train_s=round(train_s, 1),
        s_per_step=round(train_s / steps, 5),
        n_stills=n,
        autoencoder=None if ae_dir is None else str(ae_dir),
        init=_init_record(a.init, a.model_dir),
        emb_rms=gen.emb_rms,
        loss=losses[:: max(1, len(losses) // 400)],
    )
    write_json(Path(a.run_dir) / "recipe.json", record)
    judge = Judge.load(Path(a.model_dir) / "judge")
    tuning = judge_tuning(
        gen,
        judge,
        d["tuning_images"],
        d["tuning_presence"],
        d["tuning_sizes"],
        d["tuning_bg"],
        e_tune,
        seed=int(d["seed"]),
        device=dev,
    )
    write_json(Path(a.run_dir) / "recipe.json", dict(record, tuning=dict(tuning, n=len(d["tuning_images"]))))
    print(json.dumps(dict(run=str(a.run_dir), **tuning)), flush=True)


def _object_cover(path, d, n: int, side: int) -> np.ndarray:
    """The first ``n`` training stills' object cover on a ``side`` x ``side`` latent grid, from
    the export ``d`` (read from ``path``)."""
    from s2i.toyworld.stills import object_cover

    if "bg" not in d:
        raise SystemExit(f"{path}: exported without the stills' places (bg), which --object-weight needs; export again")
    return object_cover(d["images"][:n], d["bg"][:n], side)


def _checkpoint(a, recipe: dict, n_stills: int) -> Path:
    """``RUN_DIR/checkpoint.pt``, with beside it the run it belongs to (``checkpoint.json``: the
    recipe and what it trains on); refused when the checkpoint there belongs to another run."""
    run_dir = Path(a.run_dir)
    ckpt, meta_path = run_dir / CHECKPOINT, (run_dir / CHECKPOINT).with_suffix(".json")
    meta = dict(
        recipe=recipe,
        stills=str(Path(a.stills).resolve()),
        n_stills=n_stills,
        autoencoder=a.autoencoder,
        init=None if a.init is None else str(a.init),
    )
    if ckpt.exists():
        found = read_json(meta_path) if meta_path.exists() else None
        if found != meta:
            raise SystemExit(
                f"{ckpt}: a checkpoint of another run ({meta_path.name}: {found}, this run: {meta}); "
                "remove it, or train into another RUN_DIR"
            )
    else:
        write_json(meta_path, meta)
    return ckpt


def _init_record(source, model_dir):
    """What a run started from, for its record: None (fresh), or the installed generator's own
    record (the run that trained it, itself possibly a warm restart) or a run folder's."""
    if source is None:
        return None
    if str(source) == "installed":
        prior = read_json(Path(model_dir) / "manifest.json").get("generator_retrained")
        return dict(source="installed", record=prior)
    rec = read_json(Path(source) / "recipe.json")
    return dict(source=str(source), record={k: v for k, v in rec.items() if k not in ("emb_rms", "loss")})


def main(argv=None) -> None:
    from s2i.paths import load_params, resolve

    p = argparse.ArgumentParser(prog="python -m s2i.train.denoiser", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    ex = sub.add_parser("export", help="the training and tuning stills as one .npz (needs PyAV)")
    ex.add_argument("out")
    ex.add_argument("--n-tuning", type=int, default=512)
    ex.add_argument(
        "--n-stills",
        type=int,
        default=None,
        help="training stills (default: the stage's pretrain.n_stills; more for a long run, see the module)",
    )
    tr = sub.add_parser("train", help="train one denoiser recipe and judge it on the tuning stills")
    tr.add_argument("stills")
    tr.add_argument("run_dir")
    tr.add_argument("--model-dir", default=None, help="the shipped backbones (default: pretrain.model_dir)")
    tr.add_argument("--batch", type=int, required=True)
    tr.add_argument("--lr", type=float, required=True)
    tr.add_argument("--ema-decay", type=float, default=0.999)
    tr.add_argument(
        "--bf16",
        choices=["true", "false", "auto"],
        default="false",
        help="bfloat16 autocast in training: auto where the device computes in bfloat16 natively",
    )
    tr.add_argument("--min-snr-gamma", type=float, default=None, help="the x0 loss weights' cap (default: installed)")
    tr.add_argument("--snr-floor", type=float, default=0.0, help="the x0 loss weights raised to at least this")
    tr.add_argument(
        "--object-weight",
        type=float,
        default=0.0,
        help="a latent cell an object covers weighs 1 + this in the loss (each still's weights of mean 1)",
    )
    tr.add_argument("--steps", type=int, default=None, help="training steps (default: what fits in --seconds)")
    tr.add_argument("--seconds", type=float, default=300.0)
    tr.add_argument("--device", default=None)
    tr.add_argument("--threads", type=int, default=4)
    tr.add_argument("--n-stills", type=int, default=None, help="train on the export's first N stills (default: all)")
    tr.add_argument(
        "--autoencoder",
        default=None,
        metavar="AE_DIR",
        help="train on the latents of this autoencoder (the autoencoder command's folder), not the shipped one",
    )
    tr.add_argument(
        "--init",
        default=None,
        metavar="installed|RUN_DIR",
        help="start from these denoiser weights (the installed generator's or a run's), not a fresh one",
    )
    tr.add_argument(
        "--checkpoint-every",
        type=int,
        default=1000,
        help="save the training state in RUN_DIR every this many steps; a run that finds it resumes",
    )
    trains_ae = argparse.ArgumentParser(add_help=False)  # what the autoencoder and decoder commands share
    trains_ae.add_argument("stills")
    trains_ae.add_argument("ae_dir")
    trains_ae.add_argument("--model-dir", default=None, help="the shipped backbones (default: pretrain.model_dir)")
    trains_ae.add_argument("--batch", type=int, default=64)
    trains_ae.add_argument(
        "--latent-noise", type=float, default=0.2, help="noise on the latents the decoder learns to decode"
    )
    trains_ae.add_argument("--device", default=None)
    trains_ae.add_argument("--threads", type=int, default=4)
    ae = sub.add_parser(
        "autoencoder",
        parents=[trains_ae],
        help="train an autoencoder and judge its reconstructions of the tuning stills",
    )
    ae.add_argument("--halvings", type=int, default=2, help="stride-2 stages: 2 gives 8x8 latents, 1 gives 16x16")
    ae.add_argument("--channels", type=int, default=8, help="latent channels")
    ae.add_argument("--width", type=int, default=16, help="width at full resolution, doubled at each halving")
    ae.add_argument("--steps", type=int, default=1500)
    ae.add_argument("--lr", type=float, default=1e-3)
    de = sub.add_parser(
        "decoder",
        parents=[trains_ae],
        help="fine-tune the installed autoencoder's decoder (encoder frozen) and judge it on the tuning stills",
    )
    de.add_argument("--steps", type=int, default=4500)
    de.add_argument("--lr", type=float, default=5e-4)
    ind = sub.add_parser("install-decoder", help="the fine-tuned decoder of AE_DIR into the model folder")
    ind.add_argument("ae_dir")
    ind.add_argument("--model-dir", default=None)
    ins = sub.add_parser("install", help="the denoiser of RUN_DIR into the model folder")
    ins.add_argument("run_dir")
    ins.add_argument("--model-dir", default=None)
    me = sub.add_parser("measure", help="the stage's measurements of the installed backbones, again")
    me.add_argument("--model-dir", default=None)
    a = p.parse_args(argv)
    params = load_params()
    model_dir = resolve(getattr(a, "model_dir", None) or params["pretrain"]["model_dir"])
    if a.cmd == "export":
        export_stills(a.out, a.n_stills or params["pretrain"]["n_stills"], params["base"]["seed"], a.n_tuning)
    elif a.cmd == "train":
        a.model_dir = model_dir
        _train_cmd(a)
    elif a.cmd == "autoencoder":
        a.model_dir = model_dir
        autoencoder_cmd(a)
    elif a.cmd == "decoder":
        a.model_dir = model_dir
        decoder_cmd(a)
    elif a.cmd == "install-decoder":
        install_decoder(a.ae_dir, model_dir)
        write_measurements(model_dir, params)
    elif a.cmd == "install":
        a.model_dir = model_dir
        _install_cmd(a, params)
    else:
        write_measurements(model_dir, params)


if __name__ == "__main__":
    main()
