"""Figures of IPOL sec. 5 "Embeddings modelisation of Transformers": the empirical CDF of KS
p-values per law (Figs. 6-7), the fitted Student-t df, and a sample's histogram under the fitted
densities (Figs. 5 and 8). Every function returns a matplotlib Figure built without pyplot."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from scipy import stats

from ..analysis.distfit import DistFitResult, RankingResult
from ..analysis.tfit import DF_MAX, DF_MIN

_LAW_NAMES = {"norm": "Gaussian", "t": "Student-t"}


def plot_pvalue_ecdf(result: DistFitResult, title: str | None = None) -> Figure:
    """Empirical CDF of the KS p-values of every law (Figs. 6-7), with the level alpha marked and
    the uniform CDF that exactly calibrated p-values would follow under H0."""
    fig = Figure(figsize=(5.0, 3.8))
    ax = fig.subplots()
    n = len(result)
    for law, fit in result.fits.items():
        p = np.sort(fit.pvalue)
        kept = (fit.pvalue >= result.alpha).mean()
        ax.step(np.concatenate([[0.0], p, [1.0]]), np.concatenate([[0.0], np.arange(1, n + 1) / n, [1.0]]),
                where="post", label=f"{_LAW_NAMES.get(law, law)}: {kept:.0%} not rejected")
    ax.plot([0, 1], [0, 1], color="0.6", lw=0.8, ls=":", label="uniform")
    ax.axvline(result.alpha, color="0.3", lw=0.8, ls="--")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel(f"KS p-value ({result.pvalue_method})")
    ax.set_ylabel("fraction of samples")
    ax.set_title(title or f"{n} samples of {result.n_values} values, alpha = {result.alpha:g}", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def plot_df_distribution(result: DistFitResult, bins: int = 40) -> Figure:
    """Histogram of the fitted Student-t degrees of freedom (log scale; the bounds marked)."""
    df = result.fits["t"].params["df"]
    fig = Figure(figsize=(5.0, 3.4))
    ax = fig.subplots()
    edges = np.logspace(np.log10(DF_MIN), np.log10(DF_MAX), bins + 1)
    ax.hist(df, bins=edges, color="C1", edgecolor="white", lw=0.3)
    ax.set_xscale("log")
    for bound in (DF_MIN, DF_MAX):
        ax.axvline(bound, color="0.4", lw=0.8, ls="--")
    ax.set_xlabel("fitted df (bounded to [%g, %g])" % (DF_MIN, DF_MAX))
    ax.set_ylabel("samples")
    ax.set_title(f"Student-t df: median {np.median(df):.3g} over {len(df)} samples", fontsize=10)
    fig.tight_layout()
    return fig


def plot_ranking(ranking: RankingResult, title: str | None = None) -> Figure:
    """The first sample's normalised histogram with each fitted density, labelled by its SSE (Fig. 8)."""
    values = ranking.example_values
    fig = Figure(figsize=(6.0, 3.8))
    ax = fig.subplots()
    density, edges, _ = ax.hist(values, bins=ranking.bins, density=True, color="0.8", edgecolor="0.65", lw=0.3,
                                label="sample")
    grid = np.linspace(edges[0], edges[-1], 600)
    top = 1.3 * density.max()
    for law in ranking.table["law"]:
        if law not in ranking.example_params:
            continue
        with np.errstate(all="ignore"):
            pdf = getattr(stats, law).pdf(grid, *ranking.example_params[law])
        ax.plot(grid, np.clip(pdf, 0, top), lw=1.2, label=f"{law} (SSE {ranking.example_sse[law]:.3g})")
    ax.set_ylim(0, top)
    ax.set_xlabel("value")
    ax.set_ylabel("density")
    ax.set_title(title or f"{values.size} values, {ranking.bins} bins", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig

__all__ = ["plot_df_distribution", "plot_pvalue_ecdf", "plot_ranking"]
