"""Tests of ``s2i.method.generate`` and ``s2i.method.mix``: cutting a sound into windows, mono 16 kHz conversion, mixing
with gains in dB, and -- when the nbval smoke run's models exist -- audio -> images end to end
through ``Sound2Image``. CPU only."""

from __future__ import annotations

import wave

import numpy as np
import pytest
import torch

from s2i.method.generate import Sound2Image, to_mono_16k, windows_of
from s2i.method.mix import SOURCE_WEIGHT, mix_audio
from s2i.models.audio_encoder import SR


def _tone(freq, dur, sr, amp=0.5, phase=0.0):
    t = np.arange(int(round(dur * sr))) / sr
    return (amp * np.sin(2 * np.pi * freq * t + phase)).astype(np.float32)


def _peak_hz(x, sr):
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[spec.argmax()])


# --------------------------------------------------------------------------------------------
# windows_of
# --------------------------------------------------------------------------------------------
def test_windows_of_counts_and_contents():
    a = np.arange(SR, dtype=np.float32)  # 1 s ramp
    w = windows_of(a, 0.5)  # 8000 samples, hop 4000 by default
    assert w.shape == (3, 8000)
    for i, s in enumerate([0, 4000, 8000]):
        np.testing.assert_array_equal(w[i], a[s : s + 8000])
    w = windows_of(a, 0.5, hop_s=0.25)
    assert w.shape == (3, 8000)
    w = windows_of(a, 0.25, hop_s=0.25)  # no overlap: 4 windows tile the sound
    assert w.shape == (4, 4000)
    np.testing.assert_array_equal(w.reshape(-1), a)
    assert windows_of(np.zeros(2 * SR, np.float32), 0.5, hop_s=0.1).shape == (1 + (32000 - 8000) // 1600, 8000)


def test_windows_of_short_audio_is_centred_in_one_window():
    a = np.arange(1, 3001, dtype=np.float32)
    w = windows_of(a, 0.5)
    assert w.shape == (1, 8000)
    np.testing.assert_array_equal(w[0, :2500], 0)
    np.testing.assert_array_equal(w[0, 2500:5500], a)
    np.testing.assert_array_equal(w[0, 5500:], 0)
    odd = windows_of(np.ones(7999, np.float32), 0.5)  # odd padding: the extra zero goes to the end
    assert odd.shape == (1, 8000) and odd[0, 0] == 1 and odd[0, -1] == 0
    exact = windows_of(np.arange(8000, dtype=np.float32), 0.5)
    np.testing.assert_array_equal(exact, np.arange(8000, dtype=np.float32)[None])  # exactly one window: no pad
    assert windows_of(np.zeros(0, np.float32), 0.5).shape == (1, 8000)


# --------------------------------------------------------------------------------------------
# to_mono_16k
# --------------------------------------------------------------------------------------------
def test_to_mono_16k_downmixes_channels_first_and_last():
    left, right = _tone(440, 0.5, SR, 0.4), _tone(1000, 0.5, SR, 0.2)
    cs = np.stack([left, right])  # (C, S)
    np.testing.assert_allclose(to_mono_16k(cs, SR), (left + right) / 2, atol=1e-7)
    np.testing.assert_allclose(to_mono_16k(cs.T, SR), (left + right) / 2, atol=1e-7)  # (S, C)
    mono = to_mono_16k(left.astype(np.float64), SR)
    assert mono.dtype == np.float32 and np.array_equal(mono, left)
    # opposite-phase channels cancel (a plain average, no per-channel normalisation)
    assert np.abs(to_mono_16k(np.stack([left, -left]), SR)).max() == 0


@pytest.mark.parametrize("sr", [44100, 48000, 8000, 22050])
def test_to_mono_16k_resampling_keeps_the_frequency(sr):
    x = _tone(1000.0, 1.0, sr, 0.5)
    y = to_mono_16k(np.stack([x, x]), sr)
    assert abs(len(y) - SR) <= 2  # 1 s at 16 kHz
    assert _peak_hz(y, SR) == pytest.approx(1000.0, abs=2.0)
    mid = y[2000:-2000]
    assert np.sqrt(np.mean(mid**2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.02)  # level kept


# --------------------------------------------------------------------------------------------
# mix_audio
# --------------------------------------------------------------------------------------------
def test_mix_audio_gains_in_db_and_lengths():
    a, b = np.ones(100, np.float32), np.ones(60, np.float32)
    m = mix_audio([a, b])
    assert m.shape == (100,) and m.dtype == np.float32
    np.testing.assert_allclose(m[:60], 2.0)
    np.testing.assert_allclose(m[60:], 1.0)  # the shorter sound is zero-padded
    m = mix_audio([a, b], [-20.0, 20 * np.log10(0.5)])
    np.testing.assert_allclose(m[:60], 0.1 + 0.5, rtol=1e-6)
    np.testing.assert_allclose(m[60:], 0.1, rtol=1e-6)
    m = mix_audio([_tone(300, 0.1, SR)], [6.0])
    np.testing.assert_allclose(m, _tone(300, 0.1, SR) * 10 ** (6 / 20), rtol=1e-6, atol=1e-7)
    # a +6 dB source is twice as loud (in amplitude) as a 0 dB one
    one = mix_audio([a], [6.0206])
    np.testing.assert_allclose(one, 2.0, rtol=1e-4)


def test_mix_audio_rejects_mismatched_gains():
    with pytest.raises(ValueError, match="2 sounds but 3 gains"):
        mix_audio([np.ones(3), np.ones(3)], [0.0, 0.0, 0.0])


# --------------------------------------------------------------------------------------------
# end to end on the nbval smoke run (if it has been made)
# --------------------------------------------------------------------------------------------


def _write_wav(path, pcm16: np.ndarray, sr: int):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(pcm16.astype("<i2").tobytes())


def test_sound2image_end_to_end(smoke_s2i, tmp_path):
    pcm = (_tone(660, 0.8, SR, 0.3) * 32767).astype(np.int16)
    wav = tmp_path / "tone.wav"
    _write_wav(wav, pcm, SR)
    imgs = smoke_s2i.generate(wav, n=2, seed=0)
    assert imgs.shape == (2, 32, 32, 3) and imgs.dtype == np.uint8
    assert np.array_equal(smoke_s2i.generate(wav, n=2, seed=0), imgs)  # same seed, same images
    assert not np.array_equal(smoke_s2i.generate(wav, n=2, seed=1), imgs)
    # a path and the same samples as an array give the same images
    arr = pcm.astype(np.float32) / 32768
    assert np.array_equal(smoke_s2i.generate(arr, sr=SR, n=2, seed=0), imgs)
    z = smoke_s2i.embed_audio(arr, sr=SR)
    assert z.shape == (smoke_s2i.backbones.embed_dim,)
    with pytest.raises(ValueError, match="sample rate"):
        smoke_s2i.embed_audio(arr)


def test_sound2image_embedding_is_the_mean_over_windows(smoke_s2i):
    a = _tone(500, 1.2, SR, 0.3)
    w = windows_of(a, smoke_s2i.window_s)
    assert len(w) > 1
    np.testing.assert_allclose(
        smoke_s2i.embed_audio(a, sr=SR).numpy(), smoke_s2i.embed_windows(w).mean(0).numpy(), rtol=1e-5, atol=1e-5
    )
    # a 48 kHz stereo version of the same sound lands (nearly) on the same embedding
    a48 = _tone(500, 1.2, 48000, 0.3)
    z48 = smoke_s2i.embed_audio(np.stack([a48, a48]), sr=48000)
    z16 = smoke_s2i.embed_audio(a, sr=SR)
    assert float(torch.nn.functional.cosine_similarity(z48, z16, dim=0)) > 0.99


def test_from_run_without_an_encoder_names_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="audio_encoder"):
        Sound2Image.from_run(tmp_path, profile="smoke", model_dir=tmp_path)


def test_sampling_guidance_sets_plain_drawings_and_leaves_composed_terms_their_unit(smoke_run, smoke_s2i):
    from s2i.method.edit import default_w_sound
    from s2i.toyworld import world

    own = smoke_s2i.backbones.compose_guidance
    s2i = Sound2Image.from_run(smoke_run, profile="smoke", model_dir=smoke_run / "models", sample_guidance=own + 2)
    bb = s2i.backbones
    assert (bb.guidance, bb.compose_guidance, smoke_s2i.backbones.guidance) == (own + 2, own, own)
    z = torch.randn(2, bb.embed_dim)
    np.testing.assert_array_equal(bb.generate(z, seed=1), smoke_s2i.backbones.generate(z, seed=1, guidance=own + 2))
    assert not np.array_equal(bb.generate(z, seed=1), smoke_s2i.backbones.generate(z, seed=1))
    # mixing and editing weigh their terms in the generator's own unit, whatever plain drawings use
    a = world.render_sound(world.Scene(0, [world.SceneObject(1, gain=0.6)]), 1.0, seed=1)
    b = world.render_sound(world.Scene(0, [world.SceneObject(4, gain=0.6)]), 1.0, seed=2)
    np.testing.assert_array_equal(
        s2i.generate_mix([a, b], n=1, seed=3, sr=world.SR, candidates=1),
        smoke_s2i.generate_mix([a, b], n=1, seed=3, sr=world.SR, candidates=1),
    )
    assert default_w_sound(bb) == default_w_sound(smoke_s2i.backbones) == 0.4 * own


def test_object_mask_marks_where_the_drawings_differ_grown_and_limited_to_the_region():
    from s2i.method.edit import object_mask

    ref = np.full((2, 32, 32, 3), 90, np.uint8)
    drawn = ref.copy()
    drawn[0, 10:14, 10:14, 1] = 200  # an object in one channel
    drawn[1, 20:22, 2:4] = 90 + 30  # a change below the threshold (0.15 of 255)
    m = object_mask(drawn, ref)
    assert m.shape == (2, 32, 32) and m.dtype == np.float32
    assert (m[0, 10:14, 10:14] == 1).all() and m[0, 9, 12] > 0.5  # grown by a pixel
    assert m[0, 5, 5] == 0 and m[0, 16:, :].max() == 0 and m[1].max() == 0
    region = torch.zeros(32, 32)
    region[:, :12] = 1
    limited = object_mask(drawn, ref, region)
    assert limited[0, 11, 11] == 1 and limited[0, :, 12:].max() == 0
    with pytest.raises(ValueError, match="one shape"):
        object_mask(drawn, ref[:1])


def test_object_mask_leaves_out_a_halo_of_the_place_around_the_object():
    """A drawn object's halo -- the place darkened around it, the colour the reference's place has
    two pixels away -- is not the object: only a colour no reference pixel near it has is. With
    no reach, the halo counts. The same holds for a large drawing, read shrunk."""
    from s2i.method.edit import OBJECT_REACH, REACH_SIDE, object_mask, unexplained_difference

    for side in (32, 4 * REACH_SIDE):
        k = side // 32
        ref = np.full((1, side, side, 3), 150, np.uint8)
        ref[0, : 6 * k] = 40  # a dark band at the top of the place
        drawn = ref.copy()
        drawn[0, 6 * k : 8 * k, 8 * k : 24 * k] = 40  # the halo: the dark band's colour, 1-2 px below it
        drawn[0, 12 * k : 18 * k, 12 * k : 18 * k] = (230, 20, 20)  # the object
        m = object_mask(drawn, ref)
        assert m.shape == (1, side, side)
        assert (m[0, 12 * k : 18 * k, 12 * k : 18 * k] == 1).all()  # the object
        assert m[0, 6 * k : 8 * k, 8 * k : 24 * k].max() == 0  # its halo left out
        plain = object_mask(drawn, ref, reach=0)
        assert (plain[0, 6 * k : 8 * k, 8 * k : 24 * k] == 1).all()  # with no reach, kept
    d = unexplained_difference(drawn, ref, reach=0)
    np.testing.assert_allclose(d, np.abs(drawn.astype(np.float32) - ref).max(-1) / 255, atol=1e-6)
    assert OBJECT_REACH * 32 == 2


def test_edit_keeps_the_sounds_drawing_where_it_differs_from_the_sound_turned_down(smoke_s2i):
    """An edit is two drawings in the region from the same noise, under the sound and under the
    same sound turned down by ambience_db (its prior sample from other prior noise); the first
    where they differ (object_mask), the input everywhere else. ambience_db=None: the first
    drawing, the whole region."""
    from s2i.method.edit import (
        EDIT_STRENGTH,
        REFERENCE_SEED_OFFSET,
        centre_region,
        default_w_sound,
        edit_image,
        edit_region,
        object_mask,
    )
    from s2i.toyworld import world

    img = world.render_still(world.Scene(0, []))
    snd = world.render_sound(world.Scene(2, [world.SceneObject(1, gain=0.6)]), 1.0, seed=5)
    z_snd = smoke_s2i.embed_for_drawing(snd, seed=1)  # the prior's sample, the edit's seed
    z_q = smoke_s2i.embed_for_drawing(snd * 10 ** (-40 / 20), seed=1 + REFERENCE_SEED_OFFSET)  # other prior noise
    assert default_w_sound(smoke_s2i.backbones) == 0.4 * smoke_s2i.backbones.compose_guidance
    w = 10.0  # the smoke generator follows its conditions weakly: a weight and a level at which the drawings differ
    r = centre_region(32)
    assert torch.equal(edit_region("centre", 32, 1), r)

    def draw(z, w_image=0.0):
        conds, weights, masks = [z], [w], [r]
        if w_image:
            conds, weights, masks = [smoke_s2i.backbones.encode_images(img[None])] + conds, [w_image, w], [1 + 0 * r, r]
        return smoke_s2i.backbones.compose(
            conds, weights, seed=1, init_images=img[None], strength=EDIT_STRENGTH, masks=torch.stack(masks), region=r
        )

    drawn, quiet = draw(z_snd), draw(z_q)
    plain = edit_image(smoke_s2i, img, snd, world.SR, seed=1, ambience_db=None, w_sound=w)
    np.testing.assert_array_equal(plain, drawn)
    m = object_mask(drawn, quiet, r)[..., None]
    assert 0 < m.mean() < 0.5 and m.max() > 0.9  # some of the region is the object, not all of it
    want = np.rint(m * drawn + (1 - m) * img[None].astype(np.float32)).clip(0, 255).astype(np.uint8)
    got = edit_image(smoke_s2i, img, snd, world.SR, seed=1, w_sound=w, ambience_db=-40.0)
    np.testing.assert_array_equal(got, want)
    assert (got[0][m[0, ..., 0] == 0] == img[m[0, ..., 0] == 0]).all()  # outside the object: the input exactly
    # an image term, when asked for, guides everywhere
    with_image = edit_image(smoke_s2i, img, snd, world.SR, seed=1, ambience_db=None, w_image=1.0, w_sound=w)
    np.testing.assert_array_equal(with_image, draw(z_snd, w_image=1.0))


def test_edit_candidates_keep_the_edit_whose_change_is_the_sound(smoke_s2i):
    """With candidates=K each edit is one of the K plain edits from candidate_seeds (the first
    from the edit's own seed), the one whose change from the input's embedding points most
    nearly toward the sound's own embedding; the region comes from the edit's seed whatever the
    candidate's."""
    from s2i.method.edit import edit_image, prepare_image
    from s2i.method.generate import candidate_seeds
    from s2i.models.audio_encoder import SR
    from s2i.toyworld import world

    img = world.render_still(world.Scene(1, []))
    snd = world.render_sound(world.Scene(3, [world.SceneObject(4, gain=0.8)]), 1.0, seed=9)
    seeds = candidate_seeds(3, 3)
    assert seeds[0] == 3 and len(set(seeds)) == 3
    e_in = smoke_s2i.backbones.encode_images(prepare_image(img, smoke_s2i.backbones.image_size)[None]).float()
    z_snd = smoke_s2i.embed_audio(smoke_s2i.load_audio(snd, world.SR), SR)[None].float()
    picks = []
    for region in ("centre", "half"):
        kw = dict(ambience_db=None)  # the candidates' own drawings: they differ on the smoke model
        plain = [edit_image(smoke_s2i, img, snd, world.SR, seed=3, region=region, **kw)[0]]
        plain += [
            edit_image(smoke_s2i, img, snd, world.SR, seed=sd, region=edit_region_mask(region, 3), **kw)[0]
            for sd in seeds[1:]
        ]
        change = smoke_s2i.backbones.encode_images(np.stack(plain)).float() - e_in
        score = torch.nn.functional.cosine_similarity(change, z_snd, dim=1).numpy()
        best = edit_image(smoke_s2i, img, snd, world.SR, seed=3, region=region, candidates=3, **kw)
        np.testing.assert_array_equal(best[0], plain[int(np.argmax(score))])
        picks.append(int(np.argmax(score)))
        assert len({p.tobytes() for p in plain}) > 1  # the candidates differ
    assert max(picks) > 0  # not always the first candidate: the test tells a re-ranking from none
    with pytest.raises(ValueError, match="candidates"):
        edit_image(smoke_s2i, img, snd, world.SR, candidates=0)


def test_edit_candidates_are_what_edit_image_ranks(smoke_s2i):
    """edit_image keeps, among edit_candidates' edits, the one best_edits picks by their scores;
    the first candidate is the edit drawn once from the seed, which carries no score."""
    from s2i.method.edit import best_edits, edit_candidates, edit_image
    from s2i.toyworld import world

    img = world.render_still(world.Scene(2, []))
    snd = world.render_sound(world.Scene(0, [world.SceneObject(1, gain=0.7)]), 1.0, seed=4)
    image, outs, scores = edit_candidates(smoke_s2i, img, snd, world.SR, seed=5, candidates=3)
    assert outs.shape == (3, 1, *image.shape) and scores.shape == (3, 1)
    best = edit_image(smoke_s2i, img, snd, world.SR, seed=5, candidates=3)
    np.testing.assert_array_equal(best, outs[best_edits(outs, image, scores), [0]])
    once_image, once, no_scores = edit_candidates(smoke_s2i, img, snd, world.SR, seed=5)
    assert no_scores is None
    np.testing.assert_array_equal(once_image, image)
    np.testing.assert_array_equal(once[0], outs[0])
    np.testing.assert_array_equal(edit_image(smoke_s2i, img, snd, world.SR, seed=5), outs[0])


def test_best_edits_rank_an_unchanged_input_last():
    """Per edit, the best-scoring candidate among those that changed a pixel: an edit that left
    the input as it was (score 0) loses to one that changed it even with a negative score; the
    first when none changed; the scores decide among changed ones (ties: the first)."""
    from s2i.method.edit import best_edits

    img = np.zeros((4, 4, 3), np.uint8)
    drawn = img.copy()
    drawn[1, 2] = 200
    # 3 candidates x 3 edits: edit 0 has candidates unchanged / changed / changed,
    # edit 1 all unchanged, edit 2 changed / changed / unchanged
    outs = np.stack([np.stack([img, img, drawn]), np.stack([drawn, img, drawn]), np.stack([drawn, img, img])])
    scores = torch.tensor([[0.0, 0.0, 0.2], [-0.3, -0.5, 0.2], [-0.1, 0.9, 0.9]])
    np.testing.assert_array_equal(best_edits(outs, img, scores), [2, 0, 0])
    scores[2, 0] = -0.6  # now candidate 1 scores best among edit 0's changed ones
    np.testing.assert_array_equal(best_edits(outs, img, scores)[0], 1)
    # plain argmax would keep the unchanged candidate of edit 0 (score 0 > -0.3): the rule matters
    assert int(scores[:, 0].argmax()) == 0


def test_edit_direction_score_reads_the_change_not_the_scene():
    """The score is the cosine between the edit's change and the sound (minus the turned-down
    sound, when given): 1 for a change along it whatever the input's embedding, 0 for no change,
    -1 against it; several sounds averaged."""
    from s2i.method.edit import edit_direction_score

    g = torch.Generator().manual_seed(0)
    scene, sound, other = torch.randn(3, 1, 16, generator=g)
    edited = torch.cat([scene + 0.1 * sound, scene, scene - 2 * sound, scene + 3 * sound])
    got = edit_direction_score(edited, scene, [sound])
    np.testing.assert_allclose(got.numpy(), [1.0, 0.0, -1.0, 1.0], atol=1e-6)
    both = edit_direction_score(edited[:1], scene, [sound, other])
    want = (1.0 + torch.nn.functional.cosine_similarity(sound, other).item()) / 2
    np.testing.assert_allclose(both.item(), want, atol=1e-6)
    # the scene's own similarity to the sound does not enter: the plain cosine would rank these apart
    far_scene = scene - 5 * sound
    np.testing.assert_allclose(edit_direction_score(far_scene + 0.1 * sound, far_scene, [sound]).item(), 1.0, atol=1e-6)
    # with the turned-down sound, the direction is what the sound adds to it
    quiet = sound - other
    np.testing.assert_allclose(edit_direction_score(scene + other, scene, [sound], [quiet]).item(), 1.0, atol=1e-6)
    plain = edit_direction_score(scene + other, scene, [sound], [None]).item()
    np.testing.assert_allclose(plain, want * 2 - 1, atol=1e-6)


def edit_region_mask(region: str, seed: int) -> np.ndarray:
    from s2i.method.edit import edit_region

    return edit_region(region, 32, seed).numpy()


# --------------------------------------------------------------------------------------------
# regions of composed guidance (mixing, editing)
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_band_regions_tile_the_picture(n):
    from s2i.method.mix import band_regions

    b = band_regions(n, 32, seed=3)
    assert b.shape == (n, 32, 32) and b.dtype == torch.float32
    torch.testing.assert_close(b.sum(0), torch.ones(32, 32))  # a partition of unity
    assert float(b.min()) >= 0
    # each band holds about 1/n of the picture and is a band: constant along one axis
    torch.testing.assert_close(b.mean(dim=(1, 2)), torch.full((n,), 1 / n), atol=0.01, rtol=0)
    assert all(torch.equal(m, m[:1].expand(32, 32)) or torch.equal(m, m[:, :1].expand(32, 32)) for m in b)
    if n > 1:  # each band dominates where it is the largest
        assert all(float(m[m == b.max(0).values].mean()) > 0.6 for m in b)
    assert torch.equal(band_regions(n, 32, seed=3), b)  # seeded


def test_band_regions_vary_with_the_seed_and_reject_zero():
    from s2i.method.mix import band_regions

    halves = {tuple(band_regions(2, 32, seed=s)[0].flatten().round(decimals=3).tolist()) for s in range(40)}
    assert len(halves) == 4  # left, right, top, bottom
    cols = {tuple(band_regions(2, 32, seed=s, split="columns")[0, 0].round(decimals=3).tolist()) for s in range(40)}
    assert len(cols) == 2 and all(
        torch.equal(
            band_regions(3, 32, s, split="rows")[0][:, :1].expand(32, 32), band_regions(3, 32, s, split="rows")[0]
        )
        for s in range(5)
    )
    with pytest.raises(ValueError, match="at least one region"):
        band_regions(0, 32)
    with pytest.raises(ValueError, match="unknown split"):
        band_regions(2, 32, split="diagonal")


def test_mix_term_masks_follow_mix_conditions_order():
    from s2i.method.mix import BAND_SOFTNESS, band_regions, mix_conditions, mix_term_masks

    audio = [np.ones(10, np.float32), 2 * np.ones(10, np.float32)]
    conds, _ = mix_conditions(lambda a: torch.full((1, 2), float(a.mean())), audio, guidance=2.0, ambience_db=-20.0)
    m = mix_term_masks(2, -20.0, 32, seed=5)
    b = band_regions(
        2, 32, seed=5, softness=BAND_SOFTNESS, split="columns"
    )  # side by side: a centred view keeps its horizon
    assert m.shape == (len(conds), 32, 32)
    assert torch.equal(m[0], torch.ones(32, 32))  # the place: everywhere
    assert torch.equal(m[1], b[0]) and torch.equal(m[2], b[0]) and torch.equal(m[3], b[1]) and torch.equal(m[4], b[1])
    plain = mix_term_masks(2, None, 32, seed=5)
    assert len(plain) == len(mix_conditions(lambda a: torch.zeros(1, 2), audio, 2.0)[0]) == 2
    assert torch.equal(plain, b)
    assert torch.equal(mix_term_masks(2, None, 32, 5, 2.0, "any"), band_regions(2, 32, seed=5, softness=2.0))


def test_one_sampler_draws_plain_generation_as_one_composed_term(smoke_s2i):
    """generate() is compose() with one term whose weight is the guidance scale: the same
    sampler, the same noise, the same pictures (up to float rounding)."""
    from s2i.backbones import Backbones

    bb = smoke_s2i.backbones
    assert isinstance(bb, Backbones) and bb.supports_composition and bb.judge is not None
    z = torch.randn(3, bb.embed_dim, generator=torch.Generator().manual_seed(1))
    for guidance in (1.0, 2.5):
        plain = bb.generate(z, guidance=guidance, steps=5, seed=11)
        composed = bb.compose([z], [guidance], seed=11, steps=5)
        assert plain.shape == composed.shape == (3, bb.image_size, bb.image_size, 3)
        assert np.abs(plain.astype(int) - composed.astype(int)).max() <= 2
    assert np.abs(bb.generate(z, guidance=2.5, steps=5, seed=12).astype(int) - plain.astype(int)).max() > 20


def test_compose_masks_and_region(smoke_s2i):
    """A term's mask of ones changes nothing, of zeros drops the term; outside a region the
    output is the input image."""
    from s2i.toyworld import world

    bb = smoke_s2i.backbones
    g = torch.Generator().manual_seed(0)
    za, zb = torch.randn(2, 1, bb.embed_dim, generator=g)
    ones, zeros = torch.ones(32, 32), torch.zeros(32, 32)
    base = bb.compose([za, zb], [2.0, 1.5], seed=4, steps=6)
    np.testing.assert_array_equal(
        bb.compose([za, zb], [2.0, 1.5], seed=4, steps=6, masks=torch.stack([ones, ones])), base
    )
    dropped = bb.compose([za, zb], [2.0, 1.5], seed=4, steps=6, masks=torch.stack([ones, zeros]))
    single = bb.compose([za], [2.0], seed=4, steps=6)  # a smaller network batch: equal up to float rounding
    assert np.abs(dropped.astype(int) - single.astype(int)).max() <= 1
    img = world.render_still(world.Scene(2, [world.SceneObject(3, size=5.0, x=8.0, y=8.0)]))
    region = torch.zeros(32, 32)
    region[:, 16:] = 1  # the right half may change
    out = bb.compose([za], [3.0], seed=4, steps=6, init_images=img[None], strength=0.9, region=region)[0]
    free = bb.compose([za], [3.0], seed=4, steps=6, init_images=img[None], strength=0.9)[0]
    left = np.abs(out[:, :16].astype(int) - img[:, :16].astype(int))
    assert left.max() <= 3, left.max()  # kept (up to the last DDIM step's rounding)
    assert np.abs(free[:, :16].astype(int) - img[:, :16].astype(int)).max() > 20  # without the region it is not
    assert np.abs(out[:, 16:].astype(int) - img[:, 16:].astype(int)).max() > 20  # inside, the generator draws
    with pytest.raises(ValueError, match="region needs init_images"):
        bb.compose([za], [1.0], region=region)
    with pytest.raises(ValueError, match="2 masks for 1 conditions"):
        bb.compose([za], [1.0], masks=torch.stack([ones, ones]))
    with pytest.raises(ValueError, match="32x32"):
        bb.compose([za], [1.0], masks=torch.ones(1, 8, 8))


def test_edit_region_choices():
    from s2i.method.edit import centre_region, edit_region
    from s2i.method.mix import band_regions

    assert edit_region("all", 32) is None and edit_region(None, 32) is None
    for seed in range(6):  # the left or the right half
        h = edit_region("half", 32, seed=seed)
        assert torch.equal(h, band_regions(2, 32, seed, split="columns")[0]) and torch.equal(h, h[:1].expand(32, 32))
    c = edit_region("centre", 32)  # 3/4 of each side: edges at 4 and 28 px, 2 px soft
    assert torch.equal(c, centre_region(32)) and torch.equal(c, c.T)
    torch.testing.assert_close(c, c.flip(0), rtol=0, atol=1e-6)
    assert c[16, 16] > 0.98 and c[16, 0] < 0.2 and abs(float(c[16, 3:5].mean()) - 0.5) < 0.05
    assert c[4:28, 4:28].mean() > 0.75 and c[:4].mean() < 0.25
    wide = edit_region("centre", (32, 56))  # any aspect: 3/4 of each side
    assert wide.shape == (32, 56) and abs(float(wide[16, 6:8].mean()) - 0.5) < 0.05 and wide[16, 0] < 0.2
    with pytest.raises(ValueError, match="fraction"):
        centre_region(32, fraction=0.0)
    # a number: the centred rectangle of that share of each side (the videos' 7/8: edges at 2 and 30 px)
    assert torch.equal(edit_region(0.75, 32), c)
    v = edit_region(0.875, (32, 48))
    assert torch.equal(v, centre_region((32, 48), 0.875)) and abs(float(v[1:3, 24].mean()) - 0.5) < 0.05
    with pytest.raises(ValueError, match="fraction"):
        edit_region(1.5, 32)
    m = np.zeros((32, 32), np.float32)
    m[4:12, 4:12] = 1
    assert torch.equal(edit_region(m, 32), torch.from_numpy(m))
    with pytest.raises(ValueError, match="unknown edit region 'left'"):
        edit_region("left", 32)
    with pytest.raises(ValueError, match=r"\(32, 32\) with values in \[0, 1\]"):
        edit_region(np.ones((16, 16)), 32)
    with pytest.raises(ValueError, match="values in"):
        edit_region(2 * np.ones((32, 32)), 32)


def test_generate_mix_regions(smoke_s2i):
    from s2i.method.mix import mix_conditions, mix_term_masks, source_widths
    from s2i.toyworld import world

    a = world.render_sound(world.Scene(0, [world.SceneObject(1, gain=0.6)]), 1.0, seed=1)
    b = world.render_sound(world.Scene(0, [world.SceneObject(4, gain=0.6)]), 1.0, seed=2)
    banded = smoke_s2i.generate_mix([a, b], n=2, seed=3, sr=world.SR, candidates=1)
    whole = smoke_s2i.generate_mix([a, b], n=2, seed=3, sr=world.SR, regions=False, candidates=1)
    uncentred = smoke_s2i.generate_mix([a, b], n=2, seed=3, sr=world.SR, centred=False, candidates=1)
    assert not np.array_equal(banded, whole) and not np.array_equal(banded, uncentred)
    # the product: one term per source at the guidance scale, in its band, predicted on a view centred on it
    g = SOURCE_WEIGHT * smoke_s2i.backbones.compose_guidance
    conds, weights = mix_conditions(lambda x: smoke_s2i.embed_for_drawing(x, 3), [a, b], g, weight=g)
    assert weights == [g, g]
    masks = mix_term_masks(2, None, 32, 3, widths=source_widths([a, b]))
    ref = smoke_s2i.backbones.compose([c.repeat(2, 1) for c in conds], weights, seed=3, masks=masks, centred=True)
    np.testing.assert_array_equal(banded, ref)
    flat = smoke_s2i.backbones.compose([c.repeat(2, 1) for c in conds], weights, seed=3, masks=masks)
    np.testing.assert_array_equal(uncentred, flat)
    # the earlier design: a place term, each source minus itself turned down
    placed = smoke_s2i.generate_mix([a, b], n=2, seed=3, sr=world.SR, ambience_db=-20.0, centred=False, candidates=1)
    guidance = smoke_s2i.backbones.compose_guidance
    conds, weights = mix_conditions(lambda x: smoke_s2i.embed_for_drawing(x, 3), [a, b], guidance, ambience_db=-20.0)
    assert weights == [guidance / 2, guidance, -guidance, guidance, -guidance]
    ref = smoke_s2i.backbones.compose(
        [c.repeat(2, 1) for c in conds],
        weights,
        seed=3,
        masks=mix_term_masks(2, -20.0, 32, 3, widths=source_widths([a, b])),
    )
    np.testing.assert_array_equal(placed, ref)


def test_generate_mix_gives_the_louder_source_the_wider_band(smoke_s2i, monkeypatch):
    import s2i.method.mix as mix
    from s2i.toyworld import world

    a = world.render_sound(world.Scene(0, [world.SceneObject(1, gain=0.6)]), 1.0, seed=1)
    b = world.render_sound(world.Scene(0, [world.SceneObject(4, gain=0.6)]), 1.0, seed=2)
    seen = []
    real = mix.mix_term_masks

    def spy(*args, **kw):
        seen.append(real(*args, **kw))
        return seen[-1]

    monkeypatch.setattr(mix, "mix_term_masks", spy)
    smoke_s2i.generate_mix([a, b], [6.0, -6.0], n=1, seed=3, sr=world.SR, candidates=1)
    smoke_s2i.generate_mix([a, b], [6.0, -6.0], n=1, seed=3, sr=world.SR, candidates=1, widths="equal")
    level, equal = (m.sum(dim=(1, 2)) / 32 for m in seen)  # each source's band, in columns
    assert level[0] > 20 and level[1] < 12 and level.sum() == pytest.approx(32, abs=1e-3)
    torch.testing.assert_close(equal, torch.tensor([16.0, 16.0]), atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match="band widths"):
        smoke_s2i.generate_mix([a, b], n=1, sr=world.SR, widths="wide")


def test_source_widths_follow_the_levels_within_bounds():
    from s2i.method.mix import BAND_LEAST, source_widths

    tone = np.sin(np.arange(16000) / 5.0).astype(np.float32)
    np.testing.assert_allclose(source_widths([tone, tone]), [0.5, 0.5])
    np.testing.assert_allclose(source_widths([tone, 0.5 * tone]), [2 / 3, 1 / 3])
    np.testing.assert_allclose(source_widths([tone, 0.1 * tone]), [1 - BAND_LEAST, BAND_LEAST])
    w3 = source_widths([tone, 0.05 * tone, 0.05 * tone])
    assert w3.sum() == pytest.approx(1.0) and (w3 >= BAND_LEAST - 1e-9).all() and w3[0] > w3[1]
    np.testing.assert_allclose(source_widths([tone, 0.1 * tone, tone, tone, tone]), [0.2] * 5)  # 5 x 1/4 > 1
    with pytest.raises(ValueError, match="no sources"):
        source_widths([])


def test_band_regions_take_the_shares_they_are_given():
    from s2i.method.mix import band_regions

    r = band_regions(2, 32, seed=5, softness=0.01, split="columns", widths=[0.75, 0.25])
    torch.testing.assert_close(r.sum(0), torch.ones(32, 32))
    np.testing.assert_allclose(r.sum(dim=(1, 2)).numpy() / 32, [24, 8], atol=0.01)
    np.testing.assert_array_equal(
        band_regions(2, 32, 5, split="columns", widths=[0.5, 0.5]), band_regions(2, 32, 5, split="columns")
    )
    with pytest.raises(ValueError, match="band widths"):
        band_regions(2, 32, widths=[0.7, 0.2])


class _MeanColour:
    """A stand-in image encoder for the reranking rule: an image's embedding is its mean colour."""

    def encode_images(self, images):
        return torch.as_tensor(np.asarray(images, np.float32).mean(axis=(1, 2)))


def _flat(rgb):
    return np.broadcast_to(np.array(rgb, np.uint8), (4, 4, 3))


def test_pick_nearest_sources_prefers_the_picture_with_every_source():
    from s2i.method.mix import pick_nearest_sources

    red, green, yellow, blue = _flat((255, 0, 0)), _flat((0, 255, 0)), _flat((255, 255, 0)), _flat((0, 0, 255))
    sources = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]])  # "red" and "green" heard
    # two groups of three candidates: the one showing both (yellow) wins wherever it is
    images = np.stack([red, yellow, green, blue, green, yellow])
    picked = pick_nearest_sources(_MeanColour(), images, sources, 3)
    assert picked.shape == (2, 4, 4, 3)
    np.testing.assert_array_equal(picked, np.stack([yellow, yellow]))
    # one source: the candidate nearest it
    np.testing.assert_array_equal(pick_nearest_sources(_MeanColour(), images[:3], sources[1:], 3), green[None])
    with pytest.raises(ValueError, match="groups of 4"):
        pick_nearest_sources(_MeanColour(), images, sources, 4)


