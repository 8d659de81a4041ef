"""dvc.yaml tells the truth: each stage's command is the runner (s2i/stage.py), its deps cover
every s2i module its notebook (and the runner) can import, its params cover every value the
runner passes; and a stage runs as the README says, from a fresh shell.

The import graph is read with ``ast`` (absolute and relative imports, also inside functions), so
these tests follow the package wherever its modules move: a failure lists, per stage, exactly
the deps to add and to remove."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from s2i.paths import load_profile
from s2i.stage import STAGES, stage_parameters

ROOT = Path(__file__).resolve().parents[1]
PKG = "s2i"
RUNNER = "s2i.stage"
DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


# --------------------------------------------------------------------------------------------
# the import graph of the package
# --------------------------------------------------------------------------------------------
def module_file(name: str) -> Path | None:
    """The file of module ``name`` (``a/b.py`` or ``a/b/__init__.py``), None if it is not one."""
    p = ROOT.joinpath(*name.split("."))
    for f in (p.with_suffix(".py"), p / "__init__.py"):
        if f.is_file():
            return f
    return None


def imports_of(source: str, module: str | None = None, is_package: bool = False) -> set[str]:
    """Every ``s2i`` module named by an import in ``source`` (anywhere in it, relative ones taken
    from ``module``), with its parent packages; ``from a import b`` counts ``a.b`` if it is a module."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                assert module, "a relative import outside the package"
                pkg = module.split(".") if is_package else module.split(".")[:-1]
                pkg = pkg[: len(pkg) - node.level + 1]
                base = ".".join(pkg + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names if module_file(f"{base}.{a.name}")}
    ours = {m for m in found if m == PKG or m.startswith(PKG + ".")}
    return ours | {".".join(m.split(".")[:i]) for m in ours for i in range(1, m.count(".") + 1)}


def closure(modules: set[str]) -> set[str]:
    """``modules`` and everything they import inside the package, transitively."""
    seen, todo = set(), set(modules)
    while todo:
        m = todo.pop()
        f = module_file(m)
        if m in seen or f is None:
            continue
        seen.add(m)
        todo |= imports_of(f.read_text(), m, f.name == "__init__.py") - seen
    return seen


def notebook_imports(path: Path) -> set[str]:
    cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    src = [
        "\n".join(x for x in "".join(c["source"]).splitlines() if not x.lstrip().startswith(("%", "!"))) for c in cells
    ]
    return set().union(*(imports_of(s) for s in src))


def rel(p: Path) -> str:
    return p.relative_to(ROOT).as_posix()


def test_the_import_graph_reader():
    assert imports_of("from s2i.a import b\nimport s2i.c.d as e\ndef f():\n    import numpy\n") >= {
        "s2i",
        "s2i.a",
        "s2i.c",
        "s2i.c.d",
    }
    assert "numpy" not in imports_of("import numpy")
    assert imports_of("from . import paths\nfrom .utils import x", "s2i.stage") >= {"s2i.paths", "s2i.utils"}
    assert imports_of("from ..paths import resolve", "s2i.sub.mod") >= {"s2i.paths"}
    assert imports_of("from .x import y", "s2i.sub", is_package=True) >= {"s2i.sub.x"}
    assert {"s2i", "s2i.stage", "s2i.paths", "s2i.utils"} <= closure({RUNNER})


# --------------------------------------------------------------------------------------------
# each stage
# --------------------------------------------------------------------------------------------
def test_every_stage_has_a_runner_entry():
    assert set(DVC) == set(STAGES)


@pytest.mark.parametrize("stage", list(DVC))
def test_the_command_is_the_runner(stage):
    assert DVC[stage]["cmd"] == f"sh scripts/stage.sh {stage}"


def test_deps_cover_the_imported_modules():
    """Every module file the stage's notebook and the runner can import is a dep (or inside a
    folder dep); the notebook is a dep; every s2i/ or notebooks/ dep exists, and no module file is
    a dep that the stage does not import."""
    problems = []
    for stage, spec in DVC.items():
        notebook = f"notebooks/{STAGES[stage][0]}.ipynb"
        need = {notebook} | {rel(module_file(m)) for m in closure(notebook_imports(ROOT / notebook) | {RUNNER})}
        deps = [str(d) for d in spec.get("deps", [])]

        def covered(f, deps=deps):
            return any(f == d.rstrip("/") or f.startswith(d.rstrip("/") + "/") for d in deps)

        add = sorted(f for f in need if not covered(f))
        ours = [d for d in deps if d.startswith((PKG + "/", "notebooks/"))]
        remove = sorted(
            {d for d in ours if not (ROOT / d).exists()}
            | {d for d in ours if d.endswith((".py", ".ipynb")) and d not in need}
        )
        if add or remove:
            problems.append(f"{stage}: add deps {add}; remove deps {remove}")
    assert not problems, "dvc.yaml deps out of date:\n" + "\n".join(problems)


