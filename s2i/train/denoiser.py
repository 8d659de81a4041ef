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
   and the shape by shape and by size); writes the EMA weights and ``recipe.json``;
3. ``install RUN_DIR``: those weights into ``models/toy/generator`` (with the run's autoencoder,
   if it had one of its own), the recipe into ``s2i_generator.json`` and ``manifest.json``, and
   the stage's measurements redone (``backbones.json``, the recon grid; ``measure`` alone redoes
   them, e.g. after a change to how the generator draws).

And for the autoencoder, whose reconstructions bound every shape a drawing keeps:

- ``autoencoder OUT.npz AE_DIR --halvings H --channels C --steps S``: a new autoencoder (8x8 or
  16x16 latents), its reconstructions of the tuning stills judged beside the shipped one's; a
  denoiser is then trained on it with ``train --autoencoder AE_DIR``;
- ``decoder OUT.npz AE_DIR --steps S``: the shipped autoencoder's decoder trained further with
  its encoder frozen (the latent space, hence the shipped denoiser, stays valid), judged on
  reconstructions and on the shipped denoiser's drawings; ``install-decoder AE_DIR`` puts it in.

The tuning stills are never the held-out stills the stage reports (``base.seed + 1,000,003``).
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

from s2i.models.common import resolve_device, to_tensor, to_uint8
from s2i.models.generator import GeneratorCfg
from s2i.models.latent import Autoencoder, LatentGenerator, build
from s2i.utils import atomic_path, read_json, write_json

TUNING_SEED_OFFSET = 5_000_003  # the tuning stills' seed: base.seed + this
SHARD_MB = 15  # denoiser weights are written in safetensors shards of at most this size
AE_JSON = "autoencoder.json"  # beside an autoencoder of its own: its LatentCfg settings


