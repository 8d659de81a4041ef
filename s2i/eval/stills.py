"""The judge's reads of pictures drawn back from stills' image embeddings, against the stills'
ground truth: what the generator keeps of a scene (its shape, size, background, both objects of
two) when it draws from the frozen image encoder's embedding of it.

The ``pretrain`` stage reads its backbones this way at the generator's own settings
(``backbones.json``); the ``generation`` stage reads them on the same held-out stills at the
settings every drawing stage uses (``sampling``), once and each picture the best of several
(:func:`s2i.eval.studies.recon_read`).
"""

from __future__ import annotations

import numpy as np

from s2i.eval.stats import bootstrap_ci
from s2i.toyworld.stills import StillSet

HELDOUT_SEED_OFFSET = 1_000_003  # the held-out stills' seed: the run's seed + this


def single_object(d: StillSet) -> np.ndarray:
    """(N,) bool: the stills that hold exactly one object."""
    return d.presence.sum(1) == 1


def spearman(a, b) -> float:
    """Spearman's rank correlation of two sequences."""
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def judge_scores(rep: dict, d: StillSet, prefix: str, ci_seed: int | None = None) -> dict:
    """Judge metrics against ground truth: top-1 class on single-object images, both classes
    found on two-object images (``both_seen``: what a study that counts two objects can read at
    best), exact set of present classes on all images, Spearman of the judged vs true radius,
    background accuracy; with ``ci_seed``, also the top-1 class's 95 % bootstrap interval over
    the single-object images (``class_acc_ci95``; None where there are none)."""
    s = single_object(d)
    two = d.presence.sum(1) == 2
    both = (rep["present"][two] & (d.presence[two] > 0.5)).sum(1) == 2
    true_cls = d.presence[s].argmax(1)
    right = rep["top_class"][s] == true_cls
    size_pred = rep["size"][s][np.arange(s.sum()), true_cls]
    scores = {
        f"{prefix}_class_acc": float(right.mean()),
        f"{prefix}_both_seen": float(both.mean()) if two.any() else None,
        f"{prefix}_exact_set": float((rep["present"] == (d.presence > 0.5)).all(1).mean()),
        f"{prefix}_size_spearman": spearman(size_pred, d.sizes[s].max(1)),
        f"{prefix}_size_mae_px": float(np.abs(size_pred - d.sizes[s].max(1)).mean()),
        f"{prefix}_bg_acc": float((rep["bg"] == d.bg).mean()),
    }
    if ci_seed is not None:
        scores[f"{prefix}_class_acc_ci95"] = bootstrap_ci(right, seed=ci_seed) if right.size else None
    return scores
