"""The ``pretrain`` stage: build the toy/smoke backbones from scratch and measure them.

The patent trains only the audio encoder; the image encoder and the generator are
*pretrained* (OpenCLIP and Stable unCLIP in the ``full`` profile). For the toy world this
stage plays the part of their pretraining, on its own corpus of random stills rendered by
:mod:`s2i.toyworld.world` (passed through the same H.264 codec as the videos), never on the
alignment clips. Its output folder is shipped in git like a pretrained checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from s2i.backbones.toy import ToyBackbones
from s2i.eval.stills import HELDOUT_SEED_OFFSET, judge_scores, single_object, spearman
from s2i.models.common import resolve_device, use_bf16
from s2i.models.generator import GeneratorCfg
from s2i.models.image_encoder import ImageEncoder, embed
from s2i.models.judge import Judge
from s2i.paths import resolve
from s2i.toyworld.stills import StillSet, make_stills
from s2i.train.encoder import EncoderCfg, train_encoder
from s2i.train.generator import train_generator
from s2i.train.judge import JudgeCfg, train_judge
from s2i.utils import seed_everything, write_json

T = TypeVar("T")
JUDGE_ANY_COLOUR = 0.5  # share of the judge's training objects in any colour, not the palette's


@dataclass
class PretrainResult:
    model_dir: Path
    metrics: dict
    timings: dict
    log: list = field(default_factory=list)
    heldout: StillSet | None = None
    recon: np.ndarray | None = None


def _unit(e: np.ndarray) -> np.ndarray:
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def probe_encoder(train_e: np.ndarray, train: StillSet, test_e: np.ndarray, test: StillSet, k: int = 5) -> dict:
    """Probe the embedding on held-out stills: on single-object ones, kNN class accuracy
    (cosine, k neighbours from the training stills) and a ridge linear probe of the object's
    radius; on two-object ones, :func:`probe_both`."""
    from sklearn.linear_model import Ridge
    from sklearn.neighbors import KNeighborsClassifier

    tr, te = single_object(train), single_object(test)
    ytr, yte = train.presence[tr].argmax(1), test.presence[te].argmax(1)
    knn = KNeighborsClassifier(n_neighbors=k, metric="cosine").fit(train_e[tr], ytr)
    acc = float((knn.predict(test_e[te]) == yte).mean())
    str_, ste = train.sizes[tr].max(1), test.sizes[te].max(1)
    probe = Ridge(alpha=1.0).fit(train_e[tr], str_)
    return dict(
        encoder_knn_class_acc=acc,
        encoder_size_spearman=spearman(probe.predict(test_e[te]), ste),
        encoder_both_probe=probe_both(train_e, train, test_e, test),
    )


def probe_both(train_e: np.ndarray, train: StillSet, test_e: np.ndarray, test: StillSet) -> float | None:
    """How often the embedding of a held-out two-object still holds both its objects: one
    linear presence probe per class (logistic regression on the normalised embeddings of every
    training still), and the two classes whose probes score highest are the still's two. What a
    generator conditioned on the embedding can draw of a two-object picture at best, read
    linearly. None without two-object stills."""
    from sklearn.linear_model import LogisticRegression

    two = test.presence.sum(1) == 2
    if not two.any():
        return None
    x, xt = _unit(train_e), _unit(test_e[two])
    scores = np.full((len(xt), train.presence.shape[1]), -np.inf)
    for c in range(train.presence.shape[1]):
        y = train.presence[:, c] > 0.5
        if y.any() and not y.all():  # a class never (or always) seen has no probe: never picked
            scores[:, c] = LogisticRegression(C=10, max_iter=3000).fit(x, y).decision_function(xt)
    top2 = np.argsort(-scores, axis=1)[:, :2]
    return float((np.take_along_axis(test.presence[two], top2, axis=1) > 0.5).all(1).mean())


def measure_backbones(model_dir, train, held, e_train, e_held, n_recon, seed, device=None, timings=None):
    """Measure the backbones saved in ``model_dir`` on held-out stills: the encoder's probes
    (:func:`probe_encoder`), the judge on the stills, and the judge on the generator's drawings
    from the first ``n_recon`` stills' embeddings (``recon_*``, with the shape read's 95 %
    interval, ``recon_class_acc_ci95``). Returns (metrics, those stills, the drawings); the
    drawing's time goes into ``timings`` when given."""
    bb = ToyBackbones.load(model_dir).to(resolve_device(device))
    metrics = probe_encoder(e_train.numpy(), train, e_held.numpy(), held)
    metrics.update(judge_scores(bb.judge.report(held.images), held, "judge"))
    sub = StillSet(held.images[:n_recon], held.presence[:n_recon], held.sizes[:n_recon], held.bg[:n_recon])
    t = time.time()
    recon = bb.generate(e_held[:n_recon], seed=seed)
    if timings is not None:
        timings["generate_s"] = time.time() - t
        timings["images_per_s"] = n_recon / timings["generate_s"]
    metrics.update(judge_scores(bb.judge.report(recon), sub, "recon", ci_seed=seed))
    metrics.update(n_stills=len(train.images), n_heldout=len(held.images), n_recon=n_recon, embed_dim=bb.embed_dim)
    return metrics, sub, recon


