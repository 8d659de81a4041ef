"""The notebooks are thin, committed without outputs, in sync with their text sources, and
their parameter defaults are the smoke profile (the values dvc injects for that profile)."""

import ast
import json
import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
sys.path.insert(0, str(ROOT / "scripts"))


def _params_cell(nb: dict) -> dict:
    cells = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, "exactly one parameters-tagged cell"
    tree = ast.parse("".join(cells[0]["source"]))
    out = {}
    for node in tree.body:
        assert isinstance(node, ast.AnnAssign), "the parameters cell holds typed constants only"
        out[node.target.id] = ast.literal_eval(node.value)
    return out


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 6


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    nb = json.loads(path.read_text())
    for c in nb["cells"]:
        if c["cell_type"] == "code":
            assert not c.get("outputs") and c.get("execution_count") is None, f"{path.name} carries outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_in_sync_with_text_source(path):
    from py2nb import convert

    src = ROOT / "notebooks" / "src" / (path.stem + ".py")
    assert src.exists(), f"{src} missing"
    built = convert(src.read_text())
    nb = json.loads(path.read_text())
    assert [c.source for c in built.cells] == ["".join(c["source"]) for c in nb["cells"]], (
        f"{path.name} differs from {src.name}: rebuild with scripts/py2nb.py"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_has_a_checked_summary_cell(path):
    nb = json.loads(path.read_text())
    assert any("".join(c["source"]).lstrip().startswith("# NBVAL_CHECK_OUTPUT") for c in nb["cells"])


def test_parameter_defaults_are_the_smoke_profile():
    """Each stage's notebook has exactly the parameters the stage passes (s2i.stage.STAGES, the
    notebook dvc.yaml's cmd runs), and each default equals the smoke profile's value (paths
    excepted: notebooks opened directly write into build/nbval)."""
    from s2i.paths import load_profile
    from s2i.stage import STAGES, lookup

    smoke = load_profile("smoke")
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    checked = 0
    for name, stage in dvc["stages"].items():
        m = re.fullmatch(r"sh scripts/stage\.sh (\w+)", stage["cmd"])
        assert m and m.group(1) == name, f"stage {name}: cmd {stage['cmd']!r} is not the runner"
        notebook, table = STAGES[name]
        path = f"notebooks/{notebook}.ipynb"
        assert path in stage["deps"], f"stage {name} runs {path} but does not depend on it"
        nbp = _params_cell(json.loads((ROOT / path).read_text()))
        assert set(table) == set(nbp), (
            f"stage {name}: passes {sorted(set(table) - set(nbp))} that "
            f"{path} lacks; {path} has {sorted(set(nbp) - set(table))} that the stage does not pass"
        )
        for pname, key in table.items():
            if pname in ("run_dir", "model_dir"):
                continue
            v = lookup(smoke, key)
            assert nbp[pname] == v, f"{path}: default {pname}={nbp[pname]!r} but smoke {key}={v!r}"
            assert type(nbp[pname]) is type(v), f"{path}: {pname} is {type(nbp[pname])}, smoke {key} {type(v)}"
            checked += 1
    assert checked > 30


def test_profiles_share_their_keys():
    from s2i.paths import load_profile

    def keys(d, p=""):
        return {p + k for k in d} | {x for k, v in d.items() if isinstance(v, dict) for x in keys(v, p + k + ".")}

    toy, smoke, full = (load_profile(n) for n in ("toy", "smoke", "full"))
    assert keys(toy) == keys(smoke)
    assert keys(toy) <= keys(full)


def test_make_test_runs_the_smoke_run_first_in_pipeline_order():
    """`make test` runs the notebooks that build the smoke run one after the other, in the order
    tests/conftest.py builds them, before the notebooks that only read it run side by side."""
    from conftest import SMOKE_STAGES

    make = (ROOT / "Makefile").read_text()
    listed = re.search(r"NB_SMOKE := \$\(addprefix \$\(NB_DIR\)/,(.*?)\)\n", make, re.S).group(1)
    assert listed.replace("\\", " ").split() == [f"{name}.ipynb" for name in SMOKE_STAGES]
