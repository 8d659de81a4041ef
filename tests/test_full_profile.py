"""The ``full`` profile's loading code, run on tiny random models saved in the real formats.

No mocks: the OpenCLIP checkpoints are real state dicts (safetensors / torch .bin) loaded by
``open_clip``, and the unCLIP pipeline is a real ``save_pretrained`` folder loaded by diffusers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from s2i.backbones.full import FullBackbones
from s2i.backbones.openclip import MissingWeightsError, load_openclip_encoder
from s2i.backbones.unclip import load_unclip_pipeline, unclip_embed_dim
from s2i.testing import make_tiny_openclip_checkpoint, make_tiny_unclip_pipeline

EMBED_DIM = 32


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    """Non-square uint8 images, so the encoder's own resize + centre crop matter."""
    return np.random.default_rng(0).integers(0, 256, size=(3, 40, 48, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> tuple[str, str]:
    return make_tiny_openclip_checkpoint(tmp_path_factory.mktemp("openclip"), embed_dim=EMBED_DIM, seed=0)


@pytest.fixture(scope="module")
def unclip_dir(tmp_path_factory) -> str:
    return make_tiny_unclip_pipeline(tmp_path_factory.mktemp("unclip") / "stable-unclip", embed_dim=EMBED_DIM)


@pytest.fixture(scope="module")
def backbones(tiny_clip, unclip_dir) -> FullBackbones:
    name, ckpt = tiny_clip
    return FullBackbones(load_openclip_encoder(name, ckpt), load_unclip_pipeline(unclip_dir), steps=2, guidance=3.0)


def _reference_embeddings(model_name: str, seed: int, images: np.ndarray) -> torch.Tensor:
    """Embeddings from a freshly created model with the checkpoint's initialisation, done by hand."""
    torch.manual_seed(seed)
    model, _, preprocess = open_clip.create_model_and_transforms(model_name)
    model.eval()
    x = torch.stack([preprocess(Image.fromarray(im)) for im in images])
    with torch.no_grad():
        return model.encode_image(x)


# ------------------------------------------------------------------------------- OpenCLIP


@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
def test_openclip_checkpoint_roundtrip(tmp_path: Path, images: np.ndarray, fmt: str) -> None:
    name, ckpt = make_tiny_openclip_checkpoint(tmp_path, embed_dim=EMBED_DIM, fmt=fmt, seed=0)
    assert Path(ckpt).suffix == (".safetensors" if fmt == "safetensors" else ".bin")

    enc = load_openclip_encoder(name, ckpt)
    assert enc.checkpoint == ckpt
    assert (enc.image_size, enc.embed_dim) == (32, EMBED_DIM)
    got = enc.encode(images)
    assert got.shape == (3, EMBED_DIM) and got.dtype == torch.float32

    ref = _reference_embeddings(name, 0, images)
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-6)
    # the match is not trivial: another initialisation gives other embeddings
    assert not torch.allclose(got, _reference_embeddings(name, 1, images), atol=1e-3)
    # un-normalised, as documented
    assert not torch.allclose(got.norm(dim=-1), torch.ones(3))


def test_openclip_local_dir_layout(tiny_clip, images: np.ndarray) -> None:
    """The checkpoint folder also loads like a hub repo (open_clip_config.json + weights)."""
    name, ckpt = tiny_clip
    enc = load_openclip_encoder(f"local-dir:{Path(ckpt).parent}", None)
    torch.testing.assert_close(enc.encode(images), _reference_embeddings(name, 0, images), rtol=0, atol=1e-6)


def test_openclip_pretrained_tag_from_hf_cache(tmp_path: Path, monkeypatch, images: np.ndarray) -> None:
    """A pretrained tag resolves to a file in a (real-layout) Hugging Face cache, without network."""
    name, ckpt = make_tiny_openclip_checkpoint(tmp_path / "src", embed_dim=EMBED_DIM, fmt="bin", seed=0)
    cache = tmp_path / "hf-cache"
    repo_dir = cache / "models--s2i--tiny-openclip"
    snapshot = repo_dir / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "open_clip_pytorch_model.bin").write_bytes(Path(ckpt).read_bytes())
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text("0" * 40)
    monkeypatch.setitem(
        open_clip.pretrained._PRETRAINED, name, {"tiny": open_clip.pretrained._pcfg(hf_hub="s2i/tiny-openclip/")}
    )

    enc = load_openclip_encoder(name, "tiny", cache_dir=cache)
    assert enc.checkpoint == str(snapshot / "open_clip_pytorch_model.bin")
    torch.testing.assert_close(enc.encode(images), _reference_embeddings(name, 0, images), rtol=0, atol=1e-6)

    with pytest.raises(MissingWeightsError) as err:
        load_openclip_encoder(name, "tiny", cache_dir=tmp_path / "empty-cache")
    assert "hf-hub:s2i/tiny-openclip" in str(err.value) and "full.image_encoder.pretrained" in str(err.value)


