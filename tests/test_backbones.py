"""Tests of the toy backbones (``s2i.models``, ``s2i.train``) at SMOKE architecture size with a
handful of training steps:
the open_clip image encoder (created by open_clip's factory from s2i's registered config,
saved as an open_clip checkpoint), the miniature unCLIP generator (diffusers
``save_pretrained``), the judge, the backbones folder, the pretraining data and augmentation,
and the generator's checkpoint/resume. The models are built once per module (CPU, ~20 s)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn as nn

from s2i.backbones import load_backbones
from s2i.backbones.toy import ToyBackbones
from s2i.models.common import to_tensor, to_uint8
from s2i.models.generator import GeneratorCfg, ToyGenerator
from s2i.models.image_encoder import CONFIG_DIR, ImageEncoder, embed, register_model_configs
from s2i.models.judge import Judge
from s2i.toyworld import world
from s2i.toyworld.stills import make_stills, sample_scenes
from s2i.train.encoder import EncoderCfg, augment, train_encoder
from s2i.train.generator import train_generator
from s2i.train.judge import JudgeCfg, train_judge

ENC_CFG = EncoderCfg(model="s2i-smoke-vit", steps=2, batch=16)
GEN_CFG = GeneratorCfg(block_out_channels=(16, 32, 32), steps=2, batch=8, sample_steps=3)
JUDGE_CFG = JudgeCfg(steps=2, width=8)


@pytest.fixture(scope="module")
def stills():
    return make_stills(64, seed=0)


@pytest.fixture(scope="module")
def encoder(stills):
    return train_encoder(stills, ENC_CFG, seed=0)


@pytest.fixture(scope="module")
def emb(encoder, stills):
    return embed(encoder, stills.images)


@pytest.fixture(scope="module")
def generator(emb, stills):
    return train_generator(emb, stills.images, GEN_CFG, seed=0)


@pytest.fixture(scope="module")
def judge(stills):
    return train_judge(stills, JUDGE_CFG, seed=0)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory, encoder, generator, judge):
    d = tmp_path_factory.mktemp("models")
    encoder.save(d / "image_encoder")
    generator.save(d / "generator")
    judge.save(d / "judge")
    return d


# --------------------------------------------------------------------------------------------
# image encoder
# --------------------------------------------------------------------------------------------
def test_model_config_is_registered_with_open_clip():
    import open_clip

    register_model_configs()
    assert {"s2i-smoke-vit", "s2i-toy-rn"} <= set(open_clip.list_models())
    m = open_clip.create_model("s2i-smoke-vit", pretrained=None)  # open_clip's own factory
    cfg = json.loads((CONFIG_DIR / "s2i-smoke-vit.json").read_text())
    assert m.visual.output_dim == cfg["embed_dim"]
    assert m.visual.image_size == (cfg["vision_cfg"]["image_size"],) * 2


def test_image_encoder_is_open_clips_model(encoder, emb, stills):
    import open_clip

    assert isinstance(encoder.clip, open_clip.CLIP)
    assert encoder.model_name == "s2i-smoke-vit" and encoder.embed_dim == 128
    assert emb.shape == (64, 128) and emb.dtype == torch.float32
    assert torch.isfinite(emb).all()
    # deterministic, batch-independent, and different images give different embeddings
    assert torch.allclose(embed(encoder, stills.images[:5], batch=2), emb[:5], atol=1e-5)
    assert (emb[0] - emb[1]).abs().max() > 1e-4


def test_image_encoder_save_load(tmp_path, encoder, emb, stills):
    import open_clip

    encoder.save(tmp_path / "enc")
    assert sorted(p.name for p in (tmp_path / "enc").iterdir()) == [
        "open_clip_config.json",
        "open_clip_model.safetensors",
    ]
    back = ImageEncoder.load(tmp_path / "enc")
    assert not back.training and back.model_name == "s2i-smoke-vit"
    assert torch.equal(embed(back, stills.images), emb)
    # the checkpoint is an ordinary open_clip checkpoint: open_clip's factory loads it directly
    clip = open_clip.create_model("s2i-smoke-vit", pretrained=str(tmp_path / "enc" / "open_clip_model.safetensors"))
    # a batch of 4, not of all stills: the same values up to the kernels' summation order
    torch.testing.assert_close(
        embed(ImageEncoder("s2i-smoke-vit", clip).eval(), stills.images[:4]), emb[:4], atol=1e-5, rtol=1e-4
    )
    # and the weights really were loaded: a fresh model differs
    torch.manual_seed(123)
    assert not torch.allclose(embed(ImageEncoder("s2i-smoke-vit").eval(), stills.images[:4]), emb[:4])


def test_image_encoder_applies_open_clip_normalisation(encoder):
    pc = encoder.clip.visual.preprocess_cfg
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    manual = encoder.clip.encode_image(
        ((x + 1) / 2 - torch.tensor(pc["mean"]).view(1, 3, 1, 1)) / torch.tensor(pc["std"]).view(1, 3, 1, 1)
    )
    with torch.no_grad():
        assert torch.allclose(encoder(x), manual, atol=1e-5)


# --------------------------------------------------------------------------------------------
# generator
# --------------------------------------------------------------------------------------------
def test_generator_output(generator, emb):
    out = generator(emb[:3], n_per=2, seed=0)
    assert out.shape == (6, world.IMG, world.IMG, 3) and out.dtype == np.uint8
    assert np.array_equal(generator(emb[:3], n_per=2, seed=0), out)  # same seed, same images
    assert not np.array_equal(generator(emb[:3], n_per=2, seed=1), out)
    assert not np.array_equal(generator(emb[:3], n_per=2, seed=0, noise_level=0.5), out)  # embedding noise


def test_generator_uses_the_embedding(generator, emb):
    a = generator(emb[:2], seed=0, guidance=1.0).astype(int)
    b = generator(emb[2:4], seed=0, guidance=1.0).astype(int)
    assert np.abs(a - b).mean() > 0.0  # same noise, other embedding: another image


@pytest.mark.parametrize("shape", [(2, 127), (2, 129), (128,), (1, 2, 128)])
def test_generator_rejects_wrong_embedding_shape(generator, shape):
    with pytest.raises(ValueError, match=r"\(N, 128\)"):
        generator(torch.zeros(shape), seed=0)


def test_generator_init_images_count_must_match(generator, emb, stills):
    with pytest.raises(ValueError, match="init_images"):
        generator(emb[:2], init_images=stills.images[:3], seed=0)


def test_generator_save_load(tmp_path, generator, emb):
    generator.save(tmp_path / "gen")
    d = tmp_path / "gen"
    assert (d / "unet" / "diffusion_pytorch_model.safetensors").exists()
    assert (d / "unet" / "config.json").exists() and (d / "scheduler" / "scheduler_config.json").exists()
    assert (d / "to_tokens.safetensors").exists() and (d / "s2i_generator.json").exists()
    assert not list(d.glob(".*tmp*"))
    back = ToyGenerator.load(d)
    assert back.cfg == generator.cfg and back.emb_rms == generator.emb_rms
    a = generator(emb[:2], n_per=2, seed=3)
    assert np.array_equal(back(emb[:2], n_per=2, seed=3), a)
    assert not np.array_equal(back(emb[:2], n_per=2, seed=4), a)
    # the UNet is an ordinary diffusers folder
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(d / "unet")
    assert all(
        torch.equal(p, q) for p, q in zip(unet.state_dict().values(), generator.decoder.unet.state_dict().values())
    )


class _IdentityX0(nn.Module):
    """An oracle x0-predictor that returns its input: a perfect denoiser at t -> 0. With it the
    sampler's SDEdit plumbing (where it starts, how much of the input it keeps) is exact."""

    embed_dim = 128
    image_size = 32

    def forward(self, x, t, e):
        return x


