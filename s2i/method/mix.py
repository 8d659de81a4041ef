"""Several sound sources in one picture (claims 13-14).

Each source, at its own gain, is embedded on its own and gives its own terms of composed
guidance, so the objects stay distinct and each is drawn at the size its own level implies.
Each source is one plain term (:data:`SOURCE_WEIGHT` of the generator's own guidance scale,
``compose_guidance``), acting in its own band of the picture (side by side), and predicted on a
view of the picture centred on that band, so that its object is drawn in the middle of its band
(MultiDiffusion's windows on a fixed canvas); each image is the best of :data:`MIX_CANDIDATES`
by the frozen image encoder. The place can instead be one term of its own (the mixture turned
down by :data:`AMBIENCE_DB`), each source's object its embedding minus the same source turned
down (``ambience_db``: the earlier design, kept for comparison).
Design and measurements: ``docs/decisions/mixing.md``."""

from __future__ import annotations

import numpy as np
import torch

from s2i.backbones.base import require_composition

AMBIENCE_DB = -20.0  # a recording turned down this much: the object is gone, its place's ambience is not


REGION_SOFTNESS = 2.0  # px: width of the sigmoid edge between the regions of composed guidance terms


BAND_SOFTNESS = 1.0  # px: the edge between two sources' bands (2 px blurred the objects across it: decisions/mixing.md)


BAND_SPLIT = "columns"  # the sources' bands lie side by side: a view centred on one keeps the horizon level


MIX_CANDIDATES = 4  # a mix draws this many candidates per image and keeps the one nearest every source


SOURCE_WEIGHT = 0.4  # each source's term, alone in its band: this fraction of compose_guidance (2 of the toy's 5)


BAND_LEAST = 0.25  # a source's band is at least this share of the picture's width, however soft it is


def source_widths(audio: list[np.ndarray], least: float = BAND_LEAST) -> np.ndarray:
    """(K,) each source's share of the picture's width, as its level says: proportional to
    its RMS (the loudness law makes an object's radius proportional to its sound's amplitude,
    so a louder source's object needs a wider band), each share at least ``least`` (at most
    1 / K: many sources share the picture equally) and at most ``1 - (K - 1) * least``,
    summing to 1. Sources of one level share the picture equally."""
    if not audio:
        raise ValueError("no sources to share the picture")
    rms = np.array([float(np.sqrt(np.mean(np.square(np.asarray(a, np.float64))))) for a in audio])
    k = len(rms)
    least = min(float(least), 1.0 / k)
    share = rms / rms.sum() if rms.sum() > 0 else np.full(k, 1.0 / k)
    share = np.clip(share, least, 1.0 - (k - 1) * least)
    return share / share.sum()


def _shape(size: int | tuple[int, int]) -> tuple[int, int]:
    """A picture's (H, W) from its side (square) or its (H, W)."""
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def soft_span(length: int, start: float | None, end: float | None, softness: float = REGION_SOFTNESS) -> torch.Tensor:
    """(length,) float32 along one side of a picture: 1 between the pixel positions ``start``
    and ``end`` (None: no edge there, the span reaches the picture's border), 0 outside, with
    sigmoid edges ``softness`` px wide (pixel i at position i + 0.5)."""
    x = torch.arange(length, dtype=torch.float32) + 0.5
    past_start = torch.ones(length) if start is None else torch.sigmoid((x - start) / softness)
    past_end = torch.zeros(length) if end is None else torch.sigmoid((x - end) / softness)
    return past_start - past_end


def band_regions(
    n: int,
    size: int | tuple[int, int],
    seed: int = 0,
    softness: float = REGION_SOFTNESS,
    split: str = "any",
    widths=None,
) -> torch.Tensor:
    """``n`` soft regions that tile a ``size`` x ``size`` image (or an (H, W) one: ``size`` a
    pair): bands side by side (``split="columns"``), stacked (``"rows"``) or either (``"any"``,
    drawn from ``seed``), in an order drawn from ``seed``; region ``i`` takes the share
    ``widths[i]`` of the bands' axis (None: equal shares); sigmoid edges ``softness`` px wide;
    they sum to 1 at every pixel. (n, H, W) float32; ``n == 1``: the whole image."""
    if n < 1:
        raise ValueError(f"need at least one region, got {n}")
    if split not in ("any", "columns", "rows"):
        raise ValueError(f"unknown split {split!r} (any, columns, rows)")
    h, w = _shape(size)
    if n == 1:
        return torch.ones(1, h, w)
    rng = np.random.default_rng([0x5E61, int(seed)])
    vertical = bool(rng.integers(2))  # True: stacked bands (the band index varies down the rows)
    if split != "any":
        vertical = split == "rows"
    order = rng.permutation(n)  # region i lies at position order[i]
    length = h if vertical else w  # the bands' axis
    if widths is None:
        cut = [length * j / n for j in range(1, n)]
    else:
        share = np.asarray(widths, np.float64)
        if share.shape != (n,) or (share <= 0).any() or abs(share.sum() - 1.0) > 1e-6:
            raise ValueError(f"band widths must be {n} positive shares summing to 1, got {widths}")
        cut = [float(c) for c in np.cumsum(share[np.argsort(order)])[:-1] * length]  # between positions, px
    edges = [None] + cut + [None]
    bands = torch.stack([soft_span(length, edges[j], edges[j + 1], softness) for j in range(n)])[order]  # (n, length)
    return (bands[:, :, None].expand(n, h, w) if vertical else bands[:, None, :].expand(n, h, w)).contiguous()


