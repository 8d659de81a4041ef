"""Tests of ``s2i.eval.studies``: its pairs, scenes and strict reads, and -- when the nbval smoke
run's models exist -- the mixing, editing and video studies themselves. CPU only."""

from __future__ import annotations

import numpy as np
import pytest

from s2i.eval.studies import edit_inputs, edit_study, judged_exactly, mix_pairs, mixing_study
from s2i.eval.videos import video_study


def test_mix_pairs_of_a_larger_study_start_with_the_smaller_one():
    small, large = mix_pairs(4, seed=0), mix_pairs(12, seed=0)
    assert [(a.cls, a.bg, a.seed, b.cls, b.seed) for a, b in small] == [
        (a.cls, a.bg, a.seed, b.cls, b.seed) for a, b in large[:4]
    ]
    assert all(a.cls != b.cls and a.bg == b.bg for a, b in large)


def test_mixing_study_sweeps_volume_on_the_first_pairs_only(smoke_s2i):
    R = [-6.0, 0.0, 6.0]
    one = mixing_study(smoke_s2i, 1, seed=0, ratios_db=R, methods=("mean",), n_images=2)["mean"]
    three = mixing_study(smoke_s2i, 3, seed=0, ratios_db=R, methods=("mean",), n_images=2, n_ratio_pairs=1)["mean"]
    assert len(three["both_per_pair"]) == 3 and len(three["examples"]) == 3
    assert three["both_per_pair"][0] == one["both_per_pair"][0]  # the same first pair, the same images
    assert three["ratio_spearman"] == one["ratio_spearman"]  # the sweep ran on that pair alone
    assert three["both_present"] == pytest.approx(np.mean(three["both_per_pair"]))
    assert 0.0 <= three["both_only"] <= three["both_present"]
    with pytest.raises(ValueError, match="n_ratio_pairs"):
        mixing_study(smoke_s2i, 2, seed=0, ratios_db=R, methods=("mean",), n_ratio_pairs=0)


def test_judged_exactly_counts_the_wanted_classes_and_nothing_the_input_lacked():
    row = np.array([False, True, False, True, False])  # the judge reads classes 1 and 3
    assert judged_exactly(row, [1, 3])
    assert judged_exactly(row, [1], allowed=[3])  # 3 was in the input already
    assert not judged_exactly(row, [1])  # 3 is new: a second object, or a smear read as two
    assert not judged_exactly(row, [1, 2])  # 2 is missing
    assert not judged_exactly(np.zeros(5, bool), [0])


def test_edit_inputs_of_a_larger_study_start_with_the_smaller_one():
    """Every second still holds one silent object of another class than the heard one, every
    sound is recorded at another background than its still's, and a draw's first edits do not
    depend on how many are drawn."""
    small, large = edit_inputs(3, seed=2), edit_inputs(8, seed=2)
    for a, b in zip(small, large):
        np.testing.assert_array_equal(a.still, b.still)
        assert (a.heard, a.held, a.bg, a.sound.seed) == (b.heard, b.held, b.bg, b.sound.seed)
    assert [len(e.held) for e in large] == [0, 1] * 4
    assert all(e.heard not in e.held and e.sound.bg != e.bg for e in large)
    assert [e.heard for e in edit_inputs(8, seed=3)] != [e.heard for e in large]  # draws differ


def test_edit_study_strict_object_added_never_exceeds_the_heard_class_present(smoke_s2i):
    r = edit_study(smoke_s2i, 4, seed=0, gains_db=[0.0], strength=0.8, w_sound=4.0)
    assert 0.0 <= r["edit_object_added"] <= r["edit_heard_class_present"] <= 1.0
    assert len(r["examples"]) == 4
    # one unit per edit for the interval, whose mean is the figure
    assert len(r["added_per_edit"]) == 4 and np.mean(r["added_per_edit"]) == r["edit_object_added"]
    assert 0.0 <= r["edit_input_object_kept"] <= 1.0  # edits 1 and 3 start from a scene with an object
    none = edit_study(smoke_s2i, 1, seed=0, gains_db=[0.0], strength=0.8, w_sound=4.0)  # edit 0: an empty scene
    assert none["edit_input_object_kept"] is None
    assert 0.0 <= r["edit_real_object_added"] <= 1.0  # the judge's read of the perfect edits
    assert 0.0 <= r["edit_scene_kept"] <= 1.0


