"""The ``full`` profile backbones: a pretrained OpenCLIP image encoder and Stable unCLIP.

The ``full`` profile embeds images with a pretrained OpenCLIP model (e.g. ``ViT-H-14`` /
``laion2b_s32b_b79k``, whose 1024-d image embedding is the space Stable unCLIP 2.1 is
conditioned on) and decodes embeddings back to images with diffusers'
:class:`~diffusers.StableUnCLIPImg2ImgPipeline`, fed ``image_embeds`` instead of an image.

Nothing here downloads weights: checkpoints are read from local files or from the local
Hugging Face / OpenCLIP caches, and a missing one raises a single :class:`MissingWeightsError`
that says what to download and which ``params.yaml`` key to point at it.

:class:`FullBackbones` exposes the same small interface as the toy backbones
(``image_size``, ``embed_dim``, ``profile``, ``encode_images``, ``generate``, ``from_params``).

:func:`make_tiny_openclip_checkpoint` and :func:`make_tiny_unclip_pipeline` write tiny, randomly
initialised models in the very same on-disk formats as the real ones (an OpenCLIP state dict, a
diffusers ``save_pretrained`` folder). The tests use them, and so can a user who wants to check
an install end to end without downloading anything.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal, Sequence

import numpy as np
import torch
from PIL import Image

from .paths import resolve

if TYPE_CHECKING:  # imported lazily at run time: diffusers is slow to import
    from diffusers import StableUnCLIPImg2ImgPipeline

__all__ = [
    "MissingWeightsError",
    "OpenCLIPEncoder",
    "FullBackbones",
    "load_openclip_encoder",
    "load_unclip_pipeline",
    "make_tiny_openclip_checkpoint",
    "make_tiny_unclip_pipeline",
    "unclip_embed_dim",
    "DEFAULT_UNCLIP_REPO",
    "DEFAULT_UNCLIP_DIR",
    "DEFAULT_OPENCLIP_DIR",
]

#: Hub repository of Stable unCLIP 2.1 (conditioned on 1024-d OpenCLIP ViT-H-14 image embeddings).
DEFAULT_UNCLIP_REPO = "stabilityai/stable-diffusion-2-1-unclip"
#: Where the ``full`` profile expects the Stable unCLIP folder, relative to the repository root.
DEFAULT_UNCLIP_DIR = "models/full/stable-unclip"
#: Where the error messages suggest putting an OpenCLIP checkpoint, relative to the repository root.
DEFAULT_OPENCLIP_DIR = "models/full/openclip"
#: The ``params.yaml`` keys the error messages point at.
PARAMS_KEY_ENCODER = "full.image_encoder.pretrained"
PARAMS_KEY_GENERATOR = "full.generator.path"

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_HF_WEIGHTS_NAME = "open_clip_pytorch_model.bin"  # open_clip.constants.HF_WEIGHTS_NAME
_HF_SAFE_WEIGHTS_NAME = "open_clip_model.safetensors"  # open_clip.constants.HF_SAFE_WEIGHTS_NAME
_HF_CONFIG_NAME = "open_clip_config.json"  # open_clip.constants.HF_CONFIG_NAME


class MissingWeightsError(FileNotFoundError):
    """Pretrained weights are not on this machine; the message says what to download and where."""


# --------------------------------------------------------------------------------------------
# OpenCLIP image encoder
# --------------------------------------------------------------------------------------------


@dataclass
class OpenCLIPEncoder:
    """A loaded OpenCLIP model and its own inference preprocess transform.

    Attributes:
        model: the ``open_clip`` model, in eval mode.
        preprocess: the model's validation transform (PIL image -> normalised ``(3, S, S)`` tensor).
        model_name: the OpenCLIP architecture name (e.g. ``"ViT-H-14"``).
        checkpoint: the local file (or ``local-dir:`` folder) the weights came from, ``None`` if random.
    """

    model: torch.nn.Module
    preprocess: Callable[[Image.Image], torch.Tensor]
    model_name: str
    checkpoint: str | None

    @property
    def device(self) -> torch.device:
        """Device of the model's parameters."""
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """Floating point type of the model's parameters."""
        return next(self.model.parameters()).dtype

    @property
    def image_size(self) -> int:
        """Side of the square image the vision tower takes (after preprocessing)."""
        size = getattr(self.model.visual, "image_size", None)
        if size is None:  # timm towers keep it in the preprocess config
            size = self.model.visual.preprocess_cfg["size"]
        return int(size[0] if isinstance(size, (tuple, list)) else size)

    @property
    def embed_dim(self) -> int:
        """Dimension of ``model.encode_image`` outputs."""
        dim = getattr(self.model.visual, "output_dim", None)
        if dim is None:
            x = torch.zeros(1, 3, self.image_size, self.image_size, device=self.device, dtype=self.dtype)
            with torch.inference_mode():
                dim = self.model.encode_image(x).shape[-1]
        return int(dim)

    @torch.inference_mode()
    def encode(self, images: np.ndarray | Sequence[Image.Image], batch_size: int = 32) -> torch.Tensor:
        """Embed images with the model's own preprocess; returns un-normalised ``(N, D)`` float32 on CPU."""
        pils = _as_pil_list(images)
        out = []
        for i in range(0, len(pils), batch_size):
            x = torch.stack([self.preprocess(im) for im in pils[i : i + batch_size]])
            x = x.to(device=self.device, dtype=self.dtype)
            out.append(self.model.encode_image(x).float().cpu())
        if not out:
            return torch.zeros(0, self.embed_dim)
        return torch.cat(out)


