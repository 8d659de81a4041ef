"""Shared test settings and the one smoke-run fixture.

``smoke_run`` is the pipeline's first six notebooks executed at smoke size into
``build/nbval`` -- the same run nbval's notebooks and the explorer's defaults use. A test that
needs trained (tiny) models asks for it; it is built with papermill the first time any test
asks (about 3 minutes on 2 cores) and reused afterwards, so no test depends on another having
run first. ``make test`` runs nbval before the unit tests: its notebooks run at the same smoke
size into the same folder, so the unit tests find the run ready and do not build it twice.
``smoke_s2i`` is that run loaded as a :class:`~s2i.method.generate.Sound2Image`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

# The suite never reaches the Hugging Face Hub: models come from local files and hand-made caches
# (tests/test_hub_cache.py turns this off where it serves a Hub of its own).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# The command-line tests' subprocesses run on one thread too (as the ``_one_thread`` fixture runs
# the tests themselves): with one test worker per core, more threads only contend.
os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
SMOKE_DIR = ROOT / "build" / "nbval"
SMOKE_STAGES = ("00_world", "00_pretrain", "01_frame_selection", "02_extraction", "03_alignment", "03_prior")
SMOKE_FILES = (
    "alignment/audio_encoder/audio_encoder.safetensors",
    "prior/prior.safetensors",
    "models/manifest.json",
    "models/judge/judge.safetensors",
    "models/generator/s2i_generator.json",
)


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    """One intra-op thread: the tests' tiny models run faster so, and far faster on a busy CPU."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def smoke_ready() -> bool:
    return all((SMOKE_DIR / p).exists() for p in SMOKE_FILES)


def build_smoke_run() -> Path:
    """Execute the smoke notebooks into ``build/nbval`` unless their outputs are all there.
    Parallel test workers (pytest-xdist) wait on a file lock: one builds, the others reuse."""
    from filelock import FileLock

    if smoke_ready():
        return SMOKE_DIR
    SMOKE_DIR.mkdir(parents=True, exist_ok=True)
    with FileLock(SMOKE_DIR.parent / "nbval.lock"):
        if not smoke_ready():  # another worker may have built it while this one waited
            _execute_smoke_notebooks()
    return SMOKE_DIR


def _execute_smoke_notebooks() -> None:
    (SMOKE_DIR / "notebooks").mkdir(parents=True, exist_ok=True)
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}  # the kernel's tools
    for name in SMOKE_STAGES:
        cmd = [
            sys.executable,
            "-m",
            "papermill",
            f"notebooks/{name}.ipynb",
            f"build/nbval/notebooks/{name}.ipynb",
            "-k",
            "python3",
            "--log-level",
            "WARNING",
        ]
        p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1800, env=env)
        assert p.returncode == 0, f"building the smoke run failed at {name}:\n{p.stderr[-3000:]}"
    assert smoke_ready(), f"papermill ran but {SMOKE_DIR} is incomplete"


@pytest.fixture(scope="session")
def smoke_run() -> Path:
    """``build/nbval``: the smoke run's models (``models/``), audio encoder (``alignment/``) and
    embedding prior (``prior/``)."""
    return build_smoke_run()


@pytest.fixture(scope="session")
def smoke_s2i(smoke_run):
    """The smoke run as a Sound2Image (profile ``smoke``)."""
    from s2i.method.generate import Sound2Image

    return Sound2Image.from_run(smoke_run, profile="smoke", model_dir=smoke_run / "models")
