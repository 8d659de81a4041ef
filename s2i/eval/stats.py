"""Intervals of the figures the project reports: a percentile bootstrap over the figure's
independent units (stills, pairs, edits, videos). NumPy only, so that the ``pretrain`` stage
can use it without importing the studies."""

from __future__ import annotations

import numpy as np


def bootstrap_ci(values, n_boot: int = 10000, seed: int = 0, level: float = 0.95) -> list[float]:
    """Percentile bootstrap interval of the mean of ``values`` (one value per independent unit,
    e.g. per pair: the images of one pair are not independent of each other)."""
    v = np.asarray(values, float)
    if v.size == 0:
        raise ValueError("no values to bootstrap")
    rng = np.random.default_rng([0xB007, int(seed)])
    means = v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(1)
    a = (1 - level) / 2
    return [float(np.quantile(means, a)), float(np.quantile(means, 1 - a))]