def mix_term_masks(
    n_sources: int,
    ambience_db: float | None,
    size: int | tuple[int, int],
    seed: int = 0,
    softness: float = BAND_SOFTNESS,
    split: str = "columns",
    widths=None,
) -> torch.Tensor:
    """Spatial masks (K, H, W) for the terms of :func:`mix_conditions` (same order), ``size``
    the picture's side or (H, W): the place term everywhere, each source's terms in its own
    band (:func:`band_regions`; side by side by default: a picture's horizon runs across it, so
    a view centred on a band of columns keeps its sky above its ground), source ``i``'s band
    the share ``widths[i]`` of the picture (None: equal; :func:`source_widths`)."""
    bands = band_regions(n_sources, size, seed, softness, split, widths)
    masks = [] if ambience_db is None else [torch.ones(*_shape(size))]
    for b in bands:
        masks += [b] if ambience_db is None else [b, b]
    return torch.stack(masks)


def compose_mix(
    backbones,
    conds: list[torch.Tensor],
    weights: list[float],
    n: int = 1,
    seed: int = 0,
    place_term: bool = False,
    regions: bool = True,
    candidates: int = MIX_CANDIDATES,
    steps: int | None = None,
    size: tuple[int, int] | None = None,
    centred: bool = True,
    widths=None,
) -> np.ndarray:
    """Draw ``n`` images of a mix from the terms of :func:`mix_conditions` (``conds`` (1, D)
    each; ``place_term``: they start with the place's term, as with ``ambience_db``): each
    source's terms in its own band (``regions``, :func:`mix_term_masks`; source ``i``'s the
    share ``widths[i]`` of the picture, None: equal), predicted on a view centred on that band
    (``centred``, with ``regions``; :func:`s2i.models.sampler.sample`), each image the best of
    ``candidates`` (:func:`pick_nearest_sources`). ``size``: the pictures' (H, W), one the
    generator draws (:meth:`~s2i.backbones.base.Backbones.drawing_size`); default its square."""
    return compose_mixes(
        backbones,
        [conds],
        weights,
        n,
        seed,
        place_term,
        regions,
        candidates,
        steps,
        size,
        centred,
        None if widths is None else [widths],
    )


def compose_mixes(
    backbones,
    mixes: list[list[torch.Tensor]],
    weights: list[float],
    n: int = 1,
    seed: int = 0,
    place_term: bool = False,
    regions: bool = True,
    candidates: int = MIX_CANDIDATES,
    steps: int | None = None,
    size: tuple[int, int] | None = None,
    centred: bool = True,
    widths: list | None = None,
) -> np.ndarray:
    """:func:`compose_mix` for several mixes at once, in the sampler's batches: ``mixes`` holds
    each mix's terms (the same number of terms each, sharing ``weights``); mix ``m``'s bands
    are drawn from ``seed + m``, their widths ``widths[m]`` (None: equal), the starting noise of
    all from ``seed``. Returns (len(mixes) * n, H, W, 3), grouped by mix; one mix gives exactly
    :func:`compose_mix`'s images."""
    require_composition(backbones, "mixing")
    if candidates < 1:
        raise ValueError(f"candidates must be at least 1, got {candidates}")
    if not mixes or any(len(c) != len(weights) for c in mixes):
        raise ValueError(f"every mix needs {len(weights)} terms, one per weight; got {[len(c) for c in mixes]}")
    if widths is not None and len(widths) != len(mixes):
        raise ValueError(f"{len(mixes)} mixes but {len(widths)} lists of band widths")
    per = n * candidates  # images drawn per mix
    masks = None
    if regions:
        shape = backbones.image_size if size is None else size
        ambience = AMBIENCE_DB if place_term else None
        n_src = (len(weights) - 1) // 2 if place_term else len(weights)
        masks = torch.cat(
            [
                mix_term_masks(
                    n_src, ambience, shape, seed + m, split=BAND_SPLIT, widths=None if widths is None else widths[m]
                )[:, None].expand(-1, per, -1, -1)
                for m in range(len(mixes))
            ],
            dim=1,
        )  # (K, len(mixes) * per, H, W)
        if len(mixes) == 1:
            masks = masks[:, 0]  # one mix: the same masks for every item
    conds = [torch.cat([c[k].reshape(1, -1).repeat(per, 1) for c in mixes]) for k in range(len(weights))]
    centred = centred and masks is not None
    images = backbones.compose(conds, weights, seed=seed, steps=steps, masks=masks, size=size, centred=centred)
    if candidates == 1:
        return images
    picked = []
    for m, c in enumerate(mixes):
        sources = c[1::2] if place_term else c  # each source's own embedding, at its gain
        picked.append(pick_nearest_sources(backbones, images[m * per : (m + 1) * per], torch.cat(sources), candidates))
    return np.concatenate(picked)


