"""The latent toy generator (s2i.models.latent): training (both phases, resumable), sampling
through the shared sampler (plain, composed with masks, SDEdit, regions), its saved format and
its place behind ToyBackbones."""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest
import torch

from s2i.backbones.toy import ToyBackbones
from s2i.models.common import to_tensor
from s2i.models.generator import GeneratorCfg, ToyGenerator
from s2i.models.latent import Autoencoder, ConvDenoiser, LatentDenoiser, LatentGenerator, build
from s2i.toyworld.stills import make_stills
from s2i.train.generator import train_generator

LATENT = dict(channels=4, ae_width=8, ae_steps=4, ae_batch=8, width=64, depth=1)
CFG = GeneratorCfg(kind="latent", latent=LATENT, steps=3, batch=8, sample_steps=3)


@pytest.fixture(scope="module")
def stills():
    return make_stills(32, seed=0)


@pytest.fixture(scope="module")
def emb(stills):
    return torch.randn(len(stills.images), 16, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def gen(stills, emb):
    return train_generator(emb, stills.images, CFG, seed=0)


def test_latent_generator_draws_pictures_deterministically(gen, emb):
    assert isinstance(gen, LatentGenerator) and gen.noise_shape == (4, 8, 8) and gen.image_size == 32
    a = gen(emb[:3], n_per=2, seed=1)
    assert a.shape == (6, 32, 32, 3) and a.dtype == np.uint8
    assert np.array_equal(gen(emb[:3], n_per=2, seed=1), a)
    assert not np.array_equal(gen(emb[:3], n_per=2, seed=2), a)
    assert not gen.scheduler.config.clip_sample  # latents are not pictures: no clipping to [-1, 1]


def test_drawing_in_channels_last_memory_draws_the_same_pictures(gen, emb):
    """Drawing keeps its networks channels-last (speed); the same weights in the contiguous
    layout draw the same pictures, up to float rounding (a level or two of 255 on a few pixels)."""
    assert gen.decoder.inp.weight.is_contiguous(memory_format=torch.channels_last)
    plain = LatentGenerator(gen.decoder, gen.autoencoder, gen.cfg, gen.emb_rms)
    plain.decoder = copy.deepcopy(gen.decoder).to(memory_format=torch.contiguous_format)
    plain.autoencoder = copy.deepcopy(gen.autoencoder).to(memory_format=torch.contiguous_format)
    assert not plain.decoder.inp.weight.is_contiguous(memory_format=torch.channels_last)
    a, b = gen(emb[:4], n_per=2, seed=3).astype(int), plain(emb[:4], n_per=2, seed=3).astype(int)
    assert np.abs(a - b).max() <= 3 and (a != b).mean() < 0.01


def test_autoencoder_latents_have_unit_variance(gen, stills):
    z = gen.autoencoder.encode_all(to_tensor(stills.images))
    assert z.shape == (32, 4, 8, 8)
    assert float(z.std()) == pytest.approx(1.0, rel=1e-4)  # scaling_factor set on these very pictures


def test_autoencoder_learns_to_reconstruct(stills):
    """A few hundred steps already beat the best constant picture (the mean still) by far: a
    decoder that ignored its latents, or a broken loss, would not."""
    from s2i.models.latent import LatentCfg
    from s2i.train.generator import train_autoencoder

    lat = LatentCfg(channels=4, ae_width=8, ae_steps=150, ae_batch=16, ae_lr=3e-3)
    torch.manual_seed(0)
    ae = train_autoencoder(Autoencoder(4, 8), stills.images, lat, torch.Generator().manual_seed(0))
    x = to_tensor(stills.images)
    with torch.no_grad():
        mse = float(((ae.decode(ae.encode(x)) - x) ** 2).mean())
    baseline = float(((x - x.mean(0, keepdim=True)) ** 2).mean())
    assert mse < 0.5 * baseline


def test_save_load_round_trip_and_format(tmp_path, gen, emb):
    from safetensors.torch import load_file

    d = tmp_path / "generator"
    gen.save(d)
    assert (d / "scheduler" / "scheduler_config.json").exists() and (d / "s2i_generator.json").exists()
    state = load_file(str(d / "denoiser.safetensors"))
    assert set(state) == set(gen.decoder.state_dict())
    assert "scaling_factor" in load_file(str(d / "autoencoder.safetensors"))
    back = ToyGenerator.load(d)  # the pixel generator's loader reads the kind and hands over
    assert isinstance(back, LatentGenerator) and back.cfg == gen.cfg and back.emb_rms == gen.emb_rms
    assert float(back.autoencoder.scaling_factor) == float(gen.autoencoder.scaling_factor)
    assert np.array_equal(back(emb[:2], seed=5), gen(emb[:2], seed=5))


def test_compose_masks_and_region(gen, emb, stills):
    init = stills.images[:2]
    region = np.zeros((32, 32), np.float32)
    region[8:24, 8:24] = 1.0
    out = gen.compose([emb[:2]], [2.0], seed=0, init_images=init, strength=0.8, region=region)
    assert out.shape == (2, 32, 32, 3)
    outside = region == 0
    assert np.array_equal(out[:, outside], init[:, outside])  # kept exactly, not its round trip
    assert not np.array_equal(out[:, ~outside], init[:, ~outside])
    masks = np.zeros((2, 32, 32), np.float32)
    masks[0, :, :16], masks[1, :, 16:] = 1.0, 1.0
    two = gen.compose([emb[:2], emb[2:4]], [2.0, 2.0], seed=0, masks=masks)
    assert two.shape == (2, 32, 32, 3)
    with pytest.raises(ValueError, match="32x32"):
        gen.compose([emb[:2], emb[2:4]], [2.0, 2.0], seed=0, masks=np.ones((2, 8, 8)))


class _IdentityX0(torch.nn.Module):
    """An oracle latent x0-predictor that returns its input: a perfect denoiser at t -> 0."""

    embed_dim = 16
    shape = (4, 8, 8)

    def forward(self, z, t, e):
        return z


def _mad(a, b) -> float:
    return float(np.abs(a.astype(int) - b.astype(int)).mean())


def test_sdedit_starts_from_the_encoded_input(gen, emb, stills):
    """With a perfect denoiser, strength 0 gives back the input's autoencoder round trip, and
    more strength keeps less of it."""
    from s2i.models.common import to_uint8

    oracle = LatentGenerator(_IdentityX0(), gen.autoencoder, CFG, 1.0)
    init = stills.images[:4]
    with torch.no_grad():
        round_trip = to_uint8(gen.autoencoder.decode(gen.autoencoder.encode(to_tensor(init))))
    out = oracle(emb[:4], init_images=init, strength=0.0, seed=0, guidance=1.0)
    assert _mad(out, round_trip) < 2.0
    half = oracle(emb[:4], init_images=init, strength=0.6, seed=0, guidance=1.0)
    full = oracle(emb[:4], init_images=init, strength=1.0, seed=0, guidance=1.0)
    assert _mad(out, round_trip) < _mad(half, round_trip) <= _mad(full, round_trip)


@pytest.mark.parametrize("resident", [False, True], ids=["cpu-drawn", "device-drawn"])
def test_train_latent_generator_resumes_in_either_phase(tmp_path, stills, emb, monkeypatch, resident):
    """Killed in either phase and run again, training ends with the weights of an uninterrupted
    run; also where batches and noise are drawn on the training device (a GPU's way, forced here
    on the CPU), whose stream is its own."""
    import s2i.train.generator as tg

    class Killed(Exception):
        pass

    cpu_drawn = train_generator(emb[:16], stills.images[:16], CFG, seed=0)
    monkeypatch.setattr(tg, "_resident", lambda dev: resident)

    x, e = stills.images[:16], emb[:16]
    ref = train_generator(e, x, CFG, seed=0)
    for part, at in (("autoencoder", 3), ("generator", 2)):  # the last steps: logged, checkpointed before
        ck = tmp_path / f"{part}.pt"

        def kill(row, part=part, at=at):
            if row["part"] == part and row["step"] == at:  # logged after the checkpoint of step `at`
                raise Killed

        with pytest.raises(Killed):
            train_generator(e, x, CFG, seed=0, ckpt_path=ck, ckpt_every=1, log=kill)
        state = torch.load(ck, weights_only=False)
        assert state["phase"] == ("autoencoder" if part == "autoencoder" else "diffusion")
        rows = []
        resumed = train_generator(e, x, CFG, seed=0, ckpt_path=ck, ckpt_every=1, log=rows.append)
        redone = [r["step"] for r in rows if r["part"] == part]
        assert redone[0] == at  # resumed where the checkpoint left off
        for module in ("decoder", "autoencoder"):
            for (k, p), (_, q) in zip(
                getattr(resumed, module).state_dict().items(), getattr(ref, module).state_dict().items()
            ):
                assert torch.equal(p, q), (part, module, k)
    other_stream = any(not torch.equal(p, q) for p, q in zip(ref.decoder.parameters(), cpu_drawn.decoder.parameters()))
    assert other_stream == resident


def test_unknown_kind_is_refused(stills, emb):
    with pytest.raises(ValueError, match="'pixel' or 'latent'"):
        train_generator(emb, stills.images, replace(CFG, kind="vae"), seed=0)


def test_toy_backbones_use_a_latent_generator(gen, emb):
    """ToyBackbones draws with a latent generator as with the pixel one."""
    bb = ToyBackbones(lambda: None, gen)
    assert bb.embed_dim == 16 and bb.image_size == 32
    assert np.array_equal(bb.generate(emb[:2], seed=3), gen(emb[:2], seed=3))
    assert bb.compose([emb[:2]], [1.5], seed=0).shape == (2, 32, 32, 3)


def test_latent_denoiser_shapes_and_unconditional_input():
    den = LatentDenoiser(embed_dim=16, channels=4, width=32, depth=2)
    z = torch.randn(3, 4, 8, 8)
    out = den(z, torch.tensor([0, 500, 999]), torch.zeros(3, 16))
    assert out.shape == (3, 4, 8, 8) and torch.isfinite(out).all()


def test_the_denoiser_is_chosen_by_the_config_and_round_trips(tmp_path, stills, emb, gen):
    assert isinstance(gen.decoder, ConvDenoiser)  # the default
    cfg = replace(CFG, latent={**LATENT, "denoiser": "mlp", "width": 16, "depth": 2})
    gen = train_generator(emb, stills.images, cfg, seed=0)
    assert isinstance(gen.decoder, LatentDenoiser)
    gen.save(tmp_path / "g")
    back = ToyGenerator.load(tmp_path / "g")
    assert isinstance(back.decoder, LatentDenoiser)
    assert np.array_equal(back(emb[:2], seed=1), gen(emb[:2], seed=1))
    with pytest.raises(ValueError, match="'conv', 'mlp'"):
        build(replace(CFG, latent={**LATENT, "denoiser": "unet"}), 16)


def test_bf16_setting_resolves_per_device():
    """``"auto"`` is bfloat16 exactly where the CPU has the instructions for it; True and False
    are kept; anything else is refused."""
    from s2i.models.common import native_bf16, use_bf16

    flags = next((ln for ln in open("/proc/cpuinfo") if ln.startswith("flags")), "").split()
    assert native_bf16("cpu") == bool({"avx512_bf16", "amx_bf16"} & set(flags))
    assert use_bf16("auto", "cpu") == native_bf16("cpu")
    assert use_bf16(True, "cpu") is True and use_bf16(False, "cpu") is False
    with pytest.raises(ValueError, match="bf16 must be"):
        use_bf16("yes", "cpu")


def test_denoiser_trains_and_draws_under_bf16(tmp_path, stills, emb, gen):
    """bfloat16 autocast in training (``bf16``) and in drawing (``sample_bf16``, saved with the
    model): the weights stay float32 and finite, and a bf16 drawing is the float32 drawing up to
    bfloat16's rounding: far nearer to it than a drawing from other noise."""
    g16 = train_generator(emb, stills.images, replace(CFG, bf16=True), seed=0)
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in g16.decoder.parameters())
    assert not all(torch.equal(a, b) for a, b in zip(g16.decoder.parameters(), gen.decoder.parameters()))
    fp32 = gen(emb[:8], n_per=2, seed=5).astype(int)
    drawn = LatentGenerator(gen.decoder, gen.autoencoder, replace(gen.cfg, sample_bf16=True), gen.emb_rms)
    bf16 = drawn(emb[:8], n_per=2, seed=5).astype(int)
    assert not np.array_equal(bf16, fp32)  # autocast was on
    other_noise = gen(emb[:8], n_per=2, seed=6).astype(int)
    assert np.abs(bf16 - fp32).mean() < 0.2 * np.abs(other_noise - fp32).mean()
    drawn.save(tmp_path / "g")
    assert LatentGenerator.load(tmp_path / "g").cfg.sample_bf16 is True


