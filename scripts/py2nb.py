#!/usr/bin/env python
"""Build a source notebook (no outputs) from a percent-format script.

    python scripts/py2nb.py notebooks/src/00_world.py notebooks/00_world.ipynb

Cells start with ``# %%``; ``# %% [markdown]`` cells hold markdown as ``#``-comments;
``# %% tags=["parameters"]`` tags the papermill parameters cell. The .ipynb is the
committed source; this script is only a convenience for writing notebooks as text.
"""

import json
import re
import sys

import nbformat


def convert(src: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    blocks = re.split(r"^# %%", src, flags=re.M)
    for b in blocks[1:]:
        header, _, body = b.partition("\n")
        body = body.strip("\n")
        if "[markdown]" in header:
            text = "\n".join(x[2:] if x.startswith("# ") else x.lstrip("#") for x in body.splitlines())
            nb.cells.append(nbformat.v4.new_markdown_cell(text))
        else:
            c = nbformat.v4.new_code_cell(body)
            m = re.search(r"tags=(\[.*\])", header)
            if m:
                c.metadata["tags"] = json.loads(m.group(1))
            nb.cells.append(c)
    for i, c in enumerate(nb.cells):
        c["id"] = f"cell-{i:02d}"
    return nb


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        nb = convert(f.read())
    nbformat.write(nb, sys.argv[2])