def test_params_cover_what_the_runner_passes():
    problems = []
    for stage, (_, table) in STAGES.items():
        tracked = [str(p) for p in DVC[stage].get("params", [])]
        missing = sorted(k for k in table.values() if not any(k == t or k.startswith(t + ".") for t in tracked))
        if missing:
            problems.append(f"{stage}: add params {missing}")
    assert not problems, "dvc.yaml params out of date:\n" + "\n".join(problems)


def test_runner_passes_python_values():
    smoke = load_profile("smoke")
    p = stage_parameters("alignment", smoke)
    assert p["normalize"] is True and p["compare_losses"] == smoke["alignment"]["compare_losses"]
    assert p["audio_width"] == smoke["audio"]["width"] == 8
    assert stage_parameters("thumbnails", smoke)["thumb_window_s"] == smoke["thumbnails"]["window_s"]


# --------------------------------------------------------------------------------------------
# the README's commands, from a fresh shell
# --------------------------------------------------------------------------------------------
def _fresh_env() -> dict[str, str]:
    """No virtualenv on the PATH, no VIRTUAL_ENV / PYTHONPATH / S2I_ROOT: a new login shell."""
    env = {k: os.environ[k] for k in ("HOME", "LANG", "LC_ALL", "TMPDIR") if k in os.environ}
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
    env["DVC_NO_ANALYTICS"] = "1"
    return env


@pytest.mark.skipif(shutil.which("git", path="/usr/local/bin:/usr/bin:/bin") is None, reason="needs git")
def test_dvc_repro_world_on_smoke_from_a_fresh_shell(tmp_path):
    """`make profile PROFILE=smoke` (its Python part) then `.venv/bin/dvc repro world` in a copy of
    the repository whose .venv is this interpreter's environment, with nothing on the PATH."""
    venv = Path(sys.prefix)
    if venv == Path(sys.base_prefix) or not (venv / "bin" / "dvc").exists():
        pytest.skip("needs the tests to run from a virtual environment with dvc (make env)")
    repo = tmp_path / "repo"
    repo.mkdir()
    for f in ("dvc.yaml", "pyproject.toml", ".dvcignore", ".gitignore", "scripts/stage.sh"):
        (repo / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, repo / f)
    for d in ("s2i", "profiles", "notebooks", ".dvc"):
        shutil.copytree(ROOT / d, repo / d, ignore=shutil.ignore_patterns("__pycache__", "tmp", "cache"))
    (repo / ".venv").symlink_to(venv)
    env = _fresh_env()

    def run(*cmd):
        r = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
        return r

    run("git", "init", "-q")
    run(".venv/bin/python", "-m", "s2i.stage", "--profile", "smoke")  # what `make profile` runs
    assert yaml.safe_load((repo / "params.yaml").read_text()) == load_profile("smoke")
    run(".venv/bin/dvc", "repro", "world")
    out = repo / "results"
    assert len(list((out / "world").glob("clip*.mp4"))) == load_profile("smoke")["world"]["n_clips"]
    assert json.loads((out / "metrics" / "world.json").read_text())
    nb = json.loads((out / "notebooks" / "00_world.ipynb").read_text())
    injected = [c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert "n_clips = 60" in "".join(injected[0]["source"])
    assert "world:" in (repo / "dvc.lock").read_text()
    assert "up to date" in run(".venv/bin/dvc", "status", "world").stdout


# --------------------------------------------------------------------------------------------
# the allocator settings of the stages and of the command line
# --------------------------------------------------------------------------------------------
def _stage_sh_env(tmp_path: Path, env: dict) -> dict:
    """The MALLOC_ variables the Python that scripts/stage.sh starts would see."""
    show = tmp_path / "show_env.sh"
    show.write_text('#!/bin/sh\nenv | grep "^MALLOC_" || true\n')
    show.chmod(0o755)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run(
        ["sh", str(ROOT / "scripts/stage.sh"), "world"],
        env={**clean, **env, "S2I_PYTHON": str(show)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(line.split("=", 1) for line in out.split())


def test_the_stages_run_with_the_command_lines_malloc_settings(tmp_path):
    from s2i.app.cli import MALLOC_MMAP_THRESHOLD, MALLOC_TRIM_THRESHOLD

    assert _stage_sh_env(tmp_path, {}) == {
        "MALLOC_MMAP_THRESHOLD_": str(MALLOC_MMAP_THRESHOLD),
        "MALLOC_TRIM_THRESHOLD_": str(MALLOC_TRIM_THRESHOLD),
    }
    mine = _stage_sh_env(tmp_path, {"MALLOC_MMAP_THRESHOLD_": "131072"})  # a value set by the user wins
    assert mine["MALLOC_MMAP_THRESHOLD_"] == "131072"


@pytest.mark.skipif(__import__("platform").libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_the_command_line_tunes_malloc_unless_the_environment_does(monkeypatch):
    from s2i.app.cli import keep_freed_memory

    for k in [k for k in os.environ if k.startswith("MALLOC_")] + ["GLIBC_TUNABLES"]:
        monkeypatch.delenv(k, raising=False)
    assert keep_freed_memory()
    monkeypatch.setenv("MALLOC_ARENA_MAX", "2")
    assert not keep_freed_memory()