def test_video_study_edits_each_video_from_its_own_seed(smoke_s2i, tmp_path, monkeypatch):
    """Video i is edited from seed + i (every frame of a video shares its noise, the videos do
    not), and every output is decoded and read."""
    import s2i.method.video_edit as video_edit

    seeds = []

    def recording(*args, seed=0, **kw):
        seeds.append(seed)
        return real(*args, seed=seed, **kw)

    real = video_edit.edit_video
    monkeypatch.setattr(video_edit, "edit_video", recording)
    r = video_study(smoke_s2i, 2, 5, tmp_path, n_frames=8, steps=2)
    assert seeds == [5, 6]
    assert len(r["frames"]) == 2 and all(len(f) == 8 for f in r["frames"])
    assert 0.0 <= r["video_object_present"] <= 1.0 and r["probes"][0]["video"] == "h264"
    assert 0.0 <= r["video_scene_kept"] <= 1.0
    assert len(r["corr_per_video"]) == 2
    np.testing.assert_allclose(np.mean(r["corr_per_video"]), r["video_size_envelope_corr"])


def test_scene_kept_counts_a_patch_around_the_object_and_nothing_else():
    from s2i.eval.studies import SCENE_MARGIN, scene_kept

    inputs = np.full((4, 32, 32, 3), 100, np.uint8)
    edits = inputs.copy()
    yy, xx = np.mgrid[:32, :32]
    disk = (yy - 15.5) ** 2 + (xx - 15.5) ** 2 <= (5 + SCENE_MARGIN) ** 2
    edits[0][disk] = 255  # the object only: the scene kept
    edits[1][4:28, 4:28] = 0  # a patch of another place over the whole centre: nothing kept
    edits[2][:3] = 0  # the frame outside the centre: not read
    edits[3][4:28, 4:28] = 100 + 20  # moved less than the tolerance: kept
    got = scene_kept(edits, inputs, np.full(4, 5.0))
    np.testing.assert_allclose(got, [1.0, 0.0, 1.0, 1.0])
    half = edits[0].copy()
    half[:, 16:][~disk[:, 16:]] = 0  # the right half of the centre repainted
    assert 0.4 < scene_kept(half[None], inputs[:1], np.array([5.0]))[0] < 0.6


def test_real_pair_scenes_put_each_object_in_its_own_half():
    from s2i.eval.studies import real_pair_scenes
    from s2i.toyworld import world

    pairs = mix_pairs(6, seed=2)
    a = real_pair_scenes(pairs, seed=2)
    assert a.shape == (6, world.IMG, world.IMG, 3) and a.dtype == np.uint8
    assert np.array_equal(a, real_pair_scenes(pairs, seed=2))  # seeded
    from s2i.toyworld.stills import codec_roundtrip

    h = world.IMG // 2
    places = codec_roundtrip(np.stack([world.render_still(world.Scene(sa.bg, [])) for sa, _ in pairs]))
    for img, empty in zip(a, places.astype(int)):
        diff = np.abs(img.astype(int) - empty).max(-1) > 60  # where an object is
        side_by_side = diff[:, h].sum() < diff[h].sum()  # the line between the halves: the emptier one
        line = diff[:, h - 1 : h + 1] if side_by_side else diff[h - 1 : h + 1]
        halves = (diff[:, :h], diff[:, h:]) if side_by_side else (diff[:h], diff[h:])
        assert all(x.sum() > 20 for x in halves)  # an object of radius 6.5 in each
        assert line.sum() < 0.1 * diff.sum()  # and the two apart (a bar's ends may reach the line)


def test_recon_read_draws_each_still_as_generate_does_and_reads_it(smoke_s2i):
    from s2i.eval.stills import judge_scores
    from s2i.eval.studies import recon_read
    from s2i.toyworld.stills import make_stills

    bb, held = smoke_s2i.backbones, make_stills(12, seed=5)
    once, drawn = recon_read(bb, held, seed=2)
    np.testing.assert_array_equal(drawn, bb.generate(bb.encode_images(held.images), seed=2))
    assert once == judge_scores(bb.judge.report(drawn), held, "recon", ci_seed=2)
    lo, hi = once["recon_class_acc_ci95"]
    assert lo <= once["recon_class_acc"] <= hi
    best, drawn3 = recon_read(bb, held, seed=2, candidates=3, prefix="recon_best_of")
    assert set(best) == {k.replace("recon", "recon_best_of", 1) for k in once}
    assert drawn3.shape == drawn.shape and not np.array_equal(drawn3, drawn)  # some still kept another candidate