def _mad(a, b) -> float:
    return float(np.abs(a.astype(int) - b.astype(int)).mean())


def test_init_images_strength_zero_keeps_the_input(stills, emb):
    gen = ToyGenerator(_IdentityX0(), GEN_CFG, 1.0)
    init = stills.images[:4]
    out = gen(emb[:4], init_images=init, strength=0.0, seed=0, guidance=1.0)
    assert _mad(out, init) < 2.0  # one DDIM step at t=0 with a perfect denoiser: the input back
    out_half = gen(emb[:4], init_images=init, strength=0.6, seed=0, guidance=1.0)
    out_full = gen(emb[:4], init_images=init, strength=1.0, seed=0, guidance=1.0)
    assert _mad(out, init) < _mad(out_half, init) <= _mad(out_full, init)


def test_init_images_strength_one_ignores_the_input(stills, emb):
    gen = ToyGenerator(_IdentityX0(), GEN_CFG, 1.0)
    a, b = stills.images[:4], stills.images[4:8]
    out_a = gen(emb[:4], init_images=a, strength=1.0, seed=0, guidance=1.0)
    out_b = gen(emb[:4], init_images=b, strength=1.0, seed=0, guidance=1.0)
    assert _mad(out_a, out_b) < 0.02 * _mad(a, b)


