"""s2i: sound to image by audio-to-visual latent alignment.

The layout follows the method: :mod:`s2i.method` (the claims: frame selection, alignment,
generation, mixing, editing, thumbnails) runs on :mod:`s2i.backbones` (a frozen image encoder
and a generator behind one interface) and the networks of :mod:`s2i.models`; :mod:`s2i.train`
pretrains the toy backbones on :mod:`s2i.toyworld`; :mod:`s2i.eval` measures with the judge;
:mod:`s2i.app` is the command line and the explorer. :mod:`s2i.media` does all audio/video I/O,
:mod:`s2i.paths` repo-relative paths and params, :mod:`s2i.stage` runs a pipeline stage.
"""

from s2i.paths import load_params, load_profile, repo_root, resolve
from s2i.utils import read_json, seed_everything, write_json

__version__ = "0.1.0"
__all__ = ["load_params", "load_profile", "repo_root", "resolve", "read_json", "seed_everything", "write_json"]
