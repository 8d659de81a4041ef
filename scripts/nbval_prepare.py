#!/usr/bin/env python
"""Prepare the notebooks nbval runs, or record their expected outputs.

Source notebooks are committed without outputs (so a rerun never changes their hash). The
expected outputs of the cells marked ``# NBVAL_CHECK_OUTPUT`` live in
``tests/nbval_expected.json``; this script copies ``notebooks/*.ipynb`` into
``build/nbval_notebooks/`` with those outputs put back, and nbval compares against them:

    python scripts/nbval_prepare.py            # prepare build/nbval_notebooks/
    python scripts/nbval_prepare.py --record build/nbval/notebooks   # record from executed copies
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
EXPECTED = ROOT / "tests" / "nbval_expected.json"
MARK = "# NBVAL_CHECK_OUTPUT"


def checked_cells(nb) -> list[int]:
    return [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source.lstrip().startswith(MARK)]


def record(executed_dir: Path) -> None:
    exp = json.loads(EXPECTED.read_text()) if EXPECTED.exists() else {}
    for p in sorted((ROOT / "notebooks").glob("*.ipynb")):
        q = executed_dir / p.name
        if not q.exists():
            continue
        nb = nbformat.read(q, as_version=4)
        exp[p.name] = {
            c.get("id", str(i)): [o for o in nb.cells[i].outputs if o.get("output_type") == "stream"]
            for i in checked_cells(nb)
            for c in [nb.cells[i]]
        }
    EXPECTED.write_text(json.dumps(exp, indent=1, sort_keys=True) + "\n")
    print(f"recorded {sum(len(v) for v in exp.values())} checked cells into {EXPECTED}")


def prepare(out_dir: Path) -> None:
    exp = json.loads(EXPECTED.read_text()) if EXPECTED.exists() else {}
    out_dir.mkdir(parents=True, exist_ok=True)
    for p in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(p, as_version=4)
        cells = exp.get(p.name, {})
        for i in checked_cells(nb):
            cid = nb.cells[i].get("id", str(i))
            if cid not in cells:
                raise SystemExit(
                    f"{p}: cell {cid} is marked {MARK} but has no expected output in {EXPECTED}; "
                    "run the notebook and record it (--record)"
                )
            nb.cells[i].outputs = [nbformat.from_dict(o) for o in cells[cid]]
            nb.cells[i].execution_count = 1  # nbval skips the comparison for "unrun" cells
        nbformat.write(nb, out_dir / p.name)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--record", type=Path, help="folder of executed notebooks to record expected outputs from")
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "nbval_notebooks")
    a = ap.parse_args()
    record(a.record) if a.record else prepare(a.out)
