"""The ``full`` profile's image encoder: a pretrained OpenCLIP model (e.g. ``ViT-H-14`` /
``laion2b_s32b_b79k``, whose 1024-d image embedding is the space Stable unCLIP 2.1 is
conditioned on).

Where weights come from, as open_clip and diffusers users expect:

* a checkpoint file or a ``local-dir:`` folder is read from disk, never downloaded;
* a pretrained tag or an ``hf-hub:`` id found complete in the local Hugging Face / OpenCLIP cache
  is used from there, without contacting the Hub;
* otherwise, on a machine with internet, open_clip downloads it through its own caches (the
  Hugging Face cache for Hub-hosted weights, as ``create_model_and_transforms`` would);
* offline (``HF_HUB_OFFLINE=1``), only local files and caches are used.

A model that is neither here nor downloadable raises a single :class:`MissingWeightsError` that
says what to download and which ``params.yaml`` key to point at it."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from s2i.paths import resolve

if TYPE_CHECKING:  # imported lazily at run time: diffusers is slow to import
    pass


#: Where the error messages suggest putting an OpenCLIP checkpoint, relative to the repository root.
DEFAULT_OPENCLIP_DIR = "models/full/openclip"


#: The ``params.yaml`` keys the error messages point at.
PARAMS_KEY_ENCODER = "full.image_encoder.pretrained"


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


_HF_WEIGHTS_NAME = "open_clip_pytorch_model.bin"  # open_clip.constants.HF_WEIGHTS_NAME


_HF_SAFE_WEIGHTS_NAME = "open_clip_model.safetensors"  # open_clip.constants.HF_SAFE_WEIGHTS_NAME


_HF_CONFIG_NAME = "open_clip_config.json"  # open_clip.constants.HF_CONFIG_NAME


class MissingWeightsError(FileNotFoundError):
    """Pretrained weights are not on this machine; the message says what to download and where."""


#: Appended to download failures: how to stop s2i from trying the network.
OFFLINE_HINT = "on a machine without internet, HF_HUB_OFFLINE=1 makes s2i use local files and caches only"


def hub_offline() -> bool:
    """Whether s2i must not download: Hugging Face Hub offline mode is on.

    True when ``huggingface_hub`` is in offline mode (``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE``
    set truthy when it was imported) or when ``HF_HUB_OFFLINE`` is truthy in the environment now
    (set after that import, e.g. in a notebook).
    """
    from huggingface_hub import constants

    return constants.is_offline_mode() or os.environ.get("HF_HUB_OFFLINE", "").upper() in constants.ENV_VARS_TRUE_VALUES


def _hub_cache(cache_dir: str | os.PathLike | None) -> str:
    """The Hugging Face cache folder that ``cache_dir`` stands for (its default when ``None``)."""
    from huggingface_hub import constants

    return os.fspath(cache_dir) if cache_dir is not None else constants.HF_HUB_CACHE


def _download_errors() -> tuple[type[BaseException], ...]:
    """What a Hub download raises when the files cannot be had: ``OSError`` (huggingface_hub's
    ``HfHubHTTPError``, ``LocalEntryNotFoundError``, ``requests`` errors, ...) and the HTTP
    clients' own errors."""
    import importlib

    errors: list[type[BaseException]] = [OSError]
    for module in ("httpx2", "httpx"):  # huggingface_hub 2.x's client, and diffusers'/older ones
        try:
            errors.append(importlib.import_module(module).HTTPError)
        except (ImportError, AttributeError):
            pass
    return tuple(errors)


def _hub_unreachable(repo: str, filename: str) -> BaseException | None:
    """One ``HEAD`` request for ``repo/filename`` on the Hub, without retries.

    ``hf_hub_download`` retries a failed connection for about 25 s per file before it gives up; this
    tells in one request whether the Hub can be reached at all. Returns the network error, or
    ``None`` when the Hub answered (with any status: the download that follows reports it).
    """
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    try:
        get_hf_file_metadata(hf_hub_url(repo, filename))
    except HfHubHTTPError:
        return None
    except (OfflineModeIsEnabled, *_download_errors()) as e:
        return e
    return None