def test_encode_images_accepts_pil_and_arrays(backbones: FullBackbones, images: np.ndarray) -> None:
    from_array = backbones.encode_images(images)
    from_pil = backbones.encode_images([Image.fromarray(im) for im in images])
    torch.testing.assert_close(from_array, from_pil, rtol=0, atol=0)
    torch.testing.assert_close(backbones.encode_images(images, batch_size=2), from_array, rtol=0, atol=1e-6)


def test_missing_openclip_checkpoint_says_what_to_download(tmp_path: Path) -> None:
    missing = tmp_path / "open_clip_pytorch_model.bin"
    with pytest.raises(FileNotFoundError) as err:
        load_openclip_encoder("ViT-H-14", str(missing))
    msg = str(err.value)
    assert isinstance(err.value, MissingWeightsError)
    assert str(missing) in msg
    assert "laion/CLIP-ViT-H-14-laion2B-s32B-b79K" in msg and "full.image_encoder.pretrained" in msg


def test_missing_openclip_tag_is_not_downloaded(tmp_path: Path) -> None:
    with pytest.raises(MissingWeightsError) as err:
        load_openclip_encoder("ViT-H-14", "laion2b_s32b_b79k", cache_dir=tmp_path)
    msg = str(err.value)
    assert "open_clip_pytorch_model.bin" in msg and "hf-hub:laion/CLIP-ViT-H-14-laion2B-s32B-b79K" in msg
    assert "full.image_encoder.pretrained" in msg and str(tmp_path) in msg


# ------------------------------------------------------------------------------- Stable unCLIP


def test_unclip_pipeline_roundtrip(unclip_dir: str) -> None:
    from diffusers import StableUnCLIPImg2ImgPipeline

    assert (Path(unclip_dir) / "model_index.json").is_file()
    assert list(Path(unclip_dir).glob("unet/*.safetensors"))
    pipe = load_unclip_pipeline(unclip_dir)
    assert isinstance(pipe, StableUnCLIPImg2ImgPipeline)
    assert unclip_embed_dim(pipe) == EMBED_DIM
    assert pipe.unet.config.projection_class_embeddings_input_dim == 2 * EMBED_DIM


def test_generate_shapes_and_determinism(backbones: FullBackbones, images: np.ndarray) -> None:
    emb = backbones.encode_images(images[:2])
    a = backbones.generate(emb, n_per=2, seed=0)
    assert a.dtype == np.uint8 and a.shape == (4, 32, 32, 3)
    np.testing.assert_array_equal(a, backbones.generate(emb, n_per=2, seed=0))
    assert not np.array_equal(a, backbones.generate(emb, n_per=2, seed=1))
    # the embedding conditions the image: same seed, other embedding, other image
    other = backbones.generate(emb.flip(0), n_per=2, seed=0)
    assert not np.array_equal(a[:2], other[:2])
    # in batches: same shapes, still reproducible
    c = backbones.generate(emb, n_per=2, seed=0, batch=1)
    assert c.shape == a.shape
    np.testing.assert_array_equal(c, backbones.generate(emb, n_per=2, seed=0, batch=1))
    # numpy input, explicit size (multiple of 8 x vae scale factor)
    b = backbones.generate(emb[:1].numpy(), seed=0, height=48, width=16, steps=1)
    assert b.shape == (1, 48, 16, 3) and b.dtype == np.uint8