def test_draw_best_of_keeps_the_candidate_nearest_its_own_embedding(smoke_s2i):
    from s2i.method.generate import best_of, draw_best_of

    bb = smoke_s2i.backbones
    z = torch.randn(3, bb.embed_dim, generator=torch.Generator().manual_seed(0))
    one, _ = draw_best_of(bb, z, n_per=2, candidates=1, seed=4)
    np.testing.assert_array_equal(one, bb.generate(z, n_per=2, seed=4))  # K = 1: plain drawing
    got, cos = draw_best_of(bb, z, n_per=2, candidates=3, seed=4)
    assert got.shape == (6, 32, 32, 3) and cos.shape == (6,)
    drawn = bb.generate(z, n_per=6, seed=4)  # each embedding's 2 x 3 candidates, consecutive
    sims = torch.nn.functional.cosine_similarity(bb.encode_images(drawn), z.repeat_interleave(6, 0), dim=1)
    sims = sims.view(6, 3)  # (image, candidate): each image's own group of 3, its embedding's target
    np.testing.assert_array_equal(got, drawn[(torch.arange(6) * 3 + sims.argmax(1)).numpy()])
    torch.testing.assert_close(cos, sims.max(1).values)
    assert (sims.max(1).values > sims.min(1).values).all()  # the choice is not a tie
    with pytest.raises(ValueError, match="candidates"):
        draw_best_of(bb, z, candidates=0)
    with pytest.raises(ValueError, match="do not split"):
        best_of(bb, z, bb.generate(z[:1], n_per=4, seed=0), candidates=3)