def build_encoder(
    model_dir: str | Path,
    train: StillSet,
    seed: int,
    encoder: dict,
    log: Callable[[dict], None] | None = None,
    device: str | torch.device | None = None,
    timings: dict | None = None,
) -> ImageEncoder:
    """Train the image encoder as the stage does on its training stills ``train`` (``encoder``:
    the stage's settings, :class:`~s2i.train.encoder.EncoderCfg`), save it in
    ``model_dir/image_encoder`` and return it as users load it. Its training time goes into
    ``timings`` when given."""
    t = time.time()
    enc = train_encoder(train, EncoderCfg(**encoder), seed, log, device=resolve_device(device))
    if timings is not None:
        timings["encoder_s"] = time.time() - t
    enc.save(Path(model_dir) / "image_encoder")
    return ImageEncoder.load(Path(model_dir) / "image_encoder")


JUDGE_SEED_OFFSET = 2_000_003  # the judge's training stills' seed: the run's seed + this


def build_judge(
    model_dir: str | Path,
    seed: int,
    n_stills: int,
    judge: dict,
    log: Callable[[dict], None] | None = None,
    device: str | torch.device | None = None,
    timings: dict | None = None,
) -> Judge:
    """Train the judge as the stage does and save it in ``model_dir/judge``: ``n_stills``
    stills of its own seed (``seed + JUDGE_SEED_OFFSET``), half of their objects in any colour
    (:data:`JUDGE_ANY_COLOUR`), ``judge`` the stage's settings (:class:`~s2i.train.judge.JudgeCfg`).
    Its data and training times go into ``timings`` when given."""
    t = time.time()
    stills = make_stills(n_stills, seed + JUDGE_SEED_OFFSET, p_any_colour=JUDGE_ANY_COLOUR)
    data_s = time.time() - t
    jd = train_judge(stills, JudgeCfg(**judge), seed, log, device=resolve_device(device))
    if timings is not None:
        timings.update(judge_data_s=data_s, judge_s=time.time() - t)
    jd.save(Path(model_dir) / "judge")
    return jd


def rebuild_backbone(model_dir: str | Path, part: str, settings: dict, build: Callable[[dict], T], device) -> T:
    """Train one backbone alone as the stage does, ``build(timings)`` (which saves it in
    ``model_dir`` and fills ``timings``), and record in ``model_dir/manifest.json`` its
    ``settings`` under ``part``, its times under ``timings`` and ``{part}_rebuilt``: the device
    and torch version it was trained with. The manifest is read first: a folder without one
    fails before any training. Returns what ``build`` returns."""
    from s2i.utils import read_json

    manifest = read_json(Path(model_dir) / "manifest.json")
    timings: dict[str, float] = {}
    built = build(timings)
    manifest[part] = dict(settings)
    manifest.setdefault("timings", {}).update(timings)
    manifest[f"{part}_rebuilt"] = dict(device=str(device), torch=torch.__version__)
    write_json(Path(model_dir) / "manifest.json", manifest)
    return built