def test_the_snr_floor_raises_the_noisiest_steps_weights(stills, emb):
    """``snr_floor`` 0 is plain min-SNR (the default: the same training bit for bit); a floor
    lifts the noisiest timesteps' weights, near 0 under min-SNR, to the floor, and a floor equal
    to the cap weighs every timestep alike."""
    from diffusers import DDPMScheduler

    from s2i.train.generator import x0_loss_weights

    ac = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2").alphas_cumprod
    snr = ac / (1 - ac)
    plain, floored, flat = x0_loss_weights(ac, 5.0), x0_loss_weights(ac, 5.0, 1.0), x0_loss_weights(ac, 5.0, 5.0)
    assert torch.equal(plain, torch.minimum(snr, torch.tensor(5.0))) and plain[900] < 0.05
    assert floored[900] == 1.0 and torch.equal(floored[:400], plain[:400]) and torch.all(flat == 5.0)
    ref = train_generator(emb, stills.images, CFG, seed=0)
    again = train_generator(emb, stills.images, replace(CFG, snr_floor=0.0), seed=0)
    other = train_generator(emb, stills.images, replace(CFG, snr_floor=1.0), seed=0)
    assert all(torch.equal(a, b) for a, b in zip(again.decoder.parameters(), ref.decoder.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(other.decoder.parameters(), ref.decoder.parameters()))


def test_the_object_weight_weighs_the_cells_objects_cover(stills, emb):
    """``object_weight`` 0 trains as before, bit for bit; above 0 a covered cell's error weighs
    1 + the weight against an uncovered cell's 1, each picture's weights of mean 1, and training
    needs each target's cover."""
    from s2i.train.generator import object_weights

    cover = torch.zeros(2, 1, 8, 8)
    cover[0, 0, 2, 3], cover[0, 0, 2, 4] = 1.0, 0.5
    w = object_weights(cover, 8.0)
    assert torch.allclose(w.mean(dim=(1, 2, 3)), torch.ones(2))
    assert w[0, 0, 2, 3] / w[0, 0, 0, 0] == pytest.approx(9.0) and w[0, 0, 2, 4] / w[0, 0, 0, 0] == pytest.approx(5.0)
    assert torch.all(w[1] == 1.0)  # a picture without an object: every cell alike
    ref = train_generator(emb, stills.images, CFG, seed=0)
    again = train_generator(emb, stills.images, replace(CFG, object_weight=0.0), seed=0)
    assert all(torch.equal(a, b) for a, b in zip(again.decoder.parameters(), ref.decoder.parameters()))
    with pytest.raises(ValueError, match="needs each target's object cover"):
        train_generator(emb, stills.images, replace(CFG, object_weight=4.0), seed=0)