def export_stills(out: str | os.PathLike, n_stills: int, seed: int, n_tuning: int = 512) -> Path:
    """The training stills of the pretrain stage (``make_stills(n_stills, seed)``, bit for bit)
    and ``n_tuning`` tuning stills (seed ``seed + TUNING_SEED_OFFSET``) with their ground truth,
    in one compressed ``.npz``."""
    from s2i.toyworld.stills import make_stills

    train, tune = make_stills(n_stills, seed), make_stills(n_tuning, seed + TUNING_SEED_OFFSET)
    out = Path(out)
    with atomic_path(out) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(
            f,
            images=train.images,
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
        z = _autoencoder(model_dir, ae_dir).to(dev).encode_all(x).cpu()
    return z, e


def _shipped_cfg(model_dir: Path, ae_dir=None) -> tuple[GeneratorCfg, dict]:
    """The installed generator's config and metadata; with ``ae_dir`` (:func:`fit_autoencoder`'s
    folder) the latent settings are that autoencoder's."""
    meta = read_json(Path(model_dir) / "generator" / "s2i_generator.json")
    c = meta["cfg"]
    cfg = GeneratorCfg(**{**c, "block_out_channels": tuple(c["block_out_channels"])})
    if ae_dir is not None:
        cfg = replace(cfg, latent={**cfg.latent, **read_json(Path(ae_dir) / AE_JSON)["latent"]})
    return cfg, meta


def _autoencoder(model_dir, ae_dir=None) -> Autoencoder:
    """The installed autoencoder, or the one in ``ae_dir``, frozen."""
    from safetensors.torch import load_file

    cfg, meta = _shipped_cfg(Path(model_dir), ae_dir)
    ae, _ = build(cfg, meta["embed_dim"], meta["image_size"])
    folder = Path(model_dir) / "generator" if ae_dir is None else Path(ae_dir)
    ae.load_state_dict(load_file(str(folder / "autoencoder.safetensors")))
    return ae.eval().requires_grad_(False)


def tuning_singles(d) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The single-object tuning stills of an export ``d``: (images, shape index, size tercile 0-2)."""
    one = d["tuning_presence"].sum(1) == 1
    size = d["tuning_sizes"][one].max(1)
    tercile = np.searchsorted(np.quantile(size, [1 / 3, 2 / 3]), size, side="right")
    return d["tuning_images"][one], d["tuning_presence"][one].argmax(1), tercile


def shape_reads(judge, images: np.ndarray, shape: np.ndarray, tercile: np.ndarray) -> dict:
    """Share of single-object ``images`` whose judged top class is ``shape``: overall, by shape
    and by size tercile (smallest first; None for a group without stills)."""
    from s2i.toyworld import world

    ok = judge.report(images)["top_class"] == shape

    def share(hits: np.ndarray, digits: int = 3) -> float | None:  # None: no still in the group
        return round(float(hits.mean()), digits) if len(hits) else None

    return dict(
        all=share(ok, 4),
        by_shape={name: share(ok[shape == k]) for k, name in enumerate(world.SHAPES)},
        by_size=[share(ok[tercile == b]) for b in range(3)],
    )


def fit_autoencoder(images: np.ndarray, latent: dict, seed: int, device=None, log=None) -> Autoencoder:
    """A fresh autoencoder (``LatentCfg`` fields in ``latent``: ``ae_halvings``, ``channels``,
    ``ae_width``, ``ae_steps`` ...) trained as the pretrain stage trains its own
    (:func:`s2i.train.generator.train_autoencoder`) on uint8 ``images``; on the CPU, frozen."""
    from s2i.models.latent import LatentCfg
    from s2i.train.generator import train_autoencoder

    lat = LatentCfg(**latent)
    torch.manual_seed(seed)
    ae = Autoencoder(lat.channels, lat.ae_width, lat.ae_halvings)
    g = torch.Generator().manual_seed(seed + 2)
    return train_autoencoder(ae, images, lat, g, log, device=resolve_device(device)).cpu()


def finetune_decoder(
    ae: Autoencoder,
    images: np.ndarray,
    steps: int,
    seed: int,
    batch: int = 64,
    lr: float = 5e-4,
    latent_noise: float = 0.2,
    device=None,
    log=None,
) -> Autoencoder:
    """A copy of ``ae`` whose decoder is trained further with the encoder frozen, as Stable
    Diffusion's VAE decoders were fine-tuned (``sd-vae-ft-mse``): the latent space stays as it
    was, so a denoiser trained on it stays valid, while the decoder learns to draw more exactly
    what the latents hold. The loss and the latent noise of
    :func:`s2i.train.generator.train_autoencoder`, a cosine schedule after 100 warm-up steps.
    Returns the copy frozen, on the CPU."""
    import torch.nn.functional as F

    from s2i.train.generator import _cosine

    dev = resolve_device(device)
    ae = copy.deepcopy(ae).to(dev)
    ae.enc.requires_grad_(False)
    ae.dec.requires_grad_(True).train()
    opt = torch.optim.AdamW(ae.dec.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _cosine(s, steps, warmup=100))
    g = torch.Generator().manual_seed(seed)
    x_all = to_tensor(images)
    side = x_all.shape[2] // ae.factor
    for step in range(steps):
        x = x_all[torch.randint(0, len(x_all), (batch,), generator=g)]
        noise = torch.randn((batch, ae.channels, side, side), generator=g)
        x = x.to(dev)
        with torch.no_grad():
            z = ae.enc(x)
        loss = F.mse_loss(ae.dec(z + latent_noise * z.std() * noise.to(dev)), x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if log and (step % 25 == 0 or step == steps - 1):
            log(dict(part="decoder", step=step, loss=loss.item()))
    return ae.eval().requires_grad_(False).cpu()


def install_decoder(ae_dir, model_dir) -> LatentGenerator:
    """Put the autoencoder of ``ae_dir`` (:func:`finetune_decoder`'s, saved by
    :func:`save_autoencoder`) into ``model_dir/generator`` beside the installed denoiser, and its
    record under ``decoder_finetuned`` in ``manifest.json``. Refused unless its encoder is the
    installed one, weight for weight: a new latent space needs a denoiser trained on it
    (``train --autoencoder``, then :func:`install`)."""
    from safetensors.torch import load_file

    ae_dir, model_dir = Path(ae_dir), Path(model_dir)
    gen = LatentGenerator.load(model_dir / "generator")
    new = load_file(str(ae_dir / "autoencoder.safetensors"))
    old = gen.autoencoder.state_dict()
    enc = [k for k in old if k.startswith("enc.") or k == "scaling_factor"]
    if new.keys() != old.keys() or not all(torch.equal(new[k], old[k].cpu().contiguous()) for k in enc):
        raise ValueError(
            f"{ae_dir / 'autoencoder.safetensors'}: its encoder is not the installed one "
            "(train a denoiser on its latents with `train --autoencoder`, then `install` that run)"
        )
    gen.autoencoder.load_state_dict(new)
    gen.save(model_dir / "generator")
    manifest = read_json(model_dir / "manifest.json")
    manifest["decoder_finetuned"] = {k: v for k, v in read_json(ae_dir / AE_JSON).items() if k != "latent"}
    write_json(model_dir / "manifest.json", manifest)
    return gen


def save_autoencoder(ae: Autoencoder, latent: dict, ae_dir, record: dict | None = None) -> None:
    """``ae_dir``/autoencoder.safetensors and ``AE_JSON`` (its latent settings, and ``record``),
    the folder ``train --autoencoder`` and :func:`install` read."""
    from safetensors.torch import save_file

    ae_dir = Path(ae_dir)
    ae_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(ae_dir / "autoencoder.safetensors") as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in ae.state_dict().items()}, str(tmp))
    write_json(ae_dir / AE_JSON, dict(record or {}, latent=latent))


def train_denoiser(
    model_dir: str | os.PathLike,
    latents: torch.Tensor,
    emb: torch.Tensor,
    recipe: dict,
    seed: int,
    device=None,
    log=None,
    ae_dir=None,
) -> LatentGenerator:
    """A fresh denoiser of the shipped architecture trained on ``(latents, emb)`` with the
    shipped diffusion recipe but for ``recipe`` (any of ``GeneratorCfg``'s ``steps``, ``batch``,
    ``lr``, ``ema_decay``, ``bf16``): the loop of :func:`s2i.train.generator.train_generator`. Returns a
    :class:`LatentGenerator` with the shipped autoencoder (or ``ae_dir``'s, whose latents
    ``latents`` must then be), on the CPU."""
    from s2i.train.generator import _fit

    model_dir = Path(model_dir)
    cfg, meta = _shipped_cfg(model_dir, ae_dir)
    cfg = replace(cfg, **recipe)
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed + 2)
    dev = resolve_device(device)
    _, den = build(cfg, meta["embed_dim"], meta["image_size"])
    ema, emb_rms = _fit(den.to(dev), latents, emb, cfg, g, log, None, 0, dev, None)
    return LatentGenerator(ema.cpu(), _autoencoder(model_dir, ae_dir), cfg, emb_rms, meta["image_size"])


def seconds_per_step(model_dir, latents, emb, recipe: dict, device=None, n: int = 60, ae_dir=None) -> float:
    """Wall time of one training step of ``recipe`` on ``device`` (the mean of ``n`` after 20)."""
    from s2i.train.generator import _fit

    cfg, meta = _shipped_cfg(Path(model_dir), ae_dir)
    dev = resolve_device(device)
    _, den = build(cfg, meta["embed_dim"], meta["image_size"])
    den = den.to(dev)
    g = torch.Generator().manual_seed(0)
    _fit(copy.deepcopy(den), latents, emb, replace(cfg, **recipe, steps=20), g, None, None, 0, dev, None)
    _sync(dev)
    t = time.perf_counter()
    _fit(den, latents, emb, replace(cfg, **recipe, steps=n), g, None, None, 0, dev, None)
    _sync(dev)
    return (time.perf_counter() - t) / n


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def judge_tuning(gen: LatentGenerator, judge, images, presence, sizes, bg, emb, seed: int, device=None) -> dict:
    """Draw each tuning still back from its embedding (the generator's own sampler and guidance)
    and judge it against the still's ground truth: ``recon_*`` figures of
    :func:`s2i.train.pretrain.judge_scores`."""
    from s2i.toyworld.stills import StillSet
    from s2i.train.pretrain import judge_scores

    dev = resolve_device(device)
    gen = copy.deepcopy(gen).to(dev)
    drawn = gen(emb.to(dev), n_per=1, seed=seed, batch=512)
    return judge_scores(judge.report(drawn), StillSet(images, presence, sizes, bg), "recon")


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
    cfg, meta = _shipped_cfg(Path(model_dir), ae_dir)
    cfg = replace(cfg, **recipe["recipe"])
    _, den = build(cfg, meta["embed_dim"], meta["image_size"])
    den.load_state_dict(load_denoiser_state(run_dir))
    return LatentGenerator(den, _autoencoder(model_dir, ae_dir), cfg, recipe["emb_rms"], meta["image_size"])


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
    manifest["generator_retrained"] = {k: v for k, v in recipe.items() if k != "emb_rms"}
    write_json(model_dir / "manifest.json", manifest)
    return gen


def remeasure(model_dir: str | os.PathLike, seed: int, n_stills: int, n_heldout: int, n_recon: int) -> tuple:
    """The pretrain stage's measurements of the backbones in ``model_dir``
    (:func:`s2i.train.pretrain.measure_backbones`, same stills, same seeds), written into its
    ``manifest.json``; returns (metrics, held-out stills drawn back, drawings)."""
    from s2i.models.image_encoder import ImageEncoder, embed
    from s2i.toyworld.stills import make_stills
    from s2i.train.pretrain import HELDOUT_SEED_OFFSET, measure_backbones

    model_dir = Path(model_dir)
    train, held = make_stills(n_stills, seed), make_stills(n_heldout, seed + HELDOUT_SEED_OFFSET)
    enc = ImageEncoder.load(model_dir / "image_encoder")
    e_train, e_held = embed(enc, train.images), embed(enc, held.images)
    metrics, sub, recon = measure_backbones(model_dir, train, held, e_train, e_held, n_recon, seed, "cpu")
    manifest = read_json(model_dir / "manifest.json")
    manifest["metrics"] = metrics
    write_json(model_dir / "manifest.json", manifest)
    return metrics, sub, recon


def _measure_cmd(a, params) -> None:
    """The stage's measurements of the backbones in ``a.model_dir`` into ``backbones.json``, the
    manifest and the recon grid."""
    from s2i.paths import resolve
    from s2i.viz import grid, save_png

    pre, out = params["pretrain"], resolve(params["base"]["run_dir"])
    metrics, sub, recon = remeasure(
        a.model_dir, params["base"]["seed"], pre["n_stills"], pre["n_heldout"], pre["n_recon"]
    )
    write_json(out / "metrics" / "backbones.json", metrics)
    k = min(32, len(recon))
    save_png(
        out / "figures" / "pretrain_recon_grid.png",
        grid(np.stack([x for i in range(k) for x in (sub.images[i], recon[i])]), 16, scale=3),
    )
    print(json.dumps({k: v for k, v in metrics.items() if k.startswith("recon")}))


def _install_cmd(a, params) -> None:
    install(a.run_dir, a.model_dir)
    _measure_cmd(a, params)


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
    recipe = dict(batch=a.batch, lr=a.lr, ema_decay=a.ema_decay, bf16=bf16)
    steps = a.steps
    if steps is None:  # as many thousands of steps as fit in --seconds
        per_step = seconds_per_step(a.model_dir, z, e, recipe, dev, ae_dir=ae_dir)
        steps = max(1000, int(a.seconds / per_step) // 1000 * 1000)
        print(f"{a.run_dir}: {per_step * 1e3:.1f} ms a step of {a.batch} on {dev}", flush=True)
    recipe["steps"] = steps
    print(f"{a.run_dir}: training {steps} steps", flush=True)
    losses = []

    def log(row):
        losses.append((row["step"], round(row["loss"], 5)))

    t = time.time()
    gen = train_denoiser(a.model_dir, z, e, recipe, int(d["seed"]), dev, log, ae_dir)
    train_s = time.time() - t
    save_denoiser(gen, a.run_dir)  # the weights and the recipe first: judging is extra
    if ae_dir is not None:  # the run holds the autoencoder its latents came from: install takes both
        for name in ("autoencoder.safetensors", AE_JSON):
            shutil.copyfile(Path(ae_dir) / name, Path(a.run_dir) / name)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    record = dict(
        recipe=recipe,
        seed=int(d["seed"]),
        device=name,
        torch=torch.__version__,
        train_s=round(train_s, 1),
        s_per_step=round(train_s / steps, 5),
        n_stills=n,
        autoencoder=None if ae_dir is None else str(ae_dir),
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
    one = d["tuning_presence"].sum(1) == 1
    drawn = copy.deepcopy(gen).to(dev)(e_tune[torch.from_numpy(one)].to(dev), seed=int(d["seed"]), batch=512)
    tuning["shape_read"] = shape_reads(judge, drawn, *tuning_singles(d)[1:])
    write_json(Path(a.run_dir) / "recipe.json", dict(record, tuning=dict(tuning, n=len(d["tuning_images"]))))
    print(json.dumps(dict(run=str(a.run_dir), **tuning)), flush=True)


def _autoencoder_cmd(a) -> None:
    """Train an autoencoder on the export's training stills; judge its reconstructions of the
    single-object tuning stills beside the shipped autoencoder's (the ceiling of what a
    denoiser on its latents can draw)."""
    from s2i.models.judge import Judge

    dev = resolve_device(a.device)
    torch.set_num_threads(a.threads)
    d = np.load(a.stills)
    latent = dict(
        channels=a.channels,
        ae_halvings=a.halvings,
        ae_width=a.width,
        ae_steps=a.steps,
        ae_batch=a.batch,
        ae_lr=a.lr,
        ae_latent_noise=a.latent_noise,
    )
    t = time.time()
    ae = fit_autoencoder(d["images"], latent, int(d["seed"]), dev)
    train_s = time.time() - t
    judge = Judge.load(Path(a.model_dir) / "judge")
    images, shape, tercile = tuning_singles(d)

    def reads(model: Autoencoder) -> dict:
        with torch.no_grad():
            x = to_tensor(images)
            return shape_reads(judge, to_uint8(model.decode(model.encode_all(x))), shape, tercile)

    record = dict(
        device=torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        train_s=round(train_s, 1),
        seed=int(d["seed"]),
        n_stills=len(d["images"]),
        tuning=dict(n=len(images), autoencoder=reads(ae), shipped=reads(_autoencoder(a.model_dir))),
    )
    save_autoencoder(ae, latent, a.ae_dir, record)
    print(json.dumps(dict(ae_dir=str(a.ae_dir), **record)), flush=True)


def _decoder_cmd(a) -> None:
    """Fine-tune the installed autoencoder's decoder; judge reconstructions of the single-object
    tuning stills and the installed denoiser's drawings of them through either decoder."""
    from s2i.models.judge import Judge

    dev = resolve_device(a.device)
    torch.set_num_threads(a.threads)
    d = np.load(a.stills)
    gen = LatentGenerator.load(Path(a.model_dir) / "generator")
    shipped = gen.autoencoder
    recipe = dict(steps=a.steps, batch=a.batch, lr=a.lr, latent_noise=a.latent_noise)
    t = time.time()
    ae = finetune_decoder(shipped, d["images"], seed=int(d["seed"]), device=dev, **recipe)
    train_s = time.time() - t
    judge = Judge.load(Path(a.model_dir) / "judge")
    images, shape, tercile = tuning_singles(d)
    _, e = training_targets(a.model_dir, images, dev)

    def reads(model: Autoencoder) -> dict:
        with torch.no_grad():
            recon = to_uint8(model.decode(model.encode_all(to_tensor(images))))
        drawer = copy.deepcopy(gen)
        drawer.autoencoder = copy.deepcopy(model).to(memory_format=torch.channels_last)
        drawn = drawer.to(dev)(e.to(dev), seed=int(d["seed"]), batch=512)
        return dict(
            reconstructed=shape_reads(judge, recon, shape, tercile), drawn=shape_reads(judge, drawn, shape, tercile)
        )

    record = dict(
        recipe=recipe,
        device=torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        train_s=round(train_s, 1),
        seed=int(d["seed"]),
        n_stills=len(d["images"]),
        tuning=dict(n=len(images), finetuned=reads(ae), installed=reads(shipped)),
    )
    save_autoencoder(ae, gen.cfg.latent, a.ae_dir, record)
    print(json.dumps(dict(ae_dir=str(a.ae_dir), **record)), flush=True)


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
        _autoencoder_cmd(a)
    elif a.cmd == "decoder":
        a.model_dir = model_dir
        _decoder_cmd(a)
    elif a.cmd == "install-decoder":
        install_decoder(a.ae_dir, model_dir)
        a.model_dir = model_dir
        _measure_cmd(a, params)
    elif a.cmd == "install":
        a.model_dir = model_dir
        _install_cmd(a, params)
    else:
        a.model_dir = model_dir
        _measure_cmd(a, params)


if __name__ == "__main__":
    main()
