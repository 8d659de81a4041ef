"""The real-video stages of the ``full`` profile, as functions of the profile's ``real`` section.

=============  =============================================  =====================================
stage          does                                           writes (under ``real.out_dir``)
=============  =============================================  =====================================
``corpus``     scan the video folder (+ manifest)             ``corpus.json`` (clips, skipped files)
``select``     frame selection by ``real.selection.method``   ``selection/selection.json``, stats
``extract``    selected (+ random, ablation) frames -> pairs  ``pairs/`` shards + ``index.json``
``align``      train the audio encoder, test retrieval        ``alignment/`` encoder, metrics
``prior``      train the embedding prior on the pairs          ``prior/``, ``metrics/prior.json``
``evaluate``   generate from test sounds, the field's R@k      ``metrics/evaluation.json``, a grid
=============  =============================================  =====================================

``python -m s2i.real STAGE`` runs one (``all``: every one in order); ``extract`` and ``align`` also
run under ``accelerate launch -m s2i.real ...`` on several GPUs or machines. Every stage resumes:
the scan is cheap, selection and extraction skip finished shards, alignment continues from its
checkpoint; the prior is retrained (minutes). ``evaluate`` reports the sounds drawn as they are
(``sound``, the field's protocol) and, where a prior was trained, its samples (``sound_prior``).
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from s2i.method.selection import correspondence_scores, reference_sounds
from s2i.paths import resolve
from s2i.real.corpus import Corpus, scan_corpus
from s2i.real.select import (
    agreement,
    read_sound2scene_json,
    select_by_scores,
    select_center,
    select_random,
    select_sound2scene,
)
from s2i.real.shards import ExtractCfg, Pairs, extract_pairs
from s2i.utils import read_json, write_json


def process_state():
    """This process's place in an Accelerate launch (one process without a launcher; on a machine
    without CUDA, processes of ``torchrun``/``accelerate launch --multi_gpu`` talk through gloo)."""
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def _encoder(full: dict, device):
    """The frozen image encoder of the profile, as ``uint8 frames -> (n, D)``, and its input side."""
    from s2i.backbones.full import FullBackbones

    bb = FullBackbones.from_params(full, device=device, load_generator=False)
    return bb.encode_images, bb.encoder_image_size, bb.encoder.model_name


def _extract_cfg(r: dict, image_size: int, model: str) -> ExtractCfg:
    e = r["extraction"]
    return ExtractCfg(
        fps=float(r["fps"]),
        window_s=float(r["window_s"]),
        image_size=image_size,
        shard_clips=int(e["shard_clips"]),
        batch=int(e["batch"]),
        workers=int(e["workers"]),
        dtype=str(e["dtype"]),
        model=model,
    )


def run_corpus(p: dict[str, Any]) -> Corpus:
    r = p["real"]
    c = r["corpus"]
    corpus = scan_corpus(
        resolve(r["video_dir"]),
        resolve(c["manifest"]) if c.get("manifest") else None,
        label_from=c.get("label_from", "manifest"),
        split_fractions=tuple(c.get("split_fractions", (0.8, 0.1, 0.1))),
        min_seconds=float(c.get("min_seconds", 1.0)),
        seed=int(p["base"]["seed"]),
    )
    out = resolve(r["out_dir"])
    corpus.save(out / "corpus.json")
    splits = Counter(cl.split for cl in corpus.clips)
    write_json(
        out / "metrics" / "corpus.json",
        dict(n_usable=len(corpus.clips), n_skipped=len(corpus.skipped), splits=dict(splits), skipped=corpus.skipped),
    )
    for s in corpus.skipped:
        print(f"s2i.real: skipped {s['path']}: {s['reason']}", file=sys.stderr)
    if not corpus.clips:
        raise SystemExit(f"{corpus.root}: no usable video ({len(corpus.skipped)} skipped, listed in {out / 'metrics'})")
    return corpus


def _grid_plan(corpus: Corpus, fps: float, stride: int) -> dict[str, list[tuple[int, str]]]:
    from s2i.real.select import n_grid

    return {c.clip_id: [(f, "candidate") for f in range(0, n_grid(c, fps), stride)] for c in corpus.clips}


def run_select(p: dict[str, Any]) -> dict:
    """Frame selection by the configured method; with ``bootstrap``, extraction of every
    ``candidate_stride``-th grid frame, a first alignment round on the training clips and scores."""
    r, seed = p["real"], int(p["base"]["seed"])
    s = r["selection"]
    out = resolve(r["out_dir"])
    corpus = Corpus.load(out / "corpus.json")
    fps, k, method = float(r["fps"]), int(s["k"]), s["method"]
    scores: dict[str, list[float]] = {}
    missing: list[str] = []
    if method == "bootstrap":
        state = process_state()
        encode, size, model = _encoder(p["full"], state.device)
        cand = out / "selection" / "candidates"
        extract_pairs(
            corpus.root,
            corpus.clips,
            _grid_plan(corpus, fps, int(s.get("candidate_stride", 1))),
            encode,
            cand,
            _extract_cfg(r, size, model),
            process_index=state.process_index,
            num_processes=state.num_processes,
        )
        state.wait_for_everyone()
        from s2i.real.align import RealAlignCfg, embed, front_end, train_real_alignment

        cfg = RealAlignCfg(**dict(r["alignment"], epochs=int(s["epochs"])))
        train_real_alignment(cand, out / "selection" / "round0", cfg, seed, source="candidate")
        if not state.is_main_process:
            return {}
        from s2i.real.align import load_encoder

        pairs = Pairs(cand)
        enc = load_encoder(out / "selection" / "round0" / "audio_encoder")
        idx = np.arange(len(pairs))
        z_a = embed(enc, pairs, idx, front_end(cfg), "cpu")
        train = np.array([row["split"] == "train" for row in pairs.rows])
        ref = reference_sounds(z_a, train, seed=seed)
        score = correspondence_scores(z_a, pairs.z(idx), ref, cfg.temperature, cfg.normalize)
        threshold = float(np.quantile(score[train], float(s["score_quantile"])))
        by_clip: dict[str, list[tuple[int, float]]] = {}
        for row, sc in zip(pairs.rows, score):
            by_clip.setdefault(row["clip_id"], []).append((row["frame"], float(sc)))
        selected = {}
        for cid, fs in by_clip.items():
            frames, sc = zip(*fs)
            selected[cid] = [frames[i] for i in select_by_scores(np.array(sc), k, threshold)]
            scores[cid] = [round(x, 4) for x in sc]
        skipped = pairs.skipped
    else:
        if method == "sound2scene_json":
            table = read_sound2scene_json(resolve(s["sound2scene_json"]))
        selected, skipped = {}, []
        for c in corpus.clips:
            if method == "center":
                selected[c.clip_id] = select_center(c, fps, k)
            elif method == "random":
                selected[c.clip_id] = select_random(c, fps, k, seed)
            elif method == "sound2scene_json":
                got = select_sound2scene(c, table, fps, k, int(s.get("json_first_frame", 1)))
                if got:
                    selected[c.clip_id] = got
                else:
                    missing.append(c.clip_id)
            else:
                raise ValueError(f"unknown frame selection method {method!r}")
    split = {c.clip_id: c.split for c in corpus.clips}
    baselines = {"center": {c.clip_id: select_center(c, fps, k) for c in corpus.clips}}
    baselines["random"] = {c.clip_id: select_random(c, fps, k, seed) for c in corpus.clips}
    stats = dict(
        method=method,
        n_clips=len(selected),
        frames_per_clip=dict(Counter(len(v) for v in selected.values())),
        n_pairs=sum(len(v) for v in selected.values()),
        not_annotated=missing,
        skipped=skipped,
        agreement={name: agreement(selected, b, tolerance=int(fps // 2)) for name, b in baselines.items()},
    )
    if scores:
        allsc = np.concatenate([np.array(v) for v in scores.values()])
        stats["score_quantiles"] = {q: float(np.quantile(allsc, q)) for q in (0.05, 0.25, 0.5, 0.75, 0.95)}
        stats["threshold"] = threshold
    write_json(
        out / "selection" / "selection.json",
        dict(
            method=method,
            fps=fps,
            k=k,
            clips={c: dict(split=split[c], selected=v) for c, v in selected.items()},
            scores=scores,
        ),
    )
    write_json(out / "metrics" / "selection.json", stats)
    return stats


def run_extract(p: dict[str, Any]) -> dict | None:
    """Pairs of the selected frames (every split) and, for the training clips, ``k`` random grid
    frames (source ``random``: the no-selection ablation)."""
    r, seed = p["real"], int(p["base"]["seed"])
    out = resolve(r["out_dir"])
    corpus = Corpus.load(out / "corpus.json")
    sel = read_json(out / "selection" / "selection.json")
    fps, k = float(sel["fps"]), int(sel["k"])
    plan = {}
    for c in corpus.clips:
        s = sel["clips"].get(c.clip_id)
        if s is None:
            continue
        items = [(f, "selected") for f in s["selected"]]
        if c.split == "train":
            items += [(f, "random") for f in select_random(c, fps, k, seed + 1)]
        plan[c.clip_id] = items
    state = process_state()
    encode, size, model = _encoder(p["full"], state.device)
    index = extract_pairs(
        corpus.root,
        corpus.clips,
        plan,
        encode,
        out / "pairs",
        _extract_cfg(r, size, model),
        process_index=state.process_index,
        num_processes=state.num_processes,
    )
    state.wait_for_everyone()
    if index is not None:
        write_json(
            out / "metrics" / "extraction.json",
            dict(
                n_pairs=index["n_pairs"],
                n_shards=len(index["shards"]),
                n_skipped=len(index["skipped"]),
                skipped=index["skipped"],
            ),
        )
    return index


def run_align(p: dict[str, Any]) -> dict:
    from s2i.real.align import RealAlignCfg, train_real_alignment

    r = p["real"]
    out = resolve(r["out_dir"])
    m = train_real_alignment(out / "pairs", out / "alignment", RealAlignCfg(**r["alignment"]), int(p["base"]["seed"]))
    write_json(out / "metrics" / "alignment.json", m)
    return m


def run_prior(p: dict[str, Any]) -> dict | None:
    """The embedding prior (:mod:`s2i.models.prior`) on the training pairs: the selected frames'
    Z^V and the aligned encoder's Z^A of their windows, ``real.prior`` its recipe (keys of
    :class:`~s2i.models.prior.PriorCfg` and :class:`~s2i.method.prior.PriorTrainCfg`); held out:
    the x0 loss on the validation pairs, beside the condition dropped and shuffled. The model is
    small: the main process trains it, the others wait."""
    import time

    import torch

    from s2i.method.prior import PriorTrainCfg, prior_loss, train_prior
    from s2i.models.prior import PriorCfg
    from s2i.real.align import RealAlignCfg, embed, front_end, load_encoder

    r, seed = p["real"], int(p["base"]["seed"])
    out = resolve(r["out_dir"])
    state = process_state()
    metrics = None
    if state.is_main_process:
        pairs = Pairs(out / "pairs")
        tr, va = pairs.select("train", "selected"), pairs.select("val", "selected")
        if len(tr) < 2:
            raise SystemExit(f"{out / 'pairs'}: {len(tr)} training pairs; the prior needs at least 2")
        recipe = dict(r.get("prior") or {})
        fields = set(PriorCfg.__dataclass_fields__)
        unknown = set(recipe) - fields - (set(PriorTrainCfg.__dataclass_fields__) - {"model"})
        if unknown:
            raise SystemExit(f"real.prior: unknown keys {sorted(unknown)}")
        cfg = PriorTrainCfg(
            PriorCfg(**{k: v for k, v in recipe.items() if k in fields}),
            **{k: v for k, v in recipe.items() if k not in fields},
        )
        enc = load_encoder(out / "alignment" / "audio_encoder").to(state.device)
        kind = front_end(RealAlignCfg(**r["alignment"]))
        z_a, z_v = embed(enc, pairs, tr, kind, state.device), pairs.z(tr)
        t0 = time.perf_counter()
        prior, losses = train_prior(z_a, z_v, cfg, seed, device=state.device)
        train_s = time.perf_counter() - t0
        prior.save(out / "prior", extra=dict(n_pairs=len(tr), steps=cfg.steps, batch=cfg.batch, lr=cfg.lr, seed=seed))
        metrics = dict(n_train_pairs=len(tr), n_val_pairs=len(va), train_loss=losses[-1][1], train_s=round(train_s, 1))
        if len(va) >= 2:
            va_a, va_z = embed(enc, pairs, va, kind, state.device), pairs.z(va)
            perm = torch.randperm(len(va), generator=torch.Generator().manual_seed(seed))
            metrics.update(
                val_loss=prior_loss(prior, va_a, va_z, seed),
                val_loss_no_condition=prior_loss(prior, torch.zeros_like(va_a), va_z, seed),
                val_loss_shuffled_condition=prior_loss(prior, va_a[perm], va_z, seed),
            )
        write_json(out / "metrics" / "prior.json", metrics)
    state.wait_for_everyone()
    return metrics


def _test_frames(corpus: Corpus, rows: list[dict], size: int) -> np.ndarray:
    """The frames of ``rows`` decoded again from their videos (pairs keep embeddings, not pixels)."""
    from s2i.real.frames import read_frames_at

    clips = {c.clip_id: c for c in corpus.clips}
    out = np.zeros((len(rows), size, size, 3), np.uint8)
    by_clip: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        by_clip.setdefault(r["clip_id"], []).append(i)
    for cid, ii in by_clip.items():
        ii = sorted(ii, key=lambda i: rows[i]["time"])
        out[ii] = read_frames_at(corpus.root / clips[cid].path, np.array([rows[i]["time"] for i in ii]), size)
    return out


def _edit_study(bb, frames: np.ndarray, z_audio, z_quiet, z_image, judge, m: int, seed: int, steps) -> dict:
    """The first ``m`` test frames (as many as ``z_quiet`` holds), frame ``i`` edited with the
    sound of clip ``a[i]`` by the product's mechanism
    (:func:`s2i.method.edit.object_edit`: drawn under the sound in the centre region and kept
    where it differs from a drawing under the same sound turned down, ``z_quiet``; from the
    sounds' embeddings, not the prior's samples, one drawing each), measured toward
    clip ``a[i]``'s frame. Baseline: the sound of clip ``b[i]``; upper bound: clip ``a[i]``'s frame
    embedding in the sound's place (its reference the sound of ``a[i]`` turned down)."""
    from s2i.method.edit import EDIT_STRENGTH, EDIT_W_IMAGE, default_w_sound, object_edit
    from s2i.real.evaluate import derangement, edit_response

    if m < 3:
        return dict(skipped=f"{m} test pairs; the edit study needs 3")
    a = derangement(m, seed + 1)
    b = a[derangement(m, seed + 2)]
    b = np.where(b == np.arange(m), a[a], b)  # a third clip where possible
    inputs = frames[:m]
    w_sound = default_w_sound(bb)

    def edit(z_cond, z_ref):
        args = (inputs, EDIT_W_IMAGE, seed, EDIT_STRENGTH)
        return object_edit(bb, None, [z_cond], [z_ref], [w_sound], *args, steps=steps)

    edits = {
        "sound": edit(z_audio[:m][a], z_quiet[:m][a]),
        "baseline_other_sound": edit(z_audio[:m][b], z_quiet[:m][b]),
        "upper_bound_true_embedding": edit(z_image[:m][a], z_quiet[:m][a]),
    }
    return dict(n=m, strength=EDIT_STRENGTH, w_sound=w_sound, **edit_response(inputs, frames[:m][a], edits, judge))


