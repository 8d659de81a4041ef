"""The ``full`` profile backbones: a pretrained OpenCLIP image encoder
(:mod:`s2i.backbones.openclip`) and diffusers' :class:`~diffusers.StableUnCLIPImg2ImgPipeline`,
fed ``image_embeds`` instead of an image. Weights are only read locally (see
:class:`s2i.backbones.openclip.MissingWeightsError`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from s2i.backbones.base import require_composition
from s2i.backbones.openclip import _HUB_ID, MissingWeightsError, OpenCLIPEncoder, load_openclip_encoder
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


_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


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
    supports_composition = False  # StableUnCLIPImg2ImgPipeline takes one image embedding
    judge = None  # real data has no judge: the full profile is measured on held-out real clips

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
            dtype = _DTYPES[str(gen_p.get("dtype", "float32"))]
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

    def compose(
        self,
        conds,
        weights,
        seed: int = 0,
        steps: int | None = None,
        init_images=None,
        strength: float = 1.0,
        shared_noise: bool = False,
        masks=None,
        region=None,
        progress: bool = False,
    ) -> np.ndarray:
        """Not offered: ``supports_composition`` is false (see :func:`s2i.backbones.base.require_composition`)."""
        require_composition(self, "composed guidance")
