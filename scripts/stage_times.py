#!/usr/bin/env python
"""Print each stage's wall time, read from the executed notebooks papermill wrote.

python scripts/stage_times.py [results/notebooks]
"""

import json
import sys
from pathlib import Path

folder = Path(sys.argv[1] if len(sys.argv) > 1 else "results/notebooks")
total = 0.0
for p in sorted(folder.glob("*.ipynb")):
    d = json.loads(p.read_text())["metadata"].get("papermill", {}).get("duration")
    if d is not None:
        total += d
        print(f"{p.stem:22s} {d / 60:6.1f} min")
print(f"{'total':22s} {total / 60:6.1f} min")
