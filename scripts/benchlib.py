"""What every benchmark script prints about the machine it ran on, and how the scripts load a
run's models (imported by the scripts here, which run as ``python scripts/NAME.py``, so this
folder is on their path)."""

from __future__ import annotations

from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ("unknown" where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def load_run(run_dir, profile: str = "toy", model_dir="models/toy", window_s: float = 0.5, steps: int | None = None):
    """The run's :class:`~s2i.method.generate.Sound2Image`, drawing with the profile's
    ``sampling.steps`` and ``sampling.guidance`` as the stages and the command line do (``steps``
    replaces the first)."""
    from s2i.method.generate import Sound2Image
    from s2i.paths import compose_profile

    sampling = compose_profile(profile)["sampling"]
    steps = sampling["steps"] if steps is None else steps
    return Sound2Image.from_run(
        run_dir, profile, model_dir, window_s, sample_steps=steps, sample_guidance=sampling.get("guidance")
    )


def region_arg(v: str):
    """An edit region given on the command line: a name (``centre``, ``half``, ``all``), or a
    number, a centred rectangle of that share of each side (:func:`s2i.method.edit.edit_region`)."""
    try:
        return float(v)
    except ValueError:
        return v


def print_row(row: dict) -> None:
    """One result row on one line: ``key value`` pairs, floats to 3 decimals."""
    print(" ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)


def print_means(rows: list[dict], by: str, skip=("seed",)) -> None:
    """The mean of every other numeric column of ``rows`` for each value of column ``by``."""
    for value in dict.fromkeys(r[by] for r in rows):
        rs = [r for r in rows if r[by] == value]
        keys = [k for k in rs[0] if k != by and k not in skip]
        print(f"mean {value}: " + " ".join(f"{k} {sum(r[k] for r in rs) / len(rs):.3f}" for k in keys), flush=True)
