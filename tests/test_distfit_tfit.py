"""Vectorised Student-t MLE (maelens.analysis.tfit) against hand-derived values and scipy."""

import warnings

import numpy as np
import pytest
from scipy import stats

from maelens.analysis import tfit


def test_loglik_matches_scipy_logpdf():
    rng = np.random.default_rng(0)
    x = rng.standard_t(4, (3, 50))
    df, loc, scale = np.array([0.7, 4.0, 300.0]), np.array([0.1, -0.2, 0.0]), np.array([1.5, 0.8, 2.0])
    expected = [stats.t.logpdf(x[i], df[i], loc[i], scale[i]).sum() for i in range(3)]
    np.testing.assert_allclose(tfit.t_loglik(x, df, loc, scale), expected, rtol=1e-12)


def test_gradient_and_hessian_match_finite_differences():
    rng = np.random.default_rng(1)
    x = rng.standard_t(3, (3, 300)) * 2 + 1
    theta = np.array([[0.9, 0.5, np.log(3.0)], [1.2, 0.8, np.log(40.0)], [1.0, 0.7, np.log(0.8)]])
    loglik, grad, hess = tfit._derivatives(x, theta)
    np.testing.assert_allclose(loglik, tfit.t_loglik(x, np.exp(theta[:, 2]), theta[:, 0], np.exp(theta[:, 1])), rtol=1e-12)
    eps = 1e-6
    for k in range(3):
        step = np.zeros(3)
        step[k] = eps
        lp, gp, _ = tfit._derivatives(x, theta + step)
        lm, gm, _ = tfit._derivatives(x, theta - step)
        np.testing.assert_allclose((lp - lm) / (2 * eps), grad[:, k], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose((gp - gm) / (2 * eps), hess[:, :, k], rtol=1e-5, atol=1e-4)


def test_recovers_parameters_of_t_samples():
    rng = np.random.default_rng(2)
    df = np.array([1.0, 2.5, 5.0, 12.0])
    loc = np.array([-3.0, 0.0, 1.5, 10.0])
    scale = np.array([0.5, 1.0, 2.0, 4.0])
    x = rng.standard_t(df[:, None], (4, 20000)) * scale[:, None] + loc[:, None]
    fit = tfit.fit_t(x)
    assert fit.converged.all()
    np.testing.assert_allclose(fit.df, df, rtol=0.15)
    assert (np.abs(fit.loc - loc) < 0.05 * scale).all()
    np.testing.assert_allclose(fit.scale, scale, rtol=0.05)


def test_gaussian_samples_stop_at_the_df_bound():
    x = np.random.default_rng(3).standard_normal((40, 300)) * 3 + 2
    fit = tfit.fit_t(x)
    assert (fit.df <= tfit.DF_MAX).all() and (fit.df >= tfit.DF_MIN).all()
    assert fit.at_bound.mean() > 0.2  # sample kurtosis below 3: maximum at df = infinity
    # At the bound the t is the Normal up to O(1/df): scale equals the standard deviation.
    bound = fit.at_bound
    np.testing.assert_allclose(fit.scale[bound], x[bound].std(axis=1), rtol=2e-3)
    np.testing.assert_allclose(fit.loc[bound], x[bound].mean(axis=1), atol=1e-2)


def test_matches_scipy_fit():
    rng = np.random.default_rng(4)
    df = rng.choice([1.5, 3.0, 6.0, 20.0], 30)
    x = rng.standard_t(df[:, None], (30, 400)) * rng.uniform(0.5, 3, (30, 1)) + rng.uniform(-2, 2, (30, 1))
    fit = tfit.fit_t(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = np.array([stats.t.fit(row) for row in x])
    ref_loglik = np.array([stats.t.logpdf(row, *p).sum() for row, p in zip(x, ref)])
    interior = ~fit.at_bound
    # Never a worse optimum than scipy's Nelder-Mead where df is inside the bounds...
    assert (fit.loglik[interior] - ref_loglik[interior]).min() > -1e-6
    # ...and the same parameters where scipy converged to the same optimum.
    same = np.abs(fit.loglik - ref_loglik) < 1e-3
    assert same.mean() > 0.8
    np.testing.assert_allclose(fit.df[same], ref[same, 0], rtol=2e-2)
    assert (np.abs(fit.loc[same] - ref[same, 1]) < 1e-2 * ref[same, 2]).all()
    np.testing.assert_allclose(fit.scale[same], ref[same, 2], rtol=5e-3)


def test_rejects_bad_shapes():
    with pytest.raises(ValueError):
        tfit.fit_t(np.zeros(10))