def rebuild_command(prog: str, doc: str, what: str, argv=None) -> tuple[dict, Path, str | None]:
    """The command line of a ``python -m PROG rebuild`` tool: (the active profile's params, the
    model folder, the device)."""
    import argparse

    from s2i.paths import load_params

    p = argparse.ArgumentParser(prog=f"python -m {prog}", description=doc.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    rb = sub.add_parser(
        "rebuild", help=f"train the {what} alone as the pretrain stage does, and record it in manifest.json"
    )
    rb.add_argument("--model-dir", default=None, help="default: pretrain.model_dir")
    rb.add_argument("--device", default=None)
    a = p.parse_args(argv)
    params = load_params()
    return params, resolve(a.model_dir or params["pretrain"]["model_dir"]), a.device


def run_pretrain(
    model_dir: str,
    seed: int,
    n_stills: int,
    n_heldout: int,
    encoder: dict,
    judge: dict,
    generator: dict,
    n_recon: int,
    log_every: bool = True,
    device: str | None = None,
) -> PretrainResult:
    """Train the image encoder (captions + SimCLR), the judge (supervised on ground truth, on
    stills of its own where half the objects take any colour: it must read shapes whatever the
    colour, :mod:`s2i.eval.judge_check`) and the
    generator (embedding-conditioned diffusion on frozen encoder embeddings); save them in
    ``model_dir``; measure everything on held-out stills (a different seed).

    Training runs on a GPU automatically when one is present (``device`` or ``$S2I_DEVICE``
    override it: see :func:`s2i.backbones.resolve_device`); the models are saved from the CPU."""
    seed_everything(seed)
    model_dir = resolve(model_dir)
    logs: list[dict] = []
    timings: dict[str, float] = {}
    dev = resolve_device(device)
    print(f"pretraining on {dev}", flush=True)

    def log(row):
        row = dict(row, time=round(time.time() - t_start, 2))
        logs.append(row)
        if log_every and row["step"] % 200 == 0:
            print(row, flush=True)

    t_start = time.time()
    t = time.time()
    train = make_stills(n_stills, seed)
    held = make_stills(n_heldout, seed + HELDOUT_SEED_OFFSET)
    timings["data_s"] = time.time() - t

    enc = build_encoder(model_dir, train, seed, encoder, log, dev, timings)

    build_judge(model_dir, seed, n_stills, judge, log, dev, timings)

    t = time.time()
    e_train, e_held = embed(enc, train.images), embed(enc, held.images)
    timings["embed_s"] = time.time() - t

    gcfg = GeneratorCfg(**{**generator, "block_out_channels": tuple(generator["block_out_channels"])})
    t = time.time()
    gen = train_generator(
        e_train,
        train.images,
        gcfg,
        seed,
        log,
        ckpt_path=model_dir.parent / f".{model_dir.name}_generator_ckpt.pt",
        device=dev,
    )
    timings["generator_s"] = time.time() - t
    timings["generator_s_per_step"] = timings["generator_s"] / max(gcfg.steps, 1)
    gen.save(model_dir / "generator")
    ck = model_dir.parent / f".{model_dir.name}_generator_ckpt.pt"
    if ck.exists():
        ck.unlink()

    metrics, sub, recon = measure_backbones(model_dir, train, held, e_train, e_held, n_recon, seed, dev, timings)
    timings["total_s"] = time.time() - t_start
    write_json(
        model_dir / "manifest.json",
        dict(
            seed=seed,
            n_stills=n_stills,
            encoder=encoder,
            judge=judge,
            generator=generator,
            metrics=metrics,
            timings=timings,
            device=str(dev),
            generator_autocast="bfloat16" if use_bf16(gcfg.bf16, dev) else "float32",
            torch=torch.__version__,
        ),
    )
    return PretrainResult(model_dir, metrics, timings, logs, sub, recon)


def remeasure(model_dir: str | Path, seed: int, n_stills: int, n_heldout: int, n_recon: int) -> tuple:
    """The stage's measurements of the backbones in ``model_dir`` again (:func:`measure_backbones`,
    the same stills, the same seeds), after one of them was trained again outside the stage
    (``python -m s2i.train.denoiser install``, ``python -m s2i.train.judge rebuild``); written
    into its ``manifest.json``. Returns (metrics, held-out stills drawn back, drawings)."""
    from s2i.utils import read_json

    model_dir = Path(model_dir)
    train, held = make_stills(n_stills, seed), make_stills(n_heldout, seed + HELDOUT_SEED_OFFSET)
    enc = ImageEncoder.load(model_dir / "image_encoder")
    e_train, e_held = embed(enc, train.images), embed(enc, held.images)
    metrics, sub, recon = measure_backbones(model_dir, train, held, e_train, e_held, n_recon, seed, "cpu")
    manifest = read_json(model_dir / "manifest.json")
    manifest["metrics"] = metrics
    write_json(model_dir / "manifest.json", manifest)
    return metrics, sub, recon


def write_measurements(model_dir: str | Path, params: dict) -> dict:
    """:func:`remeasure` with the profile's ``params``, written where the stage writes them:
    ``backbones.json``, the manifest and the recon grid. Returns the metrics."""
    from s2i.viz import recon_grid, save_png

    pre, out = params["pretrain"], resolve(params["base"]["run_dir"])
    metrics, sub, recon = remeasure(
        model_dir, params["base"]["seed"], pre["n_stills"], pre["n_heldout"], pre["n_recon"]
    )
    write_json(out / "metrics" / "backbones.json", metrics)
    save_png(out / "figures" / "pretrain_recon_grid.png", recon_grid(sub.images, recon))
    read = {k: v for k, v in metrics.items() if k.startswith(("judge", "recon")) and v is not None}
    print({k: np.round(v, 4).tolist() for k, v in read.items()})
    return metrics
