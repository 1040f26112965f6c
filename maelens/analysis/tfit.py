"""Vectorised maximum-likelihood fit of a Student-t law (df, loc, scale) to many samples at once.

IPOL sec. 5 "Embeddings modelisation of Transformers" fits a Student-t to each image's encoder
output on its own; ``scipy.stats.t.fit`` does it one sample at a time with Nelder-Mead. Here all
N samples are fitted together by a damped Newton method (Levenberg-Marquardt) on
``(loc, log scale, log df)`` with the analytic gradient and Hessian, each sample keeping its own
damping so the log-likelihood never decreases. The gradient and Hessian are derived step by step in
``docs/notes/student_t_newton.md``.

df is bounded to ``[DF_MIN, DF_MAX]`` = [0.1, 1000]. Near-Gaussian samples (sample kurtosis below
3) have their likelihood maximum at df = infinity; they stop at ``DF_MAX`` (flagged
``at_bound``), where the t and the Normal CDFs differ by about 1e-4, far below the resolution of a
KS test on fewer than 10^6 values. The lower bound only guards against degenerate samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

DF_MIN = 0.1
DF_MAX = 1000.0
_LOG_DF = (np.log(DF_MIN), np.log(DF_MAX))


@dataclass
class TFit:
    """Per-sample Student-t MLE: ``df``, ``loc``, ``scale``, ``loglik`` (sum over the sample's
    values), ``n_iter`` and ``converged`` (N,) arrays; ``at_bound`` where df hit a bound."""

    df: np.ndarray
    loc: np.ndarray
    scale: np.ndarray
    loglik: np.ndarray
    n_iter: np.ndarray
    converged: np.ndarray

    @property
    def at_bound(self) -> np.ndarray:
        return (self.df <= DF_MIN * (1 + 1e-9)) | (self.df >= DF_MAX * (1 - 1e-9))


def t_loglik(x: np.ndarray, df: np.ndarray, loc: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Log-likelihood (N,) of each row of ``x`` (N, M) under t(df, loc, scale), all (N,)."""
    x = np.asarray(x, dtype=np.float64)
    df, loc, scale = (np.asarray(a, dtype=np.float64).reshape(-1, 1) for a in (df, loc, scale))
    z = (x - loc) / scale
    m = x.shape[1]
    const = special.gammaln((df + 1) / 2) - special.gammaln(df / 2) - 0.5 * np.log(df * np.pi) - np.log(scale)
    return m * const[:, 0] - ((df[:, 0] + 1) / 2) * np.log1p(z * z / df).sum(axis=1)


def _initial_guess(x: np.ndarray) -> np.ndarray:
    """(N, 3) start (loc, log scale, log df): median, MAD matched to the t quantile, df from kurtosis."""
    loc = np.median(x, axis=1)
    centred = x - x.mean(axis=1, keepdims=True)
    np.multiply(centred, centred, out=centred)
    var = centred.mean(axis=1)
    fourth = np.einsum("ij,ij->i", centred, centred) / x.shape[1]
    excess = fourth / np.maximum(var, np.finfo(float).tiny) ** 2 - 3.0
    # A t(df) has excess kurtosis 6 / (df - 4) for df > 4; heavier tails start near df = 4.
    df = np.where(excess > 0, 4.0 + 6.0 / np.maximum(excess, 1e-12), DF_MAX)
    df = np.clip(df, 1.0, DF_MAX)
    np.subtract(x, loc[:, None], out=centred)
    np.abs(centred, out=centred)
    mad = np.median(centred, axis=1, overwrite_input=True)
    scale = mad / special.stdtrit(df, 0.75)
    scale = np.where(scale > 0, scale, np.sqrt(var))
    return np.stack([loc, np.log(scale), np.log(df)], axis=1)


