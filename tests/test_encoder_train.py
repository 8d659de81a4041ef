"""The image encoder's training outside the stage (``python -m s2i.train.encoder rebuild``).
CPU only, tiny settings."""

from __future__ import annotations

import json

import pytest
import torch

from s2i.models.image_encoder import ImageEncoder
from s2i.toyworld.stills import make_stills
from s2i.train.encoder import EncoderCfg, rebuild_encoder, train_encoder

TINY = dict(model="s2i-smoke-vit", steps=3, batch=8, lr=1e-3, temperature=0.2)


def test_rebuild_trains_the_stages_encoder_and_records_it(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps(dict(encoder=dict(steps=1000), timings=dict(judge_s=1.0))))
    enc = rebuild_encoder(tmp_path, seed=3, n_stills=16, encoder=TINY, device="cpu")
    ref = train_encoder(make_stills(16, 3), EncoderCfg(**TINY), 3, device="cpu")  # the stage's stills and seed
    for k, v in ref.state_dict().items():
        torch.testing.assert_close(enc.state_dict()[k], v)
    saved = ImageEncoder.load(tmp_path / "image_encoder")
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    torch.testing.assert_close(saved(x), ref(x))
    m = json.loads((tmp_path / "manifest.json").read_text())
    assert m["encoder"] == TINY and m["encoder_rebuilt"]["device"] == "cpu"
    assert m["timings"]["judge_s"] == 1.0 and m["timings"]["encoder_s"] > 0 and m["timings"]["encoder_data_s"] > 0


def test_rebuild_without_a_manifest_names_it_before_training(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        rebuild_encoder(tmp_path, seed=0, n_stills=16, encoder=TINY, device="cpu")
    assert not (tmp_path / "image_encoder").exists()
