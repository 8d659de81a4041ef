"""Editing an image or a video with a sound (claims 9-12, 15-16).

Mechanism: the heard object drawn into the input and kept where it differs from the same sound
turned down. The input image is noised part-way (``strength``, SDEdit) and drawn twice from the
same noise inside a **region**, outside which every denoising step's prediction is the input
itself (blended diffusion): once under the sound's embedding, once under the embedding of the
same recording turned down by ``ambience_db`` (default -20 dB: the object is no longer drawn at
that level; with an embedding prior, its sample from other prior noise,
:data:`REFERENCE_SEED_OFFSET`, so that what the second drawing still draws at that level seldom
matches the first's object in colour and shape). A recording also carries the ambience of the
place it was made, which the audio encoder turns into a background, so the first drawing paints
the region as the sound's place *and* draws the object; the second paints nearly the same place
without the object. The pixels
whose colour differs from every pixel near them in the second drawing are the object
(:func:`object_mask`, in the spirit of DiffEdit's mask from two conditions, Couairon et al.
2023; "near" leaves out the halo of the place around the object), and the edit is the first
drawing there and the input everywhere else (:func:`object_edit`): the object at the size its
loudness implies, the input's scene -- its place and its own objects -- kept around it.
``ambience_db=None`` keeps the whole region as drawn under the sound. ``candidates`` > 1 draws
each edit from several seeds and keeps the one whose change points most along what the sound
adds (:func:`edit_direction_score`).

The **region** (default ``"centre"``: a centred rectangle of :data:`CENTRE_FRACTION` of each
side, soft-edged; ``"half"``: the left or right half, which one drawn from ``seed``; or any
(H, W) mask) holds the largest object a loud sound draws; ``region="all"`` is the whole picture.
Design and measurements: ``docs/decisions/editing.md``.

Videos: :mod:`s2i.method.video_edit`, every frame edited this way.

Pictures of any shape: the generator draws at :meth:`~s2i.backbones.base.Backbones.drawing_size`
of the input -- the full profile at the input's aspect, the toy generator its 32x32 square -- so
an image is edited whole (full) or in its centre square (toy).
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F

from s2i.backbones.base import require_composition
from s2i.media import fit_resize, square_resize
from s2i.method.generate import Sound2Image, candidate_seeds
from s2i.method.mix import AMBIENCE_DB, REGION_SOFTNESS, band_regions, soft_span
from s2i.models.audio_encoder import SR
from s2i.toyworld import world

EDIT_STRENGTH = 0.9  # how far the input is noised
EDIT_W_SOUND_PER_GUIDANCE = 0.4  # the sound's term's weight, in units of the generator's own guidance scale
EDIT_W_IMAGE = 0.0  # the input image's own term: none (the scene is kept by the region and the object's mask)
OBJECT_THRESHOLD = 0.15  # a pixel is the object's where the two drawings differ by more (any channel, of 1)
OBJECT_GROW = 1 / 32  # the object's mask grown by this share of the picture's shorter side (1 px of the toy's 32)
OBJECT_REACH = 1 / 16  # a pixel is the object's if it differs from every reference pixel this near (2 px of 32)
REACH_SIDE = 64  # px: the reach is read on the drawings shrunk to at most this shorter side (full: 768 px)
REFERENCE_SEED_OFFSET = 7777  # the reference drawing's sample of the embedding prior: from seed + this


def default_w_sound(backbones, guidance: float | None = None) -> float:
    """The sound's guidance weight when none is given: :data:`EDIT_W_SOUND_PER_GUIDANCE` times
    ``guidance``, by default the generator's own scale (``backbones.compose_guidance``, whatever
    ``sampling.guidance`` sets for plain drawings; toy: 2 at guidance 5, chosen by the strict
    read of an added object, the scene kept around it and the volume Spearman on editing draws
    that are not the reported one; ``docs/decisions/editing.md``)."""
    return EDIT_W_SOUND_PER_GUIDANCE * float(backbones.compose_guidance if guidance is None else guidance)


def edit_embeddings(s2i: Sound2Image, z_loud: torch.Tensor, z_quiet: torch.Tensor | None, seed: int):
    """What an edit drawn from ``seed`` draws from: the embedding prior's sample of a sound's
    Z^A ``z_loud`` ((N, D): one sound, or a video's frames, every row from the same prior noise),
    and of the same sound turned down, ``z_quiet``, from other prior noise (``seed`` +
    :data:`REFERENCE_SEED_OFFSET`: what the reference still draws seldom matches the object in
    colour and shape); ``(loud, None)`` for a ``z_quiet`` of None. Without a prior, the Z^A
    themselves (:meth:`Sound2Image.image_embeddings`)."""
    loud = s2i.image_embeddings(z_loud, 1, seed, shared=True)
    quiet = None if z_quiet is None else s2i.image_embeddings(z_quiet, 1, seed + REFERENCE_SEED_OFFSET, shared=True)
    return loud, quiet


CENTRE_FRACTION = 0.75  # the centre region's share of each side: the frame around it is kept


def centre_region(
    size: int | tuple[int, int], fraction: float = CENTRE_FRACTION, softness: float = REGION_SOFTNESS
) -> torch.Tensor:
    """(H, W) in [0, 1]: a centred rectangle ``fraction`` of each side of a ``size`` picture (its
    side, or its (H, W)), with sigmoid edges ``softness`` px wide."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"the centre region's fraction must be in (0, 1], got {fraction}")
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    h_span, w_span = (
        soft_span(n, n * (1 - fraction) / 2, n * (1 + fraction) / 2, softness).clamp(0, 1) for n in (h, w)
    )
    return torch.outer(h_span, w_span)


def edit_region(region, size: int | tuple[int, int], seed: int = 0) -> torch.Tensor | None:
    """The region an edit may change, (H, W) in [0, 1] for a picture of ``size`` (its side, or
    its (H, W)): ``"centre"`` -- a soft centred rectangle, :data:`CENTRE_FRACTION` of each side
    (:func:`centre_region`; the frame around it, sky, ground and edges of the scene, is kept);
    a number in (0, 1] -- the same centred rectangle, that share of each side (the videos':
    :data:`~s2i.method.video_edit.VIDEO_REGION`); ``"half"`` -- the soft left or right half of
    the picture, drawn from ``seed`` (:func:`s2i.method.mix.band_regions`; a side by side split
    keeps a whole cross-section of the scene as it was); ``"all"`` / None -- the whole picture
    (returns None); or an array (H, W) in [0, 1]. Measured in ``docs/decisions/editing.md``."""
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if region is None or (isinstance(region, str) and region == "all"):
        return None
    if isinstance(region, (int, float)) and not isinstance(region, bool):
        return centre_region((h, w), float(region))
    if isinstance(region, str):
        if region == "centre":
            return centre_region((h, w))
        if region != "half":
            raise ValueError(
                f"unknown edit region {region!r}: 'centre', a share of each side, 'half', 'all' or a ({h}, {w}) mask"
            )
        return band_regions(2, size, seed, split="columns")[0]
    m = torch.as_tensor(np.asarray(region, np.float32))
    if m.shape != (h, w) or not bool(((m >= 0) & (m <= 1)).all()):
        raise ValueError(f"an edit region mask must be ({h}, {w}) with values in [0, 1], got {tuple(m.shape)}")
    return m


def compose_edit(
    backbones,
    z_image: torch.Tensor | None,
    conds: list[torch.Tensor],
    weights: list[float],
    init_images: np.ndarray,
    w_image: float,
    seed: int = 0,
    strength: float = EDIT_STRENGTH,
    region="centre",
    steps: int | None = None,
    shared_noise: bool = False,
    size: tuple[int, int] | None = None,
) -> np.ndarray:
    """One drawing of an edit under composed guidance: the image's term (``z_image``,
    ``w_image``; none at weight 0) everywhere, the sound's terms (``conds``, ``weights``) inside
    ``region`` (:func:`edit_region`), outside which the input is kept; SDEdit from
    ``init_images`` (N, H, W, 3). Drawn at ``size`` (H, W), one the generator draws
    (:meth:`~s2i.backbones.base.Backbones.drawing_size`); default its square ``image_size``."""
    require_composition(backbones, "editing")
    rg = edit_region(region, backbones.image_size if size is None else size, seed)
    image = [z_image] if w_image else []
    masks = None if rg is None else torch.stack([torch.ones_like(rg)] * len(image) + [rg] * len(conds))
    return backbones.compose(
        image + conds,
        [w_image] * len(image) + weights,
        seed=seed,
        steps=steps,
        init_images=init_images,
        strength=strength,
        shared_noise=shared_noise,
        masks=masks,
        region=rg,
        size=size,
    )


def read_rgb(image: np.ndarray | str | os.PathLike) -> np.ndarray:
    """An RGB(A) image (array or file path) -> uint8 (H, W, 3); ValueError naming a bad file."""
    if isinstance(image, (str, os.PathLike)):
        from PIL import Image, UnidentifiedImageError

        try:
            image = np.asarray(Image.open(image).convert("RGB"))
        except (FileNotFoundError, UnidentifiedImageError, OSError) as e:
            raise ValueError(f"{image}: cannot read image ({e})") from None
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] not in (3, 4):
        raise ValueError(f"expected an RGB image (H, W, 3), got shape {img.shape}")
    return img[..., :3].astype(np.uint8)


