"""Thumbnails of a long sound (claims 18-21, patent fig. 13-15).

    result = make_thumbnails(s2i, "programme.flac", window_s=2.0, overlap_s=1.0)
    result.save("out/")        # contact_sheet.png, slideshow.gif, final.png, thumbnails.json

Windows are embedded (:mod:`s2i.method.long_audio`), clustered (:mod:`s2i.method.clustering`),
and each cluster's representative is drawn by the generator (one call, ``seed``). Clusters are
numbered in order of their first appearance; the thumbnails are output in that order (contact
sheet and slideshow, "in sequence"). The **final thumbnail** comes from the source heard longest
(``final="sound"``, default): the encoder hears the place as well as the object, so one source
heard in two places can be two clusters; the clusters are grouped by their mean *object sounds*
(:func:`~s2i.method.long_audio.object_sound_samples`: a window's central encoder window minus
the same audio turned down by :data:`~s2i.method.mix.AMBIENCE_DB`, which keeps the object and
cancels the place, sampled in up to 512 windows spread over the sound; :func:`sound_groups`, an
average-linkage tree of cosine distances cut at :data:`SOUND_MAX_DIST`), the group with the
most windows wins, and its cluster at the centre (:func:`final_cluster`) gives the final
thumbnail. It needs only the audio encoder, so it works on every profile. ``final="largest"``
keeps the patent's plain rule (the largest cluster).
Design and measurements: ``docs/decisions/thumbnails.md``."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from s2i.method.clustering import Clustering, choose_representatives, cluster_embeddings, cosine_distances, cut_tree
from s2i.method.long_audio import WindowEmbeddings, window_embeddings
from s2i.method.mix import AMBIENCE_DB
from s2i.utils import write_json
from s2i.viz import auto_scale, captioned, contact_sheet, save_gif, save_png

SOUND_MAX_DIST = 0.4  # cosine distance at which the average-linkage tree of cluster object sounds is cut


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def sound_distances(
    z: np.ndarray,
    labels: np.ndarray,
    k: int,
    objects: np.ndarray | None = None,
    object_windows: np.ndarray | None = None,
) -> np.ndarray:
    """(k, k) cosine distances between the clusters' mean sounds: the mean of each cluster's
    windows, each scaled to unit length first (so loud and quiet windows weigh alike). With
    ``objects`` (M, D), the object sounds of the windows ``object_windows`` (M,)
    (:func:`~s2i.method.long_audio.object_sound_samples`: the place cancelled), the clusters'
    mean object sounds; a cluster none of whose windows was sampled is at distance 1 from
    every other (it groups with none). Without, the window embeddings as heard."""
    labels = np.asarray(labels)
    if objects is None:
        zn = _unit(z)
        return cosine_distances(np.stack([zn[labels == c].mean(0) for c in range(k)]))
    idx = np.asarray(object_windows)
    if np.ndim(objects) != 2 or idx.shape != (len(objects),) or (len(idx) and idx.max() >= len(labels)):
        raise ValueError(f"objects {np.shape(objects)} need one window index each, got {idx.shape}")
    on, lab = _unit(objects), labels[idx]
    # a cluster with no sampled window has a zero mean: at cosine distance 1 from every other
    return cosine_distances(
        np.stack([on[lab == c].mean(0) if (lab == c).any() else np.zeros(on.shape[1]) for c in range(k)])
    )


def sound_groups(
    z: np.ndarray,
    labels: np.ndarray,
    k: int,
    max_dist: float = SOUND_MAX_DIST,
    objects: np.ndarray | None = None,
    object_windows: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Which clusters hold the same source, heard in different places: ``(groups, d)``, the
    (k,) group ids numbered by first appearance and the (k, k) :func:`sound_distances`.

    The encoder hears a place's ambience as well as the object, so k-means puts one source
    heard in two places into two clusters. Their mean *object sounds* (``objects`` given: the
    place cancelled) stay close whatever the place; an average-linkage tree of the clusters'
    means (cosine distance) cut at ``max_dist`` gives the groups. :data:`SOUND_MAX_DIST` is
    tuned for object sounds; without ``objects`` the windows are compared as heard. Needs only
    the audio encoder: no generator call, any profile."""
    if k < 2:
        return np.zeros(max(k, 1), np.int64), np.zeros((max(k, 1), max(k, 1)))
    d = sound_distances(z, labels, k, objects, object_windows)
    return cut_tree(d, max_dist), d