def run_evaluate(p: dict[str, Any]) -> dict:
    """The field's protocol (:mod:`s2i.real.evaluate`) on up to ``real.evaluation.n`` test pairs:
    images from the sounds, from the true frames' embeddings (upper bound) and random other frames
    (baseline), judged by an independent CLIP; a grid of the first ``n_grid`` (sound / upper
    bound / true frame)."""
    from s2i.backbones.full import FullBackbones
    from s2i.backbones.openclip import load_openclip_encoder
    from s2i.models.prior import EmbeddingPrior
    from s2i.real.align import load_encoder
    from s2i.real.evaluate import evaluate

    r, seed = p["real"], int(p["base"]["seed"])
    ev = r["evaluation"]
    out = resolve(r["out_dir"])
    corpus = Corpus.load(out / "corpus.json")
    pairs = Pairs(out / "pairs")
    te = pairs.select("test", "selected")
    te = te[np.random.default_rng(seed).permutation(len(te))[: int(ev["n"])]] if len(te) > int(ev["n"]) else te
    if len(te) < 2:
        raise SystemExit(f"{out / 'pairs'}: {len(te)} test pairs; the protocol needs at least 2")
    rows = [pairs.rows[i] for i in te]
    state = process_state()
    bb = FullBackbones.from_params(p["full"], device=state.device)
    enc = load_encoder(out / "alignment" / "audio_encoder").to(state.device)
    j = ev["judge"]
    judge = load_openclip_encoder(j["model"], j.get("pretrained"), device=state.device)
    frames = _test_frames(corpus, rows, bb.image_size)
    z_audio = enc.embed_windows(pairs.windows(te))
    z_prior = None  # the product's path, where a prior was trained: its sample of each sound
    if EmbeddingPrior.exists(out / "prior"):
        z_prior = EmbeddingPrior.load(out / "prior").to(state.device).sample(z_audio.float(), 1, seed=seed)
    steps = ev.get("steps") or None
    metrics, images = evaluate(
        frames,
        z_audio,
        pairs.z(te),
        lambda z: bb.generate(z, seed=seed, steps=steps, batch=int(ev.get("batch", 8))),
        judge.encode,
        [row["label"] for row in rows],
        seed,
        z_prior,
    )
    metrics.update(n=len(te), judge=j["model"], steps=steps or bb.steps)
    from s2i.real.evaluate import volume_response

    nv = min(int(ev.get("n_volume", 16)), len(te))  # a subset: len(gains) pictures per sound
    metrics["volume"] = volume_response(
        pairs.windows(te[:nv]),
        frames[:nv],
        enc.embed_windows,
        lambda z: bb.generate(z, seed=seed, steps=steps, batch=int(ev.get("batch", 8))),
        judge.encode,
        tuple(float(g) for g in ev.get("gains_db", (-12, -6, 0, 6, 12))),
    )
    from s2i.method.mix import AMBIENCE_DB

    ne = min(int(ev.get("n_edit", 16)), len(te))  # editing's references: the first sounds turned down
    z_quiet = enc.embed_windows(pairs.windows(te[:ne]) * 10 ** (AMBIENCE_DB / 20))
    metrics["editing"] = _edit_study(bb, frames, z_audio, z_quiet, pairs.z(te), judge.encode, ne, seed, steps)
    write_json(out / "metrics" / "evaluation.json", metrics)
    from s2i.viz import grid, save_png

    k = min(int(ev.get("n_grid", 8)), len(te))  # rows: from the sound, from the true embedding, the frame
    sheet = np.concatenate([images["sound"][:k], images["upper"][:k], frames[:k]])
    save_png(out / "figures" / "evaluation_grid.png", grid(sheet, ncol=k))
    return metrics


