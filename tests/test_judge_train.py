"""The judge's training outside the stage (``python -m s2i.train.judge rebuild``) and the
stage's two-object read (``judge_both_seen``). CPU only, tiny settings."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from s2i.eval.stills import judge_scores
from s2i.toyworld.stills import StillSet, make_stills
from s2i.train.judge import JudgeCfg, rebuild_judge, train_judge
from s2i.train.pretrain import JUDGE_ANY_COLOUR, JUDGE_SEED_OFFSET

TINY = dict(steps=3, batch=8, width=4)


def test_judge_scores_count_both_objects_only_on_two_object_stills():
    presence = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 1], [0, 1, 1], [0, 0, 0]], np.float32)
    d = StillSet(np.zeros((5, 4, 4, 3), np.uint8), presence, presence * 5.0, np.zeros(5, int))
    present = np.array([[1, 0, 0], [1, 1, 1], [0, 1, 0], [0, 1, 1], [0, 0, 0]], bool)
    rep = dict(present=present, top_class=present.argmax(1), size=presence * 5.0, bg=np.zeros(5, int))
    s = judge_scores(rep, d, "judge")
    assert s["judge_both_seen"] == pytest.approx(2 / 3)  # a third class besides still counts both seen
    assert s["judge_exact_set"] == pytest.approx(3 / 5)
    one = StillSet(d.images[:1], presence[:1], presence[:1] * 5.0, np.zeros(1, int))
    assert judge_scores({k: v[:1] for k, v in rep.items()}, one, "judge")["judge_both_seen"] is None


def test_rebuild_trains_the_stages_judge_and_records_it(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps(dict(judge=dict(steps=1500), timings=dict(encoder_s=1.0))))
    jd = rebuild_judge(tmp_path, seed=3, n_stills=16, judge=TINY, device="cpu")
    # the stage's judge: its own stills (seed + JUDGE_SEED_OFFSET, half in any colour), its seed
    stills = make_stills(16, 3 + JUDGE_SEED_OFFSET, p_any_colour=JUDGE_ANY_COLOUR)
    ref = train_judge(stills, JudgeCfg(**TINY), 3, device="cpu")
    for k, v in ref.state_dict().items():
        torch.testing.assert_close(jd.state_dict()[k], v)
    m = json.loads((tmp_path / "manifest.json").read_text())
    assert m["judge"] == TINY and m["judge_rebuilt"]["device"] == "cpu"
    assert m["timings"]["encoder_s"] == 1.0 and m["timings"]["judge_s"] >= m["timings"]["judge_data_s"] > 0
    assert (tmp_path / "judge" / "judge.safetensors").exists()


def test_rebuild_without_a_manifest_names_it_before_training(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        rebuild_judge(tmp_path, seed=0, n_stills=16, judge=TINY, device="cpu")
    assert not (tmp_path / "judge").exists()