def _derivatives(x: np.ndarray, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Log-likelihood (n,), gradient (n, 3) and Hessian (n, 3, 3) in (loc, log scale, log df).

    With z = (x - loc) / scale, d = z^2, a = 1 / (nu + d) and r = d a, every term is a row sum of
    a, r, r a, r^2, z a, z r a, z a^2 or log(nu + d) times a per-row factor: the per-value passes
    are those eight sums and the five arrays z, d, a, r, log(nu + d) (fewest passes over the data,
    the cost of the fit)."""
    m = x.shape[1]
    loc, log_scale, log_df = theta[:, 0], theta[:, 1], theta[:, 2]
    scale, nu = np.exp(log_scale), np.exp(log_df)
    z = x - loc[:, None]
    z *= (1.0 / scale)[:, None]
    d = z * z
    a = d + nu[:, None]
    log_u = np.log(a).sum(axis=1)
    np.reciprocal(a, out=a)
    r = d * a
    dot = lambda p, q: np.einsum("ij,ij->i", p, q)  # noqa: E731
    s_a, s_r = a.sum(axis=1), r.sum(axis=1)
    s_ra, s_rr, s_za = dot(r, a), dot(r, r), dot(z, a)
    np.multiply(z, r, out=d)  # d is no longer needed: its buffer holds z r, then z a
    s_zra = dot(d, a)
    np.multiply(z, a, out=d)
    s_zaa = dot(d, a)
    log1p_sum = log_u - m * log_df  # sum log(1 + d / nu)

    nu1 = nu + 1
    half = 0.5 * nu1
    lgam = special.gammaln(half) - special.gammaln(nu / 2) - 0.5 * np.log(nu * np.pi)
    loglik = m * (lgam - log_scale) - half * log1p_sum

    g1 = 0.5 * (special.digamma(half) - special.digamma(nu / 2)) - 0.5 / nu
    g2 = 0.25 * (special.polygamma(1, half) - special.polygamma(1, nu / 2)) + 0.5 / nu**2
    s2 = s_r / nu  # sum d / (nu (nu + d))
    s3 = s_r / nu**2 + s_ra / nu  # sum d (2 nu + d) / (nu (nu + d))^2

    l_mu = nu1 * s_za / scale
    l_eta = nu1 * s_r - m
    l_nu = m * g1 - 0.5 * log1p_sum + half * s2
    l_mumu = nu1 * (2 * s_ra - s_a) / scale**2
    l_mueta = 2 * nu1 * (s_zra - s_za) / scale
    l_etaeta = 2 * nu1 * (s_rr - s_r)
    l_munu = (s_zra - s_zaa) / scale
    l_etanu = s_rr - s_ra
    l_nunu = m * g2 + s2 - half * s3

    grad = np.stack([l_mu, l_eta, nu * l_nu], axis=1)
    hess = np.empty((len(theta), 3, 3))
    hess[:, 0, 0] = l_mumu
    hess[:, 1, 1] = l_etaeta
    hess[:, 2, 2] = nu**2 * l_nunu + nu * l_nu
    hess[:, 0, 1] = hess[:, 1, 0] = l_mueta
    hess[:, 0, 2] = hess[:, 2, 0] = nu * l_munu
    hess[:, 1, 2] = hess[:, 2, 1] = nu * l_etanu
    return loglik, grad, hess


def _damped_step(grad: np.ndarray, hess: np.ndarray, damping: np.ndarray,
                 log_df: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Levenberg-Marquardt ascent step (n, 3) and whether the (projected) log-likelihood is
    locally concave (n,); log df is frozen where it sits on a bound and the gradient pushes it
    outwards (projected Newton)."""
    neg = -hess
    frozen = ((log_df <= _LOG_DF[0]) & (grad[:, 2] < 0)) | ((log_df >= _LOG_DF[1]) & (grad[:, 2] > 0))
    g = grad.copy()
    g[frozen, 2] = 0.0
    neg[frozen, 2, :] = 0.0
    neg[frozen, :, 2] = 0.0
    neg[frozen, 2, 2] = 1.0
    concave = np.linalg.eigvalsh(neg).min(axis=1) > 0
    diag = np.abs(np.diagonal(neg, axis1=1, axis2=2)) + 1e-12
    system = neg + damping[:, None, None] * (diag[:, :, None] * np.eye(3))
    try:
        return np.linalg.solve(system, g[:, :, None])[:, :, 0], concave
    except np.linalg.LinAlgError:
        # A singular system only happens for degenerate rows: fall back to scaled gradient steps.
        return g / (diag * (1 + damping[:, None])), concave


def fit_t(x: np.ndarray, *, max_iter: int = 200, xtol: float = 1e-10) -> TFit:
    """Student-t MLE of every row of ``x`` (N, M), all rows at once (float64).

    Converged when an accepted step moves loc/scale by less than ``xtol`` scale units and log df
    by less than ``xtol``; rows still moving after ``max_iter`` steps are flagged ``converged=False``.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError(f"fit_t expects an (N, M) array with M >= 2 values per row, got shape {x.shape}")
    n = x.shape[0]
    theta = _initial_guess(x)
    theta[:, 2] = np.clip(theta[:, 2], *_LOG_DF)
    loglik, grad, hess = _derivatives(x, theta)
    damping = np.full(n, 1e-3)
    n_iter = np.zeros(n, dtype=np.int64)
    converged = np.zeros(n, dtype=bool)
    active = np.arange(n)
    for _ in range(max_iter):
        if active.size == 0:
            break
        step, concave = _damped_step(grad[active], hess[active], damping[active], theta[active, 2])
        # Locally concave and a (nearly undamped) Newton step predicting a gain at the rounding
        # level of the log-likelihood: nothing left to climb.
        gain = np.einsum("ij,ij->i", grad[active], step)
        flat = concave & (damping[active] <= 1e-3) & (gain < 1e-13 * (np.abs(loglik[active]) + x.shape[1]))
        converged[active[flat]] = True
        active, step = active[~flat], step[~flat]
        if active.size == 0:
            break
        # Trust region: at most a factor e^2 on scale and df, 2 scales on loc, per step.
        size = np.maximum(np.abs(step[:, 0]) / np.exp(theta[active, 1]), np.abs(step[:, 1:]).max(axis=1))
        step *= np.minimum(1.0, 2.0 / np.maximum(size, 1e-300))[:, None]
        trial = theta[active] + step
        trial[:, 2] = np.clip(trial[:, 2], *_LOG_DF)
        # Trial points far out may overflow; they are then simply rejected.
        with np.errstate(all="ignore"):
            t_loglik_, t_grad, t_hess = _derivatives(x[active], trial)
        accept = (np.isfinite(t_loglik_) & (t_loglik_ >= loglik[active])
                  & np.isfinite(t_hess).all(axis=(1, 2)) & np.isfinite(t_grad).all(axis=1))
        idx = active[accept]
        moved = np.abs(trial[accept] - theta[idx])
        theta[idx], loglik[idx], grad[idx], hess[idx] = trial[accept], t_loglik_[accept], t_grad[accept], t_hess[accept]
        damping[idx] = np.maximum(damping[idx] * 0.1, 1e-12)
        damping[active[~accept]] *= 10.0
        n_iter[active] += 1
        # loc moves are measured in units of scale, the other two are already relative.
        moved[:, 0] /= np.exp(theta[idx, 1])
        done = np.zeros(active.size, dtype=bool)
        done[accept] = moved.max(axis=1) < xtol
        # Damping that keeps growing means no representable ascent is left: at the optimum.
        stalled = damping[active] > 1e12
        converged[active[done | stalled]] = True
        active = active[~(done | stalled)]
    return TFit(df=np.exp(theta[:, 2]), loc=theta[:, 0], scale=np.exp(theta[:, 1]),
                loglik=loglik, n_iter=n_iter, converged=converged)

__all__ = ["DF_MAX", "DF_MIN", "TFit", "fit_t", "t_loglik"]
