"""The command line's inputs, defaults and batches: the pipeline's defaults for a profile, the
models, checks of every input file before any model loads, and :class:`Batch`, which runs a
command file by file so that a bad file is reported on one line and skipped."""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable
from pathlib import Path

_FALLBACK = dict(profile="toy", run_dir="results", model_dir="models/toy", window_s=0.5, params={})


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 1."""


def _expected_errors() -> tuple[type[BaseException], ...]:
    """The errors a bad input or setting raises: reported on one line, never as a traceback.
    (NotImplementedError: an application the chosen profile's generator does not offer.)"""
    from s2i.media import MediaError

    return (CLIError, MediaError, ValueError, OSError, NotImplementedError)


# ----------------------------------------------------------------------------- defaults and models
def _from_params(p: dict) -> dict:
    from s2i.paths import resolve

    return dict(
        profile=str(p["base"]["profile"]),
        run_dir=str(resolve(p["base"]["run_dir"])),
        model_dir=str(resolve(p["pretrain"]["model_dir"])),
        window_s=float(p["audio"]["window_s"]),
        params=p,
    )


def pipeline_defaults(profile: str | None = None) -> dict:
    """The current pipeline's profile, run_dir, model_dir and encoder window from params.yaml
    (paths resolved against the repository root) -- or, for a ``profile`` other than
    params.yaml's, from ``profiles/<profile>.yaml``; built-in toy defaults if there is none."""
    from s2i.paths import load_params, load_profile

    try:
        p = load_params()
    except FileNotFoundError:  # outside a checkout (no repository, no params.yaml): the toy layout
        return dict(_FALLBACK)
    try:
        if profile is not None and profile != p["base"]["profile"]:
            p = load_profile(profile)
        return _from_params(p)
    except (KeyError, TypeError) as e:
        raise CLIError(f"params.yaml: missing or malformed setting ({type(e).__name__}: {e})") from None


def _user_path(p: str | None) -> str | None:
    """A path given on the command line: relative to the working directory."""
    return None if p is None else str(Path(p).expanduser().resolve())


def settings(args) -> dict:
    """The profile's defaults (:func:`pipeline_defaults`), with ``--config``'s file deep-merged over
    its settings (``params.yaml``'s keys: e.g. a ``full:`` section naming local model files)."""
    d = args.defaults if args.profile == args.defaults["profile"] else pipeline_defaults(args.profile)
    if args.config is None:
        return d
    from s2i.paths import merge_params

    try:
        return _from_params(merge_params(d["params"], read_config(args.config)))
    except (KeyError, TypeError) as e:
        raise CLIError(f"{args.config}: missing or malformed setting ({type(e).__name__}: {e})") from None


def _trained_encoder(path: Path) -> bool:
    """Whether ``--audio-encoder`` names a folder trained by ``python -m s2i.real align`` (else a
    published checkpoint file)."""
    return path.is_dir() and (path / "audio_encoder.json").is_file()


def load_model(args):
    """The Sound2Image of the chosen profile (the slow part: after the inputs are checked): its
    backbones with the audio encoder trained in the run folder (and its embedding prior, unless
    ``--no-prior``), or with the published one given by ``--audio-encoder`` (then no trained run
    is needed, and no prior is used)."""
    from diffusers.utils import logging as dlog

    from s2i.method.generate import Sound2Image

    dlog.set_verbosity_error()  # diffusers' advice to install accelerate is noise on a command line
    if args.quiet:  # the full profile's loaders draw progress bars of their own
        from transformers.utils import logging as tlog

        dlog.disable_progress_bar()
        tlog.disable_progress_bar()
    d = settings(args)
    model_dir = _user_path(args.model_dir) or d["model_dir"]
    full = d.get("params", {}).get("full") if args.profile == "full" else None
    sampling = d.get("params", {}).get("sampling") or {}
    steps = sampling.get("steps")  # the profile's; --steps overrides it per call
    guidance = sampling.get("guidance")  # the profile's; --guidance overrides it per call
    if args.audio_encoder is not None:
        from s2i.backbones import load_backbones

        path = _user_path(args.audio_encoder)
        if _trained_encoder(Path(path)):
            from s2i.real.align import encoder_info, load_encoder

            info = encoder_info(path)
            enc, dim, window = load_encoder(path), info["embed_dim"], info["window_s"]
        else:  # a published checkpoint
            from s2i.models.published import load_published_audio_encoder

            enc = load_published_audio_encoder(path, args.audio_encoder_kind)
            dim, window = enc.embed_dim, enc.window_s
        backbones = load_backbones(args.profile, model_dir, full, steps, guidance)
        if dim != backbones.embed_dim:
            hint = "; use --profile full" if args.profile != "full" and dim == 1024 else ""
            raise CLIError(
                f"{Path(args.audio_encoder).name} gives {dim}-d embeddings but the {args.profile} "
                f"profile's generator takes {backbones.embed_dim}-d ones{hint}"
            )
        return Sound2Image(backbones, enc, window_s=args.encoder_window or window or d["window_s"])
    run_dir = _user_path(args.run_dir) or d["run_dir"]
    window_s = args.encoder_window or d["window_s"]
    s2i = Sound2Image.from_run(
        run_dir,
        profile=args.profile,
        model_dir=model_dir,
        window_s=window_s,
        full_params=full,
        sample_steps=steps,
        sample_guidance=guidance,
    )
    return s2i.without_prior() if getattr(args, "no_prior", False) else s2i


# ----------------------------------------------------------------------------- checking inputs
def read_config(path: str) -> dict:
    """A ``--config`` file: a YAML mapping of settings; OSError / ValueError naming the file."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such settings file (--config)")
    try:
        with open(p) as f:
            c = yaml.safe_load(f)
    except yaml.YAMLError as e:
        raise ValueError(f"{p}: not a readable YAML file ({_one_line(e)})") from None
    if not isinstance(c, dict):
        raise ValueError(f"{p}: a settings file must be a YAML mapping (like params.yaml), got {type(c).__name__}")
    return c


def check_model_options(args) -> None:
    """Fail fast (before any input is read or model loaded) on a ``--config`` that is not a YAML
    mapping or an ``--audio-encoder`` that is neither a checkpoint file nor a trained encoder's folder."""
    if args.config is not None:
        read_config(args.config)
    if args.audio_encoder is not None:
        from s2i.models.published import published_checkpoint_path

        path = Path(_user_path(args.audio_encoder))
        if not _trained_encoder(path):
            published_checkpoint_path(path, args.audio_encoder_kind)


def check_audio(path: str) -> Path:
    """Fail fast (before loading models) on a missing file or one without an audio stream."""
    from s2i.media import MediaError, probe

    p = Path(path)
    info = probe(p)  # MediaError: missing, empty, not a media file
    if info["audio"] is None:
        raise MediaError(f"{p}: no audio stream")
    return p


def check_video(path: str) -> Path:
    from s2i.media import MediaError, probe

    p = Path(path)
    info = probe(p)
    if info["video"] is None:
        raise MediaError(f"{p}: no video stream")
    return p


def read_image(path: str):
    """An image file -> uint8 (H, W, 3) RGB; ValueError naming the file if it is not one."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: file not found")
    if not p.is_file():
        raise ValueError(f"{p}: not a regular file")
    try:
        with Image.open(p) as im:
            im.load()
            return np.array(im.convert("RGB"))
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as e:
        raise ValueError(f"{p}: not a readable image ({type(e).__name__}: {e})") from None


def _prefixes(paths: list[Path]) -> list[str]:
    """Output name prefixes: the file stems, or the full names where stems collide."""
    stems = [p.stem for p in paths]
    return [p.stem if stems.count(p.stem) == 1 else p.name.replace(".", "_") for p in paths]


def _scale(args, h: int) -> int:
    return args.scale or max(1, math.ceil(128 / max(h, 1)))


def _write_images(images, out: Path, prefix: str, scale: int) -> list[Path]:
    """Each image as ``<prefix>_NN.png`` and all of them as ``<prefix>_grid.png`` (nearest
    upscaling by ``scale``)."""
    from s2i.viz import grid, save_png

    paths = []
    for i, im in enumerate(images):
        p = out / f"{prefix}_{i:02d}.png"
        save_png(p, im.repeat(scale, 0).repeat(scale, 1))
        paths.append(p)
    g = out / f"{prefix}_grid.png"
    save_png(g, grid(images, ncol=min(len(images), 8), pad=1, scale=scale))
    return paths + [g]


def _as_batch(images):
    import numpy as np

    a = np.asarray(images)
    return a[None] if a.ndim == 3 else a


# ----------------------------------------------------------------------------- batches
def _naming(path: Path, e: BaseException) -> str:
    """One line for a failed file: the error's message, prefixed by the file unless it names it."""
    msg = _one_line(e)
    return msg if str(path) in msg or path.name in msg else f"{path}: {msg}"


class Batch:
    """Many input files, each processed or reported: a file that fails is reported on one line
    (``s2i COMMAND: error: FILE: reason``) and the others go on. :meth:`finish` prints the
    summary (for more than one file) and returns the exit status: 1 if any file failed."""

    def __init__(self, command: str, paths: list[str]):
        self.command, self.paths = command, [Path(p) for p in paths]
        self.done: list[Path] = []
        self.failed: list[Path] = []

    def report(self, path: Path, e: BaseException) -> None:
        self.failed.append(path)
        print(f"s2i {self.command}: error: {_naming(path, e)}", file=sys.stderr, flush=True)

    def check(self, check: Callable[[str], Path]) -> list[Path]:
        """The files that pass ``check`` (before any model is loaded); the others are reported."""
        good = []
        for p in self.paths:
            try:
                good.append(check(str(p)))
            except _expected_errors() as e:
                self.report(p, e)
        return good

    def run(self, path: Path, work: Callable[[], None]) -> None:
        try:
            work()
        except _expected_errors() as e:
            self.report(path, e)
        else:
            self.done.append(path)

    def finish(self) -> int:
        if len(self.paths) > 1:
            print(
                f"s2i {self.command}: {len(self.done)} of {len(self.paths)} files done, {len(self.failed)} failed",
                file=sys.stderr,
            )
        return 1 if self.failed else 0


def _one_line(e: BaseException) -> str:
    if isinstance(e, OSError) and e.filename and e.strerror:
        msg = f"{e.filename}: {e.strerror}"
    else:
        msg = str(e) or type(e).__name__
    return re.sub(r"\s*\n\s*", " ", msg).strip()