def prepare_image(image: np.ndarray | str | os.PathLike, size: int | tuple[int, int] = world.IMG) -> np.ndarray:
    """Any RGB image (array or file path) -> uint8 (size, size, 3), or (H, W, 3) for ``size`` =
    (H, W): centre crop to that aspect + resize."""
    img = read_rgb(image)
    if isinstance(size, int):
        return square_resize(img, size)
    return fit_resize(img, int(size[0]), int(size[1]))


def object_mask(
    drawn: np.ndarray,
    reference: np.ndarray,
    region: torch.Tensor | None = None,
    threshold: float = OBJECT_THRESHOLD,
    grow: float = OBJECT_GROW,
    reach: float = OBJECT_REACH,
) -> np.ndarray:
    """(N, H, W) float32 in [0, 1]: the object that ``drawn`` holds and ``reference`` does not
    (uint8 (N, H, W, 3) each, drawn from the same noise): the pixels whose colour differs by
    more than ``threshold`` (of 1, in some channel) from every pixel of the reference within
    ``reach`` of the shorter side (:func:`unexplained_difference`; 0: from the reference's pixel
    at the same place), grown by ``grow`` of the shorter side (at least 1 px), their edge
    softened over as many pixels, and limited to ``region`` ((H, W) in [0, 1]; None: anywhere).

    The reach keeps out the halo a drawn object leaves in the place around it (darker or lighter
    than the reference's place at that very pixel, but the colour of its place a pixel or two
    away), which the judge reads as an object of its own; an object's colour is nowhere near."""
    if drawn.shape != reference.shape or drawn.ndim != 4:
        raise ValueError(f"drawings of one shape (N, H, W, 3) needed, got {drawn.shape} and {reference.shape}")
    m = torch.from_numpy(unexplained_difference(drawn, reference, reach) > threshold).float()[:, None]
    g = max(1, round(grow * min(m.shape[-2:])))
    m = F.max_pool2d(m, 2 * g + 1, 1, g)
    m = F.avg_pool2d(F.pad(m, (g, g, g, g), mode="replicate"), 2 * g + 1, 1)
    if region is not None:
        m = m * torch.as_tensor(region, dtype=torch.float32)
    return m[:, 0].numpy()


