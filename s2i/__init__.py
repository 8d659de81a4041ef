"""s2i: sound to image by audio-to-visual latent alignment.

Modules: :mod:`s2i.world` (the toy audio-visual world), :mod:`s2i.media` (PyAV I/O),
:mod:`s2i.paths` (repo-relative paths and params), :mod:`s2i.utils`.
"""
from .paths import load_params, load_profile, repo_root, resolve
from .utils import read_json, seed_everything, write_json

__version__ = "0.1.0"
__all__ = ["load_params", "load_profile", "repo_root", "resolve", "read_json", "seed_everything", "write_json"]
