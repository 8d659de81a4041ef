"""Clustering of window embeddings and the choice of each cluster's representative (claim 20,
patent fig. 15 S900-S1000).

k-means (Lloyd's algorithm from greedy k-means++ seeds, the best of ``n_init`` runs by inertia,
as scikit-learn's ``KMeans`` does; seeded) in the raw Z^A space with the Euclidean metric, the
metric the alignment was trained with. k-means and the silhouette are written here in numpy and
checked against scikit-learn's in the tests: importing scikit-learn costs a long-sound job about
120 MB of memory (it pulls in SciPy's and pandas' libraries), a tenth of its peak.

``k`` is given, or chosen by the mean silhouette over ``k = 2..k_max``. The silhouette is
scale-free, so the sound is **one cluster** when the windows' relative spread is below
``min_spread``, when the best silhouette is below
``min_silhouette`` (Kaufman & Rousseeuw's "no substantial structure"), or when there are fewer
than three windows or two distinct embeddings. With automatic k, a cluster that never lasts
``min_run`` consecutive windows (windows straddling a change of sound) is merged into the
nearest lasting cluster. The representative is the member nearest its centroid (``"nearest"``,
a window really heard) or the centroid itself (``"centroid"``)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


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


def _sq_dists(x: np.ndarray, c: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """(N, K) squared Euclidean distances of rows ``x`` to rows ``c`` (``xx``: the rows' squared norms)."""
    return np.maximum(xx[:, None] - 2.0 * (x @ c.T) + (c * c).sum(1)[None], 0.0)


def _kmeans_pp(x: np.ndarray, xx: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Greedy k-means++ seeds (Arthur & Vassilvitskii 2007): each next centre is the best of
    ``2 + log k`` candidates drawn in proportion to the squared distance to the nearest centre."""
    trials = 2 + int(np.log(k))
    centres = [x[rng.integers(len(x))]]
    d2 = _sq_dists(x, centres[0][None], xx)[:, 0]
    for _ in range(1, k):
        total = d2.sum()
        if total <= 0:  # every point is already a centre: any point will do
            cand = rng.integers(len(x), size=trials)
        else:
            cand = np.searchsorted(np.cumsum(d2), rng.uniform(size=trials) * total).clip(max=len(x) - 1)
        d_cand = np.minimum(d2[None], _sq_dists(x, x[cand], xx).T)  # (trials, N)
        best = int(d_cand.sum(1).argmin())
        centres.append(x[cand[best]])
        d2 = d_cand[best]
    return np.stack(centres)


def kmeans(z: np.ndarray, k: int, seed: int = 0, n_init: int = 4, max_iter: int = 300, tol: float = 1e-4) -> np.ndarray:
    """(N,) labels of k-means on ``z`` (N, D): ``n_init`` runs of Lloyd's algorithm from greedy
    k-means++ seeds, the run of least inertia kept. A run stops when the centres move less than
    ``tol`` times the data's mean variance (scikit-learn's criterion) or after ``max_iter``
    steps. An emptied cluster gets the point farthest from its centre."""
    x = np.asarray(z, np.float64)
    if not 1 <= k <= len(x):
        raise ValueError(f"k must be in [1, {len(x)}], got {k}")
    xx = (x * x).sum(1)
    stop = tol * float(x.var(0).mean())
    rng = np.random.default_rng(seed)
    best_labels, best_inertia = None, np.inf
    for _ in range(n_init):
        c = _kmeans_pp(x, xx, k, rng)
        for _ in range(max_iter):
            d = _sq_dists(x, c, xx)
            labels = d.argmin(1)
            counts = np.bincount(labels, minlength=k)
            new = np.eye(k)[labels].T @ x  # (k, D): each cluster's sum
            if (counts == 0).any():  # each emptied cluster takes the point farthest from its own centre
                own = d[np.arange(len(x)), labels]
                for j in np.flatnonzero(counts == 0):
                    far = int(own.argmax())
                    new[j], counts[j], own[far] = x[far], 1, -1.0
            new /= counts[:, None]
            shift = float(((new - c) ** 2).sum())
            c = new
            if shift <= stop:
                break
        d = _sq_dists(x, c, xx)
        labels = d.argmin(1)
        inertia = float(d[np.arange(len(x)), labels].sum())
        if inertia < best_inertia:
            best_labels, best_inertia = labels, inertia
    return best_labels


def silhouette(z: np.ndarray, labels: np.ndarray, sample: int | None = None, seed: int = 0, chunk: int = 256) -> float:
    """Mean silhouette (Rousseeuw 1987), Euclidean: for each point, ``(b - a) / max(a, b)`` with
    ``a`` its mean distance to the rest of its cluster and ``b`` the least mean distance to
    another cluster (0 for a point alone in its cluster). ``sample``: computed on that many
    points drawn without replacement (seeded), as scikit-learn's ``sample_size``."""
    x, lab = np.asarray(z, np.float64), np.asarray(labels)
    if sample is not None and sample < len(x):
        keep = np.random.default_rng(seed).permutation(len(x))[:sample]
        x, lab = x[keep], lab[keep]
    ks, lab = np.unique(lab, return_inverse=True)
    if not 2 <= len(ks) <= len(x) - 1:
        raise ValueError(f"the silhouette needs 2 to n - 1 clusters, got {len(ks)} for {len(x)} points")
    xx = (x * x).sum(1)
    onehot = np.eye(len(ks))[lab]  # (N, K)
    sums = np.empty((len(x), len(ks)))  # summed distance of each point to each cluster
    for i in range(0, len(x), chunk):  # a few MB of distances at a time
        d = np.sqrt(_sq_dists(x[i : i + chunk], x, xx[i : i + chunk]))
        d[np.arange(len(d)), np.arange(i, i + len(d))] = 0.0  # rounding can leave a point off itself
        sums[i : i + chunk] = d @ onehot
    size = onehot.sum(0)
    own = size[lab]
    a = sums[np.arange(len(x)), lab] / np.maximum(own - 1, 1)
    other = np.where(onehot > 0, np.inf, sums / size[None])
    b = other.min(1)
    s = np.where(own > 1, (b - a) / np.maximum(np.maximum(a, b), 1e-300), 0.0)
    return float(s.mean())


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
    den = np.sqrt((z**2).sum(1).mean())
    return float(np.sqrt(((z - z.mean(0)) ** 2).sum(1).mean()) / den) if den > 0 else 0.0


def cluster_embeddings(
    z: np.ndarray,
    k: int | None = None,
    k_max: int = 8,
    seed: int = 0,
    n_init: int = 4,
    min_silhouette: float = 0.25,
    min_spread: float = 0.05,
    min_run: int = 1,
    silhouette_sample: int = 2000,
) -> Clustering:
    """k-means of the window embeddings ``z`` (N, D), in time order. See the module docs.

    ``k``: the number of clusters (clamped to the number of distinct embeddings; used as
    given), or None to choose it: one cluster when the :func:`relative_spread` of the windows
    is below ``min_spread``; else, for each k of ``2..k_max``, k-means, then transient clusters
    (no run of ``min_run`` consecutive windows, :func:`merge_transient`) merged into lasting
    ones, scored by the mean silhouette; the best wins unless it is below ``min_silhouette``
    (then one cluster). The resulting ``k`` is the number of clusters left."""
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
        labels, method = kmeans(z, k, seed, n_init), "given"
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
            lab, merged[kk] = merge_transient(z, kmeans(z, kk, seed, n_init), min_run)
            if len(np.unique(lab)) < 2:
                continue
            fits[kk] = lab
            sil[kk] = silhouette(z, lab, sample, seed)
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
def choose_representatives(
    z: np.ndarray, labels: np.ndarray, centroids: np.ndarray, how: str = "nearest"
) -> tuple[np.ndarray, np.ndarray | None]:
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