def pick_nearest_sources(backbones, images: np.ndarray, sources: torch.Tensor, candidates: int) -> np.ndarray:
    """Rerank candidates (as DALL-E 2 reranks its samples with CLIP): ``images`` (N * candidates,
    H, W, 3), in groups of ``candidates`` consecutive images, -> the N images each nearest all of
    ``sources`` (K, D): the one whose image-encoder embedding has the highest *smallest* cosine
    similarity to the K sources' embeddings, so a picture that shows only some of the sources
    loses to one that shows them all. Uses the frozen image encoder only (never the judge);
    its effect is measured in ``docs/decisions/mixing.md``."""
    if len(images) % candidates:
        raise ValueError(f"{len(images)} images are not groups of {candidates} candidates")
    e = torch.nn.functional.normalize(backbones.encode_images(images).float(), dim=-1)
    z = torch.nn.functional.normalize(torch.as_tensor(sources).float(), dim=-1)
    score = (e @ z.T).min(dim=1).values.view(-1, candidates)  # (N, candidates)
    best = score.argmax(dim=1) + torch.arange(score.shape[0]) * candidates
    return images[best.numpy()]


def mix_conditions(
    embed,
    audio: list[np.ndarray],
    guidance: float,
    weight: float | None = None,
    ambience_db: float | None = None,
    ambience_weight: float | None = None,
    banded: bool = True,
) -> tuple[list[torch.Tensor], list[float]]:
    """Composed-guidance terms that put several sources (16 kHz mono arrays, already at their
    gains) into one picture; ``embed``: array -> (1, D) embedding.

    With ``ambience_db=None`` (default): one plain term per source at ``weight`` (default
    :data:`SOURCE_WEIGHT` x guidance when each source has a band of its own, ``banded``;
    guidance / K when the terms overlap over the whole picture).
    With ``ambience_db`` (the earlier design, compared in ``docs/decisions/mixing.md``): one
    term for the place -- the mixture turned down by ``ambience_db`` (no object drawn at that
    level, the ambience still heard), weight
    ``ambience_weight`` (default guidance / 2) -- and, per source, its embedding (+``weight``,
    default ``guidance``) minus the same source turned down (-``weight``): the source's object
    without its ambience. Summing plain per-source terms instead counts the shared ambience
    once per source: the background is over-guided and the objects crowd out
    (``docs/decisions/mixing.md``)."""
    K = len(audio)
    if ambience_db is None:
        if weight is None:
            weight = SOURCE_WEIGHT * guidance if banded else guidance / K
        return [embed(a) for a in audio], [weight] * K
    q = 10 ** (ambience_db / 20)
    w = weight if weight is not None else guidance
    conds = [embed(mix_audio(audio) * q)]
    weights = [ambience_weight if ambience_weight is not None else guidance / 2]
    for a in audio:
        conds += [embed(a), embed(a * q)]
        weights += [w, -w]
    return conds, weights


def mix_audio(sounds: list[np.ndarray], gains_db: list[float] | None = None) -> np.ndarray:
    """Sum mono 16 kHz sounds (zero-padded to the longest), each scaled by its gain in dB."""
    gains_db = gains_db or [0.0] * len(sounds)
    if len(gains_db) != len(sounds):
        raise ValueError(f"{len(sounds)} sounds but {len(gains_db)} gains")
    n = max(len(s) for s in sounds)
    out = np.zeros(n, np.float32)
    for s, g in zip(sounds, gains_db):
        out[: len(s)] += s * 10 ** (g / 20)
    return out
