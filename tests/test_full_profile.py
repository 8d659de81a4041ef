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

from s2i.backbones.full import FullBackbones, load_unclip_pipeline, unclip_embed_dim
from s2i.backbones.openclip import MissingWeightsError, load_openclip_encoder
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

    p["generator"]["path"] = "models/full/nothing-here"
    with pytest.raises(MissingWeightsError, match=str(root / "models" / "full" / "nothing-here")):
        FullBackbones.from_params(p, device="cpu")


def test_full_backbones_state_their_capabilities(backbones: FullBackbones) -> None:
    """The interface is explicit: the full profile says it has no composed guidance and no
    judge, and the methods that need composition refuse with a readable error."""
    from s2i.backbones.base import Backbones
    from s2i.method.edit import compose_edit
    from s2i.method.mix import compose_mix

    assert isinstance(backbones, Backbones)
    assert backbones.supports_composition is False and backbones.judge is None
    z = torch.zeros(1, backbones.embed_dim)
    with pytest.raises(NotImplementedError, match="mixing needs composed guidance.*full profile"):
        compose_mix(backbones, [z, z], [1.0, 1.0], place_term=False)
    img = np.zeros((1, backbones.image_size, backbones.image_size, 3), np.uint8)
    with pytest.raises(NotImplementedError, match="editing needs composed guidance"):
        compose_edit(backbones, z, [z], [1.0], img, 1.0)