def test_init_images_with_the_trained_generator(generator, stills, emb):
    """With the (barely trained) real generator: strength changes the result, every strength
    gives valid images, and the same call is reproducible. (Closeness to the input at
    strength 0 needs a model that denoises well at t ~ 0; see the oracle tests above.)"""
    init = stills.images[:2]
    s0 = generator(emb[:2], init_images=init, strength=0.0, seed=0)
    s1 = generator(emb[:2], init_images=init, strength=1.0, seed=0)
    assert s0.shape == s1.shape == (2, 32, 32, 3)
    assert not np.array_equal(s0, s1)
    assert np.array_equal(generator(emb[:2], init_images=init, strength=0.0, seed=0), s0)


# --------------------------------------------------------------------------------------------
# judge
# --------------------------------------------------------------------------------------------
def test_judge_report_and_save_load(tmp_path, judge, stills):
    rep = judge.report(stills.images[:6])
    C, NB = len(world.CLASSES), len(world.BACKGROUNDS)
    assert rep["p_present"].shape == (6, C) and rep["present"].dtype == bool
    assert rep["size"].shape == (6, C) and rep["bg"].shape == (6,) and rep["p_bg"].shape == (6, NB)
    np.testing.assert_allclose(rep["p_bg"].sum(1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(rep["present"], rep["p_present"] > 0.5)
    np.testing.assert_array_equal(rep["top_class"], rep["p_present"].argmax(1))
    judge.save(tmp_path / "judge")
    back = Judge.load(tmp_path / "judge")
    assert back.config == dict(n_classes=C, n_bg=NB, width=8)
    rep2 = back.report(stills.images[:6])
    assert rep.keys() == rep2.keys()
    for k in rep:
        np.testing.assert_array_equal(rep[k], rep2[k], err_msg=k)
    # other sizes are resized to 32 first
    big = np.repeat(np.repeat(stills.images[:2], 2, axis=1), 2, axis=2)
    np.testing.assert_allclose(judge.report(big)["p_present"], rep["p_present"][:2], atol=1e-4)


# --------------------------------------------------------------------------------------------
# the backbones folder
# --------------------------------------------------------------------------------------------
def test_toy_backbones_load(models_dir, emb, stills, generator):
    bb = ToyBackbones.load(models_dir)
    assert bb.embed_dim == 128 and bb.image_size == 32
    # a batch of 3, not of all stills: equal up to float tolerance (kernels differ by batch size and CPU)
    torch.testing.assert_close(bb.encode_images(stills.images[:3]), emb[:3], atol=1e-5, rtol=1e-4)
    assert bb.encode_images(stills.images[0]).shape == (1, 128)  # a single image
    big = np.repeat(np.repeat(stills.images[:2], 3, axis=1), 3, axis=2)  # 96x96 -> resized to 32
    assert bb.encode_images(big).shape == (2, 128)
    assert np.array_equal(bb.generate(emb[:2], n_per=1, seed=5), generator(emb[:2], seed=5))
    assert load_backbones("smoke", models_dir).embed_dim == 128


def test_toy_backbones_load_incomplete_folder(tmp_path, encoder):
    encoder.save(tmp_path / "m" / "image_encoder")
    with pytest.raises(FileNotFoundError) as e:
        ToyBackbones.load(tmp_path / "m")
    msg = str(e.value)
    assert "generator/s2i_generator.json" in msg and "judge/judge.safetensors" in msg
    assert "image_encoder" not in msg.split("missing")[1]  # present parts are not listed as missing
    assert str(tmp_path / "m") in msg
    with pytest.raises(FileNotFoundError, match="image_encoder/open_clip_model.safetensors"):
        ToyBackbones.load(tmp_path / "empty")


def test_load_backbones_arguments():
    with pytest.raises(ValueError, match="model_dir"):
        load_backbones("toy")
    with pytest.raises(ValueError, match="nope"):
        load_backbones("nope", "x")


# --------------------------------------------------------------------------------------------
# pretraining data and augmentation
# --------------------------------------------------------------------------------------------
def test_to_tensor_to_uint8_roundtrip(stills):
    x = to_tensor(stills.images[:3])
    assert x.shape == (3, 3, 32, 32) and x.min() >= -1 and x.max() <= 1
    assert np.array_equal(to_uint8(x), stills.images[:3])


def _colours(img_u8) -> set:
    return set(map(tuple, img_u8.reshape(-1, 3).tolist()))


def test_augment_keeps_colours():
    rng = np.random.default_rng(0)
    imgs = np.zeros((8, 32, 32, 3), np.uint8)
    palette = np.array([[200, 30, 30], [20, 90, 240], [240, 240, 20]], np.uint8)
    for i in range(8):  # flat background + a flat block: two colours per image
        bg, fg = rng.choice(3, 2, replace=False)
        imgs[i] = palette[bg]
        imgs[i, 8:20, 10:24] = palette[fg]
    x = to_tensor(imgs)
    g = torch.Generator().manual_seed(0)
    clean = augment(x, g, max_shift=3, noise=0.0)
    for i in range(8):  # translation (replicate padding) and flip only: no new colours
        assert _colours(to_uint8(clean[i : i + 1])[0]) == _colours(imgs[i])
    assert any(not np.array_equal(to_uint8(clean[i : i + 1])[0], imgs[i]) for i in range(8))  # it does move things
    noisy = augment(x, torch.Generator().manual_seed(0), max_shift=3, noise=0.03)
    resid = noisy - clean  # same generator state: same shifts and flips, plus the noise
    assert abs(float(resid.mean())) < 0.005 and float(resid.std()) == pytest.approx(0.03, rel=0.1)
    # ignoring the noise (snap every pixel to the nearest palette colour) the colours are the input's
    pal = torch.from_numpy(palette).float() / 127.5 - 1  # (3 colours, 3 channels), as to_tensor scales
    for i in range(8):
        px = noisy[i].reshape(3, -1).t()
        nearest = torch.cdist(px, pal).argmin(1)
        snapped = {tuple(palette[j].tolist()) for j in nearest.unique().tolist()}
        assert snapped == _colours(imgs[i])
        assert float((px - pal[nearest]).abs().max()) < 6 * 0.03


def test_make_stills_labels_match_the_rendered_images():
    st = make_stills(48, seed=3, roundtrip=False)
    scenes = sample_scenes(48, 3)
    assert st.images.shape == (48, 32, 32, 3) and st.presence.shape == st.sizes.shape == (48, len(world.CLASSES))
    single_sizes, single_areas = [], []
    for i, scene in enumerate(scenes):
        img = st.images[i]
        # labels are those of the seeded scene ...
        assert int(st.bg[i]) == world.background_index(scene.background)
        assert sorted(np.flatnonzero(st.presence[i])) == sorted(o.cls for o in scene.objects)
        obj = np.zeros((32, 32), bool)
        for o in scene.objects:
            assert st.sizes[i, o.cls] == pytest.approx(o.radius()) and world.R_MIN <= o.radius() <= world.R_MAX
            m = world.object_mask(o.cls, o.radius(), o.x, o.y)
            obj |= m
        assert (st.sizes[i] > 0).sum() == len(scene.objects)
        # ... every object pixel holds one of the scene's palette colours, everything else is the background
        cols = {world.PALETTE[o.colour] for o in scene.objects}
        assert {tuple(p) for p in img[obj].tolist()} <= cols
        np.testing.assert_array_equal(img[~obj], world.background_image(int(st.bg[i]))[~obj])
        if len(scene.objects) == 1:
            (o,) = scene.objects
            single_sizes.append(o.radius())
            single_areas.append(obj.sum() / world.object_mask(o.cls, o.radius(), 16, 16).sum())
    # the drawn area of a lone object is its class's shape at the labelled radius
    assert len(single_areas) >= 10
    assert 0.75 < np.median(single_areas) < 1.3 and min(single_areas) > 0.5 and max(single_areas) < 1.6


def test_make_stills_roundtrip_is_close_and_seeded():
    a = make_stills(16, seed=3)
    b = make_stills(16, seed=3, roundtrip=False)
    np.testing.assert_array_equal(a.presence, b.presence)
    assert np.array_equal(a.images, make_stills(16, seed=3).images)  # deterministic codec
    assert 0 < _mad(a.images, b.images) < 10  # H.264 artefacts, nothing more
    assert not np.array_equal(make_stills(16, seed=4, roundtrip=False).images, b.images)


# --------------------------------------------------------------------------------------------
# generator checkpoint / resume
# --------------------------------------------------------------------------------------------
class _Killed(Exception):
    pass


def test_train_generator_resumes_from_its_checkpoint(tmp_path, emb, stills):
    cfg = replace(GEN_CFG, steps=3)
    x, e = stills.images[:16], emb[:16]
    ck = tmp_path / "gen.pt"

    def kill_at_last(row):
        if row["step"] == 2:  # logged at the last step, after the step-2 checkpoint (ckpt_every=1)
            raise _Killed

    with pytest.raises(_Killed):
        train_generator(e, x, cfg, seed=0, ckpt_path=ck, ckpt_every=1, log=kill_at_last)
    state = torch.load(ck, weights_only=False)
    assert state["step"] == 2 and {"model", "ema", "opt", "sched", "rng", "torch_rng"} <= set(state)

    steps = []
    resumed = train_generator(e, x, cfg, seed=0, ckpt_path=ck, ckpt_every=1, log=lambda r: steps.append(r["step"]))
    assert steps == [2]  # resumed at step 2: steps 0-1 were not redone
    ref = train_generator(e, x, cfg, seed=0)
    for (k, p), (k2, q) in zip(resumed.decoder.state_dict().items(), ref.decoder.state_dict().items()):
        assert k == k2 and torch.equal(p, q), k
    assert resumed.emb_rms == ref.emb_rms
    assert np.array_equal(resumed(e[:2], seed=0), ref(e[:2], seed=0))


def test_train_generator_checkpoint_cadence(tmp_path, emb, stills, monkeypatch):
    import s2i.utils as U

    saved = []
    real = U.atomic_torch_save
    monkeypatch.setattr(U, "atomic_torch_save", lambda obj, path: (saved.append(obj["step"]), real(obj, path))[1])
    train_generator(
        emb[:16], stills.images[:16], replace(GEN_CFG, steps=5), seed=0, ckpt_path=tmp_path / "g.pt", ckpt_every=2
    )
    assert saved == [2, 4]  # every ckpt_every steps, never after the last step


def test_resolve_device_explicit_env_and_default(monkeypatch):
    from s2i.models.common import resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setenv("S2I_DEVICE", "cpu")
    assert resolve_device() == torch.device("cpu")
    monkeypatch.delenv("S2I_DEVICE")
    assert resolve_device().type == ("cuda" if torch.cuda.is_available() else "cpu")


# ----------------------------------------------------------------------------- captions (the image encoder's text)
def test_captions_say_what_the_still_shows():
    from s2i.toyworld.stills import CAPTION_LEN, END, VOCAB, caption, caption_tokens

    scene = world.Scene("beach", [world.SceneObject("horn", size=4.0, x=5.0, y=27.0, colour="green")])
    assert caption(scene) == ["beach", "square", "green", "tiny", "left", "bottom"]
    two = world.Scene(0, scene.objects + [world.SceneObject("bell", size=12.9, x=16.0, y=16.0, colour=0)])
    assert caption(two)[6:] == ["and", "circle", "yellow", "huge", "centre", "middle"]
    assert caption(world.Scene("city", [])) == ["city", "nothing"]
    t = caption_tokens(two)
    assert t.shape == (CAPTION_LEN,) and int(t.argmax()) == 12 and t[12] == END  # open_clip pools at the argmax
    assert [VOCAB[i] for i in t[:12]] == caption(two) and not t[13:].any()
    st = make_stills(8, seed=1, roundtrip=False)
    np.testing.assert_array_equal(st.tokens, np.stack([caption_tokens(s) for s in sample_scenes(8, 1)]))


def test_hard_negative_captions_change_the_shapes_only():
    from s2i.toyworld.stills import VOCAB, caption_tokens
    from s2i.train.encoder import shapes_only, swap_shapes

    scenes = sample_scenes(64, seed=2)
    tok = torch.as_tensor(np.stack([caption_tokens(s) for s in scenes]))
    neg = swap_shapes(tok, torch.Generator().manual_seed(0))
    shape_ids = {VOCAB.index(s) for s in world.SHAPES}
    for a, b in zip(tok.tolist(), neg.tolist()):
        for x, y in zip(a, b):
            assert (x != y) == (x in shape_ids) and (y in shape_ids) == (x in shape_ids)
    keep = torch.arange(64) % 2 == 0
    short = shapes_only(tok, keep)
    assert torch.equal(short[keep], tok[keep])
    for s, row in zip([sc for i, sc in enumerate(scenes) if i % 2], short[~keep].tolist()):
        words = [VOCAB[i] for i in row if i and i != 63]
        assert words == (" and ".join(world.SHAPES[o.cls] for o in s.objects).split() or ["nothing"])


def test_judge_stills_take_any_colour_that_stands_out():
    from s2i.toyworld.stills import _background_colours

    plain, mixed = sample_scenes(300, seed=4), sample_scenes(300, seed=4, p_any_colour=0.5)
    assert [(o.cls, o.size, o.x, o.y) for s in plain for o in s.objects] == [
        (o.cls, o.size, o.x, o.y) for s in mixed for o in s.objects
    ]  # the same scenes, only colours differ
    rgb = [o.colour for s in mixed for o in s.objects if isinstance(o.colour, tuple)]
    assert 0.4 < len(rgb) / sum(len(s.objects) for s in mixed) < 0.6
    bg = _background_colours().astype(float)
    assert min(np.linalg.norm(bg - np.array(c), axis=1).min() for c in rgb) >= 80
    assert len(set(rgb)) > 0.9 * len(rgb)  # not a handful of colours
    st = make_stills(8, seed=4, roundtrip=False, p_any_colour=0.5)
    assert st.tokens is None and st.images.shape == (8, 32, 32, 3)


def _embedding_stills(n: int, seed: int, second_object_weight: float):
    """Stills' labels with embeddings made of their classes' directions: the second object's
    direction scaled by ``second_object_weight`` (0: the embedding holds only the first)."""
    from s2i.toyworld.stills import StillSet

    rng = np.random.default_rng(seed)
    C, D = len(world.CLASSES), 32
    dirs = np.random.default_rng(99).standard_normal((C, D))
    pres, emb = np.zeros((n, C), np.float32), np.zeros((n, D))
    for i in range(n):
        cls = rng.choice(C, size=int(rng.integers(1, 3)), replace=False)
        pres[i, cls] = 1
        emb[i] = dirs[cls[0]] + (second_object_weight * dirs[cls[1]] if len(cls) == 2 else 0)
    emb += 0.3 * rng.standard_normal(emb.shape)
    return emb, StillSet(np.zeros((n, 4, 4, 3), np.uint8), pres, pres * 5, np.zeros(n, int))


@pytest.mark.parametrize("second, lo, hi", [(1.0, 0.9, 1.0), (0.0, 0.0, 0.2)])
def test_probe_both_reads_whether_the_embedding_holds_the_second_object(second, lo, hi):
    from s2i.train.pretrain import probe_both

    e_train, train = _embedding_stills(2000, 0, second)
    e_test, test = _embedding_stills(400, 1, second)
    assert lo <= probe_both(e_train, train, e_test, test) <= hi
    single = replace(test, presence=test.presence * (test.presence.sum(1, keepdims=True) == 1))
    assert probe_both(e_train, train, e_test, single) is None