def _download_failed(err: BaseException) -> str:
    """A short account of why a download failed, with the endpoint that was tried."""
    from huggingface_hub import constants

    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return f"downloading from {constants.ENDPOINT} failed ({type(err).__name__}: {' '.join(lines[:2])})"


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
        size = self.model.visual.preprocess_cfg["size"]  # set by open_clip's factory on every tower
        return int(size[0] if isinstance(size, (tuple, list)) else size)

    @functools.cached_property
    def embed_dim(self) -> int:
        """Dimension of ``model.encode_image`` outputs (measured once, on a blank image: towers
        differ in where they keep it)."""
        x = torch.zeros(1, 3, self.image_size, self.image_size, device=self.device, dtype=self.dtype)
        with torch.inference_mode():
            return int(self.model.encode_image(x).shape[-1])

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
    """Local file of a pretrained tag's weights, looked up in the caches only (no network).

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


def _fetch_tag_checkpoint(model_name: str, tag: str, cache_dir: str | None, where: str) -> str:
    """Download a pretrained tag's weights the way ``open_clip.create_model`` does (Hub-hosted ones
    into the Hugging Face cache, others into ``cache_dir`` or ``~/.cache/clip``); returns the file.

    Raises:
        MissingWeightsError: offline (``HF_HUB_OFFLINE``), a tag without a download source, or a
            failed download; the message says what to download and where ``where`` was looked in.
    """
    import open_clip

    cfg = open_clip.get_pretrained_cfg(model_name, tag)
    missing = f"OpenCLIP weights {model_name} {tag!r} are not in {where}"
    hint = _openclip_download_hint(model_name, tag)
    if cfg.get("file") or not (cfg.get("hf_hub") or cfg.get("url")):
        raise MissingWeightsError(f"{missing} and the tag has no download source: {hint}.")
    if hub_offline():
        raise MissingWeightsError(
            f"{missing} and HF_HUB_OFFLINE is set (local files and caches only): {hint}; or unset "
            f"HF_HUB_OFFLINE to let open_clip download them into that cache."
        )
    err = None
    if cfg.get("hf_hub"):
        repo, filename = os.path.split(cfg["hf_hub"])
        err = _hub_unreachable(repo, filename or _HF_WEIGHTS_NAME)
    if err is None:
        try:
            return os.fspath(open_clip.pretrained.download_pretrained(cfg, cache_dir=cache_dir))
        except (RuntimeError, *_download_errors()) as e:  # open_clip: FileNotFoundError / urllib / checksum
            err = e
    raise MissingWeightsError(f"{missing} and {_download_failed(err)}: {hint} ({OFFLINE_HINT}).") from err


def _fetch_hf_hub_repo(repo: str, cache_dir: str | None) -> str:
    """Download an ``hf-hub:`` OpenCLIP repo's config and weights the way ``open_clip.create_model``
    does (into the Hugging Face cache); returns the snapshot folder holding both.

    Raises:
        MissingWeightsError: offline (``HF_HUB_OFFLINE``) or a failed download; the message says what
            to download.
    """
    import open_clip

    missing = f"OpenCLIP model hf-hub:{repo} is not in the Hugging Face cache {_hub_cache(cache_dir)}"
    hint = (
        f"download its config and weights (e.g. `hf download {repo} {_HF_CONFIG_NAME} {_HF_SAFE_WEIGHTS_NAME} "
        f"--local-dir {DEFAULT_OPENCLIP_DIR}`) and use model 'local-dir:{DEFAULT_OPENCLIP_DIR}'"
    )
    if hub_offline():
        raise MissingWeightsError(
            f"{missing} and HF_HUB_OFFLINE is set (local files and caches only): {hint}; or fetch it into "
            f"that cache with `hf download {repo} {_HF_CONFIG_NAME} {_HF_SAFE_WEIGHTS_NAME}`, or unset "
            f"HF_HUB_OFFLINE to let open_clip download it."
        )
    err = _hub_unreachable(repo, _HF_CONFIG_NAME)
    if err is None:
        try:
            open_clip.pretrained.download_pretrained_from_hf(repo, filename=_HF_CONFIG_NAME, cache_dir=cache_dir)
            open_clip.pretrained.download_pretrained_from_hf(repo, cache_dir=cache_dir)  # safetensors, else .bin
        except _download_errors() as e:  # open_clip re-raises every failure as FileNotFoundError
            err = e
    snapshot = _hf_hub_snapshot(repo, cache_dir) if err is None else None
    if snapshot is None:
        why = _download_failed(err) if err is not None else "its config and weights did not land in one snapshot"
        raise MissingWeightsError(f"{missing} and {why}: {hint} ({OFFLINE_HINT}).") from err
    return snapshot


def load_openclip_encoder(
    model_name: str,
    pretrained: str | os.PathLike | None,
    device: str | torch.device = "cpu",
    cache_dir: str | os.PathLike | None = None,
    precision: str = "fp32",
) -> OpenCLIPEncoder:
    """Load an OpenCLIP model and its inference preprocess transform.

    Pretrained tags and ``hf-hub:`` ids are taken from the local caches when they are complete
    there (no request to the Hub); otherwise open_clip downloads them into its caches, unless
    ``HF_HUB_OFFLINE`` is set (see :func:`hub_offline`), in which case only local files count.

    Args:
        model_name: an OpenCLIP architecture (``"ViT-H-14"``; tiny test configs registered with
            :func:`make_tiny_openclip_checkpoint` work too), or a ``local-dir:<folder>`` /
            ``hf-hub:<org/repo>`` model id as understood by ``open_clip.create_model``.
        pretrained: a pretrained tag of ``model_name`` (``"laion2b_s32b_b79k"``), or a checkpoint file
            (``.bin``/``.pt``/``.pth``/``.safetensors`` state dict; relative paths are taken from the
            repository root; never downloaded). ``None`` gives random weights. Ignored for
            ``local-dir:``/``hf-hub:`` names.
        device: where to put the model.
        cache_dir: the download cache open_clip / huggingface_hub use (default: theirs, i.e. the
            Hugging Face cache ``HF_HUB_CACHE`` for Hub-hosted weights, ``~/.cache/clip`` for others).
        precision: ``open_clip`` precision (``"fp32"``, ``"fp16"``, ``"bf16"``, ...).

    Returns:
        An :class:`OpenCLIPEncoder` (model in eval mode + its ``preprocess_val`` transform).

    Raises:
        MissingWeightsError: the weights are not on this machine and could not be downloaded (or
            ``HF_HUB_OFFLINE`` is set); the message says what to download and which ``params.yaml``
            key to set.
    """
    import open_clip

    cache_dir = os.fspath(cache_dir) if cache_dir is not None else None
    kwargs: dict[str, Any] = {}
    checkpoint: str | None = None

    if model_name.startswith("hf-hub:"):
        repo = model_name[len("hf-hub:") :]
        snapshot = _hf_hub_snapshot(repo, cache_dir) or _fetch_hf_hub_repo(repo, cache_dir)
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
                checkpoint = _fetch_tag_checkpoint(arch, tag, cache_dir, where)
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