STAGES = {
    "corpus": run_corpus,
    "select": run_select,
    "extract": run_extract,
    "align": run_align,
    "prior": run_prior,
    "evaluate": run_evaluate,
}


def prepare_fullsmoke(p: dict[str, Any], videos: str | os.PathLike | None = None) -> dict[str, Any]:
    """The ``fullsmoke`` profile's models and corpus: tiny random OpenCLIP + Stable unCLIP in
    their real formats under ``real.out_dir/models`` (:mod:`s2i.testing`) and, unless ``videos``
    names a folder of your own, the generated real-format corpus (:mod:`s2i.real.synth`).
    Returns the params pointed at them."""
    from s2i.real.synth import make_video_corpus
    from s2i.testing import make_tiny_openclip_checkpoint, make_tiny_unclip_pipeline

    out = resolve(p["real"]["out_dir"])
    models = out / "models"
    if not (models / "openclip" / "open_clip_config.json").exists():
        make_tiny_openclip_checkpoint(models / "openclip", embed_dim=32)
    if not (models / "judge" / "open_clip_config.json").exists():  # the "independent CLIP"
        make_tiny_openclip_checkpoint(models / "judge", model_name="s2i-tiny-judge", embed_dim=16, seed=1)
    unclip = models / "stable-unclip"
    if not (unclip / "model_index.json").exists():
        make_tiny_unclip_pipeline(unclip, embed_dim=32)
    encoder = dict(model=f"local-dir:{models / 'openclip'}", pretrained=None)
    p = dict(p, full=dict(p["full"], image_encoder=encoder, generator=dict(p["full"]["generator"], path=str(unclip))))
    judge = dict(model=f"local-dir:{models / 'judge'}", pretrained=None)
    real = dict(p["real"], evaluation=dict(p["real"]["evaluation"], judge=judge))
    if videos is None:
        vdir = out / "videos"
        if not (vdir / "vggsound.csv").exists():
            make_video_corpus(vdir)
        real.update(video_dir=str(vdir), corpus=dict(real["corpus"], manifest=str(vdir / "vggsound.csv")))
    else:
        real.update(video_dir=str(Path(videos)), corpus=dict(real["corpus"], manifest=None))
    p["real"] = real
    return p
