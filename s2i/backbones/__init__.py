"""The frozen backbones behind one interface (:class:`s2i.backbones.base.Backbones`).

* ``encode_images(images) -> (N, D)``: the pretrained image encoder (Z^V);
* ``generate(embeddings, ...) -> (N, H, W, 3) uint8``: the generator pretrained to draw an image
  from an image embedding (claim 3);
* ``compose(terms, ...)``: composed guidance (several weighted, masked embeddings; an init image
  with a strength) where ``supports_composition`` is true (both profiles, through the one sampler
  :func:`s2i.models.sampler.sample`).

:func:`load_backbones` returns the profile's implementation, so later stages never ask which
profile they run: ``toy``/``smoke`` (:mod:`s2i.backbones.toy`, trained here) or ``full``
(:mod:`s2i.backbones.full`: OpenCLIP + Stable unCLIP).
"""

from __future__ import annotations

import os

from s2i.backbones.base import Backbones, require_composition
from s2i.backbones.toy import ToyBackbones
from s2i.models.judge import Judge
from s2i.paths import resolve

__all__ = ["Backbones", "ToyBackbones", "load_backbones", "load_judge", "require_composition"]


def load_backbones(
    profile: str,
    model_dir: str | os.PathLike | None = None,
    full_params: dict | None = None,
    sample_steps: int | None = None,
    sample_guidance: float | None = None,
) -> Backbones:
    """The backbones of a profile: ``toy``/``smoke`` load ``model_dir`` (the pretrain stage's
    output); ``full`` loads OpenCLIP + Stable unCLIP as configured in ``full_params`` (default:
    the ``full`` section of ``params.yaml``, else of ``profiles/full.yaml``). ``sample_steps``
    (a profile's ``sampling.steps``) replaces the generator's default number of sampling steps
    (toy: the saved model's; full: ``full.generator.steps``); None keeps it. ``sample_guidance``
    (a profile's ``sampling.guidance``) likewise replaces the guidance scale of a picture drawn from
    one embedding (``guidance``; toy: the saved model's, full: ``full.generator.guidance``); the
    composed terms of mixing and editing keep the generator's own unit (``compose_guidance``)."""
    if profile in ("toy", "smoke"):
        if model_dir is None:
            raise ValueError("toy/smoke backbones need model_dir")
        backbones = ToyBackbones.load(model_dir, sample_steps)
    elif profile == "full":
        from s2i.backbones.full import FullBackbones

        fp = default_full_params() if full_params is None else full_params
        if sample_steps is not None:
            fp = {**fp, "generator": {**fp["generator"], "steps": int(sample_steps)}}
        backbones = FullBackbones.from_params(fp)
    else:
        raise ValueError(f"unknown profile {profile!r} (toy, smoke or full)")
    if sample_guidance is not None:
        backbones.guidance = float(sample_guidance)
    return backbones


def default_full_params() -> dict:
    """The ``full`` section of ``params.yaml`` when the active profile has one, else that of the
    shipped ``full`` profile (``profiles/full.yaml`` composed)."""
    from s2i.paths import load_params, load_profile

    try:
        params = load_params()
    except FileNotFoundError:
        params = {}
    return params["full"] if "full" in params else load_profile("full")["full"]


def load_judge(model_dir: str | os.PathLike) -> Judge:
    """The judge of a toy/smoke backbones folder (the full profile is measured on real data)."""
    return Judge.load(resolve(model_dir) / "judge")
