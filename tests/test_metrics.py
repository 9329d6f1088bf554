"""``acula_edge.metrics``: AUROC, intervals, operating points and the embedding cosine."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from acula_edge.errors import AculaError
from acula_edge.metrics import auroc, bootstrap_ci, mean_cosine, operating_point, rates_at, wilson_ci


def _pairwise_auroc(y, s):
    pos, neg = s[y == 1], s[y == 0]
    return np.mean([1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg)])


def test_auroc_matches_the_pairwise_definition_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(20):
        y = rng.integers(0, 2, 40)
        s = rng.integers(0, 5, 40).astype(float)  # many ties
        assert auroc(y, s) == pytest.approx(_pairwise_auroc(y, s))
    assert auroc(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert auroc(np.array([0, 0, 1, 1]), np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
    assert np.isnan(auroc(np.array([1, 1]), np.array([0.2, 0.3])))
    three = np.eye(3)[[0, 1, 2, 0, 1, 2]]
    assert auroc(np.array([0, 1, 2, 0, 1, 2]), three) == 1.0  # macro one-vs-rest


def test_bootstrap_interval_brackets_the_estimate():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 200)
    p = y + rng.normal(0, 1.0, 200)
    groups = np.arange(200) // 2
    lo, hi = bootstrap_ci(y, p, groups, n=500)
    assert lo < auroc(y, p) < hi and 0.05 < hi - lo < 0.3


def test_operating_point_is_the_most_specific_threshold_reaching_the_target():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    p = np.round(y * 0.3 + rng.uniform(0, 1, 200), 2)  # ties included
    for target in (0.8, 0.9, 0.95, 1.0):
        op = operating_point(y, p, target)
        assert op["sensitivity"] >= target and (op["positives"], op["negatives"]) == (int(y.sum()), int((1 - y).sum()))
        feasible = [rates_at(y, p, t) for t in np.unique(p)]
        best_spec = max(spec for sens, spec in feasible if sens >= target)
        assert op["specificity"] == pytest.approx(best_spec, abs=1e-4)
        assert rates_at(y, p, op["threshold"]) == pytest.approx((op["sensitivity"], op["specificity"]), abs=1e-4)
    with pytest.raises(AculaError, match="both classes"):
        operating_point(np.ones(5), np.arange(5.0))
    with pytest.raises(AculaError):
        operating_point(y, p, 0.0)


def test_wilson_interval():
    lo, hi = wilson_ci(9, 10)
    assert lo < 0.9 < hi <= 1.0 and lo == pytest.approx(0.596, abs=1e-3)
    assert all(np.isnan(wilson_ci(0, 0)))


def test_mean_cosine_centred_sees_only_how_rows_differ():
    rng = np.random.default_rng(4)
    reference = rng.normal(size=(50, 8)) * 0.1 + 5.0  # one large shared direction
    constant = np.tile(reference.mean(0), (50, 1)) + 1e-9
    assert mean_cosine(reference, constant, centred=False) > 0.99  # raw cosine is fooled
    assert abs(mean_cosine(reference, constant)) < 0.1
    assert mean_cosine(reference, reference) == pytest.approx(1.0)
    assert mean_cosine(reference, 2 * reference - reference.mean(0)) == pytest.approx(1.0)
    flipped = 2 * reference.mean(0) - reference
    assert mean_cosine(reference, flipped) == pytest.approx(-1.0)