def test_draw_from_sounds_keeps_the_candidate_nearest_its_sound(smoke_s2i):
    """From sounds, candidate j is drawn from candidate_seeds(seed, K)[j] -- its own sample of
    the prior and its own noise, the first the plain drawing -- and each picture is the candidate
    the image encoder puts nearest to its sound's Z^A (not to the prior sample it came from)."""
    from s2i.method.generate import candidate_seeds

    bb = smoke_s2i.backbones
    audio = np.random.default_rng(0).standard_normal((2, SR)).astype(np.float32) * 0.1
    z = torch.stack([smoke_s2i.embed_audio(a, SR) for a in audio])
    plain, none = smoke_s2i.draw_from_sounds(z, 2, 1, seed=1)
    assert none is None
    np.testing.assert_array_equal(plain, bb.generate(smoke_s2i.image_embeddings(z, 2, 1), seed=1))
    got, cos = smoke_s2i.draw_from_sounds(z, 2, 3, seed=1)
    seeds = candidate_seeds(1, 3)
    cands = [bb.generate(smoke_s2i.image_embeddings(z, 2, sd), seed=sd) for sd in seeds]
    np.testing.assert_array_equal(cands[0], plain)
    samples = [smoke_s2i.image_embeddings(z, 2, sd) for sd in seeds]
    assert not torch.allclose(samples[0], samples[1])  # each candidate its own prior sample
    target = z.repeat_interleave(2, 0)
    sims = torch.stack([torch.nn.functional.cosine_similarity(bb.encode_images(c), target, dim=1) for c in cands])
    pick = sims.argmax(0).numpy()
    np.testing.assert_array_equal(got, np.stack(cands)[pick, np.arange(4)])
    torch.testing.assert_close(cos, sims.max(0).values)
    # the product's generate draws the same way
    one_sound = smoke_s2i.draw_from_sounds(z[:1], 2, 3, seed=1)[0]
    np.testing.assert_array_equal(smoke_s2i.generate(audio[0], sr=SR, n=2, seed=1, candidates=3), one_sound)
    # ranked against the sound, not each candidate's own prior sample: the two rules differ here
    own = torch.stack(
        [torch.nn.functional.cosine_similarity(bb.encode_images(c), zs, dim=1) for c, zs in zip(cands, samples)]
    )
    assert (own.argmax(0).numpy() != pick).any()
    with pytest.raises(ValueError, match="candidates"):
        smoke_s2i.draw_from_sounds(z, 1, 0)


