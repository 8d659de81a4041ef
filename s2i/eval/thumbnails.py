"""Evaluation of thumbnails on toy programmes with a known timeline: cluster purity, class
coverage and whether the final thumbnail shows the class heard longest, read by the judge."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from s2i.method.thumbnails import ThumbnailResult, make_thumbnails, thumbnail_windows
from s2i.toyworld import world
from s2i.toyworld.programmes import Programme, make_programme


# ============================================================================= measuring
def window_truth(programme: Programme, starts: np.ndarray, window_s: float) -> np.ndarray:
    """(N,) the class heard longest inside each window [start, start + window_s] (-1: only
    ambience, or past the end)."""
    tl = programme.timeline
    C = len(world.CLASSES)
    out = np.full(len(starts), -1, np.int64)
    seg_a = np.array([r["start"] for r in tl])
    seg_b = np.array([r["end"] for r in tl])
    seg_c = np.array([-1 if r["cls"] is None else r["cls"] for r in tl])
    for i, s in enumerate(np.asarray(starts, np.float64)):
        ov = np.clip(np.minimum(seg_b, s + window_s) - np.maximum(seg_a, s), 0, None)
        per = np.zeros(C)
        m = seg_c >= 0
        np.add.at(per, seg_c[m], ov[m])
        if per.max() > 0:
            out[i] = int(np.argmax(per))
    return out


def evaluate_thumbnails(result: ThumbnailResult, programme: Programme, judge=None, min_share: float = 0.1) -> dict:
    """Score thumbnails of a programme against its timeline.

    * ``cluster_purity``: share of windows whose true class (the class heard longest in the
      window) is their cluster's majority true class.
    * ``class_coverage``: share of the classes heard >= ``min_share`` of the time that have a
      thumbnail the judge says shows them (the judge's ``top_class``).
    * ``final_pick_correct``: the judge's ``top_class`` of the final thumbnail is the class
      heard longest.
    * ``largest_pick_correct``: the same for the largest cluster's thumbnail (the final pick
      by the patent's plain rule; equal to ``final_pick_correct`` when the final is the largest).
    * Diagnostics that do not involve the generator: ``cluster_coverage`` (each such class is
      the majority class of some cluster), ``final_cluster_correct`` / ``largest_cluster_correct``
      (the final / largest cluster's majority class is the longest class), ``k`` vs ``n_classes``.
    Without a judge (full profile) the judge-based metrics are None."""
    labels = result.labels
    truth = window_truth(programme, result.starts, result.windows.window_s)
    majority = []
    pure = 0
    for c in range(result.k):
        t = truth[labels == c]
        vals, counts = np.unique(t, return_counts=True)
        majority.append(int(vals[np.argmax(counts)]))
        pure += int(counts.max())
    present = programme.present_classes(min_share)
    longest = programme.longest_class()
    out = dict(
        n_windows=int(len(labels)),
        k=int(result.k),
        n_classes=len(present),
        classes=present,
        longest_class=longest,
        cluster_majority=majority,
        cluster_purity=pure / len(labels),
        cluster_coverage=float(np.mean([c in majority for c in present])) if present else None,
        final_cluster_correct=bool(majority[result.final] == longest),
        largest_cluster_correct=bool(majority[result.largest] == longest),
        thumbnail_classes=None,
        class_coverage=None,
        final_pick_correct=None,
        largest_pick_correct=None,
    )
    if judge is not None:
        top = [int(t) for t in judge.report(result.images)["top_class"]]
        out.update(
            thumbnail_classes=top,
            class_coverage=float(np.mean([c in top for c in present])) if present else None,
            final_pick_correct=bool(top[result.final] == longest),
            largest_pick_correct=bool(top[result.largest] == longest),
        )
    return out


def programme_durations(n: int, min_minutes: float, max_minutes: float) -> np.ndarray:
    """(n,) durations in seconds, evenly spaced from ``min_minutes`` to ``max_minutes``
    (a programme set that spans the lengths thumbnails are meant for, e.g. 1-10 minutes)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not 0 < min_minutes <= max_minutes:
        raise ValueError(f"need 0 < min_minutes <= max_minutes, got {min_minutes}, {max_minutes}")
    return np.linspace(min_minutes, max_minutes, n) * 60.0


def _programme_audio(plan: tuple[int, float]) -> tuple[Programme, np.ndarray]:
    prog = make_programme(plan[0], plan[1])
    return prog, prog.audio()


def _rendered(plans: list[tuple[int, float]], workers: int):
    """(programme, audio) for each ``(seed, duration_s)`` of ``plans``, in order, rendered
    ``workers`` at a time in worker processes (1: in this one)."""
    if workers <= 1 or len(plans) <= 1:
        yield from map(_programme_audio, plans)
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as pool:
        for i in range(0, len(plans), workers):
            yield from list(pool.map(_programme_audio, plans[i : i + workers]))


def evaluate_programmes(
    s2i,
    seeds: Sequence[int],
    duration_s: float | Sequence[float] = 120.0,
    representatives=("nearest",),
    progress: bool = False,
    workers: int = 2,
    **thumb_kw,
) -> tuple[list[dict], dict]:
    """Build the programme of each seed (``duration_s``: one length for all, or one per seed,
    e.g. :func:`programme_durations`), make its thumbnails (the windows are embedded once and reused for every
    ``representatives`` choice) and score
    them with the judge. Every programme counts the same in the means, whatever its length.

    The programmes' audio is rendered ``workers`` at a time in as many processes (the same
    samples as in one), while the models wait: rendering them is numpy's FFTs on one core, and
    alongside the models' threads it would take cores they use.

    Returns ``(rows, summary)``: one row per (programme, representative) and, per
    representative, the means of the metrics over programmes."""
    from tqdm.auto import tqdm

    judge = s2i.backbones.judge
    keys = (
        "cluster_purity",
        "class_coverage",
        "final_pick_correct",
        "cluster_coverage",
        "final_cluster_correct",
        "largest_pick_correct",
        "largest_cluster_correct",
    )
    wkw = {k: thumb_kw.pop(k) for k in ("window_s", "overlap_s", "batch", "min_fill") if k in thumb_kw}
    seeds = list(seeds)
    durations = np.asarray(duration_s, np.float64)
    if durations.ndim == 0:
        durations = np.full(len(seeds), float(durations))
    if len(durations) != len(seeds):
        raise ValueError(f"{len(durations)} durations for {len(seeds)} programmes")
    rows = []
    rendered = _rendered(list(zip(seeds, durations.tolist())), workers)
    for prog, audio in tqdm(rendered, total=len(seeds), desc="programmes", disable=not progress):
        win = thumbnail_windows(s2i, audio, thumb_kw.get("final", "sound"), sr=prog.sr, **wkw)
        for rep in representatives:
            res = make_thumbnails(s2i, None, windows=win, representative=rep, **thumb_kw)
            row = dict(
                programme=int(prog.seed),
                representative=rep,
                duration_s=prog.duration,
                **evaluate_thumbnails(res, prog, judge),
            )
            rows.append(row)
    summary = {}
    for rep in representatives:
        rs = [r for r in rows if r["representative"] == rep]
        summary[rep] = {
            k: (
                float(np.mean([float(r[k]) for r in rs if r[k] is not None]))
                if any(r[k] is not None for r in rs)
                else None
            )
            for k in keys
        }
        summary[rep]["k_equals_n_classes"] = float(np.mean([r["k"] == r["n_classes"] for r in rs]))
    return rows, summary
