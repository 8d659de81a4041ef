"""Thumbnails of a long sound (claims 18-21, fig. 13-15).

    result = make_thumbnails(s2i, "programme.flac", window_s=2.0, overlap_s=1.0)
    result.save("out/")        # contact_sheet.png, slideshow.gif, final.png, thumbnails.json

The method, step by step (patent fig. 15):

1. **Windows** (S600). The audio is cut into windows of ``T = window_s`` seconds that overlap
   by ``N = overlap_s`` seconds (hop ``T - N``), with the window grid and last-partial-window
   policy of :func:`s2i.media.iter_audio_windows` (a tail at least half a window long is kept,
   zero-padded). A file is *streamed*: windows are decoded and embedded batch by batch, and only
   the ``(n_windows, D)`` embeddings and the start times are kept, so memory does not grow with
   the length of the file beyond those (0.5 KB per window at D = 128).
2. **Embeddings** (S700). The audio encoder was trained on windows of ``s2i.window_s`` (0.5 s).
   A window of ``T`` seconds is embedded exactly as :meth:`Sound2Image.embed_audio` embeds a
   clip of that length: the mean of the embeddings of its encoder-sized sub-windows at half an
   encoder window hop (a ``T`` shorter than the encoder's window is zero-padded on both sides).
3. **Clustering** (S900). k-means (scikit-learn, ``random_state=seed``, ``n_init`` restarts) in
   the raw Z^A space with the Euclidean metric, the metric the alignment was trained with
   (``infonce_l2``). ``k`` is given, or chosen by the mean silhouette over ``k = 2..k_max``.
   The silhouette is scale-free: it finds "clusters" even in the tiny jitter of one steady sound
   (measured: a 60 s horn over wind gives 0.58 at k = 2 while its windows spread by 0.4 % of
   the embedding norm). So the sound is **one cluster** when (a) the windows' relative spread
   (RMS distance to their mean / RMS norm, :func:`relative_spread`) is below ``min_spread``
   (default 0.05; smoke encoder: one class 0.004-0.011, a programme of 2-4 classes 0.27-0.35),
   or (b) the best silhouette is below ``min_silhouette`` (default 0.25, Kaufman & Rousseeuw's
   "no substantial structure"), or (c) there are fewer than three windows or two distinct
   embeddings. Windows that straddle a change of sound are mixtures of two sounds and can form
   a tight little cluster of their own (a "transition" thumbnail): with automatic k, a cluster
   that never lasts ``min_run`` consecutive windows (default ``max(2, ceil(T / hop))``, longer
   than the windows straddling one change) is merged into the nearest lasting cluster before the
   candidate is scored. Silhouettes of long files use a fixed random sample of
   ``silhouette_sample`` windows (bounded time and memory).
4. **Representative** (S1000). Default ``"nearest"``: the member window whose embedding is
   nearest its cluster's centroid. The centroid itself (``"centroid"``) is an average of many
   embeddings: it is shorter than its members whenever they spread, and it falls *between*
   sub-modes (e.g. one class heard over two backgrounds), i.e. off the set of embeddings the
   generator was trained to draw from. The nearest member is the embedding of a window that is
   really in the file, so the thumbnail depicts something actually heard and the report can
   point at its time. Its price is one window's noise instead of an average, so both choices
   are kept and measured side by side (notebook 07).
5. **Thumbnails** (S1100). One image per cluster from the generator (one call, ``seed``).
   Clusters are numbered in order of their first appearance in time; the thumbnails are output
   in that order (contact sheet and slideshow, S1200 "in sequence"), and the **final
   thumbnail** comes from the source heard longest (``final="sound"``, default). The encoder
   hears the place as well as the object, so k-means puts one source heard in two places into
   two clusters, and the largest cluster is then often not the sound heard longest (measured on
   tuning programmes 3000-3047, 1-10 minutes: the largest cluster's majority class is the class
   heard longest 33 times of 48). So the clusters are grouped by their mean sounds
   (:func:`sound_groups`: the mean of each cluster's unit-length window embeddings; an
   average-linkage tree of their cosine distances cut at ``SOUND_MAX_DIST``): one source's
   clusters stay closer to each other than to another source's, whatever the place. The group
   with the most windows wins, and its cluster at the centre (the smallest size-weighted mean
   distance to the group's members, :func:`final_cluster`) gives the final thumbnail, so that
   another source's cluster the cut let in is not picked for being large. It needs nothing but
   the window embeddings, so it works on every profile. ``final="object"`` groups the clusters
   by object-only pictures instead (:func:`object_groups`, toy/smoke generator only; the
   default until the sound grouping beat it on fresh programmes, 138 of 144 against 129);
   ``final="largest"`` keeps the plain rule. The thumbnails and the clusters are the same
   whichever rule picks the final one. Measured figures: README.

Toy *programmes* (:func:`make_programme`) give long sounds with a known timeline, and
:func:`evaluate_thumbnails` measures cluster purity, class coverage and the final pick with the
judge (see its docstring).
"""
from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from . import world
from .utils import atomic_write_bytes, write_json

SR = 16000  # the audio encoder's sample rate (s2i.generate.SR)

__all__ = [
    "WindowEmbeddings", "Clustering", "ThumbnailResult", "embed_long_windows", "window_embeddings",
    "cluster_embeddings", "relative_spread", "merge_transient", "longest_run", "choose_representatives",
    "time_ranges", "make_thumbnails", "sound_groups", "sound_distances", "object_groups", "final_cluster",
    "cut_tree", "cosine_distances", "contact_sheet", "Segment", "Programme", "make_programme", "segment_seed",
    "write_programme", "window_truth", "evaluate_thumbnails", "evaluate_programmes", "programme_durations",
    "PROGRAMME_SEED_BASE",
]


# ============================================================================= 1-2. windows -> embeddings
@dataclass
class WindowEmbeddings:
    """Embeddings of a sound's windows: ``z`` (N, D) float32, ``starts`` (N,) seconds."""

    z: np.ndarray
    starts: np.ndarray
    window_s: float
    overlap_s: float
    duration: float  # seconds of audio (decoded length; the container's for files)
    source: str | None = None
    zq: np.ndarray | None = None  # (N, D): the same windows turned down by ``quiet_db`` (object grouping)
    quiet_db: float | None = None
    # object_groups of a clustering of these windows, kept so that thumbnails made again from the
    # same windows (another representative) do not draw the object pictures again
    _groups: dict = field(default_factory=dict, repr=False, compare=False)


def _check_window(window_s: float, overlap_s: float) -> None:
    if not (window_s > 0 and math.isfinite(window_s)):
        raise ValueError(f"window_s must be positive, got {window_s}")
    if not (0 <= overlap_s < window_s):
        raise ValueError(f"overlap_s must be in [0, window_s={window_s}), got {overlap_s}")


