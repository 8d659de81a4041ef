"""The toy/smoke generator: a miniature unCLIP decoder that draws a picture from an image
embedding (claim 3).

A diffusers ``UNet2DConditionModel`` conditioned on the embedding through
``class_embed_type="projection"`` (added to the timestep embedding, as Stable unCLIP does)
*and* cross-attention to the embedding, trained with x0-prediction by
:mod:`s2i.train.generator`, sampled with DDIM and classifier-free guidance
(:mod:`s2i.models.sampler`)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from s2i.models.common import resolve_device, to_tensor, to_uint8, use_bf16
from s2i.models.sampler import sample, spatial
from s2i.toyworld import world
from s2i.utils import atomic_path, write_json


# ----------------------------------------------------------------------------- generator (miniature unCLIP decoder)
@dataclass
class GeneratorCfg:
    block_out_channels: tuple[int, ...] = (64, 128, 128)
    layers_per_block: int = 1
    attention_head_dim: int = 32
    attn_levels: int = 1  # how many of the coarsest levels (plus the mid block) cross-attend to the embedding
    n_tokens: int = 4  # the embedding is projected to this many cross-attention tokens
    steps: int = 3000
    batch: int = 64
    lr: float = 5e-4
    cfg_dropout: float = 0.1  # classifier-free guidance: share of batches' embeddings dropped
    max_noise_level: float = 0.1  # embedding noise augmentation (relative to the embedding's RMS)
    min_snr_gamma: float = 5.0
    snr_floor: float = 0.0  # the x0 loss weights min(SNR, gamma) raised to at least this (0: plain min-SNR)
    # the squared error of a target cell an object covers weighs 1 + this (the share it covers,
    # s2i.toyworld.stills.object_cover; each picture's weights scaled to mean 1); 0: all alike
    object_weight: float = 0.0
    ema_decay: float = 0.999
    train_timesteps: int = 1000
    sample_steps: int = 25
    guidance: float = 2.0
    # bfloat16 autocast, in training (bf16) and in drawing (sample_bf16): True, False or "auto", where
    # the device computes in bfloat16 natively (s2i.models.common.native_bf16; elsewhere autocast is
    # many times slower than float32)
    bf16: bool | str = False
    sample_bf16: bool | str = False
    kind: str = "pixel"  # "pixel": the UNet draws pictures; "latent": s2i.models.latent (the UNet settings unused)
    latent: dict = field(default_factory=dict)  # kind "latent": s2i.models.latent.LatentCfg's fields


class EmbeddingDecoder(nn.Module):
    """UNet2DConditionModel conditioned on an image embedding two ways: the embedding is the
    ``class_labels`` of a ``projection`` class embedding (FiLM through the timestep embedding,
    like Stable unCLIP) and, projected to ``n_tokens`` tokens, the cross-attention context."""

    def __init__(
        self, embed_dim: int, cfg: GeneratorCfg, unet: nn.Module | None = None, to_tokens: nn.Module | None = None
    ):
        super().__init__()
        from diffusers import UNet2DConditionModel

        n = len(cfg.block_out_channels)
        n_attn = min(cfg.attn_levels, n - 1)  # cross-attention only at the coarsest levels (cheap on CPU)
        self.unet = (
            unet
            if unet is not None
            else UNet2DConditionModel(
                sample_size=world.IMG,
                in_channels=3,
                out_channels=3,
                block_out_channels=tuple(cfg.block_out_channels),
                layers_per_block=cfg.layers_per_block,
                down_block_types=("DownBlock2D",) * (n - n_attn) + ("CrossAttnDownBlock2D",) * n_attn,
                up_block_types=("CrossAttnUpBlock2D",) * n_attn + ("UpBlock2D",) * (n - n_attn),
                cross_attention_dim=cfg.block_out_channels[-1],
                attention_head_dim=cfg.attention_head_dim,
                class_embed_type="projection",
                projection_class_embeddings_input_dim=embed_dim,
                resnet_time_scale_shift="scale_shift",  # FiLM: the embedding scales and shifts every ResNet block
                norm_num_groups=min(32, cfg.block_out_channels[0]),
            )
        )
        self.to_tokens = (
            to_tokens if to_tokens is not None else nn.Linear(embed_dim, cfg.n_tokens * cfg.block_out_channels[-1])
        )
        self.n_tokens = cfg.n_tokens
        self.embed_dim = embed_dim
        self.image_size = int(self.unet.config.sample_size)

    def forward(self, x: torch.Tensor, t: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        B = x.shape[0]
        ctx = self.to_tokens(e).view(B, self.n_tokens, -1)  # (B, K, C)
        return self.unet(x, t, encoder_hidden_states=ctx, class_labels=e).sample


class ToyGenerator:
    """Sampling side of the miniature unCLIP decoder (DDIM + classifier-free guidance), drawing
    pixels; :class:`s2i.models.latent.LatentGenerator` draws latents with the same interface."""

    kind = "pixel"
    clip_sample = True  # x0 predictions are pictures in [-1, 1]

    def __init__(self, decoder: nn.Module, cfg: GeneratorCfg, emb_rms: float):
        from diffusers import DDIMScheduler

        self.decoder = decoder.eval()
        self.cfg = cfg
        self.emb_rms = emb_rms
        self.scheduler = DDIMScheduler(
            num_train_timesteps=cfg.train_timesteps,
            beta_schedule="squaredcos_cap_v2",
            prediction_type="sample",
            clip_sample=self.clip_sample,
        )

    @property
    def image_size(self) -> int:
        """Side of the square images it draws."""
        return self.decoder.image_size

    @property
    def noise_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of what the sampler denoises: here the picture itself."""
        return (3, self.image_size, self.image_size)

    def __call__(
        self,
        embeddings: torch.Tensor,
        n_per: int = 1,
        guidance: float | None = None,
        steps: int | None = None,
        noise_level: float = 0.0,
        seed: int = 0,
        init_images: np.ndarray | torch.Tensor | None = None,
        strength: float = 1.0,
        batch: int = 64,
        progress: bool = False,
    ) -> np.ndarray:
        """Draw ``n_per`` images per embedding.

        Args:
            embeddings: (N, D) image-space embeddings (from images or from sounds).
            n_per: images per embedding (different noise).
            guidance: classifier-free guidance scale (1 = none); default from the config.
            steps: DDIM steps; default from the config.
            noise_level: Gaussian noise added to the embedding, relative to its RMS (unCLIP's noise_level).
            seed: seeds the sampling noise (same seed, same images).
            init_images: optional uint8 (N, H, W, 3) images to start from (SDEdit): they are
                noised to ``strength`` (0 = keep, 1 = pure noise) and denoised under the embedding.
            strength: see ``init_images``.
        Returns:
            uint8 (N * n_per, H, W, 3), grouped by embedding.
        """
        guidance = self.cfg.guidance if guidance is None else guidance
        e = torch.as_tensor(embeddings).float()
        if e.ndim != 2 or e.shape[1] != self.decoder.embed_dim:
            raise ValueError(f"embeddings must be (N, {self.decoder.embed_dim}), got {tuple(e.shape)}")
        e = e.repeat_interleave(n_per, 0)
        g = torch.Generator().manual_seed(seed)
        if noise_level > 0:
            e = e + noise_level * self.emb_rms * torch.randn(e.shape, generator=g)
        if init_images is not None:
            init_images = to_tensor(init_images).repeat_interleave(n_per, 0)
            if init_images.shape[0] != e.shape[0]:
                raise ValueError(
                    f"init_images: {init_images.shape[0] // n_per} images for {e.shape[0] // n_per} embeddings"
                )
        noise = torch.randn((e.shape[0], *self.noise_shape), generator=g)
        return self._draw([e], [guidance], noise, steps, init_images, strength, None, None, batch, progress)

    def compose(
        self,
        conds: list[torch.Tensor],
        weights: list[float],
        seed: int = 0,
        steps: int | None = None,
        init_images: np.ndarray | None = None,
        strength: float = 1.0,
        batch: int = 64,
        shared_noise: bool = False,
        masks=None,
        region=None,
        progress: bool = False,
        centred: bool = False,
    ) -> np.ndarray:
        """Draw images guided by several embeddings at once (composable classifier-free guidance,
        Liu et al. 2022): ``x0 = x0_uncond + sum_k w_k m_k (x0(z_k) - x0_uncond)``.

        ``conds``: K tensors (N, D); ``weights``: K guidance weights; ``init_images``: optional
        uint8 (N, H, W, 3) with ``strength`` in (0, 1] (1 = start from pure noise);
        ``shared_noise``: the same starting noise for every item (video frames stay consistent).
        ``masks``: optional spatial weights of the terms, (K, H, W) or (K, N, H, W) in [0, 1]
        (``m_k``; default 1 everywhere): a term only guides where its mask is on, as in
        region-based composition (MultiDiffusion, Bar-Tal et al. 2023). ``region``: optional
        (H, W) or (N, H, W) in [0, 1], with ``init_images``: the generator only draws inside it;
        outside, every step's ``x0`` is the input image's (blended diffusion), so what lies
        outside the region is kept exactly and the inside is drawn to fit it. ``centred``: with
        ``masks``, each term is predicted on a view centred on its mask
        (:func:`s2i.models.sampler.sample`).
        Returns uint8 (N, H, W, 3)."""
        if len(conds) != len(weights) or not conds:
            raise ValueError(f"{len(conds)} conditions but {len(weights)} weights")
        N = conds[0].shape[0]
        if any(c.shape != conds[0].shape for c in conds):
            raise ValueError(f"all conditions must have the same shape, got {[tuple(c.shape) for c in conds]}")
        size = self.image_size
        g = torch.Generator().manual_seed(seed)
        noise = torch.randn((1 if shared_noise else N, *self.noise_shape), generator=g).expand(N, -1, -1, -1)
        init = None if init_images is None else to_tensor(init_images)
        mk = None if masks is None else spatial(masks, len(conds), size, "masks")
        if region is not None and init is None:
            raise ValueError("region needs init_images (what to keep outside it)")
        rg = None if region is None else spatial(region, None, size, "region")
        return self._draw(conds, weights, noise, steps, init, strength, mk, rg, batch, progress, centred)

    def _draw(self, conds, weights, noise, steps, init, strength, masks, region, batch, progress, centred=False):
        dev = self.device
        c = torch.stack([torch.as_tensor(x).float() for x in conds])
        x = sample(
            self.decoder,
            self.scheduler,
            c,
            weights,
            noise.to(dev),
            steps or self.cfg.sample_steps,
            init=None if init is None else init.to(dev),
            strength=strength,
            masks=None if masks is None else masks.to(dev),
            region=None if region is None else region.to(dev),
            centred=centred,
            bf16=use_bf16(self.cfg.sample_bf16, dev),
            batch=batch,
            progress=progress,
        )
        return to_uint8(x)

    @property
    def device(self) -> torch.device:
        """Where the decoder's weights are (sampling runs there; noise is drawn on the CPU)."""
        p = next(self.decoder.parameters(), None)
        return torch.device("cpu") if p is None else p.device

    def to(self, device: str | torch.device) -> ToyGenerator:
        self.decoder.to(resolve_device(device))
        return self

    def save(self, out_dir: str | os.PathLike) -> None:
        """diffusers ``save_pretrained`` (safetensors) of the UNet and the scheduler, plus the
        token projection and the s2i config."""
        from safetensors.torch import save_file

        out_dir = Path(out_dir)
        self.decoder.unet.save_pretrained(out_dir / "unet", safe_serialization=True)
        self.scheduler.save_pretrained(out_dir / "scheduler")
        with atomic_path(out_dir / "to_tokens.safetensors") as tmp:
            save_file({k: v.contiguous() for k, v in self.decoder.to_tokens.state_dict().items()}, str(tmp))
        c = asdict(self.cfg)
        c["block_out_channels"] = list(c["block_out_channels"])
        write_json(out_dir / "s2i_generator.json", dict(cfg=c, embed_dim=self.decoder.embed_dim, emb_rms=self.emb_rms))

    @classmethod
    def load(cls, out_dir: str | os.PathLike) -> ToyGenerator:
        """``UNet2DConditionModel.from_pretrained`` + the token projection; a folder saved by a
        :class:`s2i.models.latent.LatentGenerator` (``kind: latent``) loads as one."""
        out_dir = Path(out_dir)
        meta = json.loads((out_dir / "s2i_generator.json").read_text())
        if meta.get("kind", "pixel") == "latent":
            from s2i.models.latent import LatentGenerator

            return LatentGenerator.load(out_dir)
        # only here: importing diffusers' UNet costs seconds (it pulls in transformers)
        from diffusers import UNet2DConditionModel
        from safetensors.torch import load_file

        cfg = GeneratorCfg(**{**meta["cfg"], "block_out_channels": tuple(meta["cfg"]["block_out_channels"])})
        unet = UNet2DConditionModel.from_pretrained(out_dir / "unet")
        tok = nn.Linear(meta["embed_dim"], cfg.n_tokens * cfg.block_out_channels[-1])
        tok.load_state_dict(load_file(str(out_dir / "to_tokens.safetensors")))
        dec = EmbeddingDecoder(meta["embed_dim"], cfg, unet=unet, to_tokens=tok)
        return cls(dec, cfg, meta["emb_rms"])