def unexplained_difference(drawn: np.ndarray, reference: np.ndarray, reach: float = OBJECT_REACH) -> np.ndarray:
    """(N, H, W) float32: per pixel of ``drawn``, the least difference (the largest of the three
    channels', of 1) between its colour and that of any ``reference`` pixel within ``reach`` of
    the shorter side (a square window, at least 1 px; ``reach`` 0: the pixel at the same place).
    Drawings larger than :data:`REACH_SIDE` on their shorter side are compared shrunk to it
    (area filter) and the result enlarged back (nearest), so the window's cost does not grow
    with the picture."""
    a = torch.from_numpy(drawn).permute(0, 3, 1, 2).float() / 255.0
    b = torch.from_numpy(reference).permute(0, 3, 1, 2).float() / 255.0
    h, w = a.shape[-2:]
    if reach <= 0:
        return (a - b).abs().amax(1).numpy()
    scale = min(1.0, REACH_SIDE / min(h, w))
    if scale < 1.0:
        small = (max(1, round(h * scale)), max(1, round(w * scale)))
        a, b = F.interpolate(a, size=small, mode="area"), F.interpolate(b, size=small, mode="area")
    sh, sw = a.shape[-2:]
    r = max(1, round(reach * min(sh, sw)))
    bp = F.pad(b, (r, r, r, r), mode="replicate")
    d = torch.full((a.shape[0], sh, sw), float("inf"))
    for dy in range(2 * r + 1):
        for dx in range(2 * r + 1):
            d = torch.minimum(d, (a - bp[..., dy : dy + sh, dx : dx + sw]).abs().amax(1))
    if scale < 1.0:
        d = F.interpolate(d[:, None], size=(h, w), mode="nearest")[:, 0]
    return d.numpy()