def test_generate_rejects_wrong_embedding_dim(backbones: FullBackbones) -> None:
    with pytest.raises(ValueError, match=r"dim 16\b.*32-d"):
        backbones.generate(torch.zeros(2, 16))
    with pytest.raises(ValueError, match="multiples of 8"):
        backbones.generate(torch.zeros(1, EMBED_DIM), height=36)


def test_encoder_and_pipeline_dims_must_match(tmp_path: Path, unclip_dir: str) -> None:
    name, ckpt = make_tiny_openclip_checkpoint(tmp_path, model_name="s2i-tiny-ViT-16", embed_dim=16)
    with pytest.raises(ValueError, match=r"16-d.*32-d"):
        FullBackbones(load_openclip_encoder(name, ckpt), load_unclip_pipeline(unclip_dir))


def test_missing_pipeline_dir_says_what_to_download(tmp_path: Path) -> None:
    missing = tmp_path / "models" / "full" / "stable-unclip"
    with pytest.raises(FileNotFoundError) as err:
        load_unclip_pipeline(missing)
    msg = str(err.value)
    assert isinstance(err.value, MissingWeightsError)
    assert str(missing) in msg
    assert "stabilityai/stable-diffusion-2-1-unclip" in msg and "full.generator.path" in msg

    not_a_pipeline = tmp_path / "empty"
    not_a_pipeline.mkdir()
    with pytest.raises(MissingWeightsError, match="model_index.json"):
        load_unclip_pipeline(not_a_pipeline)


# ------------------------------------------------------------------------------- from_params


def test_from_params_resolves_repo_relative_paths(
    tmp_path: Path, monkeypatch, tiny_clip, unclip_dir: str, images: np.ndarray
) -> None:
    import shutil

    name, ckpt = tiny_clip
    root = tmp_path / "repo"
    (root / "models" / "full").mkdir(parents=True)
    shutil.copy(ckpt, root / "models" / "full" / "tiny.safetensors")
    shutil.copytree(unclip_dir, root / "models" / "full" / "stable-unclip")
    monkeypatch.setenv("S2I_ROOT", str(root))
    monkeypatch.chdir(tmp_path)  # relative paths must not depend on the working directory

    p = {
        "image_encoder": {"model": name, "pretrained": "models/full/tiny.safetensors"},
        "generator": {"path": "models/full/stable-unclip", "steps": 1, "guidance": 1.0, "noise_level": 10},
    }
    fb = FullBackbones.from_params(p, device="cpu")
    assert (fb.profile, fb.image_size, fb.embed_dim) == ("full", 32, EMBED_DIM)
    assert (fb.steps, fb.guidance, fb.noise_level) == (1, 1.0, 10)
    torch.testing.assert_close(fb.encode_images(images), _reference_embeddings(name, 0, images), rtol=0, atol=1e-6)
    out = fb.generate(fb.encode_images(images[:1]), seed=3)
    assert out.shape == (1, 32, 32, 3)
    from s2i.backbones import load_backbones

    assert load_backbones("full", full_params=p, sample_steps=3).steps == 3  # a profile's sampling.steps
    guided = load_backbones("full", full_params=p, sample_guidance=2.5)  # a profile's sampling.guidance
    assert (guided.guidance, guided.compose_guidance, fb.compose_guidance) == (2.5, 1.0, 1.0)
    assert p["generator"]["steps"] == 1  # the caller's params are left as they were

    p["generator"]["path"] = "models/full/nothing-here"
    with pytest.raises(MissingWeightsError, match=str(root / "models" / "full" / "nothing-here")):
        FullBackbones.from_params(p, device="cpu")