def test_eval_generation_reports_the_best_of_and_any_of_its_candidates(smoke_s2i):
    from s2i.eval.studies import eval_generation
    from s2i.toyworld.heldout import sound_bank

    bank = sound_bank(1, 0)
    one = eval_generation(smoke_s2i, bank, 2, seed=3)
    assert one["class_acc_any_candidate"] == one["class_acc"]
    best = eval_generation(smoke_s2i, bank, 2, seed=3, candidates=3, z=one["z"])
    np.testing.assert_array_equal(best["images"], smoke_s2i.draw_from_sounds(one["z"], 2, 3, seed=3)[0])
    drawn, _ = smoke_s2i.sound_candidates(one["z"], 2, 3, seed=3)
    top = np.stack([smoke_s2i.backbones.judge.report(d)["top_class"] for d in drawn])
    want = (top == best["cls"][None]).any(0).mean()
    assert best["class_acc_any_candidate"] == pytest.approx(want)
    assert best["class_acc_any_candidate"] >= best["class_acc"]


def test_generate_mix_keeps_the_best_of_its_candidates(smoke_s2i):
    from s2i.method.mix import mix_conditions, mix_term_masks, pick_nearest_sources, source_widths
    from s2i.toyworld import world

    a = world.render_sound(world.Scene(1, [world.SceneObject(2, gain=0.7)]), 1.0, seed=4)
    b = world.render_sound(world.Scene(1, [world.SceneObject(6, gain=0.5)]), 1.0, seed=5)
    got = smoke_s2i.generate_mix([a, b], n=2, seed=7, sr=world.SR, candidates=3)
    assert got.shape == (2, 32, 32, 3)
    g = SOURCE_WEIGHT * smoke_s2i.backbones.compose_guidance
    conds, weights = mix_conditions(lambda x: smoke_s2i.embed_for_drawing(x, 7), [a, b], g, weight=g)
    drawn = smoke_s2i.backbones.compose(
        [c.repeat(6, 1) for c in conds],
        weights,
        seed=7,
        masks=mix_term_masks(2, None, 32, 7, widths=source_widths([a, b])),
        centred=True,
    )
    np.testing.assert_array_equal(got, pick_nearest_sources(smoke_s2i.backbones, drawn, torch.cat(conds), 3))
    with pytest.raises(ValueError, match="at least 1"):
        smoke_s2i.generate_mix([a, b], n=1, sr=world.SR, candidates=0)


