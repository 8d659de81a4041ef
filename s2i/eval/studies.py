"""Generation studies (claims 6-17), measured by the judge on held-out sounds
(:mod:`s2i.toyworld.heldout`).

What "louder" means (claim 8): the world's loudness law ties an object's size to its *own*
sound level, and the ambience level varies from place to place (+-6 dB) independently of the
object. So a whole recording made louder -- object and ambience together -- is a closer
(bigger) object, and a softer one a farther (smaller) object. The volume study applies the
gain to the whole recording; scaling only the object's sound is reported beside it.

The video study: :mod:`s2i.eval.videos`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from s2i.eval.stills import judge_scores
from s2i.method.generate import Sound2Image, draw_best_of
from s2i.method.mix import AMBIENCE_DB, mix_audio
from s2i.toyworld import world
from s2i.toyworld.heldout import TEST_SEED_OFFSET, TestSound
from s2i.toyworld.stills import StillSet


def judged_size(rep: dict, cls: np.ndarray) -> np.ndarray:
    """Radius (px) the judge gives the class ``cls[i]`` in image i, 0 where it is not present."""
    i = np.arange(len(cls))
    return np.where(rep["present"][i, cls], rep["size"][i, cls], 0.0)


SCENE_TOLERANCE = 26  # of 255: a pixel is kept where no channel moved by more (0.1)
SCENE_MARGIN = 3.0  # px beyond the heard object's radius that the scene-kept read leaves to the object


def scene_kept(edits: np.ndarray, inputs: np.ndarray, radius: np.ndarray, fraction: float = 0.75) -> np.ndarray:
    """(N,) the share of each input's pixels that its edit keeps (no channel moved by more than
    :data:`SCENE_TOLERANCE`) in the centre ``fraction`` of each side -- where an edit draws --
    outside the heard object's extent: a disk at the picture's centre, its radius ``radius[i]``
    plus :data:`SCENE_MARGIN`. The judge's background read takes the whole picture, whose frame
    an edit in the centre keeps: a patch of another place around the object passes it, and
    this read counts the patch. uint8 (N, H, W, 3) each."""
    n, h, w = inputs.shape[:3]
    yy, xx = np.mgrid[:h, :w]
    cy, cx = (h - 1) / 2, (w - 1) / 2
    inside = (np.abs(yy - cy) < fraction * h / 2) & (np.abs(xx - cx) < fraction * w / 2)
    d2 = (yy - cy) ** 2 + (xx - cx) ** 2
    moved = np.abs(edits.astype(np.int16) - inputs.astype(np.int16)).max(-1) > SCENE_TOLERANCE
    out = []
    for i in range(n):
        ring = inside & (d2 > (float(radius[i]) + SCENE_MARGIN) ** 2)
        out.append(float((~moved[i])[ring].mean()) if ring.any() else 1.0)
    return np.array(out)


def judged_exactly(present: np.ndarray, wanted, allowed=()) -> bool:
    """Whether one picture's judged classes (a row of the judge's ``present``) hold every class in
    ``wanted`` and none outside ``wanted`` and ``allowed`` (classes the input already held). A
    smear that the judge reads as several classes at once holds the wanted ones among others:
    it counts for "present" but not here."""
    ok = np.zeros(len(present), bool)
    ok[list(wanted) + list(allowed)] = True
    return bool(present[list(wanted)].all() and not (present & ~ok).any())


def eval_generation(
    s2i: Sound2Image,
    bank: list[TestSound],
    n_images: int,
    seed: int,
    guidance: float | None = None,
    candidates: int = 1,
    z: torch.Tensor | None = None,
) -> dict:
    """Audio -> images for each sound; the judge's verdicts against the heard class/background.
    ``candidates`` > 1: each image is the best of that many drawings, each from its own prior
    sample, by the image encoder against the sound (:meth:`Sound2Image.draw_from_sounds`; the
    judge plays no part in the choice), and ``class_acc_any_candidate`` is the re-ranking's upper
    bound: the share of images for which any of their candidates shows the heard class (with one
    candidate, ``class_acc``). ``z``: the sounds' embeddings, when already computed. Each image is
    drawn from its own sample of the embedding prior where ``s2i`` has one
    (:meth:`Sound2Image.image_embeddings`)."""
    if z is None:
        z = torch.stack([s2i.embed_audio(s.render(), world.SR) for s in bank])
    cls = np.repeat([s.cls for s in bank], n_images)
    bg = np.repeat([s.bg for s in bank], n_images)
    if candidates == 1:
        imgs = s2i.draw_from_sounds(z, n_images, 1, seed, guidance=guidance)[0]
        rep = s2i.backbones.judge.report(imgs)
        any_hit = rep["top_class"] == cls
    else:  # the chosen candidates' verdicts, read off those of every candidate
        drawn, cos = s2i.sound_candidates(z, n_images, candidates, seed, guidance=guidance)
        rep_all = s2i.backbones.judge.report(drawn.reshape(-1, *drawn.shape[2:]))
        any_hit = (rep_all["top_class"].reshape(candidates, -1) == cls).any(0)
        flat = cos.argmax(0).numpy() * len(cls) + np.arange(len(cls))  # candidate-major rows
        imgs, rep = drawn.reshape(-1, *drawn.shape[2:])[flat], {k: v[flat] for k, v in rep_all.items()}
    exact = rep["present"].sum(1) == 1
    return dict(
        images=imgs,
        report=rep,
        cls=cls,
        bg=bg,
        z=z,
        class_acc=float((rep["top_class"] == cls).mean()),
        present_acc=float(rep["present"][np.arange(len(cls)), cls].mean()),
        exact_single=float((exact & (rep["top_class"] == cls)).mean()),
        bg_acc=float((rep["bg"] == bg).mean()),
        class_acc_any_candidate=float(any_hit.mean()),
    )


def confusion(true: np.ndarray, pred: np.ndarray, n: int = len(world.CLASSES)) -> np.ndarray:
    """(n, n) row-normalised confusion matrix."""
    m = np.zeros((n, n))
    for t, p in zip(true, pred):
        m[t, p] += 1
    return m / np.maximum(m.sum(1, keepdims=True), 1)


def recon_read(
    backbones, stills: StillSet, seed: int, candidates: int = 1, prefix: str = "recon"
) -> tuple[dict, np.ndarray]:
    """Draw every still back from its image embedding as the product draws (the backbones'
    sampling steps and ``guidance``), each picture the best of ``candidates`` drawings by the image
    encoder (:func:`s2i.method.generate.draw_best_of`; the judge plays no part in the choice), and
    read the drawings with the judge (:func:`s2i.eval.stills.judge_scores`, with the shape read's interval).
    Returns (the scores, the drawings)."""
    drawn, _ = draw_best_of(backbones, backbones.encode_images(stills.images), 1, candidates, seed)
    return judge_scores(backbones.judge.report(drawn), stills, prefix, ci_seed=seed), drawn


def volume_sweep(
    s2i: Sound2Image, bank: list[TestSound], gains_db: list[float], seed: int, mode: str = "whole", n_images: int = 1
) -> dict:
    """Each sound at each gain -> images -> the judge's size of the heard class (0 if absent).

    ``mode="whole"`` scales the whole recording (claim 8's "the input gets louder");
    ``"object"`` scales only the object's sound. Returns sizes (S, G, n_images) and the mean
    per-sound Spearman between gain and size. With an embedding prior, each image of a sound
    starts from the same prior noise at every gain: only the sound changes."""
    from scipy.stats import spearmanr

    zs = []
    for s in bank:
        for g in gains_db:
            a = s.render(gain_db=g) if mode == "whole" else s.render(object_only_db=g)
            zs.append(s2i.embed_audio(a, world.SR))
    z = torch.stack(zs)
    noise = None
    if s2i.prior is not None:  # one noise per sound and image, the same at every gain
        g = torch.Generator().manual_seed(seed)
        per_sound = torch.randn(len(bank), 1, n_images, z.shape[1], generator=g)
        noise = per_sound.expand(-1, len(gains_db), -1, -1).reshape(-1, z.shape[1])
    z_draw = s2i.image_embeddings(z, n_images, seed, noise=noise)
    imgs = s2i.backbones.generate(z_draw, n_per=1, seed=seed)  # same seed: only the sound changes
    rep = s2i.backbones.judge.report(imgs)
    cls = np.repeat([s.cls for s in bank], len(gains_db) * n_images)
    sizes = judged_size(rep, cls).reshape(len(bank), len(gains_db), n_images)
    present = rep["present"][np.arange(len(cls)), cls].reshape(len(bank), len(gains_db), n_images)
    rhos = []
    for i in range(len(bank)):
        y = sizes[i].mean(1)
        rhos.append(0.0 if np.ptp(y) == 0 else float(spearmanr(gains_db, y).statistic))
    return dict(sizes=sizes, present=present, images=imgs, rho=np.array(rhos), spearman=float(np.mean(rhos)))


MIX_METHODS = (
    "waveform",
    "mean",
    "compose_plain",
    "compose_place",
    "compose_bands",
    "compose_centred",
    "compose_equal",
    "compose",
)


_COMPOSE_VARIANTS = {  # generate_mix's options per composed method (see mix_generate)
    "compose_plain": dict(regions=False, candidates=1),
    "compose_place": dict(ambience_db=AMBIENCE_DB, centred=False, candidates=1),
    "compose_bands": dict(centred=False, candidates=1),
    "compose_centred": dict(candidates=1),
    "compose_equal": dict(widths="equal"),
    "compose": {},
}


def mix_generate(
    s2i: Sound2Image,
    mixes: list[list[np.ndarray]],
    gains_db: list[list[float]],
    method: str,
    n: int = 1,
    seed: int = 0,
    weight: float | None = None,
) -> np.ndarray:
    """Several mixes of sources -> ``n`` images each, (len(mixes) * n, H, W, 3) grouped by mix,
    drawn together in the sampler's batches (starting noise from ``seed``; mix ``m``'s bands
    from ``seed + m``).

    * ``waveform``: the audio encoder on the mixed waveform;
    * ``mean``: the mean of the per-source embeddings, one guided sample;
    * ``compose_plain``: each source's embedding is its own guidance term (weight guidance / K)
      over the whole picture (composable guidance), so each source's object is drawn distinctly
      at the size its own level implies;
    * ``compose_place``: the place one term of its own, each source's object its embedding
      minus the same source turned down, each source's terms in its own band
      (:func:`s2i.method.mix.mix_conditions` with ``ambience_db``; the earlier design);
    * ``compose_bands``: one term per source (weight ``SOURCE_WEIGHT`` x guidance), each in its
      own band of the picture, side by side, as wide as the source's level says
      (:func:`s2i.method.mix.mix_term_masks`, :func:`s2i.method.mix.source_widths`);
    * ``compose_centred``: as ``compose_bands``, each source's term predicted on a view of the
      picture centred on its band (:func:`s2i.models.sampler.sample`);
    * ``compose_equal``: as ``compose`` with bands of equal width whatever the levels;
    * ``compose`` (the product's): as ``compose_centred``, each image the best of
      :data:`s2i.method.mix.MIX_CANDIDATES` drawn ones, the one whose image embedding is nearest
      every source (:func:`s2i.method.mix.pick_nearest_sources`).
    Gains (dB, one list per mix) scale each source's recording before encoding/mixing. With an
    embedding prior, ``waveform`` and ``mean`` draw its samples of their embeddings, and the
    composed methods its sample of each term's (:meth:`Sound2Image.embed_for_drawing`)."""
    if method == "waveform":
        z = torch.stack([s2i.embed_audio(mix_audio(m, g), world.SR) for m, g in zip(mixes, gains_db)])
        return s2i.backbones.generate(s2i.image_embeddings(z, n, seed), n_per=1, seed=seed)
    if method == "mean":
        z = torch.stack(
            [
                torch.stack([s2i.embed_audio(s * 10 ** (x / 20), world.SR) for s, x in zip(m, g)]).mean(0)
                for m, g in zip(mixes, gains_db)
            ]
        )
        return s2i.backbones.generate(s2i.image_embeddings(z, n, seed), n_per=1, seed=seed)
    if method in _COMPOSE_VARIANTS:
        return s2i.generate_mixes(
            mixes, gains_db, n=n, seed=seed, sr=world.SR, weight=weight, **_COMPOSE_VARIANTS[method]
        )
    raise ValueError(f"unknown mixing method {method!r}; choose from {MIX_METHODS}")


def mix_pairs(n_pairs: int, seed: int, sound_seed: int = 0) -> list[tuple[TestSound, TestSound]]:
    """Pairs of held-out sounds of two different classes over one background (gain 0.5 each),
    classes and background drawn from ``seed``; the sounds' seeds start at
    ``TEST_SEED_OFFSET + 500_000 + sound_seed`` (the mixing study: 0)."""
    rng = np.random.default_rng(TEST_SEED_OFFSET + 7 + seed)
    pairs = []
    for i in range(n_pairs):
        a, b = rng.choice(len(world.CLASSES), size=2, replace=False)
        bg = int(rng.integers(len(world.BACKGROUNDS)))
        base = TEST_SEED_OFFSET + 500_000 + sound_seed + 2 * i
        pairs.append((TestSound(int(a), bg, 0.5, base), TestSound(int(b), bg, 0.5, base + 1)))
    return pairs


def real_pair_scenes(pairs: list[tuple[TestSound, TestSound]], seed: int) -> np.ndarray:
    """The real scenes the pairs describe, laid out as the product draws a mix: each sound's
    object at the radius its gain gives (:func:`~s2i.toyworld.world.size_from_gain`), centred in
    its own half of the picture (side by side, which one on the left drawn from ``seed``), a
    palette colour, the pair's background; through the videos' H.264 round trip. The judge's
    reading of them is the mixing figure's upper bound: what it finds when both objects are
    really there."""
    from s2i.toyworld.stills import codec_roundtrip

    rng = np.random.default_rng(TEST_SEED_OFFSET + 19 + seed)
    crng = world.colour_rng(TEST_SEED_OFFSET + 19 + seed)
    mid, half = world.IMG / 2, world.IMG / 4  # a half's centre lies a quarter of the picture from the middle
    imgs = []
    for pair in pairs:
        flip = bool(rng.integers(2))
        objs = []
        for x, snd in zip((mid + half, mid - half) if flip else (mid - half, mid + half), pair):
            y = mid
            colour = int(crng.integers(len(world.PALETTE)))
            objs.append(world.SceneObject(snd.cls, gain=snd.gain, x=x, y=y, colour=colour))  # its size from its gain
        imgs.append(world.render_still(world.Scene(pair[0].bg, objs)))
    return codec_roundtrip(np.stack(imgs))


def mixing_study(
    s2i: Sound2Image,
    n_pairs: int,
    seed: int,
    ratios_db: list[float],
    methods=MIX_METHODS,
    n_images: int = 4,
    n_ratio_pairs: int | None = None,
) -> dict:
    """Two held-out sounds of different classes (same background) -> one image, per method:
    both present (the judge sees both classes; ``n_images`` images per pair at equal levels,
    all ``n_pairs`` pairs; ``both_only``: both and no third class), and over a relative-volume
    sweep (the first image; the first ``n_ratio_pairs`` pairs, default all) the Spearman between
    the relative gain and the log ratio of the two judged sizes. Both-present is a proportion,
    noisier between draws of pairs than the per-pair correlation, so it is measured on more
    pairs. ``both_per_pair``: each pair's share of images with both objects. ``real_both_present``
    / ``real_both_only``: the same reads of the real scenes the pairs describe
    (:func:`real_pair_scenes`), the upper bound the judge sets."""
    from scipy.stats import spearmanr

    pairs = mix_pairs(n_pairs, seed)
    n_ratio = n_pairs if n_ratio_pairs is None else min(int(n_ratio_pairs), n_pairs)
    if n_ratio < 1:
        raise ValueError(f"n_ratio_pairs must be at least 1, got {n_ratio_pairs}")
    sounds = [[sa.render(), sb.render()] for sa, sb in pairs]
    ia = np.array([sa.cls for sa, _ in pairs])
    ib = np.array([sb.cls for _, sb in pairs])
    out = {}
    for m in methods:
        # equal levels: every pair, n_images each, in one batch
        img = mix_generate(s2i, sounds, [[0.0, 0.0]] * len(pairs), m, n=n_images, seed=seed)
        rep = s2i.backbones.judge.report(img)
        k = np.repeat(np.arange(len(pairs)), n_images)
        both = rep["present"][np.arange(len(k)), ia[k]] & rep["present"][np.arange(len(k)), ib[k]]
        both_only = [judged_exactly(rep["present"][j], [ia[k[j]], ib[k[j]]]) for j in range(len(k))]
        first = np.arange(len(pairs)) * n_images  # each pair's first image, also the sweep's 0 dB point
        # relative-volume sweep: the first n_ratio pairs, one image each, one batch per ratio
        ys = np.zeros((n_ratio, len(ratios_db)))
        for j, r in enumerate(ratios_db):
            if r == 0:
                rp, idx = rep, first[:n_ratio]
            else:
                rp = s2i.backbones.judge.report(
                    mix_generate(s2i, sounds[:n_ratio], [[r / 2, -r / 2]] * n_ratio, m, n=1, seed=seed)
                )
                idx = np.arange(n_ratio)
            for i in range(n_ratio):
                pa, pb = rp["present"][idx[i], ia[i]], rp["present"][idx[i], ib[i]]
                sa_ = rp["size"][idx[i], ia[i]] if pa else 0.5
                sb_ = rp["size"][idx[i], ib[i]] if pb else 0.5
                ys[i, j] = np.log(max(sa_, 0.5) / max(sb_, 0.5))
        rhos = [0.0 if np.ptp(y) == 0 else float(spearmanr(ratios_db, y).statistic) for y in ys]
        per_pair = both.reshape(len(pairs), n_images).mean(1)
        out[m] = dict(
            both_present=float(both.mean()),
            both_only=float(np.mean(both_only)),
            both_per_pair=per_pair.tolist(),
            ratio_spearman=float(np.mean(rhos)),
            examples=img[first],
        )
    rep = s2i.backbones.judge.report(real_pair_scenes(pairs, seed))
    out["real_both_present"] = float(
        (rep["present"][np.arange(len(pairs)), ia] & rep["present"][np.arange(len(pairs)), ib]).mean()
    )
    out["real_both_only"] = float(np.mean([judged_exactly(p, [a, b]) for p, a, b in zip(rep["present"], ia, ib)]))
    out["pairs"] = [(world.CLASSES[a.cls], world.CLASSES[b.cls]) for a, b in pairs]
    return out


@dataclass
class EditInput:
    """One edit of the editing study: a held-out toy ``still`` (uint8 (32, 32, 3)) with its
    ``objects`` (the classes' :class:`~s2i.toyworld.world.SceneObject`, empty or one silent
    object of another class), its background ``bg``, and the held-out ``sound`` to add, recorded
    at another background."""

    still: np.ndarray
    objects: list
    bg: int
    sound: TestSound

    @property
    def heard(self) -> int:
        """The class the sound adds."""
        return self.sound.cls

    @property
    def held(self) -> list[int]:
        """The classes the still already holds."""
        return [o.cls for o in self.objects]


def edit_inputs(n_edits: int, seed: int) -> list[EditInput]:
    """The editing study's ``n_edits`` edits of draw ``seed`` (:func:`edit_study`): held-out
    stills, every second one already holding a silent object of another class, and held-out
    sounds recorded at a *different* background (so keeping the input's background is a real
    test). The first edits of a draw are the same whatever ``n_edits``."""
    rng = np.random.default_rng(TEST_SEED_OFFSET + 11 + seed)
    crng = world.colour_rng(TEST_SEED_OFFSET + 11 + seed)
    out = []
    for i in range(n_edits):
        c = int(rng.integers(len(world.CLASSES)))
        bg_img = int(rng.integers(len(world.BACKGROUNDS)))
        bg_snd = int((bg_img + rng.integers(1, len(world.BACKGROUNDS))) % len(world.BACKGROUNDS))
        objs = []
        if i % 2 == 1:
            other = int((c + rng.integers(1, len(world.CLASSES))) % len(world.CLASSES))
            colour = int(crng.integers(len(world.PALETTE)))
            objs.append(world.SceneObject(other, size=float(rng.uniform(4, 7)), x=8.0, y=22.0, colour=colour))
        still = world.render_still(world.Scene(bg_img, objs))
        out.append(EditInput(still, objs, bg_img, TestSound(c, bg_snd, 0.5, TEST_SEED_OFFSET + 700_000 + i)))
    return out


def edit_study(s2i: Sound2Image, n_edits: int, seed: int, gains_db: list[float], **edit_kw) -> dict:
    """Image + sound -> edited image, on the held-out edits of :func:`edit_inputs` (a background,
    half of them with a silent object of another class already in the scene; a sound recorded
    at a *different* background), edit i drawn from ``seed + i``.
    Metrics at 0 dB: the object added (the judge finds the sound's class and no class the input
    did not hold besides it: a many-coloured smear that the judge reads as several classes at
    once does not count); the heard class present (among any others: an upper bound of the
    first); the judged background equals the input's; the scene kept around the heard object,
    pixel by pixel (:func:`scene_kept`); where the input holds an object, the
    judge still finds its class (the scene's own objects kept). Over the gains: the sound's
    volume sweep gives a monotonic size (mean per-edit Spearman). ``edit_real_object_added``:
    the first read of the real scenes a perfect edit would give (the heard object at the radius
    its gain gives, in the middle of the picture where the edit draws it, over the input; through
    the videos' H.264 round trip), the upper bound the judge sets."""
    from scipy.stats import spearmanr

    from s2i.method.edit import edit_image
    from s2i.toyworld.stills import codec_roundtrip

    # the colours of the perfect edits' heard objects: a stream of their own, the edits' draws untouched
    real_rng = np.random.default_rng(TEST_SEED_OFFSET + 23 + seed)
    added, present, kept, objects_kept, rhos, examples, real, wanted = [], [], [], [], [], [], [], []
    inputs, edits, radii = [], [], []
    for i, e in enumerate(edit_inputs(n_edits, seed)):
        c, img, snd, objs = e.heard, e.still, e.sound, e.objects
        heard = world.SceneObject(c, gain=snd.gain, colour=int(real_rng.integers(len(world.PALETTE))))  # in the middle
        real.append(world.render_still(world.Scene(e.bg, objs + [heard])))
        wanted.append((c, e.held))
        outs = [edit_image(s2i, img, snd.render(), world.SR, gain_db=g, seed=seed + i, **edit_kw)[0] for g in gains_db]
        rep = s2i.backbones.judge.report(np.stack(outs))
        i0 = gains_db.index(0.0) if 0.0 in gains_db else len(gains_db) // 2
        present.append(bool(rep["present"][i0, c]))
        added.append(judged_exactly(rep["present"][i0], [c], e.held))
        kept.append(bool(rep["bg"][i0] == e.bg))
        objects_kept += [bool(rep["present"][i0, o]) for o in e.held]
        sz = np.where(rep["present"][:, c], rep["size"][:, c], 0.0)
        rhos.append(0.0 if np.ptp(sz) == 0 else float(spearmanr(gains_db, sz).statistic))
        examples.append(np.stack([img] + outs))
        inputs.append(img)
        edits.append(outs[i0])
        radii.append(heard.radius())
    rep = s2i.backbones.judge.report(codec_roundtrip(np.stack(real)))
    real_added = [judged_exactly(p, [c], allowed) for p, (c, allowed) in zip(rep["present"], wanted)]
    return dict(
        edit_object_added=float(np.mean(added)),
        edit_real_object_added=float(np.mean(real_added)),
        edit_heard_class_present=float(np.mean(present)),
        edit_background_kept=float(np.mean(kept)),
        edit_scene_kept=float(scene_kept(np.stack(edits), np.stack(inputs), np.array(radii)).mean()),
        edit_input_object_kept=float(np.mean(objects_kept)) if objects_kept else None,
        edit_volume_spearman=float(np.mean(rhos)),
        added_per_edit=[float(a) for a in added],  # the units of edit_object_added (its bootstrap interval)
        examples=examples,
    )
