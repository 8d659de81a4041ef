"""Tests of ``s2i.method.video_edit``'s candidates: what ranks a candidate video, and that the one
kept is the best-ranked of the plain edits from the candidate seeds. CPU only (the nbval smoke
run's models)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from s2i.method.video_edit import edit_frames, frame_sound_embeddings, video_score, video_scores


def test_video_score_adds_the_frames_direction_and_their_coherence():
    s = dict(changed=np.array([True, True, False]), direction=np.array([0.5, 0.2, 0.4]), coherence=np.zeros(2))
    assert video_score(s) == pytest.approx((0.5 + 0.2 - 1.0) / 3)  # a frame that changed nothing: -1
    # a candidate that changed every frame a little beats one that left a frame as it was
    all_changed = dict(s, changed=np.ones(3, bool), direction=np.array([0.1, 0.1, 0.1]))
    assert video_score(all_changed) > video_score(s)
    # the plain mean would rank them the other way: the rule matters
    assert np.mean(all_changed["direction"]) < np.mean(s["direction"])
    # the same object from frame to frame beats one that turns into another, the directions equal
    steady = dict(all_changed, coherence=np.array([0.9, 0.9]))
    flips = dict(all_changed, coherence=np.array([0.9, -0.2]))
    assert video_score(steady) == pytest.approx(0.1 + 0.9) and video_score(steady) > video_score(flips)
    one_frame = dict(changed=np.ones(1, bool), direction=np.array([0.3]), coherence=np.zeros(0))
    assert video_score(one_frame) == pytest.approx(0.3)


def test_video_scores_read_each_frame_and_each_pair_of_frames(smoke_s2i):
    bb = smoke_s2i.backbones
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (3, 32, 32, 3), dtype=np.uint8)
    edits = frames.copy()
    edits[0, 10:20, 10:20] = 255
    edits[2, 10:20, 10:20] = 255  # frames 0 and 2 changed the same way, frame 1 not at all
    e = bb.encode_images(frames)
    z = torch.randn(3, e.shape[1])
    s = video_scores(bb, edits, frames, e, z, None)
    np.testing.assert_array_equal(s["changed"], [True, False, True])
    assert s["direction"].shape == (3,) and s["coherence"].shape == (2,)
    assert abs(s["direction"][1]) < 1e-6  # an unchanged frame's change is nothing
    d = (bb.encode_images(edits) - e).float()
    expected = torch.nn.functional.cosine_similarity(d, z, dim=1).numpy()
    np.testing.assert_allclose(s["direction"], expected, atol=1e-5)
    quiet = video_scores(bb, edits, frames, e, z, z / 2)  # the direction is Z^A minus its turned-down copy
    np.testing.assert_allclose(quiet["direction"], expected, atol=1e-5)


def test_video_candidates_keep_the_best_ranked_plain_edit(smoke_s2i):
    """With candidates=K the video kept is one of the K videos edited from candidate_seeds (each
    the plain edit from that seed), the one video_score ranks first; candidates=1 is the plain
    edit from the seed."""
    from s2i.eval.videos import video_inputs
    from s2i.method.generate import candidate_seeds
    from s2i.toyworld import world

    picks = []
    for seed, x in enumerate(video_inputs(3, seed=1, n_frames=6)):
        times = np.arange(len(x.frames)) / world.FPS
        kw = dict(steps=2, ambience_db=None)  # the candidates' own drawings: they differ on the smoke model
        plain = [
            edit_frames(smoke_s2i, x.frames, x.audio, times, world.FPS, sd, **kw) for sd in candidate_seeds(seed, 3)
        ]
        np.testing.assert_array_equal(plain[0], edit_frames(smoke_s2i, x.frames, x.audio, times, world.FPS, seed, **kw))
        e = smoke_s2i.backbones.encode_images(x.frames)
        z_loud = frame_sound_embeddings(smoke_s2i, x.audio, times, world.FPS)
        ranks = [video_score(video_scores(smoke_s2i.backbones, p, x.frames, e, z_loud, None)) for p in plain]
        best = edit_frames(smoke_s2i, x.frames, x.audio, times, world.FPS, seed, candidates=3, **kw)
        np.testing.assert_array_equal(best, plain[int(np.argmax(ranks))])
        picks.append(int(np.argmax(ranks)))
        assert len({p.tobytes() for p in plain}) > 1  # the candidates differ
    assert max(picks) > 0  # not always the first candidate: the test tells a ranking from none
