"""The crash-proof harness: a generated matrix of malformed and unusual files (channel counts,
sample formats and rates, truncated and empty files, wrong extensions, non-finite samples,
videos without audio or without frames, audio without video, odd images) through every
subcommand in one process (``tests/cli_matrix.py``). Each case either writes its outputs or is
refused with one line naming the file: never a traceback, a warning, a dead process or a
picture made of garbage."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def records(smoke_run, tmp_path_factory) -> list[dict]:
    work = tmp_path_factory.mktemp("cli_matrix")
    p = subprocess.run(
        [sys.executable, str(HERE / "cli_matrix.py"), str(smoke_run), str(work)],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert p.returncode == 0, f"the process died (exit {p.returncode}):\n{p.stderr[-3000:]}"
    assert p.stderr == "", p.stderr  # nothing printed past the CLI (FFmpeg logs, warnings)
    return json.loads((work / "records.json").read_text())


def test_the_matrix_covers_every_subcommand(records):
    assert {r["name"].split("/")[0] for r in records} == {
        "generate",
        "thumbnails",
        "mix",
        "edit",
        "video",
        "edit-image",
        "video-video",
    }
    assert len(records) > 150
    assert {r["expect"] for r in records} == {"ok", "error"}


def test_no_traceback_and_a_clear_status(records):
    bad = [r["name"] for r in records if r["code"] not in (0, 1) or "Traceback" in r["stderr"] + r["stdout"]]
    assert not bad, bad


def test_usable_files_are_processed_without_a_warning(records):
    for r in (r for r in records if r["expect"] == "ok"):
        assert r["code"] == 0, (r["name"], r["stderr"])
        assert r["stderr"] == "", (r["name"], r["stderr"])
        assert r["written"], r["name"]
        for f in r["written"]:
            if f.endswith(".png"):
                im = np.asarray(Image.open(Path(r["out"]) / f).convert("RGB"))
                assert im.size and im.max() > 0, (r["name"], f)  # never a black picture


def test_unusable_files_are_refused_on_one_line_naming_them(records):
    for r in (r for r in records if r["expect"] == "error"):
        cmd = r["name"].split("/")[0].split("-")[0]
        lines = [line for line in r["stderr"].splitlines() if line.strip()]
        assert r["code"] == 1, (r["name"], r["stderr"])
        assert len(lines) == 1, (r["name"], r["stderr"])
        assert lines[0].startswith(f"s2i {cmd}: error: "), (r["name"], lines[0])
        assert Path(r["file"]).name in lines[0], (r["name"], lines[0])
        assert not [f for f in r["written"] if not f.endswith(".tmp")], (r["name"], r["written"])