def test_full_backbones_state_their_capabilities(backbones: FullBackbones) -> None:
    """The interface is explicit: the full profile offers composed guidance and has no judge;
    ``image_size`` is the generator's side, the encoder's input side is separate."""
    from s2i.backbones.base import Backbones

    assert isinstance(backbones, Backbones)
    assert backbones.supports_composition is True and backbones.judge is None
    pipe = backbones.pipe
    assert backbones.image_size == pipe.unet.config.sample_size * pipe.vae_scale_factor == 32
    assert backbones.encoder_image_size == backbones.encoder.image_size == 32
    z = torch.zeros(1, backbones.embed_dim)
    with pytest.raises(ValueError, match="2 conditions but 1 weights"):
        backbones.compose([z, z], [1.0])
    with pytest.raises(ValueError, match="region needs init_images"):
        backbones.compose([z], [1.0], region=np.ones((32, 32)))
    with pytest.raises(ValueError, match="masks must be 32x32"):
        backbones.compose([z], [1.0], masks=np.ones((1, 16, 16)))
    with pytest.raises(ValueError, match=r"dim 16\b.*32-d"):
        backbones.compose([torch.zeros(1, 16)], [1.0])


# ------------------------------------------------------------------------------- the one sampler on unCLIP


def _latents_of(backbones: FullBackbones, monkeypatch, fn, *args, **kwargs):
    """Run ``fn(*args, **kwargs)`` and return the latents it decodes (the sampler's output) with its images."""
    seen = []
    decode = backbones.decode_latents

    def spy(latents, batch=None):
        seen.append(latents.clone())
        return decode(latents, batch)

    monkeypatch.setattr(backbones, "decode_latents", spy)
    images = fn(*args, **kwargs)
    monkeypatch.undo()
    return torch.cat(seen), images


@pytest.mark.parametrize(("guidance", "noise_level", "n_per"), [(3.0, 0, 1), (1.0, 50, 2), (2.5, 200, 2)])
def test_generate_is_the_pipeline_through_the_one_sampler(
    backbones: FullBackbones, monkeypatch, guidance: float, noise_level: int, n_per: int
) -> None:
    """``generate`` runs s2i's sampler on the pipeline's components; it draws what
    ``StableUnCLIPImg2ImgPipeline.__call__`` draws with the same seed, steps, guidance and
    noise level: latents to 1e-5, images to one level of rounding."""
    emb = torch.randn(2, EMBED_DIM, generator=torch.Generator().manual_seed(1))
    kw = dict(guidance=guidance, noise_level=noise_level, steps=3, seed=4)
    latents, images = _latents_of(backbones, monkeypatch, backbones.generate, emb, n_per=n_per, **kw)

    def pipe(output_type: str):
        return backbones.pipe(
            prompt=[""] * 2,
            image_embeds=emb,
            num_images_per_prompt=n_per,
            guidance_scale=guidance,
            num_inference_steps=3,
            noise_level=noise_level,
            generator=torch.Generator().manual_seed(4),
            output_type=output_type,
        ).images

    torch.testing.assert_close(latents, pipe("latent"), rtol=0, atol=1e-5)
    ref = (np.asarray(pipe("np")) * 255).round().clip(0, 255).astype(np.uint8)
    assert images.shape == ref.shape == (2 * n_per, 32, 32, 3)
    diff = np.abs(images.astype(int) - ref)
    assert diff.max() <= 1 and (diff == 0).mean() > 0.99