def _as_pil_list(images: np.ndarray | Sequence[Image.Image] | Image.Image) -> list[Image.Image]:
    """uint8 ``(N, H, W, 3)`` array, ``(H, W, 3)`` array, PIL image or list of PIL images -> RGB PIL list."""
    if isinstance(images, Image.Image):
        return [images.convert("RGB")]
    if isinstance(images, np.ndarray):
        if images.ndim == 3:
            images = images[None]
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"expected a uint8 array of shape (N, H, W, 3), got {images.shape}")
        if images.dtype != np.uint8:
            raise ValueError(f"expected a uint8 image array, got dtype {images.dtype}")
        return [Image.fromarray(im) for im in images]
    pils = []
    for im in images:
        if isinstance(im, np.ndarray):
            pils.extend(_as_pil_list(im))
        else:
            pils.append(im.convert("RGB"))
    return pils


def _openclip_download_hint(model_name: str, tag: str | None = None) -> str:
    """A sentence saying which OpenCLIP weights to download and which params key to set."""
    import open_clip

    tags = [tag] if tag else open_clip.list_pretrained_tags_by_model(model_name)
    for t in tags:
        cfg = open_clip.get_pretrained_cfg(model_name, t)
        if cfg.get("hf_hub"):
            repo, filename = os.path.split(cfg["hf_hub"])  # "org/repo/" or "org/repo/file"
            filename = filename or _HF_WEIGHTS_NAME
            return (
                f"download {filename} for {model_name} {t} from hf-hub:{repo} (e.g. `hf download {repo} "
                f"{filename} --local-dir {DEFAULT_OPENCLIP_DIR}`) and pass its path as "
                f"{PARAMS_KEY_ENCODER} in params.yaml"
            )
        if cfg.get("url"):
            return (
                f"download {cfg['url']} (the {model_name} {t} weights) and pass its path as "
                f"{PARAMS_KEY_ENCODER} in params.yaml"
            )
    return (
        f"put an OpenCLIP state dict for {model_name} (.bin/.pt/.pth/.safetensors) under "
        f"{DEFAULT_OPENCLIP_DIR} and pass its path as {PARAMS_KEY_ENCODER} in params.yaml"
    )


def _cached_tag_checkpoint(model_name: str, tag: str, cache_dir: str | None) -> tuple[str | None, str]:
    """Local file of a pretrained tag's weights, looked up in the caches only (never the network).

    Returns ``(path or None, where it was looked for)``.
    """
    import open_clip
    from huggingface_hub import constants, try_to_load_from_cache

    cfg = open_clip.get_pretrained_cfg(model_name, tag)
    if cfg.get("file"):
        return (cfg["file"] if os.path.isfile(cfg["file"]) else None), cfg["file"]
    if cfg.get("hf_hub"):
        repo, filename = os.path.split(cfg["hf_hub"])
        filename = filename or _HF_WEIGHTS_NAME
        candidates = [filename]
        if filename == _HF_WEIGHTS_NAME:
            candidates.insert(0, _HF_SAFE_WEIGHTS_NAME)
        elif filename.endswith((".bin", ".pth")):
            candidates.insert(0, filename[:-4] + ".safetensors")
        for name in candidates:
            hit = try_to_load_from_cache(repo, name, cache_dir=cache_dir)
            if isinstance(hit, str) and os.path.isfile(hit):
                return hit, repo
        return None, f"the Hugging Face cache {cache_dir or constants.HF_HUB_CACHE} (repo {repo})"
    if cfg.get("url"):
        folder = cache_dir or os.path.expanduser("~/.cache/clip")
        target = os.path.join(folder, os.path.basename(cfg["url"]))
        return (target if os.path.isfile(target) else None), folder
    return None, "nowhere (the tag has no download source)"


