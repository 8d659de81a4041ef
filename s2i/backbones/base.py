"""The interface every profile's backbones implement.

s2i never asks which profile it runs: it calls these methods and reads these attributes. A
backbone that can draw under several weighted, masked embeddings at once (composed guidance:
mixing, editing) says so with ``supports_composition``; the method checks that flag and gives a
clear error where it is false, instead of probing for attributes.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch


@runtime_checkable
class Backbones(Protocol):
    """A frozen image encoder and a generator that draws from its embeddings (claim 3).

    Attributes:
        profile: ``"toy"``, ``"smoke"`` or ``"full"``.
        image_size: side of the square images :meth:`generate` and :meth:`compose` draw by default
            (and their masks and regions then have); an encoder may take another size (it resizes
            its input). Other sizes: :meth:`drawing_size`.
        embed_dim: dimension D of the image embeddings.
        guidance: the classifier-free guidance scale of a picture drawn from one embedding
            (:meth:`generate`'s default): a profile's ``sampling.guidance`` where it sets one
            (:func:`s2i.backbones.load_backbones`), else the generator's own.
        compose_guidance: the generator's own guidance scale, whatever ``guidance`` is: the unit
            in which mixing and editing weigh their composed terms (they were tuned at it).
        supports_composition: whether :meth:`compose` is available.
        judge: the toy world's measuring instrument, or ``None`` (real data has none).
    """

    profile: str
    image_size: int
    embed_dim: int
    guidance: float
    compose_guidance: float
    supports_composition: bool
    judge: object | None

    def encode_images(self, images: np.ndarray) -> torch.Tensor:
        """uint8 (N, H, W, 3) images -> (N, D) float embeddings (Z^V), on the CPU."""
        ...

    def drawing_size(self, height: int, width: int) -> tuple[int, int]:
        """The (h, w) at which the generator draws a picture for a ``height`` x ``width`` frame
        or image: the frame's aspect where the generator draws other shapes than its square
        (the full profile: the shorter side at ``image_size``, sides rounded to what its networks
        take), else its square ``(image_size, image_size)`` (the toy generator). Every size it
        returns is one :meth:`generate` and :meth:`compose` accept."""
        ...

    def generate(
        self,
        embeddings: torch.Tensor,
        n_per: int = 1,
        guidance: float | None = None,
        steps: int | None = None,
        seed: int = 0,
        progress: bool = False,
        height: int | None = None,
        width: int | None = None,
    ) -> np.ndarray:
        """(N, D) embeddings -> uint8 (N * n_per, H, W, 3), the ``n_per`` images of each
        embedding consecutive; the same seed gives the same images. ``height`` x ``width``: a
        size from :meth:`drawing_size` (default the square ``image_size``); ValueError for a
        size the generator does not draw."""
        ...

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
        """Composed guidance: K condition tensors (N, D) with K weights (negative: away from),
        optional term masks (K, H, W) or (K, N, H, W), an init image (N, H, W, 3) noised to
        ``strength`` and a region (drawn inside, kept outside) -> uint8 (N, H, W, 3). ``size``:
        the drawing's (H, W), from :meth:`drawing_size` (default the square ``image_size``);
        masks and regions have it. ``centred``: each masked term predicted on a view centred on
        its mask (:func:`s2i.models.sampler.sample`). Only where ``supports_composition`` is true."""
        ...


def require_composition(backbones: Backbones, what: str) -> None:
    """Raise a clear error when ``what`` (e.g. ``"mixing"``) needs composed guidance that these
    backbones do not offer."""
    if not backbones.supports_composition:
        raise NotImplementedError(
            f"{what} needs composed guidance, which the {backbones.profile} profile's generator does not offer"
        )