def test_compose_one_term_is_plain_guidance(backbones: FullBackbones) -> None:
    """One term of weight w without masks is plain generation at guidance w (and weight 1 skips
    the unconditional pass, like guidance 1); the same seed gives the same images."""
    z = backbones.encode_images(np.random.default_rng(2).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8))
    for w in (1.0, 3.0):
        a = backbones.compose([z], [w], seed=5, steps=3)
        assert a.shape == (2, 32, 32, 3) and a.dtype == np.uint8
        np.testing.assert_array_equal(a, backbones.generate(z, guidance=w, seed=5, steps=3))
    np.testing.assert_array_equal(a, backbones.compose([z], [3.0], seed=5, steps=3))
    assert not np.array_equal(a, backbones.compose([z], [3.0], seed=6, steps=3))
    assert not np.array_equal(a, backbones.compose([z], [1.0], seed=5, steps=3))  # the guidance matters
    # shared noise: the same embedding gives the same picture in every row
    same = backbones.compose([z[:1].repeat(3, 1)], [3.0], seed=5, steps=2, shared_noise=True)
    assert (same == same[:1]).all()
    assert not (backbones.compose([z[:1].repeat(3, 1)], [3.0], seed=5, steps=2) == same[:1]).all()


def test_compose_term_masks(backbones: FullBackbones) -> None:
    """A term mask of ones changes nothing; one of zeros drops the term (as weight 0 does, and
    whatever its embedding); a half mask gives something in between."""
    g = torch.Generator().manual_seed(3)
    a, b, c = (torch.randn(2, EMBED_DIM, generator=g) for _ in range(3))
    kw = dict(seed=7, steps=3)
    ones, zeros = np.ones((32, 32), np.float32), np.zeros((32, 32), np.float32)
    plain = backbones.compose([a, b], [2.0, 3.0], **kw)
    np.testing.assert_array_equal(backbones.compose([a, b], [2.0, 3.0], masks=np.stack([ones, ones]), **kw), plain)
    dropped = backbones.compose([a, b], [2.0, 3.0], masks=np.stack([ones, zeros]), **kw)
    np.testing.assert_array_equal(dropped, backbones.compose([a, b], [2.0, 0.0], **kw))
    np.testing.assert_array_equal(dropped, backbones.compose([a, c], [2.0, 3.0], masks=np.stack([ones, zeros]), **kw))
    assert not np.array_equal(dropped, plain)
    half = ones.copy()
    half[:, 16:] = 0
    both = backbones.compose([a, b], [2.0, 3.0], masks=np.stack([ones, half]), **kw)
    assert not np.array_equal(both, plain) and not np.array_equal(both, dropped)


def test_compose_region_keeps_the_outside(backbones: FullBackbones, monkeypatch) -> None:
    """With a region, the final latents outside it are the input's (to 1e-6), from any strength;
    an empty region gives back the input's VAE round trip (to one level of rounding). In pixels
    a partial region is not checked: the tiny random VAE's decoder (mid-block attention, group
    norms) carries the inside across the whole picture."""
    yy, xx = np.mgrid[0:40, 0:48]
    img = np.stack([(xx * 5) % 256, (yy * 6) % 256, ((xx + yy) * 3) % 256], -1).astype(np.uint8)[None]
    z, other = backbones.encode_images(img), torch.randn(1, EMBED_DIM)
    init = backbones.encode_latents(img)  # (any size: centre-cropped and resized to 32)
    assert init.shape == (1, 4, 16, 16)
    roundtrip = backbones.decode_latents(init)
    region = np.zeros((32, 32), np.float32)
    region[:, :16] = 1  # the left half: latent columns 0-7
    for strength in (1.0, 0.6):
        latents, out = _latents_of(
            backbones,
            monkeypatch,
            backbones.compose,
            [z, other],
            [1.0, 4.0],
            init_images=img,
            strength=strength,
            region=region,
            seed=1,
            steps=4,
        )
        torch.testing.assert_close(latents[..., 8:], init[..., 8:], rtol=0, atol=1e-6)
        assert (latents[..., :8] - init[..., :8]).abs().mean() > 0.05  # the inside is drawn anew
        assert out.shape == (1, 32, 32, 3)
    kept = backbones.compose([z, other], [1.0, 4.0], init_images=img, strength=0.6, region=np.zeros((32, 32)), seed=1)
    assert np.abs(kept.astype(int) - roundtrip).max() <= 1