def _hf_hub_snapshot(repo: str, cache_dir: str | None) -> str | None:
    """Cached snapshot folder of an ``hf-hub:`` OpenCLIP repo holding config and weights, else ``None``."""
    from huggingface_hub import try_to_load_from_cache

    config = try_to_load_from_cache(repo, _HF_CONFIG_NAME, cache_dir=cache_dir)
    if not isinstance(config, str):
        return None
    for name in (_HF_SAFE_WEIGHTS_NAME, _HF_WEIGHTS_NAME):
        hit = try_to_load_from_cache(repo, name, cache_dir=cache_dir)
        if isinstance(hit, str) and os.path.dirname(hit) == os.path.dirname(config):
            return os.path.dirname(config)
    return None


def load_openclip_encoder(
    model_name: str,
    pretrained: str | os.PathLike | None,
    device: str | torch.device = "cpu",
    cache_dir: str | os.PathLike | None = None,
    precision: str = "fp32",
) -> OpenCLIPEncoder:
    """Load an OpenCLIP model and its inference preprocess transform, offline.

    Args:
        model_name: an OpenCLIP architecture (``"ViT-H-14"``; tiny test configs registered with
            :func:`make_tiny_openclip_checkpoint` work too), or a ``local-dir:<folder>`` /
            ``hf-hub:<org/repo>`` model id as understood by ``open_clip.create_model``.
        pretrained: a pretrained tag of ``model_name`` (``"laion2b_s32b_b79k"``), looked up in the
            local caches only, or a checkpoint file (``.bin``/``.pt``/``.pth``/``.safetensors`` state
            dict; relative paths are taken from the repository root). ``None`` gives random weights.
            Ignored for ``local-dir:``/``hf-hub:`` names.
        device: where to put the model.
        cache_dir: the download cache open_clip / huggingface_hub would use (default: theirs).
        precision: ``open_clip`` precision (``"fp32"``, ``"fp16"``, ``"bf16"``, ...).

    Returns:
        An :class:`OpenCLIPEncoder` (model in eval mode + its ``preprocess_val`` transform).

    Raises:
        MissingWeightsError: the weights are not on this machine; the message says what to
            download and which ``params.yaml`` key to set.
    """
    import open_clip

    cache_dir = os.fspath(cache_dir) if cache_dir is not None else None
    kwargs: dict[str, Any] = {}
    checkpoint: str | None = None

    if model_name.startswith("hf-hub:"):
        repo = model_name[len("hf-hub:") :]
        snapshot = _hf_hub_snapshot(repo, cache_dir)
        if snapshot is None:
            raise MissingWeightsError(
                f"OpenCLIP model {model_name} is not in the local Hugging Face cache and s2i never "
                f"downloads weights: download its config and weights (e.g. `hf download {repo} "
                f"{_HF_CONFIG_NAME} {_HF_SAFE_WEIGHTS_NAME} --local-dir {DEFAULT_OPENCLIP_DIR}`) and use "
                f"model 'local-dir:{DEFAULT_OPENCLIP_DIR}'."
            )
        model_name, checkpoint, pretrained = f"local-dir:{snapshot}", snapshot, None
    elif model_name.startswith("local-dir:"):
        folder = resolve(model_name[len("local-dir:") :])
        if not (folder / _HF_CONFIG_NAME).is_file():
            raise MissingWeightsError(
                f"OpenCLIP folder {folder} has no {_HF_CONFIG_NAME}: download an OpenCLIP hub repo "
                f"(config + weights) into it, e.g. `hf download laion/CLIP-ViT-H-14-laion2B-s32B-b79K "
                f"{_HF_CONFIG_NAME} {_HF_SAFE_WEIGHTS_NAME} --local-dir {folder}`."
            )
        model_name, checkpoint, pretrained = f"local-dir:{folder}", str(folder), None
    elif pretrained is not None:
        pretrained = os.fspath(pretrained)
        arch = model_name.replace("/", "-")
        if open_clip.get_pretrained_cfg(arch, pretrained):
            tag = pretrained
            checkpoint, where = _cached_tag_checkpoint(arch, tag, cache_dir)
            if checkpoint is None:
                raise MissingWeightsError(
                    f"OpenCLIP weights {model_name} {tag!r} are not in {where} and s2i never downloads "
                    f"weights: {_openclip_download_hint(arch, tag)}."
                )
            # load the cached file, with the preprocessing the tag was trained with
            cfg = open_clip.get_pretrained_cfg(arch, tag)
            kwargs.update(
                image_mean=cfg.get("mean"),
                image_std=cfg.get("std"),
                image_interpolation=cfg.get("interpolation"),
                image_resize_mode=cfg.get("resize_mode"),
                force_quick_gelu=bool(cfg.get("quick_gelu", False)),
            )
        else:
            path = resolve(pretrained)
            if not path.is_file():
                raise MissingWeightsError(
                    f"OpenCLIP checkpoint {path} not found ({pretrained!r} is neither a file nor a "
                    f"pretrained tag of {model_name}): {_openclip_download_hint(arch)}."
                )
            checkpoint = str(path)
        pretrained = checkpoint

    model, _, preprocess = open_clip.create_model_and_transforms(
        model_name, pretrained=pretrained, device=device, precision=precision, cache_dir=cache_dir, **kwargs
    )
    model.eval()
    return OpenCLIPEncoder(model=model, preprocess=preprocess, model_name=model_name, checkpoint=checkpoint)


