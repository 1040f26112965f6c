"""Vectorised KS statistic and exact p-values (maelens.analysis.kstest) against hand values and scipy."""

import numpy as np
import pytest
from scipy import special, stats

from maelens.analysis.kstest import _smirnov_sf, ks_pvalue, ks_statistic, ks_statistic_monotone, ks_test


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
    d = np.array([0.05, 0.1, 0.15, 0.3])
    np.testing.assert_array_equal(ks_pvalue(d, 100), stats.kstwo.sf(d, 100))


@pytest.mark.parametrize("n", [141, 1000, 3840, 20000])
def test_closed_forms_match_kstwo_for_large_samples(n):
    # n > 140: Pelz-Good on arrays below n D^2 = 2.2, twice the Smirnov law above (log-spline on a grid
    # when there are many), Durbin's matrix near 0; plus the closed-form extremes D <= 1/n, D >= 1/2.
    s = np.r_[np.linspace(0.05, 1.48, 150), np.linspace(1.49, 12.0, 150)]
    d = np.r_[s / np.sqrt(n), 0.5 / n, 1.0 / n, 1.5 / n, 0.5, 0.7, 1 - 0.5 / n]
    p, ref = ks_pvalue(d, n), stats.kstwo.sf(d, n)
    body = np.arange(d.size) < 150  # n D^2 < 2.2: closed forms to rounding
    np.testing.assert_allclose(p[body], ref[body], rtol=1e-12, atol=0)
    np.testing.assert_allclose(p[~body], ref[~body], rtol=2e-6, atol=1e-300)
    # Few statistics: every one evaluated exactly (no spline).
    few = d[[10, 100, 160, 200]]
    np.testing.assert_allclose(ks_pvalue(few, n), stats.kstwo.sf(few, n), rtol=1e-10, atol=0)


def test_smirnov_sum_by_hand_and_against_scipy():
    # n = 1: P(D+ >= e) = e * C(1, 0) (1 - e)^1 e^-1 = 1 - e.
    np.testing.assert_allclose(_smirnov_sf(1, np.array([0.2, 0.7])), [0.8, 0.3], rtol=1e-14)
    eps = np.array([0.01, 0.03, 0.06, 0.1, 0.3])
    for n in (50, 3840):
        np.testing.assert_allclose(_smirnov_sf(n, eps), special.smirnov(n, eps), rtol=1e-10, atol=1e-300)


@pytest.mark.parametrize("block", [1, 3, 16])
def test_monotone_statistic_equals_the_full_one(block):
    rng = np.random.default_rng(block)
    x = np.sort(np.round(rng.standard_t(3.0, (40, 3840)), 1), axis=1)  # rounded: many ties
    x[0] = np.sort(rng.standard_normal(3840))
    calls = []

    def cdf(values, rows):
        calls.append(values.size)
        return special.stdtr(3.0, values)

    full = ks_statistic(special.stdtr(3.0, x))
    np.testing.assert_array_equal(ks_statistic_monotone(x, cdf, block=block), full)
    if block == 16:
        assert sum(calls) < x.size / 2  # most values are never evaluated
    short = x[:, :20]
    np.testing.assert_array_equal(ks_statistic_monotone(short, cdf, block=block),
                                  ks_statistic(special.stdtr(3.0, short)))


def test_interpolated_pvalues_match_kstwo():
    n = 300
    rng = np.random.default_rng(5)
    body = rng.uniform(1.2, 1.99, 1000) / np.sqrt(n)  # 1000 values > ~160 grid nodes: spline of sf
    tail = rng.uniform(2.0, 15.0, 1000) / np.sqrt(n)  # spline of log sf
    p_body, p_tail = ks_pvalue(body, n), ks_pvalue(tail, n)
    np.testing.assert_allclose(p_body[::20], stats.kstwo.sf(body[::20], n), rtol=0, atol=2e-6)
    np.testing.assert_allclose(p_tail[::20], stats.kstwo.sf(tail[::20], n), rtol=1e-6, atol=0)
