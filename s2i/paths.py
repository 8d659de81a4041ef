"""Path and parameter helpers shared by notebooks, stages and tests.

The kernel's working directory differs between ``dvc repro`` (repo root) and
JupyterLab / nbval (``notebooks/``). Every path in s2i goes through
:func:`resolve`, which interprets relative paths against the repository root,
so notebooks never ``os.chdir``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

_MARKERS = ("dvc.yaml", "pyproject.toml")


def repo_root() -> Path:
    """The repository root: ``$S2I_ROOT`` if set, else the nearest parent of the
    working directory (or of this file) that holds ``dvc.yaml`` and ``pyproject.toml``."""
    env = os.environ.get("S2I_ROOT")
    if env:
        return Path(env).resolve()
    for start in (Path.cwd(), Path(__file__).resolve().parent):
        for p in (start, *start.parents):
            if all((p / m).exists() for m in _MARKERS):
                return p
    raise FileNotFoundError(
        "cannot find the s2i repository root (a folder with dvc.yaml and pyproject.toml) "
        f"above {Path.cwd()}; set S2I_ROOT")


def resolve(path: str | os.PathLike) -> Path:
    """Absolute path: absolute paths are kept, relative ones are taken from the repo root."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else repo_root() / p


def load_params(path: str | os.PathLike = "params.yaml") -> dict[str, Any]:
    """Load a params file (``params.yaml`` or ``profiles/<name>.yaml``)."""
    p = resolve(path)
    with open(p) as f:
        return yaml.safe_load(f)


def load_profile(name: str) -> dict[str, Any]:
    """Load one of the shipped profiles: ``toy``, ``smoke`` or ``full``."""
    p = resolve(Path("profiles") / f"{name}.yaml")
    if not p.exists():
        choices = sorted(q.stem for q in resolve("profiles").glob("*.yaml"))
        raise FileNotFoundError(f"unknown profile {name!r}: {p} does not exist (choices: {choices})")
    return load_params(p)
