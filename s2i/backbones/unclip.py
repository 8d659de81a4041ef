"""Stable unCLIP for the ``full`` profile: where its weights are looked for and how the pipeline
is loaded (local folders and the local Hugging Face cache only; a missing pipeline raises
:class:`s2i.backbones.openclip.MissingWeightsError` saying what to download)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import torch

from s2i.backbones.openclip import _HUB_ID, MissingWeightsError
from s2i.paths import resolve

if TYPE_CHECKING:  # imported lazily at run time: diffusers is slow to import
    from diffusers import StableUnCLIPImg2ImgPipeline


#: Hub repository of Stable unCLIP 2.1 (conditioned on 1024-d OpenCLIP ViT-H-14 image embeddings).
DEFAULT_UNCLIP_REPO = "stabilityai/stable-diffusion-2-1-unclip"


#: Where the ``full`` profile expects the Stable unCLIP folder, relative to the repository root.
DEFAULT_UNCLIP_DIR = "models/full/stable-unclip"


PARAMS_KEY_GENERATOR = "full.generator.path"


def _unclip_download_hint() -> str:
    return (
        f"download {DEFAULT_UNCLIP_REPO} (a diffusers folder with model_index.json), e.g. "
        f"`hf download {DEFAULT_UNCLIP_REPO} --exclude '*.ckpt' --local-dir {DEFAULT_UNCLIP_DIR}`, "
        f"and set {PARAMS_KEY_GENERATOR} in params.yaml to that folder"
    )


def load_unclip_pipeline(
    path_or_id: str | os.PathLike,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> StableUnCLIPImg2ImgPipeline:
    """Load a :class:`~diffusers.StableUnCLIPImg2ImgPipeline` from a local folder or the local hub cache.

    Args:
        path_or_id: a ``save_pretrained`` folder (relative paths are taken from the repository
            root) or a hub id such as ``"stabilityai/stable-diffusion-2-1-unclip"`` that is already
            in the local Hugging Face cache. Nothing is downloaded.
        device: where to put the pipeline.
        dtype: the pipeline's floating point type (``torch.float16`` on a GPU halves the memory).

    Raises:
        MissingWeightsError: neither a pipeline folder nor a cached hub id; the message says what to
            download and which ``params.yaml`` key to set.
    """
    from diffusers import StableUnCLIPImg2ImgPipeline

    raw = os.fspath(path_or_id)
    path = resolve(raw)
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise MissingWeightsError(
                f"{path} is not a diffusers pipeline folder (no model_index.json): {_unclip_download_hint()}."
            )
        source = str(path)
    elif _HUB_ID.match(raw) and not raw.startswith("."):
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(raw, "model_index.json"), str):
            raise MissingWeightsError(
                f"Stable unCLIP pipeline {raw!r} is neither a folder ({path} does not exist) nor in the "
                f"local Hugging Face cache, and s2i never downloads weights: {_unclip_download_hint()}."
            )
        source = raw
    else:
        raise MissingWeightsError(f"Stable unCLIP pipeline folder {path} not found: {_unclip_download_hint()}.")

    pipe = StableUnCLIPImg2ImgPipeline.from_pretrained(source, dtype=dtype, local_files_only=True)
    pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def unclip_embed_dim(pipe: StableUnCLIPImg2ImgPipeline) -> int:
    """The image-embedding dimension a Stable unCLIP pipeline is conditioned on.

    Read from ``image_normalizer`` and checked against the UNet's class embedding, which takes the
    (noised embedding, noise-level embedding) concatenation, i.e. twice that dimension.
    """
    dim = int(pipe.image_normalizer.mean.shape[-1])
    unet_in = pipe.unet.config.get("projection_class_embeddings_input_dim")
    if unet_in is not None and int(unet_in) != 2 * dim:
        raise ValueError(
            f"inconsistent unCLIP pipeline: image_normalizer embedding dim is {dim} but the UNet class "
            f"embedding expects {unet_in} = 2 x {int(unet_in) // 2}"
        )
    return dim