def final_cluster(sizes: np.ndarray, groups: np.ndarray | None = None, dist: np.ndarray | None = None) -> int:
    """The final thumbnail's cluster, from the group with the most windows (``groups``:
    :func:`sound_groups`; None: every cluster is its own group, i.e.
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


def time_ranges(
    starts: np.ndarray, labels: np.ndarray, cluster: int, window_s: float, duration: float
) -> list[list[float]]:
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
    return [
        [round(float(starts[a]), 3), round(float(min(starts[b] + window_s, duration)), 3)]
        for a, b in zip(firsts, lasts)
    ]


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
            source=w.source,
            duration_s=round(w.duration, 3),
            window_s=w.window_s,
            overlap_s=w.overlap_s,
            hop_s=round(w.window_s - w.overlap_s, 6),
            n_windows=int(len(w.starts)),
            embed_dim=int(w.z.shape[1]),
            k=cl.k,
            k_method=cl.method,
            k_reason=cl.reason,
            silhouettes={str(k): round(v, 4) for k, v in cl.silhouettes.items()},
            representative=self.representative,
            seed=self.seed,
            order="first appearance in time",
            final_cluster=self.final,
            final_rule=self.final_rule,
            largest_cluster=self.largest,
            final_thumbnail=self.files.get("final"),
            contact_sheet=self.files.get("contact_sheet"),
            slideshow=self.files.get("slideshow"),
            clusters=[dict(c, thumbnail=self.files.get("thumbnails", [None] * self.k)[c["id"]]) for c in self.clusters],
        )

    def save(self, out_dir: str | os.PathLike, scale: int | None = None, frame_ms: int = 1200) -> dict:
        """Write, atomically, into ``out_dir``: ``thumb_XX.png`` (one per cluster),
        ``contact_sheet.png`` and ``slideshow.gif`` (clusters in order of first appearance,
        captioned with share and time range; the final one starred), ``final.png`` and
        ``thumbnails.json`` (:meth:`report`; file names relative to ``out_dir``). Images are
        upscaled ``scale`` x (nearest; default: to at least 128 px). Returns the report."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        scale = scale or auto_scale(self.images.shape[1])
        big = self.images.repeat(scale, 1).repeat(scale, 2)
        thumbs = []
        for c in range(self.k):
            name = f"thumb_{c:02d}.png"
            save_png(out / name, big[c])
            thumbs.append(name)
        save_png(out / "final.png", big[self.final])
        caps = self.captions()
        save_png(out / "contact_sheet.png", contact_sheet(self.images, caps, scale=scale, final=self.final))
        frames = [captioned(big[c], caps[c], final=c == self.final) for c in range(self.k)]
        save_gif(out / "slideshow.gif", frames, frame_ms)
        self.files = dict(
            thumbnails=thumbs,
            final="final.png",
            contact_sheet="contact_sheet.png",
            slideshow="slideshow.gif",
            report="thumbnails.json",
        )
        rep = self.report()
        write_json(out / "thumbnails.json", rep)
        return rep


# ============================================================================= the whole method
def thumbnail_windows(s2i, audio, final: str = "sound", **kw) -> WindowEmbeddings:
    """:func:`~s2i.method.long_audio.window_embeddings` of ``audio`` (``kw``: its arguments)
    with what the ``final`` rule reads: for ``"sound"``, the windows' object sounds
    (``quiet_db`` = :data:`~s2i.method.mix.AMBIENCE_DB`). Embed once, then give the result to
    :func:`make_thumbnails` as ``windows`` as often as needed."""
    return window_embeddings(s2i, audio, quiet_db=AMBIENCE_DB if final == "sound" else None, **kw)


