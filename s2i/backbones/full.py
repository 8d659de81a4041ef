"""The ``full`` profile backbones: a pretrained OpenCLIP image encoder
(:mod:`s2i.backbones.openclip`) and the components of diffusers'
:class:`~diffusers.StableUnCLIPImg2ImgPipeline` (UNet, VAE, embedding normaliser and noising
scheduler, text encoder for the empty prompt), driven by s2i's one sampler
(:func:`s2i.models.sampler.sample`) for plain generation and composed guidance (mixing, editing).
Weights are only read locally (see :class:`s2i.backbones.openclip.MissingWeightsError`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from s2i.backbones.openclip import OpenCLIPEncoder, load_openclip_encoder

if TYPE_CHECKING:  # imported lazily at run time: diffusers is slow to import
    from diffusers import StableUnCLIPImg2ImgPipeline


from s2i.backbones.unclip import DEFAULT_UNCLIP_DIR, load_unclip_pipeline, unclip_embed_dim

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}

MAX_ASPECT = 2.0  # the longest side drawn, in shorter sides: a wider frame is drawn (and edited) in its centre


class FullBackbones:
    """Pretrained OpenCLIP encoder + Stable unCLIP decoder behind the toy backbones' interface.

    Drawing (:meth:`generate` and :meth:`compose`) is a denoising loop over the pipeline's own
    components -- UNet, VAE, ``image_normalizer`` and ``image_noising_scheduler``, tokenizer and
    text encoder (for the empty prompt) -- through the one sampler of s2i,
    :func:`s2i.models.sampler.sample`, so plain generation, mixing and editing are the same code
    on every profile. How the sampler's terms become UNet inputs:

    * each term's embedding ``z`` becomes the UNet's ``class_labels`` exactly as
      :meth:`~diffusers.StableUnCLIPImg2ImgPipeline.noise_image_embeddings` makes them: scaled by
      the ``image_normalizer``, noised to ``noise_level`` by the ``image_noising_scheduler``,
      unscaled, and concatenated with the sinusoidal embedding of ``noise_level`` (2 D numbers);
    * the unconditional term is what the pipeline uses for classifier-free guidance: class labels
      of all zeros (the noise-level half included), which is the sampler's all-zero embedding;
    * every term sees the empty prompt's text embedding (the pipeline's prompt and negative prompt
      are both ``""``);
    * the UNet's output (``epsilon`` or ``v_prediction``, from the pipeline scheduler's config) is
      turned into a prediction of the clean latents ``x0``, and the sampler steps a
      ``DDIMScheduler`` built from the pipeline scheduler's config with ``prediction_type="sample"``.
      At a fixed timestep and latent, x0, epsilon and v are affine in one another with the same
      coefficients for every term, so composing the x0 predictions (weights summing with the
      unconditional's to one) is the same as composing epsilon or v, and the DDIM step on the
      composed x0 is the pipeline's DDIM step on the composed v (clipping included). With a
      ``DDIMScheduler`` in the pipeline (Stable unCLIP 2.1 ships one), :meth:`generate` therefore
      draws what ``StableUnCLIPImg2ImgPipeline.__call__`` draws, to float rounding
      (``tests/test_full_profile.py`` checks it).

    Latents have ``unet.config.in_channels`` (4) channels at the drawing's size over
    ``vae_scale_factor``; init images are VAE-encoded (the mean of the latent distribution) and
    multiplied by the VAE's ``scaling_factor``; term masks and regions, given at the drawing's
    size, are averaged down (area) to the latents' resolution. Drawings need not be square: any
    ``height`` x ``width`` in multiples of 8 (as the pipeline requires); :meth:`drawing_size`
    gives the one for a frame's aspect (what editing a non-square photo or video uses).

    Attributes:
        image_size: side of the square images :meth:`generate` and :meth:`compose` draw by default
            (and their masks then have): the pipeline's native resolution,
            ``unet.config.sample_size * vae_scale_factor``; without a generator, the encoder's.
        size_step: the sides :meth:`drawing_size` gives are multiples of it: 8 (the pipeline's
            rule) and the VAE's factor times the UNet's downsampling factor (Stable Diffusion 2:
            8 * 8 = 64), so the UNet's feature maps halve evenly.
        encoder_image_size: side of the square images the encoder takes (after its own
            preprocessing, which resizes any input to it).
        embed_dim: dimension of the image embeddings (encoder output = unCLIP conditioning).
        profile: ``"full"``.
        encoder: the :class:`OpenCLIPEncoder`.
        pipe: the :class:`~diffusers.StableUnCLIPImg2ImgPipeline`, or ``None`` (encode only).
        steps, noise_level: defaults of :meth:`generate` and :meth:`compose`.
        guidance: :meth:`generate`'s default guidance scale (``sampling.guidance`` may replace it).
        compose_guidance: ``full.generator.guidance``, the unit of composed terms (mixing, editing).
    """

    profile = "full"
    supports_composition = True  # the one sampler's composed guidance over the pipeline's components
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
        self.guidance = self.compose_guidance = float(guidance)
        self.noise_level = int(noise_level)
        self.encoder_image_size = encoder.image_size
        self.embed_dim = encoder.embed_dim
        self.image_size = self.encoder_image_size
        self.size_step = 8
        self.scheduler = None
        if pipe is not None:
            if unclip_embed_dim(pipe) != self.embed_dim:
                raise ValueError(
                    f"the image encoder {encoder.model_name} gives {self.embed_dim}-d embeddings but the unCLIP "
                    f"pipeline is conditioned on {unclip_embed_dim(pipe)}-d ones; pair ViT-H-14 (1024-d) with "
                    f"stable-diffusion-2-1-unclip, ViT-L-14 (768-d) with stable-diffusion-2-1-unclip-small"
                )
            from diffusers import DDIMScheduler

            self.image_size = int(pipe.unet.config.sample_size) * int(pipe.vae_scale_factor)
            unet_factor = 2 ** (len(pipe.unet.config.block_out_channels) - 1)
            self.size_step = math.lcm(8, int(pipe.vae_scale_factor) * unet_factor)
            # the sampler's scheduler: the pipeline's schedule, stepped on x0 predictions
            self.scheduler = DDIMScheduler.from_config(pipe.scheduler.config, prediction_type="sample")

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

    # ------------------------------------------------------------------------- drawing

    def drawing_size(self, height: int, width: int) -> tuple[int, int]:
        """The (h, w) drawn for a ``height`` x ``width`` frame: its aspect, the shorter side at
        ``image_size`` (the resolution the pipeline was trained at), the longer one at most
        :data:`MAX_ASPECT` times it, both rounded to multiples of ``size_step``. A frame's
        aspect is thus kept to within half a step (Stable unCLIP at 768 px: 1080p is drawn at
        768 x 1344, 1.6 % narrower)."""
        if height < 1 or width < 1:
            raise ValueError(f"a frame must have a positive size, got {width}x{height} (WxH)")
        step, side = self.size_step, self.image_size
        ratio = min(max(height, width) / min(height, width), MAX_ASPECT)
        short = max(step, int(round(side / step)) * step)
        long = max(short, int(round(side * ratio / step)) * step)
        return (short, long) if height <= width else (long, short)

    def _size(self, height: int | None, width: int | None) -> tuple[int, int]:
        """(height, width), defaulting to ``image_size``; ValueError unless multiples of 8."""
        height, width = int(height or self.image_size), int(width or self.image_size)
        if height % 8 or width % 8 or height < 8 or width < 8:
            raise ValueError(f"height and width must be multiples of 8, got {height} x {width}")
        return height, width

    def _pipe(self) -> StableUnCLIPImg2ImgPipeline:
        if self.pipe is None:
            raise RuntimeError("these FullBackbones were loaded without a generator (load_generator=False)")
        return self.pipe

    def _embeddings(self, embeddings, what: str = "embeddings") -> torch.Tensor:
        """(N, D) or (D,) tensor or array -> float32 (N, D) CPU tensor of the pipeline's dimension."""
        emb = torch.as_tensor(np.asarray(embeddings) if not isinstance(embeddings, torch.Tensor) else embeddings)
        if emb.ndim == 1:
            emb = emb[None]
        expected = unclip_embed_dim(self._pipe())
        if emb.ndim != 2 or emb.shape[1] != expected:
            raise ValueError(
                f"{what} have shape {tuple(emb.shape)} (dim {emb.shape[-1]}) but the unCLIP pipeline "
                f"is conditioned on {expected}-d image embeddings"
            )
        return emb.detach().float().cpu()

    def _class_labels(self, emb: torch.Tensor, noise: torch.Tensor, noise_level: int) -> torch.Tensor:
        """(M, D) embeddings and (M, D) noise -> (M, 2 D) UNet class labels, by the pipeline's own
        ``noise_image_embeddings`` (normalise, noise to ``noise_level``, unnormalise, append the
        noise level's sinusoidal embedding), in the UNet's dtype."""
        pipe = self._pipe()
        unet = pipe.unet
        emb = emb.to(device=unet.device, dtype=unet.dtype)
        noise = noise.to(device=unet.device, dtype=unet.dtype)
        return pipe.noise_image_embeddings(image_embeds=emb, noise_level=int(noise_level), noise=noise)

    def _text_embedding(self) -> torch.Tensor:
        """(1, L, C): the empty prompt through the pipeline's tokenizer and text encoder."""
        pipe = self._pipe()
        prompt_embeds, _ = pipe.encode_prompt(
            prompt=[""], device=pipe.unet.device, num_images_per_prompt=1, do_classifier_free_guidance=False
        )
        return prompt_embeds.to(pipe.unet.dtype)

    def _denoiser(self):
        """The sampler's ``denoise(x, t, e) -> x0``: the unCLIP UNet on latents ``x`` at timesteps
        ``t`` with class labels ``e`` and the empty prompt, its output turned into clean latents."""
        pipe = self._pipe()
        unet = pipe.unet
        text = self._text_embedding()
        prediction = pipe.scheduler.config.get("prediction_type", "epsilon")
        if prediction not in ("epsilon", "v_prediction", "sample"):
            raise ValueError(f"unsupported prediction_type {prediction!r} of the unCLIP scheduler")
        alphas = self.scheduler.alphas_cumprod  # the pipeline scheduler's schedule (same config)
        dtype = unet.dtype  # once: diffusers' ModelMixin.dtype walks every submodule per lookup

        def denoise(x: torch.Tensor, t: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
            out = unet(
                x.to(dtype),
                t.to(x.device),
                encoder_hidden_states=text.expand(x.shape[0], -1, -1),
                class_labels=e.to(dtype),
                return_dict=False,
            )[0].float()
            a = alphas[t.cpu()].to(x.device).view(-1, 1, 1, 1)
            if prediction == "v_prediction":
                return a**0.5 * x - (1 - a) ** 0.5 * out
            if prediction == "epsilon":
                return (x - (1 - a) ** 0.5 * out) / a**0.5
            return out

        return denoise

    def _latent_noise(self, n: int, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
        """(n, C, h, w) starting latents from the CPU ``generator``, as the pipeline's ``prepare_latents``."""
        pipe = self._pipe()
        vsf = int(pipe.vae_scale_factor)
        shape = (n, int(pipe.unet.config.in_channels), int(height) // vsf, int(width) // vsf)
        return torch.randn(shape, generator=generator) * pipe.scheduler.init_noise_sigma

    def _to_latent_res(self, m: torch.Tensor | None, size: tuple[int, int]) -> torch.Tensor | None:
        """A mask from :func:`s2i.models.sampler.spatial` at the drawing's ``size`` (H, W),
        averaged (area) down to the latents' resolution, same leading dimensions."""
        if m is None:
            return None
        vsf = int(self._pipe().vae_scale_factor)
        hw = (size[0] // vsf, size[1] // vsf)
        lead = m.shape[:-2]
        small = torch.nn.functional.interpolate(m.reshape(-1, 1, *m.shape[-2:]), size=hw, mode="area")
        return small.reshape(*lead, *hw)

    @torch.no_grad()
    def encode_latents(self, images: np.ndarray, size: tuple[int, int] | None = None, batch: int = 16) -> torch.Tensor:
        """uint8 (N, H, W, 3) images (any size: centre-cropped to the aspect of ``size`` (H, W),
        default the square ``image_size``, and resized to it) -> (N, C, h, w) float32 latents:
        the mean of the VAE's latent distribution times its ``scaling_factor``, on the
        pipeline's device; ``batch`` images per VAE pass (a video's frames fit in memory)."""
        from s2i.media import fit_resize
        from s2i.models.common import to_tensor

        vae = self._pipe().vae
        height, width = self._size(*(size or (None, None)))
        imgs = np.asarray(images)
        if imgs.ndim == 3:
            imgs = imgs[None]
        out = []
        for s in range(0, len(imgs), max(1, int(batch))):
            chunk = imgs[s : s + max(1, int(batch))]
            if chunk.shape[1:3] != (height, width):
                chunk = np.stack([fit_resize(im, height, width) for im in chunk])
            x = to_tensor(chunk).to(device=vae.device, dtype=vae.dtype)
            out.append(vae.encode(x).latent_dist.mode().float() * vae.config.scaling_factor)
        return torch.cat(out)

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor, batch: int | None = None) -> np.ndarray:
        """(N, C, h, w) latents -> uint8 (N, H, W, 3), as the pipeline decodes (VAE, then its
        image processor's postprocessing), ``batch`` latents at a time."""
        pipe = self._pipe()
        vae = pipe.vae
        batch = len(latents) if not batch else int(batch)
        out = []
        for s in range(0, len(latents), batch):
            z = latents[s : s + batch].to(device=vae.device, dtype=vae.dtype)
            img = vae.decode(z / vae.config.scaling_factor, return_dict=False)[0]
            img = pipe.image_processor.postprocess(img, output_type="np")
            out.append((np.asarray(img, dtype=np.float32) * 255).round().clip(0, 255).astype(np.uint8))
        return np.concatenate(out)

    def _draw(self, labels, weights, noise, steps, init, strength, masks, region, batch, progress, centred=False):
        """The one sampler on latents: (K, N, 2 D) class labels -> uint8 (N, H, W, 3)."""
        from s2i.models.sampler import sample

        dev = self._pipe().unet.device
        latents = sample(
            self._denoiser(),
            self.scheduler,
            labels,
            weights,
            noise.to(dev),
            self.steps if steps is None else int(steps),
            init=None if init is None else init.to(dev),
            strength=strength,
            masks=None if masks is None else masks.to(dev),
            region=None if region is None else region.to(dev),
            centred=centred,
            batch=batch,
            progress=progress,
        )
        return self.decode_latents(latents, batch)

    @torch.no_grad()
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

        The one sampler with one term, the embedding, at weight ``guidance`` (the unconditional
        pass is skipped at ``guidance <= 1``, as the pipeline does); with the pipeline's DDIM
        scheduler this is ``StableUnCLIPImg2ImgPipeline(prompt="", image_embeds=...)`` to float
        rounding, and the random draws are the pipeline's: per batch, the embeddings' noise, then
        the latents. The ``n_per`` images of embedding ``i`` are rows ``i * n_per ... i * n_per +
        n_per - 1`` (they share the embedding's noise, as in the pipeline). The noise comes from a
        CPU ``torch.Generator`` seeded with ``seed``, so a call is reproducible and independent of
        the device. ``guidance``, ``steps`` and ``noise_level`` (an integer timestep of the
        pipeline's ``image_noising_scheduler``, 0 = clean embedding) default to the values from
        params; ``height``/``width`` (multiples of 8, as the pipeline requires) default to
        ``image_size``. ``batch`` caps the embeddings per network pass (memory); the images then
        depend on ``batch`` too, as the generator's draws are split differently. ``progress``
        shows a progress bar over the steps.

        Raises:
            ValueError: the embeddings' dimension is not the one the pipeline is conditioned on, or
                the size is not a multiple of 8.
        """
        emb = self._embeddings(embeddings)
        n, n_per = emb.shape[0], int(n_per)
        height, width = self._size(height, width)
        if n == 0:
            return np.zeros((0, height, width, 3), np.uint8)
        guidance = self.guidance if guidance is None else float(guidance)
        noise_level = self.noise_level if noise_level is None else int(noise_level)
        generator = torch.Generator(device="cpu").manual_seed(int(seed))
        batch = n if not batch else int(batch)
        labels, noise = [], []
        for s in range(0, n, batch):  # the pipeline's draws, call by call: embedding noise, then latents
            e = emb[s : s + batch]
            e_noise = torch.randn(e.shape, generator=generator)
            labels.append(self._class_labels(e, e_noise, noise_level).repeat_interleave(n_per, 0))
            noise.append(self._latent_noise(len(e) * n_per, height, width, generator))
        weight = guidance if guidance > 1.0 else 1.0
        return self._draw(
            torch.cat(labels)[None], [weight], torch.cat(noise), steps, None, 1.0, None, None, batch * n_per, progress
        )

    @torch.no_grad()
    def compose(
        self,
        conds: list[torch.Tensor],
        weights: list[float],
        seed: int = 0,
        steps: int | None = None,
        init_images: np.ndarray | None = None,
        strength: float = 1.0,
        shared_noise: bool = False,
        masks=None,
        region=None,
        progress: bool = False,
        noise_level: int | None = None,
        batch: int = 16,
        size: tuple[int, int] | None = None,
        centred: bool = False,
    ) -> np.ndarray:
        """Composed guidance (mixing, editing) on Stable unCLIP, through the one sampler:
        ``x0 = x0_u + sum_k w_k m_k (x0_k - x0_u)`` on the latents (see the class docs for how
        the terms reach the UNet).

        Args:
            conds: K tensors (N, D), the terms' embeddings (each noised to ``noise_level`` with its
                own noise, as the pipeline noises its one embedding).
            weights: K guidance weights (negative: guide away). One term of weight ``w`` without
                masks is plain generation at guidance ``w``.
            seed: seeds a CPU ``torch.Generator``: the terms' embedding noise (term by term), then
                the starting latents.
            steps: DDIM steps (default ``self.steps``).
            init_images: optional uint8 (N or 1, H, W, 3), any size (centre-cropped to the
                drawing's aspect and resized to its size), VAE-encoded and noised to ``strength``
                (SDEdit; 1 = pure noise).
            shared_noise: the same noise (latents and embedding noise) for every item.
            masks: optional term masks (K, H, W) or (K, N, H, W) in [0, 1] at the drawing's size,
                averaged down to the latents.
            region: optional (H, W) or (N, H, W) in [0, 1] at the drawing's size, with ``init_images``:
                drawn inside; outside, every step's x0 is the input's latents (blended diffusion)
                and so are the final latents (:func:`~s2i.models.sampler.sample` blends once more
                after Stable Diffusion's last step, which stops short of t = 0). Outside the
                region the output is thus the input's VAE round trip, up to what the VAE decoder
                carries across the region's edge (its convolutions' reach, its mid-block
                attention and group norms see the whole latent).
            noise_level: of the embeddings (default ``self.noise_level``).
            batch: items per network pass (each pass holds K + 1 latents per item).
            size: the drawing's (height, width), multiples of 8 (:meth:`drawing_size` gives one
                for a frame's aspect); default ``(image_size, image_size)``.
            centred: with ``masks``, each term predicted on a view of the latents centred on its
                mask (:func:`~s2i.models.sampler.sample`).
        Returns:
            uint8 (N, height, width, 3).
        """
        from s2i.models.sampler import spatial

        if len(conds) != len(weights) or not conds:
            raise ValueError(f"{len(conds)} conditions but {len(weights)} weights")
        embs = [self._embeddings(c, "conditions") for c in conds]
        if any(e.shape != embs[0].shape for e in embs):
            raise ValueError(f"all conditions must have the same shape, got {[tuple(e.shape) for e in embs]}")
        if region is not None and init_images is None:
            raise ValueError("region needs init_images (what to keep outside it)")
        N, size = embs[0].shape[0], self._size(*(size or (None, None)))
        noise_level = self.noise_level if noise_level is None else int(noise_level)
        generator = torch.Generator(device="cpu").manual_seed(int(seed))
        rows = 1 if shared_noise else N
        labels = torch.stack(
            [
                self._class_labels(e, torch.randn((rows, e.shape[1]), generator=generator).expand(N, -1), noise_level)
                for e in embs
            ]
        )
        noise = self._latent_noise(rows, *size, generator).expand(N, -1, -1, -1)
        init = None
        if init_images is not None:
            init = self.encode_latents(init_images, size, batch)
            if init.shape[0] == 1:
                init = init.expand(N, -1, -1, -1)
            if init.shape[0] != N:
                raise ValueError(f"init_images: {init.shape[0]} images for {N} conditions")
        mk = self._to_latent_res(None if masks is None else spatial(masks, len(embs), size, "masks"), size)
        rg = self._to_latent_res(None if region is None else spatial(region, None, size, "region"), size)
        return self._draw(labels, weights, noise, steps, init, strength, mk, rg, batch, progress, centred)
