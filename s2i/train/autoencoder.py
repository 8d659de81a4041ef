"""The toy generator's autoencoder outside the ``pretrain`` stage, and what its shapes are worth.

A drawing keeps no more of a shape than the autoencoder's reconstruction of it does, so the
autoencoder bounds every figure the latent generator (:mod:`s2i.models.latent`) reaches. This
module loads the installed autoencoder or one of its own (a folder with ``autoencoder.safetensors``
and ``AE_JSON``), trains a new one (8x8 or 16x16 latents), fine-tunes the installed one's decoder
with its encoder frozen, and reads on the tuning stills of an export (:mod:`s2i.train.denoiser`)
how many shapes reconstructions and drawings keep, by shape and by size. Its commands are part of
the retraining's command line: ``python -m s2i.train.denoiser autoencoder | decoder |
install-decoder`` (``docs/results.md``, eighth round).
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from s2i.models.common import resolve_device, to_tensor, to_uint8
from s2i.models.generator import GeneratorCfg
from s2i.models.latent import Autoencoder, LatentGenerator, build
from s2i.utils import atomic_path, read_json, write_json

AE_JSON = "autoencoder.json"  # beside an autoencoder of its own: its LatentCfg settings


def device_name(dev: torch.device) -> str:
    """The GPU's name, or "cpu": what a run's record says it ran on."""
    return torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"


def installed_cfg(model_dir: Path, ae_dir=None) -> tuple[GeneratorCfg, dict]:
    """The installed generator's config and metadata; with ``ae_dir`` (:func:`fit_autoencoder`'s
    folder) the latent settings are that autoencoder's."""
    meta = read_json(Path(model_dir) / "generator" / "s2i_generator.json")
    c = meta["cfg"]
    cfg = GeneratorCfg(**{**c, "block_out_channels": tuple(c["block_out_channels"])})
    if ae_dir is not None:
        cfg = replace(cfg, latent={**cfg.latent, **read_json(Path(ae_dir) / AE_JSON)["latent"]})
    return cfg, meta


def load_autoencoder(model_dir, ae_dir=None) -> Autoencoder:
    """The installed autoencoder, or the one in ``ae_dir``, frozen."""
    from safetensors.torch import load_file

    cfg, meta = installed_cfg(Path(model_dir), ae_dir)
    ae, _ = build(cfg, meta["embed_dim"], meta["image_size"])
    folder = Path(model_dir) / "generator" if ae_dir is None else Path(ae_dir)
    ae.load_state_dict(load_file(str(folder / "autoencoder.safetensors")))
    return ae.eval().requires_grad_(False)


def singles(presence: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The single-object stills among stills of ground truth ``presence`` and ``sizes``:
    (their mask, their shape index, their size tercile 0-2 among them)."""
    one = presence.sum(1) == 1
    size = sizes[one].max(1)
    tercile = np.searchsorted(np.quantile(size, [1 / 3, 2 / 3]), size, side="right")
    return one, presence[one].argmax(1), tercile


def tuning_singles(d) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The single-object tuning stills of an export ``d``: (images, shape index, size tercile 0-2)."""
    one, shape, tercile = singles(d["tuning_presence"], d["tuning_sizes"])
    return d["tuning_images"][one], shape, tercile


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


@torch.no_grad()
def reconstruct(ae: Autoencoder, images: np.ndarray) -> np.ndarray:
    """uint8 ``images`` through ``ae`` and back."""
    return to_uint8(ae.decode(ae.encode_all(to_tensor(images))))


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
    (``train --autoencoder``, then :func:`s2i.train.denoiser.install`)."""
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
    the folder ``train --autoencoder`` and :func:`s2i.train.denoiser.install` read."""
    from safetensors.torch import save_file

    ae_dir = Path(ae_dir)
    ae_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(ae_dir / "autoencoder.safetensors") as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in ae.state_dict().items()}, str(tmp))
    write_json(ae_dir / AE_JSON, dict(record or {}, latent=latent))


def autoencoder_cmd(a) -> None:
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
        return shape_reads(judge, reconstruct(model, images), shape, tercile)

    record = dict(
        device=device_name(dev),
        train_s=round(train_s, 1),
        seed=int(d["seed"]),
        n_stills=len(d["images"]),
        tuning=dict(n=len(images), autoencoder=reads(ae), shipped=reads(load_autoencoder(a.model_dir))),
    )
    save_autoencoder(ae, latent, a.ae_dir, record)
    print(json.dumps(dict(ae_dir=str(a.ae_dir), **record)), flush=True)


def decoder_cmd(a) -> None:
    """Fine-tune the installed autoencoder's decoder; judge reconstructions of the single-object
    tuning stills and the installed denoiser's drawings of them through either decoder."""
    from s2i.models.image_encoder import ImageEncoder, embed
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
    with torch.no_grad():
        e = embed(ImageEncoder.load(Path(a.model_dir) / "image_encoder").to(dev).eval(), to_tensor(images).to(dev))

    def reads(model: Autoencoder) -> dict:
        recon = reconstruct(model, images)
        drawer = copy.deepcopy(gen)
        drawer.autoencoder = copy.deepcopy(model).to(memory_format=torch.channels_last)
        drawn = drawer.to(dev)(e.to(dev), seed=int(d["seed"]), batch=512)
        return dict(
            reconstructed=shape_reads(judge, recon, shape, tercile), drawn=shape_reads(judge, drawn, shape, tercile)
        )

    record = dict(
        recipe=recipe,
        device=device_name(dev),
        train_s=round(train_s, 1),
        seed=int(d["seed"]),
        n_stills=len(d["images"]),
        tuning=dict(n=len(images), finetuned=reads(ae), installed=reads(shipped)),
    )
    save_autoencoder(ae, gen.cfg.latent, a.ae_dir, record)
    print(json.dumps(dict(ae_dir=str(a.ae_dir), **record)), flush=True)
