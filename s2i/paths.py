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
        f"above {Path.cwd()}; set S2I_ROOT"
    )


def resolve(path: str | os.PathLike) -> Path:
    """Absolute path: absolute paths are kept, relative ones are taken from the repo root."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else repo_root() / p


def load_params(path: str | os.PathLike = "params.yaml") -> dict[str, Any]:
    """Load a params file (``params.yaml`` or ``profiles/<name>.yaml``)."""
    p = resolve(path)
    with open(p) as f:
        return yaml.safe_load(f)


#: The default profile: ``profiles/toy.yaml`` holds every key; other profiles hold only what differs.
DEFAULT_PROFILE = "toy"


def merge_params(base: dict[str, Any], diff: dict[str, Any]) -> dict[str, Any]:
    """Deep merge: a copy of ``base`` where every key of ``diff`` replaces ``base``'s value, except
    that two mappings are merged key by key (so a diff names only the leaves that change)."""
    out = dict(base)
    for k, v in (diff or {}).items():
        out[k] = merge_params(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def compose_profile(name: str) -> dict[str, Any]:
    """The full params of a profile: ``profiles/toy.yaml`` (the default, every key) deep-merged
    with ``profiles/<name>.yaml`` (only the keys that differ from toy; see :func:`merge_params`).
    A profile whose file says ``extends: <parent>`` is merged over that parent's params instead."""
    p = resolve(Path("profiles") / f"{name}.yaml")
    if not p.exists():
        choices = sorted(q.stem for q in resolve("profiles").glob("*.yaml"))
        raise FileNotFoundError(f"unknown profile {name!r}: {p} does not exist (choices: {choices})")
    if name == DEFAULT_PROFILE:
        return load_params(p)
    diff = load_params(p)
    parent = diff.pop("extends", DEFAULT_PROFILE)  # e.g. fullsmoke: `extends: full`
    return merge_params(compose_profile(parent), diff)


def write_profile(name: str, path: str | os.PathLike = "params.yaml") -> Path:
    """Make ``name`` the active profile: write :func:`compose_profile` to ``params.yaml`` (what
    ``make profile PROFILE=name`` runs). The default is copied verbatim, comments included."""
    out, params = resolve(path), compose_profile(name)
    if name == DEFAULT_PROFILE:
        text = resolve(Path("profiles") / f"{DEFAULT_PROFILE}.yaml").read_text()
    else:
        text = (
            f"# Profile {name!r}, written by `make profile PROFILE={name}`: profiles/{DEFAULT_PROFILE}.yaml\n"
            f"# deep-merged with profiles/{name}.yaml. To change a value for good, edit those, then rerun it.\n"
            + yaml.safe_dump(params, sort_keys=False, default_flow_style=False)
        )
    out.write_text(text)
    return out


def load_profile(name: str) -> dict[str, Any]:
    """Load one of the shipped profiles, ``toy``, ``smoke`` or ``full``, in full (:func:`compose_profile`)."""
    return compose_profile(name)
