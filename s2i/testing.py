"""Tiny, randomly initialised full-profile models in the very same on-disk formats as the
real ones: an OpenCLIP checkpoint (state dict + registered config) and a diffusers
``save_pretrained`` folder of Stable unCLIP. The tests use them, and so can a user who wants to
check an install end to end without downloading anything."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Literal

import torch

from s2i.backbones.openclip import _HF_CONFIG_NAME, _HF_SAFE_WEIGHTS_NAME, _HF_WEIGHTS_NAME


def make_tiny_openclip_checkpoint(
    out_dir: str | os.PathLike,
    *,
    model_name: str = "s2i-tiny-ViT",
    embed_dim: int = 32,
    fmt: Literal["safetensors", "bin"] = "safetensors",
    seed: int = 0,
) -> tuple[str, str]:
    """Write a tiny random OpenCLIP model the way released OpenCLIP weights are laid out.

    Writes into ``out_dir``:

    * ``<model_name>.json``: an architecture config like ``open_clip/model_configs/*.json``
      (ViT: image 32, patch 8, width 32, 1 layer, 2 heads; text: vocab 1000, context 16, width 32,
      1 layer), registered with ``open_clip.add_model_config`` so ``model_name`` works everywhere;
    * the state dict, ``open_clip_model.safetensors`` (``fmt="safetensors"``) or
      ``open_clip_pytorch_model.bin`` (``fmt="bin"``);
    * ``open_clip_config.json`` (``model_cfg`` + ``preprocess_cfg``), so the folder also loads as
      ``local-dir:<out_dir>`` like a hub repo.

    Weights are ``torch.manual_seed(seed)`` initialisations of ``open_clip.create_model(model_name)``.

    Returns:
        ``(model_name, checkpoint_path)``, ready for :func:`load_openclip_encoder`.
    """
    import open_clip
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = {
        "embed_dim": embed_dim,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
        "text_cfg": {"context_length": 16, "vocab_size": 1000, "width": 32, "heads": 2, "layers": 1},
    }
    config_path = out / f"{model_name}.json"
    config_path.write_text(json.dumps(cfg, indent=4))
    open_clip.add_model_config(config_path)
    hub_cfg = {
        "model_cfg": cfg,
        "preprocess_cfg": {
            "mean": list(OPENAI_DATASET_MEAN),
            "std": list(OPENAI_DATASET_STD),
            "interpolation": "bicubic",
            "resize_mode": "shortest",
        },
    }
    (out / _HF_CONFIG_NAME).write_text(json.dumps(hub_cfg, indent=4))

    torch.manual_seed(seed)
    model = open_clip.create_model(model_name)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    if fmt == "safetensors":
        from safetensors.torch import save_file

        path = out / _HF_SAFE_WEIGHTS_NAME
        save_file(state, str(path))
    elif fmt == "bin":
        path = out / _HF_WEIGHTS_NAME
        torch.save(state, path)
    else:
        raise ValueError(f"fmt must be 'safetensors' or 'bin', got {fmt!r}")
    return model_name, str(path)


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte -> printable unicode character table (the byte-level BPE alphabet)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def _tiny_clip_tokenizer(folder: Path, model_max_length: int):
    """A real :class:`~transformers.CLIPTokenizer` over a tiny byte-level vocab written to ``folder``."""
    from transformers import CLIPTokenizer

    alphabet = list(_bytes_to_unicode().values())
    merges = [("t", "h"), ("th", "e</w>"), ("a", "n"), ("an", "d</w>")]
    vocab_list = alphabet + [c + "</w>" for c in alphabet] + ["".join(m) for m in merges]
    vocab_list += ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab_list)}, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    return CLIPTokenizer.from_pretrained(str(folder), model_max_length=model_max_length)


def make_tiny_unclip_pipeline(out_dir: str | os.PathLike, embed_dim: int = 32, seed: int = 0) -> str:
    """Save a tiny random :class:`~diffusers.StableUnCLIPImg2ImgPipeline` with ``save_pretrained``.

    The components are the real classes with tiny configs (as in diffusers' own
    ``tests/pipelines/stable_unclip/test_stable_unclip_img2img.py``): a CLIP vision tower and image
    processor, a :class:`StableUnCLIPImageNormalizer` of ``embed_dim``, a DDPM noising scheduler, a
    CLIP tokenizer (tiny byte-level vocab, built locally) and text encoder, a UNet with a
    ``"projection"`` class embedding of ``2 * embed_dim``, a small VAE (scale factor 2) and a DDIM
    scheduler. Images come out 32 x 32 by default. Saved as safetensors.

    Returns:
        ``str(out_dir)``, ready for :func:`load_unclip_pipeline`.
    """
    from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler, StableUnCLIPImg2ImgPipeline, UNet2DConditionModel
    from diffusers.pipelines.stable_diffusion.stable_unclip_image_normalizer import StableUnCLIPImageNormalizer
    from transformers import (
        CLIPImageProcessor,
        CLIPTextConfig,
        CLIPTextModel,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    out = Path(out_dir)
    hidden, context = 32, 16
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = _tiny_clip_tokenizer(Path(tmp), model_max_length=context)

    torch.manual_seed(seed)
    image_encoder = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=hidden,
            projection_dim=embed_dim,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=32,
            intermediate_size=37,
            patch_size=8,
        )
    ).eval()
    feature_extractor = CLIPImageProcessor(crop_size=32, size=32)
    image_normalizer = StableUnCLIPImageNormalizer(embedding_dim=embed_dim)
    image_noising_scheduler = DDPMScheduler(beta_schedule="squaredcos_cap_v2")
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            hidden_size=hidden,
            projection_dim=32,
            intermediate_size=37,
            layer_norm_eps=1e-05,
            num_attention_heads=2,
            num_hidden_layers=1,
            vocab_size=len(tokenizer),
            max_position_embeddings=context,
        )
    ).eval()
    unet = UNet2DConditionModel(
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(32, 64),
        attention_head_dim=(2, 4),
        class_embed_type="projection",
        projection_class_embeddings_input_dim=embed_dim * 2,
        cross_attention_dim=hidden,
        layers_per_block=1,
        upcast_attention=True,
        use_linear_projection=True,
    )
    scheduler = DDIMScheduler(
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        prediction_type="v_prediction",
        set_alpha_to_one=False,
        steps_offset=1,
    )
    vae = AutoencoderKL(
        block_out_channels=(32, 64),
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        layers_per_block=1,
        sample_size=32,
    )
    pipe = StableUnCLIPImg2ImgPipeline(
        feature_extractor=feature_extractor,
        image_encoder=image_encoder,
        image_normalizer=image_normalizer,
        image_noising_scheduler=image_noising_scheduler,
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        unet=unet,
        scheduler=scheduler,
        vae=vae,
    )
    pipe.save_pretrained(out, safe_serialization=True)
    return str(out)