def object_edit(
    backbones,
    z_image: torch.Tensor | None,
    conds: list[torch.Tensor],
    quiet: list[torch.Tensor] | None,
    weights: list[float],
    init_images: np.ndarray,
    w_image: float = EDIT_W_IMAGE,
    seed: int = 0,
    strength: float = EDIT_STRENGTH,
    region="centre",
    steps: int | None = None,
    shared_noise: bool = False,
    size: tuple[int, int] | None = None,
) -> np.ndarray:
    """The edit (module docs): ``init_images`` (uint8 (N, h, w, 3) at ``size``) drawn in
    ``region`` under the sounds' embeddings ``conds`` (``weights``) and, from the same noise,
    under the same sounds turned down (``quiet``, the reference); the first drawing where the two differ
    (:func:`object_mask`), the input everywhere else (resized to the drawing as the generator
    takes it, when its size differs). ``quiet`` None: the first drawing, the
    whole region. uint8 (N, h, w, 3)."""
    rg = edit_region(region, backbones.image_size if size is None else size, seed)  # once, for both drawings
    args = (init_images, w_image, seed, strength, "all" if rg is None else rg, steps, shared_noise, size)
    drawn = compose_edit(backbones, z_image, conds, weights, *args)
    if quiet is None:
        return drawn
    reference = compose_edit(backbones, z_image, quiet, weights, *args)
    m = object_mask(drawn, reference, rg)[..., None]
    h, w = drawn.shape[1:3]
    keep = init_images if init_images.shape[1:3] == (h, w) else np.stack([fit_resize(im, h, w) for im in init_images])
    return np.rint(m * drawn + (1 - m) * keep.astype(np.float32)).clip(0, 255).astype(np.uint8)


