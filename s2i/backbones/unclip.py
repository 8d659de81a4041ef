"""Stable unCLIP for the ``full`` profile: where its weights are looked for and how the pipeline
is loaded.

A local ``save_pretrained`` folder is read from disk. A hub id (``stabilityai/stable-diffusion-2-1-unclip``)
is taken from the Hugging Face cache when it is complete there (no request to the Hub), else
downloaded by diffusers into that cache, as ``from_pretrained`` users are used to; offline
(``HF_HUB_OFFLINE=1``) only local folders and caches are used. A pipeline that is neither here
nor downloadable raises :class:`s2i.backbones.openclip.MissingWeightsError` saying what to
download."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import torch

from s2i.backbones.openclip import (
    _HUB_ID,
    OFFLINE_HINT,
    MissingWeightsError,
    _download_errors,
    _download_failed,
    _hub_cache,
    hub_offline,
)
from s2i.paths import resolve

if TYPE_CHECKING:  # imported lazily at run time: diffusers is slow to import
    from diffusers import StableUnCLIPImg2ImgPipeline


#: Hub repository of Stable unCLIP 2.1 (conditioned on 1024-d OpenCLIP ViT-H-14 image embeddings).
DEFAULT_UNCLIP_REPO = "stabilityai/stable-diffusion-2-1-unclip"


#: Where the ``full`` profile expects the Stable unCLIP folder, relative to the repository root.
DEFAULT_UNCLIP_DIR = "models/full/stable-unclip"


PARAMS_KEY_GENERATOR = "full.generator.path"


def _unclip_download_hint(repo: str = DEFAULT_UNCLIP_REPO) -> str:
    return (
        f"download {repo} (a diffusers folder with model_index.json), e.g. "
        f"`hf download {repo} --exclude '*.ckpt' --local-dir {DEFAULT_UNCLIP_DIR}`, "
        f"and set {PARAMS_KEY_GENERATOR} in params.yaml to that folder"
    )


def _unclip_snapshot(repo: str, cache_dir: str | os.PathLike | None) -> str:
    """The Hugging Face cache snapshot of a diffusers pipeline repo, downloaded if need be.

    First diffusers' own cache lookup (``DiffusionPipeline.download(..., local_files_only=True)``,
    which also notices a snapshot that an interrupted download left incomplete); then, unless
    offline, diffusers' download into the cache (the files ``from_pretrained`` would fetch).

    Raises:
        MissingWeightsError: not (completely) cached, and offline or the download failed.
    """
    from diffusers import StableUnCLIPImg2ImgPipeline

    cache_dir = os.fspath(cache_dir) if cache_dir is not None else None
    try:
        return os.fspath(StableUnCLIPImg2ImgPipeline.download(repo, cache_dir=cache_dir, local_files_only=True))
    except _download_errors() as e:
        local_err: BaseException = e
    missing = (
        f"Stable unCLIP pipeline {repo!r} is neither a folder ({resolve(repo)} does not exist) nor "
        f"complete in the Hugging Face cache {_hub_cache(cache_dir)}"
    )
    hint = _unclip_download_hint(repo)
    if hub_offline():
        raise MissingWeightsError(
            f"{missing}, and HF_HUB_OFFLINE is set (local files and caches only): {hint}; or fetch it into "
            f"that cache with `hf download {repo} --exclude '*.ckpt'`, or unset HF_HUB_OFFLINE to let "
            f"diffusers download it."
        ) from local_err
    try:
        return os.fspath(StableUnCLIPImg2ImgPipeline.download(repo, cache_dir=cache_dir))
    except _download_errors() as e:
        raise MissingWeightsError(f"{missing}, and {_download_failed(e)}: {hint} ({OFFLINE_HINT}).") from e


def load_unclip_pipeline(
    path_or_id: str | os.PathLike,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    cache_dir: str | os.PathLike | None = None,
) -> StableUnCLIPImg2ImgPipeline:
    """Load a :class:`~diffusers.StableUnCLIPImg2ImgPipeline` from a local folder or a hub id.

    Args:
        path_or_id: a ``save_pretrained`` folder (relative paths are taken from the repository
            root; never downloaded) or a hub id such as ``"stabilityai/stable-diffusion-2-1-unclip"``:
            used from the Hugging Face cache when complete there, else downloaded into it by
            diffusers, unless ``HF_HUB_OFFLINE`` is set (see :func:`s2i.backbones.openclip.hub_offline`).
        device: where to put the pipeline.
        dtype: the pipeline's floating point type (``torch.float16`` on a GPU halves the memory).
        cache_dir: the Hugging Face cache for hub ids (default: ``HF_HUB_CACHE``).

    Raises:
        MissingWeightsError: neither a pipeline folder nor a hub id that is cached or could be
            downloaded; the message says what to download and which ``params.yaml`` key to set.
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
        source = _unclip_snapshot(raw, cache_dir)
    else:
        raise MissingWeightsError(f"Stable unCLIP pipeline folder {path} not found: {_unclip_download_hint()}.")

    # a folder by now (the cache snapshot for a hub id): nothing more to fetch
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