# --------------------------------------------------------------------------------------------
# Stable unCLIP generator
# --------------------------------------------------------------------------------------------


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
    unet_in = getattr(pipe.unet.config, "projection_class_embeddings_input_dim", None)
    if unet_in is not None and int(unet_in) != 2 * dim:
        raise ValueError(
            f"inconsistent unCLIP pipeline: image_normalizer embedding dim is {dim} but the UNet class "
            f"embedding expects {unet_in} = 2 x {int(unet_in) // 2}"
        )
    return dim


# --------------------------------------------------------------------------------------------
# The backbones
# --------------------------------------------------------------------------------------------


class FullBackbones:
    """Pretrained OpenCLIP encoder + Stable unCLIP decoder behind the toy backbones' interface.

    Attributes:
        image_size: side of the square images the encoder takes (after its own preprocessing).
        embed_dim: dimension of the image embeddings (encoder output = unCLIP conditioning).
        profile: ``"full"``.
        encoder: the :class:`OpenCLIPEncoder`.
        pipe: the :class:`~diffusers.StableUnCLIPImg2ImgPipeline`, or ``None`` (encode only).
        steps, guidance, noise_level: defaults of :meth:`generate`.
    """

    profile = "full"

    def __init__(
        self,
        encoder: OpenCLIPEncoder,
        pipe: StableUnCLIPImg2ImgPipeline | None,
        *,
        steps: int = 25,
        guidance: float = 7.5,
        noise_level: int = 0,
    ) -> None:
        self.encoder = encoder
        self.pipe = pipe
        self.steps = int(steps)
        self.guidance = float(guidance)
        self.noise_level = int(noise_level)
        self.image_size = encoder.image_size
        self.embed_dim = encoder.embed_dim
        if pipe is not None and unclip_embed_dim(pipe) != self.embed_dim:
            raise ValueError(
                f"the image encoder {encoder.model_name} gives {self.embed_dim}-d embeddings but the unCLIP "
                f"pipeline is conditioned on {unclip_embed_dim(pipe)}-d ones; pair ViT-H-14 (1024-d) with "
                f"stable-diffusion-2-1-unclip, ViT-L-14 (768-d) with stable-diffusion-2-1-unclip-small"
            )

    @classmethod
    def from_params(
        cls, p: dict[str, Any], device: str | torch.device | None = None, load_generator: bool = True
    ) -> FullBackbones:
        """Build from the ``full`` section of ``params.yaml``.

        ``p`` looks like::

            {"image_encoder": {"model": "ViT-H-14", "pretrained": "laion2b_s32b_b79k"},  # or a file
             "generator": {"path": "models/full/stable-unclip", "steps": 25, "guidance": 7.5,
                           "noise_level": 0, "dtype": "float16"}}  # dtype optional

        Relative paths are taken from the repository root. ``device`` defaults to ``p["device"]``,
        else CUDA when available. ``load_generator=False`` loads the encoder only.
        """
        device = device or p.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
        enc_p = p["image_encoder"]
        encoder = load_openclip_encoder(
            enc_p["model"],
            enc_p.get("pretrained"),
            device=device,
            cache_dir=enc_p.get("cache_dir"),
            precision=enc_p.get("precision", "fp32"),
        )
        gen_p = p.get("generator", {})
        pipe = None
        if load_generator:
            dtype = getattr(torch, str(gen_p.get("dtype", "float32")))
            pipe = load_unclip_pipeline(gen_p.get("path", DEFAULT_UNCLIP_DIR), device=device, dtype=dtype)
        return cls(
            encoder,
            pipe,
            steps=gen_p.get("steps", 25),
            guidance=gen_p.get("guidance", 7.5),
            noise_level=gen_p.get("noise_level", 0),
        )

    def encode_images(self, images: np.ndarray | Sequence[Image.Image], batch_size: int = 32) -> torch.Tensor:
        """Embed images: uint8 ``(N, H, W, 3)`` array or list of PIL images -> float32 ``(N, D)`` on CPU.

        Each image goes through the OpenCLIP model's own preprocess transform (resize, centre crop,
        normalise). The result is ``model.encode_image(...)`` as is, **not** L2-normalised: Stable
        unCLIP is conditioned on un-normalised CLIP image embeddings.
        """
        return self.encoder.encode(images, batch_size=batch_size)

    @torch.inference_mode()
    def generate(
        self,
        embeddings: torch.Tensor | np.ndarray,
        n_per: int = 1,
        guidance: float | None = None,
        steps: int | None = None,
        noise_level: int | None = None,
        seed: int = 0,
        height: int | None = None,
        width: int | None = None,
        batch: int | None = None,
        progress: bool = False,
    ) -> np.ndarray:
        """Decode image embeddings with Stable unCLIP: ``(N, D)`` -> uint8 ``(N * n_per, H, W, 3)``.

        The pipeline gets ``image_embeds`` (no image) and an empty prompt; the ``n_per`` images of
        embedding ``i`` are rows ``i * n_per ... i * n_per + n_per - 1``. The noise comes from a CPU
        ``torch.Generator`` seeded with ``seed``, so a call is reproducible and independent of the
        device. ``guidance``, ``steps`` and ``noise_level`` (an integer timestep of the pipeline's
        ``image_noising_scheduler``, 0 = clean embedding) default to the values from params;
        ``height``/``width`` default to the pipeline's native resolution. ``batch`` caps the
        embeddings per pipeline call (memory); the images then depend on ``batch`` too, as the
        generator's draws are split differently. ``progress`` shows the pipeline's progress bar.

        Raises:
            ValueError: the embeddings' dimension is not the one the pipeline is conditioned on.
        """
        if self.pipe is None:
            raise RuntimeError("these FullBackbones were loaded without a generator (load_generator=False)")
        emb = torch.as_tensor(np.asarray(embeddings) if not isinstance(embeddings, torch.Tensor) else embeddings)
        if emb.ndim == 1:
            emb = emb[None]
        expected = unclip_embed_dim(self.pipe)
        if emb.ndim != 2 or emb.shape[1] != expected:
            raise ValueError(
                f"embeddings have shape {tuple(emb.shape)} (dim {emb.shape[-1]}) but the unCLIP pipeline "
                f"is conditioned on {expected}-d image embeddings"
            )
        n = emb.shape[0]
        if n == 0:
            native = self.pipe.unet.config.sample_size * self.pipe.vae_scale_factor
            return np.zeros((0, height or native, width or native, 3), np.uint8)
        unet = self.pipe.unet
        emb = emb.to(device=unet.device, dtype=unet.dtype)
        generator = torch.Generator(device="cpu").manual_seed(int(seed))
        self.pipe.set_progress_bar_config(disable=not progress)
        batch = n if not batch else int(batch)
        out = []
        for s in range(0, n, batch):
            images = self.pipe(
                prompt=[""] * len(emb[s : s + batch]),
                image_embeds=emb[s : s + batch],
                num_images_per_prompt=int(n_per),
                guidance_scale=self.guidance if guidance is None else float(guidance),
                num_inference_steps=self.steps if steps is None else int(steps),
                noise_level=self.noise_level if noise_level is None else int(noise_level),
                generator=generator,
                height=height,
                width=width,
                output_type="np",
            ).images
            out.append((np.asarray(images, dtype=np.float32) * 255).round().clip(0, 255).astype(np.uint8))
        return np.concatenate(out)


# --------------------------------------------------------------------------------------------
# Tiny random models in the real on-disk formats
# --------------------------------------------------------------------------------------------


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
