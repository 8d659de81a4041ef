"""The toy/smoke backbones: the open_clip image encoder pretrained here, the miniature unCLIP generator
(pixel or latent, :mod:`s2i.models.latent`) and the judge, loaded from the pretrain stage's folder."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from functools import partial

import numpy as np
import torch

from s2i.models.common import resolve_device
from s2i.models.generator import ToyGenerator
from s2i.models.image_encoder import ImageEncoder, embed
from s2i.models.judge import Judge
from s2i.paths import resolve
from s2i.toyworld import world


# ----------------------------------------------------------------------------- the interface
class ToyBackbones:
    """toy/smoke backbones (:class:`s2i.backbones.base.Backbones`): ``encode_images`` (the open_clip
    model pretrained here on captioned stills), ``generate`` and ``compose`` (miniature unCLIP decoder, one
    sampler), and ``judge`` (the measuring instrument)."""

    profile = "toy"
    supports_composition = True

    def __init__(
        self,
        encoder: ImageEncoder | Callable[[], ImageEncoder],
        generator: ToyGenerator,
        judge: Judge | Callable[[], Judge] | None = None,
    ):
        """``encoder`` and ``judge``: the models, or functions that load them when first used
        (:meth:`load` defers both, so a job that only draws -- thumbnails -- never loads them
        nor imports open_clip: about 100 MB less memory)."""
        self._encoder = encoder.eval() if isinstance(encoder, ImageEncoder) else encoder
        self._judge = judge
        self.generator = generator
        self.image_size = generator.image_size
        self.embed_dim = generator.decoder.embed_dim  # the generator draws from the encoder's embeddings
        self.guidance = float(generator.cfg.guidance)  # generate's default (sampling.guidance may replace it)

    @property
    def encoder(self) -> ImageEncoder:
        """The frozen image encoder (loaded on first use when deferred)."""
        if not isinstance(self._encoder, ImageEncoder):
            self._encoder = self._encoder().eval()
        return self._encoder

    @property
    def judge(self) -> Judge | None:
        """The judge, the measuring instrument (loaded on first use when deferred)."""
        if self._judge is not None and not isinstance(self._judge, Judge):
            self._judge = self._judge()
        return self._judge

    @property
    def compose_guidance(self) -> float:
        """The generator's own guidance scale (its saved config): the unit of composed terms."""
        return float(self.generator.cfg.guidance)

    def to(self, device: str | torch.device | None = None) -> ToyBackbones:
        """Move the generator (the costly part) to ``resolve_device(device)``; the encoder and the
        judge are small and stay on the CPU. Sampling numerics differ slightly between devices."""
        self.generator.to(resolve_device(device))
        return self

    def encode_images(self, images: np.ndarray | Sequence) -> torch.Tensor:
        """uint8 (N, H, W, 3) images (any square size: resized to 32) -> (N, D) embeddings Z^V."""
        imgs = np.asarray(images)
        if imgs.ndim == 3:
            imgs = imgs[None]
        if imgs.shape[1:3] != (world.IMG, world.IMG):
            from s2i.media import square_resize

            imgs = np.stack([square_resize(im, world.IMG) for im in imgs])
        return embed(self.encoder, imgs)

    def drawing_size(self, height: int, width: int) -> tuple[int, int]:
        """The toy generator draws only its square: ``(image_size, image_size)`` for any frame."""
        return self.image_size, self.image_size

    def _check_size(self, size: tuple[int | None, int | None]) -> None:
        """ValueError for a requested (height, width) other than the generator's square."""
        side = self.image_size
        if any(s is not None and int(s) != side for s in size):
            h, w = (side if s is None else int(s) for s in size)
            raise ValueError(f"the {self.profile} generator draws {side}x{side} pictures only, not {w}x{h} (WxH)")

    def generate(
        self,
        embeddings: torch.Tensor,
        n_per: int = 1,
        guidance: float | None = None,
        steps: int | None = None,
        seed: int = 0,
        progress: bool = False,
        noise_level: float = 0.0,
        init_images: np.ndarray | None = None,
        strength: float = 1.0,
        height: int | None = None,
        width: int | None = None,
    ) -> np.ndarray:
        """(N, D) embeddings -> uint8 (N * n_per, 32, 32, 3) images. See :class:`ToyGenerator`.
        ``height``/``width``: None or the generator's side (ValueError otherwise); ``guidance``:
        default :attr:`guidance`."""
        self._check_size((height, width))
        return self.generator(
            embeddings,
            n_per=n_per,
            guidance=self.guidance if guidance is None else guidance,
            steps=steps,
            noise_level=noise_level,
            seed=seed,
            init_images=init_images,
            strength=strength,
            progress=progress,
        )

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
        size: tuple[int, int] | None = None,
        centred: bool = False,
    ) -> np.ndarray:
        """Composed guidance (mixing, editing). See :meth:`ToyGenerator.compose`. ``size``: None
        or the generator's square (ValueError otherwise)."""
        self._check_size((None, None) if size is None else size)
        return self.generator.compose(
            conds,
            weights,
            seed=seed,
            steps=steps,
            init_images=init_images,
            strength=strength,
            shared_noise=shared_noise,
            masks=masks,
            region=region,
            progress=progress,
            centred=centred,
        )

    @classmethod
    def load(cls, model_dir: str | os.PathLike, sample_steps: int | None = None) -> ToyBackbones:
        """The backbones saved in ``model_dir``; ``sample_steps`` replaces the generator's own
        default number of sampling steps (its ``cfg.sample_steps``) when given."""
        model_dir = resolve(model_dir)
        missing = [
            p
            for p in (
                "image_encoder/open_clip_model.safetensors",
                "generator/s2i_generator.json",
                "judge/judge.safetensors",
            )
            if not (model_dir / p).exists()
        ]
        if missing:
            raise FileNotFoundError(
                f"{model_dir}: not a complete s2i backbones folder (missing {missing}); "
                "run the pretrain stage: dvc repro pretrain"
            )
        generator = ToyGenerator.load(model_dir / "generator")  # a latent generator's folder loads as one
        if sample_steps is not None:
            generator.cfg.sample_steps = int(sample_steps)
        encoder = partial(ImageEncoder.load, model_dir / "image_encoder")
        return cls(encoder, generator, partial(Judge.load, model_dir / "judge"))
