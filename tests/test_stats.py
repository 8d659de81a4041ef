"""Tests of ``s2i.eval.stats``: the percentile bootstrap interval of a figure's mean."""

from __future__ import annotations

import pytest

from s2i.eval.stats import bootstrap_ci


def test_bootstrap_ci_of_a_constant_is_that_constant():
    assert bootstrap_ci([0.75] * 10) == [0.75, 0.75]


def test_bootstrap_ci_brackets_the_mean_and_narrows_with_more_units():
    few = [1.0, 0.0, 1.0, 1.0]  # mean 0.75
    many = few * 16
    lo, hi = bootstrap_ci(few, seed=3)
    lo2, hi2 = bootstrap_ci(many, seed=3)
    assert 0.0 <= lo < 0.75 < hi <= 1.0
    assert lo < lo2 < 0.75 < hi2 <= hi
    # sd of the mean of 64 Bernoulli(0.75) units: 0.054 -> a 95 % interval about +-0.11
    assert 0.08 < 0.75 - lo2 < 0.14 and 0.08 < hi2 - 0.75 < 0.14
    assert bootstrap_ci(many, seed=3) == [lo2, hi2]  # seeded


def test_bootstrap_ci_rejects_no_values():
    with pytest.raises(ValueError, match="no values"):
        bootstrap_ci([])