def test_sampler_composed_guidance_by_hand() -> None:
    """The one sampler's arithmetic, two DDIM steps with a stub ``denoise`` whose x0 under an
    embedding e is ``e[0] + x / 2`` (unconditional: ``x / 2``), checked against the formulas."""
    from diffusers import DDIMScheduler

    from s2i.models.sampler import sample

    sched = DDIMScheduler(num_train_timesteps=10, beta_schedule="linear", prediction_type="sample", clip_sample=False)

    def denoise(x, t, e):
        return e[:, :1, None, None] + x / 2

    conds = torch.tensor([[[1.0, 0.0]], [[-2.0, 0.0]]])  # K = 2 terms, N = 1 item, D = 2
    weights = [3.0, 0.5]
    mask = torch.ones(2, 1, 1, 2, 2)
    mask[1, ..., 1] = 0.0  # the second term only in the left column
    noise = torch.tensor([[[[0.3, -0.7], [1.1, 0.2]]]])
    got = sample(denoise, sched, conds, weights, noise, steps=2, masks=mask)

    ac = sched.alphas_cumprod
    t1, t2 = 5, 0  # 2 steps over 10 timesteps, "leading" spacing
    assert sched.timesteps.tolist() == [t1, t2]
    guide = torch.tensor([[3.0 * 1.0 + 0.5 * -2.0, 3.0 * 1.0]] * 2)  # sum_k w_k m_k e_k[0], per pixel
    x = noise[0, 0].double()
    for t, prev in ((t1, ac[t2]), (t2, torch.tensor(1.0))):  # set_alpha_to_one: the last step lands on x0
        a, prev = float(ac[t]), float(prev)
        x0 = x / 2 + guide  # x0_u + sum_k w_k m_k (x0_k - x0_u), x0_u = x / 2
        eps = (x - a**0.5 * x0) / (1 - a) ** 0.5
        x = prev**0.5 * x0 + (1 - prev) ** 0.5 * eps
    torch.testing.assert_close(got[0, 0].double(), x, rtol=0, atol=1e-5)


def test_mix_and_edit_run_on_full(backbones: FullBackbones, images: np.ndarray) -> None:
    """Mixing and image editing run on the full profile: shapes, and the seed decides."""
    from s2i.method.edit import compose_edit, object_edit
    from s2i.method.mix import compose_mix

    z = backbones.encode_images(images)
    conds, weights = [z[:1], z[1:2], z[1:2] * 0.1, z[2:3], z[2:3] * 0.1], [1.0, 2.0, -2.0, 2.0, -2.0]
    mix = compose_mix(backbones, conds, weights, n=2, seed=3, candidates=2, steps=2)
    assert mix.shape == (2, 32, 32, 3) and mix.dtype == np.uint8
    np.testing.assert_array_equal(mix, compose_mix(backbones, conds, weights, n=2, seed=3, candidates=2, steps=2))
    assert not np.array_equal(mix, compose_mix(backbones, conds, weights, n=2, seed=4, candidates=2, steps=2))

    sound, quiet = [z[1:2]], [z[1:2] * 0.1]
    edit = object_edit(backbones, None, sound, quiet, [3.0], images[:1], seed=2, strength=0.6, steps=3)
    assert edit.shape == (1, 32, 32, 3) and edit.dtype == np.uint8
    again = object_edit(backbones, None, sound, quiet, [3.0], images[:1], seed=2, strength=0.6, steps=3)
    np.testing.assert_array_equal(edit, again)
    other = object_edit(backbones, None, sound, quiet, [3.0], images[:1], seed=3, strength=0.6, steps=3)
    assert not np.array_equal(edit, other)
    with_image = compose_edit(backbones, z[:1], sound, [3.0], images[:1], w_image=1.0, seed=2, strength=0.6, steps=3)
    assert with_image.shape == (1, 32, 32, 3)
    frames = object_edit(
        backbones, None, [sound[0].repeat(2, 1)], [quiet[0].repeat(2, 1)], [3.0], images[:2], seed=2, shared_noise=True
    )
    assert frames.shape == (2, 32, 32, 3)