def edit_image(s2i: Sound2Image, image, audio, sr: int | None = None, candidates: int = 1, **settings) -> np.ndarray:
    """Image + sound -> ``n`` edited images, uint8 (n, h, w, 3) at the generator's
    :meth:`~s2i.backbones.base.Backbones.drawing_size` of the image (toy: 32x32; full: the
    image's aspect): of :func:`edit_candidates`' ``candidates`` edits, the one
    :func:`best_edits` keeps (one candidate: that edit). ``settings``: the keywords of
    :func:`edit_candidates`, whose docs give every argument (``gain_db``, ``seed``, ``n``,
    ``strength``, ``w_image``, ``w_sound``, ``ambience_db``, ``steps``, ``region``)."""
    image, outs, scores = edit_candidates(s2i, image, audio, sr, candidates=candidates, **settings)
    if candidates == 1:
        return outs[0]
    return outs[best_edits(outs, image, scores), np.arange(outs.shape[1])]


def edit_candidates(
    s2i: Sound2Image,
    image,
    audio,
    sr: int | None = None,
    gain_db: float = 0.0,
    seed: int = 0,
    n: int = 1,
    strength: float = EDIT_STRENGTH,
    w_image: float = EDIT_W_IMAGE,
    w_sound: float | None = None,
    ambience_db: float | None = AMBIENCE_DB,
    steps: int | None = None,
    region="centre",
    candidates: int = 1,
) -> tuple[np.ndarray, np.ndarray, torch.Tensor | None]:
    """Every candidate of an edit, before :func:`edit_image` keeps one: ``(image, edits,
    scores)``, the input as drawn (uint8 (h, w, 3)), the ``candidates`` edits drawn from the
    seeds :func:`candidate_seeds` (uint8 (K, n, h, w, 3), ``n`` edits each), and their
    :func:`edit_direction_score` (K, n) (None for one candidate, which is not ranked).

    Args:
        image: uint8 (H, W, 3) array or an image file; centre-cropped to the drawing's aspect
            and resized to its size.
        audio: a file path or an array (with ``sr``), or a list of them: several sounds, each
            with its own terms and ``w_sound`` shared among them.
        gain_db: volume change of the sound (louder -> bigger object); one per sound, or one for all.
        strength: how far the input is noised (0 keeps it, 1 ignores it).
        w_image, w_sound: guidance weights of the image's and the sound's embeddings (``w_sound``
            None: :func:`default_w_sound`; ``w_image`` 0: no image term, the default).
        ambience_db: the sound turned down by this much is the second drawing, whose difference
            from the first is the object kept (:func:`object_edit`; the module docs); None: the
            whole region as drawn under the sound.
        region: where the edit may change the picture (:func:`edit_region`): ``"centre"``
            (default), ``"half"`` (which half from ``seed``), ``"all"``, or an (h, w) mask in [0, 1].
        candidates: each edit is the best of this many, drawn from the seeds
            :func:`candidate_seeds` (the prior's sample and the noise both change): the one
            whose change from the input, as the frozen image encoder sees it, points most
            nearly along what the sound adds -- its embedding minus the turned-down sound's
            (:func:`edit_direction_score`; the mean over several sounds), among those that
            changed the input at all (:func:`best_edits`). 1: one edit from ``seed``. Costs
            ``candidates`` times the drawing.
    """
    rgb = read_rgb(image)
    size = s2i.backbones.drawing_size(*rgb.shape[:2])
    img = prepare_image(rgb, size)
    require_composition(s2i.backbones, "editing")
    rg = edit_region(region, size, seed)  # a bad region fails before any work; every candidate edits it
    seeds = candidate_seeds(seed, candidates)  # so does a bad number of candidates
    many = isinstance(audio, (list, tuple))
    audio, gains = (list(audio), gain_db) if many else ([audio], [gain_db])
    gains = list(gains) if isinstance(gains, (list, tuple)) else [gains] * len(audio)
    if not audio or len(gains) != len(audio):
        raise ValueError(f"{len(audio)} sounds but {len(gains)} gains")
    sounds = [s2i.load_audio(x, sr) * 10 ** (g / 20) for x, g in zip(audio, gains)]
    w_sound = default_w_sound(s2i.backbones) if w_sound is None else w_sound
    e_img = s2i.embed_images(img[None]) if w_image or candidates > 1 else None
    z_img = e_img.repeat(n, 1) if w_image else None
    # each sound's Z^A, and its turned-down copy's, once: only the prior's sample changes with the seed
    z_loud = [s2i.embed_audio(a, SR)[None] for a in sounds]
    z_quiet = [None if ambience_db is None else s2i.embed_audio(a * 10 ** (ambience_db / 20), SR)[None] for a in sounds]
    weights = [w_sound / len(sounds)] * len(sounds)  # the sounds share the weight
    outs, cos = [], []
    for sd in seeds:
        # the prior's samples of the sounds, and of their turned-down copies from other prior noise
        z_sounds, quiet = zip(*[edit_embeddings(s2i, zl, zq, sd) for zl, zq in zip(z_loud, z_quiet)])
        quiet = None if ambience_db is None else quiet
        out = object_edit(
            s2i.backbones,
            z_img,
            [z.repeat(n, 1) for z in z_sounds],
            None if quiet is None else [z.repeat(n, 1) for z in quiet],
            weights,
            np.repeat(img[None], n, 0),
            w_image,
            sd,
            strength,
            "all" if rg is None else rg,
            steps,
            size=size,
        )
        if candidates > 1:
            cos.append(edit_direction_score(s2i.backbones.encode_images(out), e_img, z_loud, z_quiet))
        outs.append(out)
    return img, np.stack(outs), torch.stack(cos) if cos else None