def _sub_windows(windows: np.ndarray, enc_window_s: float) -> np.ndarray:
    """(B, W) windows -> (B, n_sub, S) encoder-sized sub-windows, the grid of
    :func:`s2i.generate.windows_of` (hop S/2; a window of at most S samples is centred and
    zero-padded into one sub-window)."""
    B, W = windows.shape
    S = int(round(enc_window_s * SR))
    if W <= S:
        pad = S - W
        return np.pad(windows, ((0, 0), (pad // 2, pad - pad // 2)))[:, None]
    hop = int(round(enc_window_s / 2 * SR))
    starts = np.arange(0, W - S + 1, hop)
    view = np.lib.stride_tricks.sliding_window_view(windows, S, axis=1)  # (B, W-S+1, S), no copy
    return view[:, starts]


def embed_long_windows(s2i, windows: np.ndarray) -> np.ndarray:
    """(B, W) 16 kHz windows of any length -> (B, D) float32: for each window, the mean of its
    encoder-window embeddings (what :meth:`Sound2Image.embed_audio` gives for that clip)."""
    windows = np.asarray(windows, np.float32)
    sub = _sub_windows(windows, s2i.window_s)  # (B, n_sub, S)
    B, n_sub, S = sub.shape
    z = s2i.embed_windows(np.ascontiguousarray(sub.reshape(B * n_sub, S)))  # (B * n_sub, D)
    z = np.asarray(z.detach().cpu().numpy() if hasattr(z, "detach") else z, np.float32)
    return z.reshape(B, n_sub, -1).mean(axis=1)


def _array_batches(audio: np.ndarray, window_s: float, overlap_s: float, batch: int,
                   min_fill: float) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The batches :func:`s2i.media.iter_audio_windows` would yield for an in-memory signal."""
    from .media import audio_window_starts

    starts = audio_window_starts(len(audio), SR, window_s, overlap_s=overlap_s, min_fill=min_fill)
    W = int(round(window_s * SR))
    for b in range(0, len(starts), batch):
        s = starts[b:b + batch]
        out = np.zeros((len(s), W), np.float32)
        for i, a in enumerate(s):
            seg = audio[a:a + W]
            out[i, :len(seg)] = seg
        yield out, s / SR


def window_embeddings(s2i, audio: str | os.PathLike | np.ndarray, sr: int | None = None,
                      window_s: float = 2.0, overlap_s: float = 1.0, batch: int = 32,
                      min_fill: float = 0.5, progress: bool = False,
                      quiet_db: float | None = None) -> WindowEmbeddings:
    """Cut ``audio`` (a file path, streamed; or an array with its ``sr``) into windows of
    ``window_s`` overlapping by ``overlap_s`` and embed them, ``batch`` windows at a time.
    With ``quiet_db`` each window is also embedded turned down by that much (``zq``, for
    :func:`object_groups`; twice the encoder work).

    Raises :class:`s2i.media.MediaError` for an unreadable file and ValueError for bad
    window arguments or an array without ``sr``."""
    from tqdm.auto import tqdm

    _check_window(window_s, overlap_s)
    source = None
    if isinstance(audio, (str, os.PathLike)):
        from .media import audio_window_starts, iter_audio_windows, probe

        source = str(audio)
        it = iter_audio_windows(audio, SR, window_s, batch=batch, overlap_s=overlap_s, min_fill=min_fill)
        info = probe(audio)
        stated = (info["audio"] or {}).get("duration") or info["duration"]
        total = (len(audio_window_starts(int(stated * SR), SR, window_s, overlap_s=overlap_s, min_fill=min_fill))
                 if stated else None)
    else:
        if sr is None:
            raise ValueError("an audio array needs its sample rate (sr=...)")
        from .media import audio_window_starts

        a = s2i.load_audio(np.asarray(audio), sr)
        stated = len(a) / SR
        it = _array_batches(a, window_s, overlap_s, batch, min_fill)
        total = len(audio_window_starts(len(a), SR, window_s, overlap_s=overlap_s, min_fill=min_fill))
    zs, zqs, ss = [], [], []
    last = None
    q = None if quiet_db is None else 10 ** (quiet_db / 20)
    with tqdm(total=total, desc="embed windows", unit="win", disable=not progress) as bar:
        for w, s in it:
            zs.append(embed_long_windows(s2i, w))  # (B, D)
            if q is not None:
                zqs.append(embed_long_windows(s2i, w * q))
            ss.append(s)
            last = w[-1].copy()
            bar.update(len(s))
    if not zs:
        if source is not None:
            from .media import MediaError

            raise MediaError(f"{source}: no decodable audio (empty or corrupt audio stream)")
        raise ValueError("no audio to cut into windows (empty array)")
    z, starts = np.concatenate(zs), np.concatenate(ss)
    zq = np.concatenate(zqs) if q is not None else None
    # The last window may run past the end of the audio, zero-padded: embed only its real part
    # (trailing exact zeros), as embed_audio would embed that shorter clip. Silence padding
    # would otherwise pull its embedding away from its neighbours (an outlier "cluster").
    nz = np.flatnonzero(last)
    end = float(starts[-1] + window_s)  # the audio reaches at least this far...
    if len(nz) and nz[-1] + 1 < len(last):
        z[-1] = embed_long_windows(s2i, last[None, :nz[-1] + 1])[0]
        if zq is not None:
            zq[-1] = embed_long_windows(s2i, last[None, :nz[-1] + 1] * q)[0]
        end = float(starts[-1] + (nz[-1] + 1) / SR)  # ...or exactly this far
        duration = end
    else:  # a tail shorter than min_fill of a window may have been dropped: trust the stated length
        duration = max(end, float(stated or 0.0))
    return WindowEmbeddings(z=z, starts=starts, window_s=float(window_s), overlap_s=float(overlap_s),
                            duration=duration, source=source, zq=zq, quiet_db=quiet_db)


# ============================================================================= 3. clustering
@dataclass
class Clustering:
    """``labels`` (N,) numbered by first appearance (cluster 0 is heard first), ``centroids``
    (k, D), ``silhouettes`` {k: mean silhouette} of the candidates tried, ``method``:
    ``"given"``, ``"silhouette"`` or ``"single"`` (one cluster, with ``reason``)."""

    labels: np.ndarray
    centroids: np.ndarray
    k: int
    method: str
    silhouettes: dict[int, float] = field(default_factory=dict)
    reason: str = ""


def _kmeans(z: np.ndarray, k: int, seed: int, n_init: int) -> np.ndarray:
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=k, random_state=seed, n_init=n_init).fit_predict(z.astype(np.float64))


def _by_first_appearance(labels: np.ndarray) -> np.ndarray:
    """Renumber labels so that cluster 0 appears first in time, 1 next, ..."""
    _, first = np.unique(labels, return_index=True)
    order = np.unique(labels)[np.argsort(first)]
    remap = np.empty(labels.max() + 1, np.int64)
    remap[order] = np.arange(len(order))
    return remap[labels]


def longest_run(mask: np.ndarray) -> int:
    """Length of the longest run of consecutive True values."""
    idx = np.flatnonzero(mask)
    if len(idx) == 0:
        return 0
    breaks = np.flatnonzero(np.diff(idx) > 1)
    edges = np.concatenate([[-1], breaks, [len(idx) - 1]])
    return int(np.diff(edges).max())


def merge_transient(z: np.ndarray, labels: np.ndarray, min_run: int) -> tuple[np.ndarray, int]:
    """Windows of *transient* clusters -- clusters that never last ``min_run`` consecutive
    windows, e.g. the windows straddling a change of sound, which are mixtures of two sounds and
    can form a tight cluster of their own -- are given to the nearest lasting cluster
    (centroid distance). Returns the labels and the number of clusters merged away (0 when
    every cluster lasts, or none does)."""
    labels = np.asarray(labels).copy()
    if min_run <= 1:
        return labels, 0
    ks = np.unique(labels)
    bad = [c for c in ks if longest_run(labels == c) < min_run]
    good = [c for c in ks if c not in bad]
    if not bad or not good:
        return labels, 0
    cent = np.stack([z[labels == c].mean(0) for c in good])  # (G, D)
    move = np.isin(labels, bad)
    d = ((z[move][:, None] - cent[None]) ** 2).sum(-1)  # (M, G)
    labels[move] = np.asarray(good)[d.argmin(1)]
    return labels, len(bad)


def relative_spread(z: np.ndarray) -> float:
    """RMS distance of the embeddings to their mean over their RMS norm (0: all identical)."""
    z = np.asarray(z, np.float64)
    den = np.sqrt((z ** 2).sum(1).mean())
    return float(np.sqrt(((z - z.mean(0)) ** 2).sum(1).mean()) / den) if den > 0 else 0.0


def cluster_embeddings(z: np.ndarray, k: int | None = None, k_max: int = 8, seed: int = 0, n_init: int = 4,
                       min_silhouette: float = 0.25, min_spread: float = 0.05, min_run: int = 1,
                       silhouette_sample: int = 2000) -> Clustering:
    """k-means of the window embeddings ``z`` (N, D), in time order. See the module docs.

    ``k``: the number of clusters (clamped to the number of distinct embeddings; used as
    given), or None to choose it: one cluster when the :func:`relative_spread` of the windows
    is below ``min_spread``; else, for each k of ``2..k_max``, k-means, then transient clusters
    (no run of ``min_run`` consecutive windows, :func:`merge_transient`) merged into lasting
    ones, scored by the mean silhouette; the best wins unless it is below ``min_silhouette``
    (then one cluster). The resulting ``k`` is the number of clusters left."""
    from sklearn.metrics import silhouette_score

    z = np.asarray(z, np.float64)
    n = len(z)
    if n == 0:
        raise ValueError("no windows to cluster")
    n_distinct = len(np.unique(z.round(6), axis=0))
    sil: dict[int, float] = {}
    reason = ""

    def single(reason: str) -> Clustering:
        return Clustering(np.zeros(n, np.int64), z.mean(0, keepdims=True).astype(np.float32), 1, "single", sil, reason)

    if k is not None:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        k = min(int(k), n_distinct)
        if k == 1:
            return single("k=1 given" if n_distinct > 1 else "all windows have the same embedding")
        labels, method = _kmeans(z, k, seed, n_init), "given"
    else:
        if k_max < 2:
            raise ValueError(f"k_max must be >= 2, got {k_max}")
        hi = min(k_max, n_distinct, n - 1)
        if hi < 2:
            return single(f"too few windows ({n}) or distinct embeddings ({n_distinct}) to compare clusterings")
        spread = relative_spread(z)
        if spread < min_spread:
            return single(f"relative spread {spread:.4f} < min_spread {min_spread}")
        fits = {}
        sample = silhouette_sample if n > silhouette_sample else None
        merged = {}
        for kk in range(2, hi + 1):
            lab, merged[kk] = merge_transient(z, _kmeans(z, kk, seed, n_init), min_run)
            if len(np.unique(lab)) < 2:
                continue
            fits[kk] = lab
            sil[kk] = float(silhouette_score(z, lab, sample_size=sample, random_state=seed))
        if not sil:
            return single("k-means found one cluster only")
        best = max(sil, key=lambda kk: (sil[kk], -kk))  # ties: the smaller k
        if sil[best] < min_silhouette:
            return single(f"best silhouette {sil[best]:.3f} (k={best}) < min_silhouette {min_silhouette}")
        labels, method = fits[best], "silhouette"
        if merged[best]:
            reason = f"k-means k={best}, {merged[best]} transient cluster(s) merged"
    labels = _by_first_appearance(np.asarray(labels))
    k = int(labels.max()) + 1
    cent = np.stack([z[labels == c].mean(0) for c in range(k)]).astype(np.float32)
    return Clustering(labels, cent, k, method, sil, reason)


# ============================================================================= 4. representatives, ranges
def choose_representatives(z: np.ndarray, labels: np.ndarray, centroids: np.ndarray,
                           how: str = "nearest") -> tuple[np.ndarray, np.ndarray | None]:
    """One embedding per cluster: ``"nearest"`` (the member nearest the centroid; returns the
    (k, D) embeddings and their (k,) window indices) or ``"centroid"`` (returns the centroids
    and None). See the module docs for the choice."""
    z = np.asarray(z, np.float32)
    if how == "centroid":
        return np.asarray(centroids, np.float32), None
    if how != "nearest":
        raise ValueError(f"representative must be 'nearest' or 'centroid', got {how!r}")
    idx = []
    for c in range(len(centroids)):
        members = np.flatnonzero(labels == c)
        d = np.linalg.norm(z[members] - centroids[c], axis=1)
        idx.append(int(members[np.argmin(d)]))  # ties: the earliest window
    idx = np.asarray(idx, np.int64)
    return z[idx], idx


SOUND_MAX_DIST = 0.35  # cosine distance at which the average-linkage tree of cluster mean sounds is cut
OBJECT_WEIGHT = 1.0  # guidance weight of a cluster's object-only picture (object_groups)
OBJECT_MAX_DIST = 0.15  # cosine distance at which the average-linkage tree of object pictures is cut


def cosine_distances(v: np.ndarray) -> np.ndarray:
    """(k, k) cosine distances between the rows of ``v`` (0 on the diagonal, clipped to [0, 2])."""
    v = np.asarray(v, np.float64)
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    d = np.clip(1.0 - v @ v.T, 0.0, 2.0)
    np.fill_diagonal(d, 0.0)
    return d


def cut_tree(d: np.ndarray, max_dist: float) -> np.ndarray:
    """Groups of the average-linkage tree of the (k, k) distances ``d`` cut at ``max_dist``:
    (k,) group ids numbered by first appearance (the group of item 0 is 0)."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    d = np.asarray(d, np.float64)
    if len(d) < 2:
        return np.zeros(len(d), np.int64)
    g = fcluster(linkage(squareform(d, checks=False), "average"), max_dist, "distance")
    first = {}
    for gg in g:  # items are in order of first appearance: so are the groups
        first.setdefault(int(gg), len(first))
    return np.asarray([first[int(gg)] for gg in g], np.int64)


def sound_distances(z: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """(k, k) cosine distances between the clusters' mean sounds: the mean of each cluster's
    window embeddings, each scaled to unit length first (so loud and quiet windows weigh alike)."""
    z = np.asarray(z, np.float64)
    labels = np.asarray(labels)
    zn = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    return cosine_distances(np.stack([zn[labels == c].mean(0) for c in range(k)]))


def sound_groups(z: np.ndarray, labels: np.ndarray, k: int,
                 max_dist: float = SOUND_MAX_DIST) -> tuple[np.ndarray, np.ndarray]:
    """Which clusters hold the same source, heard in different places: ``(groups, d)``, the
    (k,) group ids numbered by first appearance and the (k, k) :func:`sound_distances`.

    The encoder hears a place's ambience as well as the object, so k-means puts one source
    heard in two places into two clusters; their mean sounds stay closer to each other than to
    another source's. An average-linkage tree of the clusters' mean sounds (cosine distance) cut
    at ``max_dist`` gives the groups. Needs only the window embeddings: no generator call,
    any profile."""
    if k < 2:
        return np.zeros(max(k, 1), np.int64), np.zeros((max(k, 1), max(k, 1)))
    d = sound_distances(z, labels, k)
    return cut_tree(d, max_dist), d


def object_groups(backbones, z: np.ndarray, zq: np.ndarray, labels: np.ndarray, k: int, seed: int = 0,
                  weight: float = OBJECT_WEIGHT, max_dist: float = OBJECT_MAX_DIST) -> np.ndarray:
    """Which clusters show the same object, judged by pictures (``final="object"``; the
    default :func:`sound_groups` compares sounds instead): (k,) group ids, numbered by first
    appearance (the group of cluster 0 is 0).

    Per cluster, an *object-only picture* is drawn by composed guidance from the mean of its
    windows' embeddings ``z`` minus the mean of the same windows turned down (``zq``: the
    object fades first, the ambience stays; the same cancellation as
    :func:`s2i.generate.mix_conditions`), every cluster from the same noise; the frozen image
    encoder embeds it, minus the embedding of the unconditional picture from that noise. An
    average-linkage tree of these vectors (cosine distance) cut at ``max_dist`` gives the
    groups. Toy/smoke generator only (composed guidance)."""
    from .generate import compose_generate

    labels = np.asarray(labels)
    if k < 2:
        return np.zeros(max(k, 1), np.int64)
    if zq is None or len(zq) != len(z):
        raise ValueError("object_groups needs zq: the windows embedded turned down (window_embeddings(quiet_db=...))")
    import torch

    zc = torch.from_numpy(np.stack([z[labels == c].mean(0) for c in range(k)]).astype(np.float32))
    qc = torch.from_numpy(np.stack([zq[labels == c].mean(0) for c in range(k)]).astype(np.float32))
    obj = compose_generate(backbones, [zc, qc], [weight, -weight], seed=seed, shared_noise=True)
    base = compose_generate(backbones, [zc[:1]], [0.0], seed=seed, shared_noise=True)
    e = (backbones.encode_images(obj).float() - backbones.encode_images(base).float()).numpy()
    return cut_tree(cosine_distances(e), max_dist)


def final_cluster(sizes: np.ndarray, groups: np.ndarray | None = None, dist: np.ndarray | None = None) -> int:
    """The final thumbnail's cluster, from the group with the most windows (``groups``:
    :func:`sound_groups` or :func:`object_groups`; None: every cluster is its own group, i.e.
    simply the largest cluster). Within that group: with ``dist`` (the (k, k) distances the
    groups were cut from), the cluster at its centre -- the smallest mean distance to the
    group's members, weighted by their sizes -- so that a cluster of another source that the
    cut let in (a false merge) is not chosen just because it is the largest; without, the
    group's largest cluster. Ties: the earliest cluster."""
    sizes = np.asarray(sizes)
    if groups is None:
        return int(np.argmax(sizes))
    groups = np.asarray(groups)
    tot = np.bincount(groups, weights=sizes)
    best = int(np.argmax(tot))
    members = np.flatnonzero(groups == best)
    if dist is None:
        return int(members[np.argmax(sizes[members])])
    w = sizes[members].astype(np.float64)
    spread = np.asarray(dist, np.float64)[np.ix_(members, members)] @ w / w.sum()
    return int(members[np.argmin(spread)])


def time_ranges(starts: np.ndarray, labels: np.ndarray, cluster: int, window_s: float,
                duration: float) -> list[list[float]]:
    """The time ranges [start, end] (s) that ``cluster`` covers: runs of consecutive windows
    merged, each from its first window's start to its last window's end (clipped to
    ``duration``). With overlapping windows, neighbouring ranges of different clusters share
    ``overlap_s`` seconds."""
    idx = np.flatnonzero(np.asarray(labels) == cluster)
    if len(idx) == 0:
        return []
    breaks = np.flatnonzero(np.diff(idx) > 1)
    firsts = np.concatenate([[idx[0]], idx[breaks + 1]])
    lasts = np.concatenate([idx[breaks], [idx[-1]]])
    return [[round(float(starts[a]), 3), round(float(min(starts[b] + window_s, duration)), 3)]
            for a, b in zip(firsts, lasts)]


def _union_length(ranges: list[list[float]]) -> float:
    """Seconds covered by time-ordered ranges that may overlap (runs one window apart overlap
    when the windows overlap by more than half)."""
    total, end = 0.0, -math.inf
    for a, b in ranges:
        total += max(0.0, b - max(a, end))
        end = max(end, b)
    return total


def _fmt_t(t: float) -> str:
    t = int(round(t))
    h, rem = divmod(t, 3600)
    return f"{h}:{rem // 60:02d}:{rem % 60:02d}" if h else f"{rem // 60}:{rem % 60:02d}"


# ============================================================================= 5. the result and its files
@dataclass
class ThumbnailResult:
    """Everything :func:`make_thumbnails` found. ``images`` (k, H, W, 3) uint8 in cluster
    order (first appearance); ``clusters``: one dict per cluster (id, size, share, seconds,
    first_start, ranges, representative_window/time, group: see ``final_rule``); ``final``: the final
    thumbnail's cluster (``final_rule``); ``largest``: the largest cluster."""

    images: np.ndarray
    clusters: list[dict]
    final: int
    windows: WindowEmbeddings
    clustering: Clustering
    representatives: np.ndarray  # (k, D) the embeddings the thumbnails were drawn from
    representative: str
    seed: int
    files: dict = field(default_factory=dict)
    final_rule: str = "largest"
    largest: int = 0

    @property
    def k(self) -> int:
        return self.clustering.k

    @property
    def labels(self) -> np.ndarray:
        return self.clustering.labels

    @property
    def starts(self) -> np.ndarray:
        return self.windows.starts

    @property
    def final_image(self) -> np.ndarray:
        return self.images[self.final]

    def captions(self) -> list[str]:
        out = []
        for c in self.clusters:
            r = c["ranges"]
            more = f" +{len(r) - 1}" if len(r) > 1 else ""
            star = " *" if c["id"] == self.final else ""
            out.append(f"#{c['id']} {100 * c['share']:.0f}%{star}\n{_fmt_t(r[0][0])}-{_fmt_t(r[0][1])}{more}")
        return out

    def report(self) -> dict:
        """The JSON report (also written by :meth:`save`)."""
        w, cl = self.windows, self.clustering
        return dict(
            source=w.source, duration_s=round(w.duration, 3), window_s=w.window_s, overlap_s=w.overlap_s,
            hop_s=round(w.window_s - w.overlap_s, 6), n_windows=int(len(w.starts)), embed_dim=int(w.z.shape[1]),
            k=cl.k, k_method=cl.method, k_reason=cl.reason,
            silhouettes={str(k): round(v, 4) for k, v in cl.silhouettes.items()},
            representative=self.representative, seed=self.seed, order="first appearance in time",
            final_cluster=self.final, final_rule=self.final_rule, largest_cluster=self.largest,
            final_thumbnail=self.files.get("final"),
            contact_sheet=self.files.get("contact_sheet"), slideshow=self.files.get("slideshow"),
            clusters=[dict(c, thumbnail=self.files.get("thumbnails", [None] * self.k)[c["id"]])
                      for c in self.clusters],
        )

    def save(self, out_dir: str | os.PathLike, scale: int | None = None, frame_ms: int = 1200) -> dict:
        """Write, atomically, into ``out_dir``: ``thumb_XX.png`` (one per cluster),
        ``contact_sheet.png`` and ``slideshow.gif`` (clusters in order of first appearance,
        captioned with share and time range; the final one starred), ``final.png`` and
        ``thumbnails.json`` (:meth:`report`; file names relative to ``out_dir``). Images are
        upscaled ``scale`` x (nearest; default: to at least 128 px). Returns the report."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        scale = scale or _auto_scale(self.images.shape[1])
        big = self.images.repeat(scale, 1).repeat(scale, 2)
        thumbs = []
        for c in range(self.k):
            name = f"thumb_{c:02d}.png"
            _save_png(out / name, big[c])
            thumbs.append(name)
        _save_png(out / "final.png", big[self.final])
        caps = self.captions()
        _save_png(out / "contact_sheet.png", contact_sheet(self.images, caps, scale=scale, final=self.final))
        frames = [_captioned(big[c], caps[c], final=c == self.final) for c in range(self.k)]
        _save_gif(out / "slideshow.gif", frames, frame_ms)
        self.files = dict(thumbnails=thumbs, final="final.png", contact_sheet="contact_sheet.png",
                          slideshow="slideshow.gif", report="thumbnails.json")
        rep = self.report()
        write_json(out / "thumbnails.json", rep)
        return rep


def _auto_scale(h: int, target: int = 128) -> int:
    return max(1, math.ceil(target / max(h, 1)))


def _save_png(path: Path, img: np.ndarray) -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img)).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())


def _save_gif(path: Path, frames: list[np.ndarray], frame_ms: int) -> None:
    """Animated GIF, looping; one frame per thumbnail (frames differ by their captions, so
    PIL never merges two of them)."""
    from PIL import Image

    ims = [Image.fromarray(f) for f in frames]
    buf = io.BytesIO()
    ims[0].save(buf, format="GIF", save_all=True, append_images=ims[1:], duration=int(frame_ms), loop=0,
                disposal=1)
    atomic_write_bytes(path, buf.getvalue())


def _captioned(img: np.ndarray, caption: str, final: bool = False, line_h: int = 12) -> np.ndarray:
    """``img`` with ``caption`` (one or two lines) written under it; a gold frame if ``final``."""
    from PIL import Image, ImageDraw

    h, w = img.shape[:2]
    lines = caption.split("\n")
    pad = 3
    canvas = Image.new("RGB", (w + 2 * pad, h + 2 * pad + line_h * len(lines) + 2),
                       (255, 200, 0) if final else (255, 255, 255))
    canvas.paste(Image.fromarray(img), (pad, pad))
    d = ImageDraw.Draw(canvas)
    d.rectangle([0, h + 2 * pad, canvas.width, canvas.height], fill=(255, 255, 255))
    for i, line in enumerate(lines):
        d.text((pad, h + 2 * pad + 1 + i * line_h), line, fill=(0, 0, 0))
    return np.asarray(canvas)


def contact_sheet(images: np.ndarray, captions: Sequence[str] | None = None, scale: int = 4,
                  ncol: int | None = None, final: int | None = None) -> np.ndarray:
    """uint8 (k, H, W, 3) thumbnails -> one captioned sheet (row-major, ``ncol`` columns,
    default up to 6), upscaled ``scale`` x with nearest neighbour; ``final`` gets a gold frame."""
    k = len(images)
    captions = list(captions) if captions is not None else [f"#{i}" for i in range(k)]
    tiles = [_captioned(images[i].repeat(scale, 0).repeat(scale, 1), captions[i], final=i == final)
             for i in range(k)]
    ncol = ncol or min(k, 6)
    nrow = math.ceil(k / ncol)
    th, tw = tiles[0].shape[:2]
    gap = 4
    sheet = np.full((nrow * (th + gap) + gap, ncol * (tw + gap) + gap, 3), 255, np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, ncol)
        sheet[gap + r * (th + gap):gap + r * (th + gap) + th, gap + c * (tw + gap):gap + c * (tw + gap) + tw] = t
    return sheet


# ============================================================================= the whole method
def make_thumbnails(s2i, audio: str | os.PathLike | np.ndarray, sr: int | None = None, window_s: float = 2.0,
                    overlap_s: float = 1.0, k: int | None = None, k_max: int = 8, seed: int = 0, batch: int = 32,
                    representative: str = "nearest", min_silhouette: float = 0.25, min_spread: float = 0.05,
                    min_run: int | None = None, n_init: int = 4,
                    guidance: float | None = None, steps: int | None = None, min_fill: float = 0.5,
                    out_dir: str | os.PathLike | None = None, progress: bool = False,
                    windows: WindowEmbeddings | None = None, final: str = "sound",
                    sound_max_dist: float = SOUND_MAX_DIST, object_weight: float = OBJECT_WEIGHT,
                    object_max_dist: float = OBJECT_MAX_DIST) -> ThumbnailResult:
    """Thumbnails of a sound (claims 18-21): windows -> embeddings -> k-means -> one generated
    image per cluster, in order of first appearance; the final one is from the source heard
    longest, the clusters that hold the same source counted together (``final``).

    Args:
        s2i: a :class:`s2i.generate.Sound2Image` (audio encoder + generator).
        audio: a file path (any format PyAV reads; streamed) or an array (needs ``sr``).
        window_s, overlap_s: T and N of the patent: windows of T s overlapping by N s.
        k: number of clusters; None chooses it by silhouette over 2..``k_max``.
        seed: k-means ``random_state``, silhouette sample and the generator's noise.
        batch: windows embedded per encoder call (memory: ``batch`` windows).
        representative: ``"nearest"`` (member nearest the centroid) or ``"centroid"``.
        min_silhouette, min_spread: below either the sound is one cluster (see the module docs).
        min_run: a cluster must last this many consecutive windows, else it is merged into the
            nearest lasting one (automatic k only); default ``max(2, ceil(T / hop))``: longer
            than the windows that straddle one change of sound.
        guidance, steps: passed to the generator (defaults: the generator's config).
        out_dir: if given, :meth:`ThumbnailResult.save` writes the files there.
        windows: precomputed :func:`window_embeddings` (then ``audio`` is not read; with
            ``final="object"`` they need ``zq``: ``quiet_db=AMBIENCE_DB``).
        final: ``"sound"`` (default): the clusters are grouped by their mean sounds
            (:func:`sound_groups`, cut at ``sound_max_dist``), the group with the most windows
            wins, and the cluster at its centre gives the final thumbnail (:func:`final_cluster`);
            any profile. ``"object"``: grouped by object-only pictures instead
            (:func:`object_groups`, ``object_weight``, ``object_max_dist``), the group's largest
            cluster; falls back to ``"largest"`` with a generator that has no composed guidance
            (the full profile), as ``final_rule`` then says. ``"largest"``: the largest cluster,
            whatever it shows.
    """
    from .generate import AMBIENCE_DB

    if final not in ("sound", "object", "largest"):
        raise ValueError(f"final must be 'sound', 'object' or 'largest', got {final!r}")
    gen = getattr(s2i.backbones, "generator", None)
    grouping = final == "object" and getattr(gen, "decoder", None) is not None
    w = windows if windows is not None else window_embeddings(
        s2i, audio, sr=sr, window_s=window_s, overlap_s=overlap_s, batch=batch, min_fill=min_fill, progress=progress,
        quiet_db=AMBIENCE_DB if grouping else None)
    if grouping and w.zq is None:
        raise ValueError("final='object' needs windows embedded turned down too: "
                         "window_embeddings(..., quiet_db=s2i.generate.AMBIENCE_DB)")
    if min_run is None:
        min_run = max(2, math.ceil(w.window_s / (w.window_s - w.overlap_s) - 1e-9))
    cl = cluster_embeddings(w.z, k=k, k_max=k_max, seed=seed, n_init=n_init, min_silhouette=min_silhouette,
                            min_spread=min_spread, min_run=min_run)
    reps, rep_idx = choose_representatives(w.z, cl.labels, cl.centroids, representative)
    import torch

    images = s2i.backbones.generate(torch.from_numpy(reps), n_per=1, guidance=guidance, steps=steps, seed=seed)
    images = np.asarray(images, np.uint8)
    sizes = np.bincount(cl.labels, minlength=cl.k)
    groups = dist = None
    if final == "sound":
        groups, dist = sound_groups(w.z, cl.labels, cl.k, max_dist=sound_max_dist)
        rule = f"sound: the central cluster of the sound group with the most windows (cut {sound_max_dist})"
    elif grouping:  # depends on the windows and the clustering only, not on the representative
        key = (cl.labels.tobytes(), cl.k, seed, object_weight, object_max_dist)
        if key not in w._groups:
            w._groups[key] = object_groups(s2i.backbones, w.z, w.zq, cl.labels, cl.k, seed=seed,
                                           weight=object_weight, max_dist=object_max_dist)
        groups = w._groups[key]
        rule = f"object: the largest cluster of the object group with the most windows (cut {object_max_dist})"
    elif final == "object":
        rule = "largest: the largest cluster (object grouping needs a generator with composed guidance)"
    else:
        rule = "largest: the largest cluster"
    clusters = []
    for c in range(cl.k):
        ranges = time_ranges(w.starts, cl.labels, c, w.window_s, w.duration)
        clusters.append(dict(
            id=c, size=int(sizes[c]), share=round(float(sizes[c] / len(cl.labels)), 4),
            seconds=round(_union_length(ranges), 3), first_start=ranges[0][0], ranges=ranges,
            representative_window=None if rep_idx is None else int(rep_idx[c]),
            representative_time=None if rep_idx is None else round(float(w.starts[rep_idx[c]]), 3),
            group=None if groups is None else int(groups[c])))
    res = ThumbnailResult(images=images, clusters=clusters, final=final_cluster(sizes, groups, dist), windows=w,
                          clustering=cl, representatives=reps, representative=representative, seed=seed,
                          final_rule=rule, largest=int(np.argmax(sizes)))
    if out_dir is not None:
        res.save(out_dir)
    return res


# ============================================================================= toy programmes
# Seeds. Training data draws its clip seeds from SeedSequence([world_seed, i]) (uint32, < 2**32;
# audio rng = seed + 7919) and the pretrain stills from small integers, so every training seed is
# < 2**33. A programme segment's sound uses seed PROGRAMME_SEED_BASE + seed * 2**20 + i >= 2**40:
# it can never be a training seed (numpy hashes the whole integer into its SeedSequence).
PROGRAMME_SEED_BASE = 2 ** 40
_MAX_SEGMENTS = 2 ** 20
_PLAN_TAG = 0x7087  # the plan (classes, durations, order) is drawn from default_rng([_PLAN_TAG, seed])


def segment_seed(seed: int, i: int) -> int:
    """The sound seed of segment ``i`` of programme ``seed`` (>= 2**40, see above)."""
    if not 0 <= i < _MAX_SEGMENTS or seed < 0:
        raise ValueError(f"segment index {i} / seed {seed} out of range")
    return PROGRAMME_SEED_BASE + int(seed) * _MAX_SEGMENTS + int(i)


@dataclass
class Segment:
    """One stretch of a programme: class ``cls`` (index or name; None = background ambience
    only) over background ``background`` for ``duration`` s, at linear ``gain`` (the loudness
    law's gain = radius / R_MAX), with timbre ``pitch``/``rate``."""

    cls: int | str | None
    background: int | str = 0
    duration: float = 10.0
    gain: float = 0.8
    pitch: float = 1.0
    rate: float = 1.0


@dataclass
class Programme:
    """A long toy sound with its ground-truth timeline. Audio is rendered segment by segment
    (:meth:`iter_audio`), so a programme of any length can be streamed to disk."""

    seed: int
    segments: list[Segment]
    sr: int = SR
    fade_s: float = 0.01  # raised-cosine fade in/out of each segment (no clicks)

    def n_samples(self, i: int) -> int:
        return int(round(self.segments[i].duration * self.sr))

    @property
    def total_samples(self) -> int:
        return sum(self.n_samples(i) for i in range(len(self.segments)))

    @property
    def duration(self) -> float:
        return self.total_samples / self.sr

    @property
    def timeline(self) -> list[dict]:
        """One row per segment: start, end (s, exact sample times), cls, name, background, gain."""
        rows, a = [], 0
        for i, s in enumerate(self.segments):
            n = self.n_samples(i)
            c = None if s.cls is None else world.class_index(s.cls)
            b = world.background_index(s.background)
            rows.append(dict(start=a / self.sr, end=(a + n) / self.sr, cls=c,
                             name=None if c is None else world.CLASSES[c], background=b,
                             background_name=world.BACKGROUNDS[b], gain=float(s.gain)))
            a += n
        return rows

    def class_seconds(self) -> dict[int, float]:
        """Seconds each class is heard."""
        out: dict[int, float] = {}
        for r in self.timeline:
            if r["cls"] is not None:
                out[r["cls"]] = out.get(r["cls"], 0.0) + r["end"] - r["start"]
        return out

    def present_classes(self, min_share: float = 0.1) -> list[int]:
        """Classes heard at least ``min_share`` of the time."""
        return sorted(c for c, s in self.class_seconds().items() if s >= min_share * self.duration)

    def longest_class(self) -> int | None:
        cs = self.class_seconds()
        return max(cs, key=lambda c: (cs[c], -c)) if cs else None

    def segment_audio(self, i: int) -> np.ndarray:
        s = self.segments[i]
        n = self.n_samples(i)
        objs = [] if s.cls is None else [world.SceneObject(s.cls, gain=float(s.gain))]
        x = world.render_sound(world.Scene(s.background, objs), n / self.sr, sr=self.sr,
                               seed=segment_seed(self.seed, i), pitch=s.pitch, rate=s.rate)[:n]
        f = min(int(self.fade_s * self.sr), n // 2)
        if f > 1:
            ramp = (0.5 - 0.5 * np.cos(np.pi * (np.arange(f) + 0.5) / f)).astype(np.float32)  # never exactly 0
            x[:f] *= ramp
            x[-f:] *= ramp[::-1]
        return x

    def iter_audio(self) -> Iterator[np.ndarray]:
        """The audio, one segment at a time (float32 mono at ``sr``)."""
        for i in range(len(self.segments)):
            yield self.segment_audio(i)

    def audio(self) -> np.ndarray:
        """The whole programme in memory (use :meth:`iter_audio` or :func:`write_programme`
        for long ones)."""
        return np.concatenate(list(self.iter_audio())) if self.segments else np.zeros(0, np.float32)


def _as_segment(s) -> Segment:
    if isinstance(s, Segment):
        return s
    if isinstance(s, dict):
        return Segment(**s)
    return Segment(*s)


def make_programme(seed: int = 0, duration_s: float = 120.0, segments: Sequence | None = None,
                   n_classes: int | None = None, min_share: float = 0.12, min_margin: float = 1.2,
                   max_segment_s: float = 60.0, min_segment_s: float = 5.0, sr: int = SR) -> Programme:
    """A toy "programme": a long sound assembled from segments of known classes and
    backgrounds, with its ground-truth timeline.

    With ``segments`` (``Segment``, ``(cls, background, duration[, gain, pitch, rate])`` or
    dicts) the programme is exactly those. Otherwise a plan is drawn from ``seed``:
    ``n_classes`` distinct classes (default 2-4), each heard a share of ``duration_s`` of at
    least ``min_share`` and with one clear winner (the longest class is ``min_margin`` x the
    second), split into segments of ``min_segment_s``..``max_segment_s`` seconds (so classes
    recur) in random order, each over a random background at a gain in [0.6, 1] with the
    training clips' timbre jitter (+-4 %). Memory when rendering is bounded by the longest
    segment, whatever ``duration_s``. Sound seeds never collide with training seeds
    (:func:`segment_seed`)."""
    if segments is not None:
        segs = [_as_segment(s) for s in segments]
        for s in segs:
            if s.duration <= 0:
                raise ValueError(f"segment duration must be positive, got {s.duration}")
        return Programme(seed=int(seed), segments=segs, sr=sr)
    rng = np.random.default_rng([_PLAN_TAG, int(seed)])
    C = len(world.CLASSES)
    m = int(n_classes) if n_classes is not None else int(rng.integers(2, 5))
    if not 1 <= m <= C:
        raise ValueError(f"n_classes must be in 1..{C}, got {m}")
    if m * min_share > 1:
        raise ValueError(f"{m} classes cannot each have a share >= {min_share}")
    classes = rng.choice(C, size=m, replace=False)
    shares = None
    for _ in range(10000):
        p = np.sort(rng.dirichlet(np.full(m, 2.0)))[::-1]
        if p.min() >= min_share and (m == 1 or p[0] >= min_margin * p[1]):
            shares = p
            break
    if shares is None:  # deterministic fallback: linearly decreasing shares
        shares = np.arange(m, 0, -1, dtype=np.float64)
        shares /= shares.sum()
    pieces = []
    for c, share in zip(classes, shares):
        total = share * duration_s
        lo = max(1, math.ceil(total / max_segment_s))
        hi = max(lo, int(total // min_segment_s))
        n = int(rng.integers(lo, min(hi, lo + 2) + 1))  # 0-2 extra pieces: classes recur
        w = rng.uniform(0.8, 1.2, size=n)
        lens = total * w / w.sum()
        if lens.max() > max_segment_s:
            lens = np.full(n, total / n)
        pieces += [(int(c), float(round(L, 2))) for L in lens]
    order = rng.permutation(len(pieces))
    segs = []
    for j in order:
        c, L = pieces[j]
        segs.append(Segment(cls=c, background=int(rng.integers(len(world.BACKGROUNDS))), duration=L,
                            gain=float(rng.uniform(0.6, 1.0)), pitch=float(rng.uniform(0.96, 1.04)),
                            rate=float(rng.uniform(0.96, 1.04))))
    return Programme(seed=int(seed), segments=segs, sr=sr)


def write_programme(programme: Programme, path: str | os.PathLike) -> Path:
    """Stream a programme to an audio file, segment by segment (memory: one segment).
    The format follows the suffix: ``.flac`` (FLAC), ``.wav`` (16-bit PCM), ``.ogg``/``.opus``
    (Opus), ``.mp3``, ``.m4a`` (AAC). Written to a temporary name, then renamed."""
    import av
    from fractions import Fraction

    path = Path(path)
    kinds = {".flac": ("flac", "flac"), ".wav": ("wav", "pcm_s16le"), ".ogg": ("ogg", "libopus"),
             ".opus": ("ogg", "libopus"), ".mp3": ("mp3", "libmp3lame"), ".m4a": ("ipod", "aac")}
    if path.suffix.lower() not in kinds:
        raise ValueError(f"{path}: unsupported suffix {path.suffix!r} (use one of {sorted(kinds)})")
    fmt, codec = kinds[path.suffix.lower()]
    sr = programme.sr
    if codec == "libopus" and sr not in (8000, 12000, 16000, 24000, 48000):
        raise ValueError(f"{path}: Opus needs 8/12/16/24/48 kHz, programme is {sr} Hz")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        with av.open(str(tmp), "w", format=fmt) as c:
            st = c.add_stream(codec, rate=sr, layout="mono")
            pts, hop = 0, 4096
            for x in programme.iter_audio():
                x = np.clip(x, -1, 1).astype(np.float32)
                for a in range(0, len(x), hop):
                    fr = av.AudioFrame.from_ndarray(np.ascontiguousarray(x[None, a:a + hop]), format="fltp",
                                                    layout="mono")
                    fr.sample_rate, fr.pts, fr.time_base = sr, pts, Fraction(1, sr)
                    pts += fr.samples
                    for pkt in st.encode(fr):
                        c.mux(pkt)
            for pkt in st.encode():
                c.mux(pkt)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    return path


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


def evaluate_thumbnails(result: ThumbnailResult, programme: Programme, judge=None,
                        min_share: float = 0.1) -> dict:
    """Score thumbnails of a programme against its timeline.

    * ``cluster_purity``: share of windows whose true class (the class heard longest in the
      window) is their cluster's majority true class.
    * ``class_coverage``: share of the classes heard >= ``min_share`` of the time that have a
      thumbnail the judge says shows them (the judge's ``top_class``).
    * ``final_pick_correct``: the judge's ``top_class`` of the final thumbnail is the class
      heard longest.
    * ``largest_pick_correct``: the same for the largest cluster's thumbnail (the final pick
      without object grouping; equal to ``final_pick_correct`` when the final is the largest).
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
    out = dict(n_windows=int(len(labels)), k=int(result.k), n_classes=len(present), classes=present,
               longest_class=longest, cluster_majority=majority,
               cluster_purity=pure / len(labels),
               cluster_coverage=float(np.mean([c in majority for c in present])) if present else None,
               final_cluster_correct=bool(majority[result.final] == longest),
               largest_cluster_correct=bool(majority[result.largest] == longest),
               thumbnail_classes=None, class_coverage=None, final_pick_correct=None, largest_pick_correct=None)
    if judge is not None:
        top = [int(t) for t in judge.report(result.images)["top_class"]]
        out.update(thumbnail_classes=top,
                   class_coverage=float(np.mean([c in top for c in present])) if present else None,
                   final_pick_correct=bool(top[result.final] == longest),
                   largest_pick_correct=bool(top[result.largest] == longest))
    return out


def programme_durations(n: int, min_minutes: float, max_minutes: float) -> np.ndarray:
    """(n,) durations in seconds, evenly spaced from ``min_minutes`` to ``max_minutes``
    (a programme set that spans the lengths thumbnails are meant for, e.g. 1-10 minutes)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not 0 < min_minutes <= max_minutes:
        raise ValueError(f"need 0 < min_minutes <= max_minutes, got {min_minutes}, {max_minutes}")
    return np.linspace(min_minutes, max_minutes, n) * 60.0


def evaluate_programmes(s2i, seeds: Sequence[int], duration_s: float | Sequence[float] = 120.0,
                        representatives=("nearest",), progress: bool = False, **thumb_kw) -> tuple[list[dict], dict]:
    """Build the programme of each seed (``duration_s``: one length for all, or one per seed,
    e.g. :func:`programme_durations`), make its thumbnails (the windows are embedded, and
    any object pictures drawn, once and reused for every ``representatives`` choice) and score
    them with the judge. Every programme counts the same in the means, whatever its length.

    Returns ``(rows, summary)``: one row per (programme, representative) and, per
    representative, the means of the metrics over programmes."""
    from tqdm.auto import tqdm

    from .generate import AMBIENCE_DB

    judge = getattr(s2i.backbones, "judge", None)
    keys = ("cluster_purity", "class_coverage", "final_pick_correct", "cluster_coverage", "final_cluster_correct",
            "largest_pick_correct", "largest_cluster_correct")
    wkw = {k: thumb_kw.pop(k) for k in ("window_s", "overlap_s", "batch", "min_fill") if k in thumb_kw}
    if thumb_kw.get("final", "sound") == "object":
        wkw["quiet_db"] = AMBIENCE_DB
    seeds = list(seeds)
    durations = np.asarray(duration_s, np.float64)
    if durations.ndim == 0:
        durations = np.full(len(seeds), float(durations))
    if len(durations) != len(seeds):
        raise ValueError(f"{len(durations)} durations for {len(seeds)} programmes")
    rows = []
    for seed, dur in tqdm(list(zip(seeds, durations)), desc="programmes", disable=not progress):
        prog = make_programme(seed, float(dur))
        win = window_embeddings(s2i, prog.audio(), sr=prog.sr, **wkw)
        for rep in representatives:
            res = make_thumbnails(s2i, None, windows=win, representative=rep, **thumb_kw)
            row = dict(programme=int(seed), representative=rep, duration_s=prog.duration,
                       **evaluate_thumbnails(res, prog, judge))
            rows.append(row)
    summary = {}
    for rep in representatives:
        rs = [r for r in rows if r["representative"] == rep]
        summary[rep] = {k: (float(np.mean([float(r[k]) for r in rs if r[k] is not None]))
                            if any(r[k] is not None for r in rs) else None) for k in keys}
        summary[rep]["k_equals_n_classes"] = float(np.mean([r["k"] == r["n_classes"] for r in rs]))
    return rows, summary