def make_thumbnails(
    s2i,
    audio: str | os.PathLike | np.ndarray,
    sr: int | None = None,
    window_s: float = 2.0,
    overlap_s: float = 1.0,
    k: int | None = None,
    k_max: int = 8,
    seed: int = 0,
    batch: int = 32,
    representative: str = "nearest",
    min_silhouette: float = 0.25,
    min_spread: float = 0.05,
    min_run: int | None = None,
    n_init: int = 4,
    guidance: float | None = None,
    steps: int | None = None,
    min_fill: float = 0.5,
    out_dir: str | os.PathLike | None = None,
    progress: bool = False,
    windows: WindowEmbeddings | None = None,
    final: str = "sound",
    sound_max_dist: float = SOUND_MAX_DIST,
    candidates: int = 1,
) -> ThumbnailResult:
    """Thumbnails of a sound (claims 18-21): windows -> embeddings -> k-means -> one generated
    image per cluster, in order of first appearance; the final one is from the source heard
    longest, the clusters that hold the same source counted together (``final``).

    Args:
        s2i: a :class:`s2i.method.generate.Sound2Image` (audio encoder + generator).
        audio: a file path (any format PyAV reads; streamed) or an array (needs ``sr``).
        window_s, overlap_s: T and N of the patent: windows of T s overlapping by N s.
        k: number of clusters; None chooses it by silhouette over 2..``k_max``.
        seed: seeds k-means, the silhouette sample and the generator's noise.
        batch: windows embedded per encoder call (memory: ``batch`` windows).
        representative: ``"nearest"`` (member nearest the centroid) or ``"centroid"``.
        min_silhouette, min_spread: below either the sound is one cluster (see the module docs).
        min_run: a cluster must last this many consecutive windows, else it is merged into the
            nearest lasting one (automatic k only); default ``max(2, ceil(T / hop))``: longer
            than the windows that straddle one change of sound.
        guidance, steps: passed to the generator (defaults: the generator's config).
        candidates: each thumbnail is the best of this many drawings, each from its own sample
            of the embedding prior for the cluster's representative, the one the image encoder
            embeds nearest to the representative's sound embedding
            (:meth:`Sound2Image.draw_from_sounds`; 1: one drawing).
        out_dir: if given, :meth:`ThumbnailResult.save` writes the files there.
        windows: precomputed :func:`thumbnail_windows` for the same ``final`` (then ``audio``
            is not read).
        final: ``"sound"`` (default): the clusters are grouped by their mean object sounds
            (:func:`sound_groups`, cut at ``sound_max_dist``; windows embedded with
            ``quiet_db`` = :data:`~s2i.method.mix.AMBIENCE_DB`), the group with the most windows
            wins, and the cluster at its centre gives the final thumbnail (:func:`final_cluster`);
            any profile. ``"largest"``: the largest cluster, whatever it shows.
    """
    if final not in ("sound", "largest"):
        raise ValueError(f"final must be 'sound' or 'largest', got {final!r}")
    w = (
        windows
        if windows is not None
        else thumbnail_windows(
            s2i,
            audio,
            final,
            sr=sr,
            window_s=window_s,
            overlap_s=overlap_s,
            batch=batch,
            min_fill=min_fill,
            progress=progress,
        )
    )
    if final == "sound" and w.objects is None:
        raise ValueError(
            "final='sound' compares the windows' object sounds: give windows from thumbnail_windows "
            f"(window_embeddings(..., quiet_db={AMBIENCE_DB}))"
        )
    if min_run is None:
        min_run = max(2, math.ceil(w.window_s / (w.window_s - w.overlap_s) - 1e-9))
    cl = cluster_embeddings(
        w.z,
        k=k,
        k_max=k_max,
        seed=seed,
        n_init=n_init,
        min_silhouette=min_silhouette,
        min_spread=min_spread,
        min_run=min_run,
    )
    reps, rep_idx = choose_representatives(w.z, cl.labels, cl.centroids, representative)
    import torch

    images = s2i.draw_from_sounds(torch.from_numpy(reps), 1, candidates, seed, guidance=guidance, steps=steps)[0]
    images = np.asarray(images, np.uint8)
    sizes = np.bincount(cl.labels, minlength=cl.k)
    groups = dist = None
    if final == "sound":
        groups, dist = sound_groups(w.z, cl.labels, cl.k, sound_max_dist, w.objects, w.object_windows)
        rule = f"sound: the central cluster of the object-sound group with the most windows (cut {sound_max_dist})"
    else:
        rule = "largest: the largest cluster"
    clusters = []
    for c in range(cl.k):
        ranges = time_ranges(w.starts, cl.labels, c, w.window_s, w.duration)
        clusters.append(
            dict(
                id=c,
                size=int(sizes[c]),
                share=round(float(sizes[c] / len(cl.labels)), 4),
                seconds=round(_union_length(ranges), 3),
                first_start=ranges[0][0],
                ranges=ranges,
                representative_window=None if rep_idx is None else int(rep_idx[c]),
                representative_time=None if rep_idx is None else round(float(w.starts[rep_idx[c]]), 3),
                group=None if groups is None else int(groups[c]),
            )
        )
    res = ThumbnailResult(
        images=images,
        clusters=clusters,
        final=final_cluster(sizes, groups, dist),
        windows=w,
        clustering=cl,
        representatives=reps,
        representative=representative,
        seed=seed,
        final_rule=rule,
        largest=int(np.argmax(sizes)),
    )
    if out_dir is not None:
        res.save(out_dir)
    return res