def test_generate_mixes_draws_each_mix_as_generate_mix_does(smoke_s2i):
    """Several mixes in one batch: each mix gets its own terms and its own bands (seed + m); the
    first mix's images are generate_mix's (the same noise, up to the batch's float rounding)."""
    from s2i.method.mix import compose_mixes, mix_conditions, mix_term_masks, source_widths
    from s2i.toyworld import world

    def snd(c, g, s):
        return world.render_sound(world.Scene(1, [world.SceneObject(c, gain=g)]), 1.0, seed=s)

    m0, m1 = [snd(2, 0.7, 4), snd(6, 0.5, 5)], [snd(0, 0.9, 6), snd(3, 0.4, 7)]
    both = smoke_s2i.generate_mixes([m0, m1], [[0.0, -3.0], [3.0, 0.0]], n=2, seed=7, sr=world.SR, candidates=2)
    one = smoke_s2i.generate_mix(m0, [0.0, -3.0], n=2, seed=7, sr=world.SR, candidates=2)
    assert both.shape == (4, 32, 32, 3)
    assert np.abs(both[:2].astype(int) - one.astype(int)).mean() < 1.0
    # one sampler call: mix m's terms on its own rows, its bands drawn from seed + m
    emb = lambda x: smoke_s2i.embed_audio(x, SR)[None]  # noqa: E731
    g = SOURCE_WEIGHT * smoke_s2i.backbones.compose_guidance
    a0, a1 = [m0[0], m0[1] * 10 ** (-3 / 20)], [m1[0] * 10 ** (3 / 20), m1[1]]
    c0, weights = mix_conditions(emb, a0, g, weight=g)
    c1, _ = mix_conditions(emb, a1, g, weight=g)
    masks = [
        mix_term_masks(2, None, 32, s, widths=source_widths(a))[:, None].expand(-1, 2, -1, -1)
        for s, a in ((7, a0), (8, a1))
    ]
    drawn = smoke_s2i.backbones.compose(
        [torch.cat([a.repeat(2, 1), b.repeat(2, 1)]) for a, b in zip(c0, c1)],
        weights,
        seed=7,
        masks=torch.cat(masks, dim=1),
        centred=True,
    )
    np.testing.assert_array_equal(
        compose_mixes(
            smoke_s2i.backbones,
            [c0, c1],
            weights,
            n=2,
            seed=7,
            candidates=1,
            widths=[source_widths(a0), source_widths(a1)],
        ),
        drawn,
    )
    with pytest.raises(ValueError, match="2 mixes but 1"):
        smoke_s2i.generate_mixes([m0, m1], [[0.0, 0.0]], sr=world.SR)
    with pytest.raises(ValueError, match="every mix needs"):
        smoke_s2i.generate_mixes([m0, m1 + [snd(5, 0.5, 8)]], sr=world.SR)


def test_a_profiles_sampling_steps_replace_the_generators_default(smoke_run):
    """``sampling.steps`` (load_backbones' ``sample_steps``) sets how many network passes a drawing
    takes; None keeps the saved model's own default."""
    import torch

    from s2i.backbones import load_backbones

    saved = load_backbones("smoke", smoke_run / "models").generator.cfg.sample_steps
    b = load_backbones("smoke", smoke_run / "models", sample_steps=saved + 2)
    assert b.generator.cfg.sample_steps == saved + 2
    calls = []
    b.generator.decoder.register_forward_hook(lambda *_: calls.append(1))
    b.generate(torch.zeros(1, b.embed_dim), n_per=1, seed=0)
    assert len(calls) == saved + 2  # one pass per step (guidance batches both terms into one)
