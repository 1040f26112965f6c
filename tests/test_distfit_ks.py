"""Vectorised KS statistic and exact p-values (maelens.analysis.kstest) against hand values and scipy."""

import numpy as np
import pytest
from scipy import special, stats

from maelens.analysis.kstest import ks_pvalue, ks_statistic, ks_test


def test_statistic_by_hand():
    # Values 0.1, 0.4, 0.7 against U(0, 1): D+ = max(1/3 - 0.1, 2/3 - 0.4, 1 - 0.7) = 0.3,
    # D- = max(0.1 - 0, 0.4 - 1/3, 0.7 - 2/3) = 0.1, so D = 0.3.
    cdf = np.array([[0.1, 0.4, 0.7], [0.5, 0.9, 0.95]])
    # Second row: D+ = max(1/3 - 0.5, 2/3 - 0.9, 1 - 0.95) = 0.05; D- = max(0.5, 0.9 - 1/3, 0.95 - 2/3)
    # = 0.9 - 1/3 = 17/30.
    np.testing.assert_allclose(ks_statistic(cdf), [0.3, 17 / 30])


def test_pvalue_of_one_value_by_hand():
    # n = 1: D = max(F, 1 - F), and P(D >= d) = 2 (1 - d) for d in [1/2, 1].
    np.testing.assert_allclose(ks_pvalue(np.array([0.5, 0.75, 0.9]), 1), [1.0, 0.5, 0.2])


@pytest.mark.parametrize("n", [20, 150, 1000])
def test_matches_scipy_kstest(n):
    rng = np.random.default_rng(n)
    df = rng.choice([2.0, 5.0, 30.0], (600, 1))
    x = np.sort(rng.standard_t(df, (600, n)), axis=1)
    stat, p = ks_test(special.ndtr(x))
    ref = stats.kstest(x, "norm", axis=1)
    np.testing.assert_allclose(stat, ref.statistic, rtol=0, atol=1e-14)
    # Interpolated p-values: < 2e-6 absolute, < 1e-6 relative in the tail.
    np.testing.assert_allclose(p, ref.pvalue, rtol=1e-6, atol=2e-6)
    assert ((p < 0.05) == (ref.pvalue < 0.05)).all()


def test_few_statistics_are_computed_exactly():
    d = np.array([0.01, 0.03, 0.05, 0.2])
    np.testing.assert_array_equal(ks_pvalue(d, 500), stats.kstwo.sf(d, 500))


def test_interpolated_pvalues_match_kstwo():
    n = 300
    rng = np.random.default_rng(5)
    body = rng.uniform(1.2, 1.99, 1000) / np.sqrt(n)  # 1000 values > ~160 grid nodes: spline of sf
    tail = rng.uniform(2.0, 15.0, 1000) / np.sqrt(n)  # spline of log sf
    p_body, p_tail = ks_pvalue(body, n), ks_pvalue(tail, n)
    np.testing.assert_allclose(p_body[::20], stats.kstwo.sf(body[::20], n), rtol=0, atol=2e-6)
    np.testing.assert_allclose(p_tail[::20], stats.kstwo.sf(tail[::20], n), rtol=1e-6, atol=0)