def best_edits(outs: np.ndarray, image: np.ndarray, scores: torch.Tensor) -> np.ndarray:
    """(n,) the candidate kept for each of ``n`` edits: ``outs`` (K, n, h, w, 3) the K
    candidates' edits of ``image`` (h, w, 3), ``scores`` (K, n) their
    :func:`edit_direction_score`. The best-scoring candidate among those that changed some pixel
    (ties: the first); a candidate whose drawings under the sound and under the turned-down sound
    agreed everywhere left the input as it was (an empty object mask) and ranks below every
    candidate that added something, whose change may point a little away from the sound (a score
    below the unchanged one's 0) and still hold the object. The first candidate when none changed
    anything."""
    changed = torch.from_numpy((outs != image).any(axis=(2, 3, 4)))
    return torch.where(changed, scores.float(), -2.0).argmax(0).numpy()


def edit_direction_score(
    edited: torch.Tensor, original: torch.Tensor, sounds: list[torch.Tensor], quiet: list | None = None
) -> torch.Tensor:
    """How much an edit's change is what the sound adds: the cosine between the change the edit
    made to the image embedding, ``edited - original`` ((N, D) and (1, D) or (N, D)), and each
    sound's own embedding minus that of the same sound turned down (``sounds``, ``quiet``: their
    Z^A, (1, D) each, not samples of the embedding prior; a ``quiet`` of None, or an entry of
    None: the sound's embedding itself), averaged over the sounds. (N,) floats in [-1, 1]; 0 for
    an edit the encoder cannot tell from its input.

    CLIP's directional similarity (Gal et al. 2022, StyleGAN-NADA; the edit measure of
    InstructPix2Pix), the loud and turned-down sound standing for the target and source
    captions: the same two conditions whose drawings' difference is the edit's object
    (:func:`object_edit`). An edit's own embedding is mostly the input's scene, so its plain
    cosine with the sound ranks how much of the input a candidate kept as much as what it added;
    the change alone ranks what it added. Every candidate is scored against the same direction,
    not against the prior's sample it was drawn from (a candidate drawn from an odd sample would
    match it). Measured on tuning draws: ``docs/decisions/editing.md``."""
    d = edited.float() - original.float()
    quiet = [None] * len(sounds) if quiet is None else quiet
    dirs = [z.float() if q is None else z.float() - q.float() for z, q in zip(sounds, quiet, strict=True)]
    return torch.stack([F.cosine_similarity(d, v, dim=1) for v in dirs]).mean(0)
