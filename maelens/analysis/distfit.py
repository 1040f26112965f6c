"""Is an MAE embedding Gaussian or Student-t? Per-sample fits and KS tests (IPOL sec. 5,
"Embeddings modelisation of Transformers", Fig. 7) and the ranking of candidate laws by histogram
fit (Table 2, Fig. 8).

A *sample* is one row of an (N, M) array: the encoder output of one image (its visible tokens x
embedding dimension flattened, or one token, the CLS token, the mean token). As in the paper each
sample gets its own parameters: the Normal by MLE (mean, standard deviation) and the Student-t by
MLE (:mod:`maelens.analysis.tfit`); then the one-sample KS test against each fitted law
(:mod:`maelens.analysis.kstest`).

p-values: ``asymptotic`` treats the fitted law as if it were known in advance and uses the exact
KS null distribution (``scipy.stats.kstwo``), as the paper and ``scipy.stats.kstest`` do; since
the parameters were fitted on the very sample tested, these p-values are too large (Lilliefors).
``parametric-bootstrap`` calibrates them: for each sample, B samples of the same size are drawn
from its fitted law, refitted the same way and tested, and ``p = (1 + #{D* >= D}) / (B + 1)``.
Both MLEs are location-scale equivariant, so the draws use loc 0 and scale 1 (the null law of D
depends on the shape, df, only).

Extreme magnitudes: the fits raise values to the fourth power (the kurtosis of the Student-t start),
which overflows beyond about 1e77 and underflows below 1e-77. A sample whose largest ``|value|``
lies outside ``[2^-128, 2^128]`` is therefore divided by a power of two (exact in floating point)
before fitting, and the fitted loc and scale are multiplied back (:func:`value_scales`); by the same
equivariance the KS statistics, p-values and df are those of the unscaled sample. Samples whose
fitted parameters still do not fit in float64 are refused.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from scipy import special, stats
from tqdm.auto import tqdm

from ..choices import DISTFIT_FEATURES, PVALUE_METHODS
from ..errors import ConfigError, DataError
from ..paths import check_input
from . import distributed
from .kstest import ks_pvalue, ks_statistic_monotone
from .stats import wilson_interval
from .synthetic import synthetic_attention_samples
from .tfit import DF_MAX, DF_MIN, fit_t

__all__ = [
    "DEFAULT_RANK_LAWS", "DistFitResult", "LawFit", "RANK_STATISTIC", "RankingResult", "as_samples", "check_laws",
    "density_sse",
    "encoder_samples", "fit_law", "fit_norm", "fit_samples", "load_samples", "pvalue_note", "rank_distributions",
    "synthetic_attention_samples", "value_scales", "wilson_interval",
]

LAWS = ("norm", "t")
DEFAULT_RANK_LAWS = ("t", "cauchy", "lognorm", "beta", "norm")
# Values per chunk of rows: bounds the float64 temporaries of the vectorised fit (~10 arrays).
_CHUNK_VALUES = 1 << 21
# Largest |log2| of a sample's largest |value| fitted as it is (see the module docstring).
_SAFE_EXPONENT = 128


@dataclass
class LawFit:
    """Fits of one law to N samples: ``params`` name -> (N,), ``loglik`` (N,), KS ``stat`` and
    ``pvalue`` (N,), and law-specific diagnostics in ``extra`` (N,) arrays."""

    law: str
    params: dict[str, np.ndarray]
    loglik: np.ndarray
    stat: np.ndarray
    pvalue: np.ndarray
    extra: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class DistFitResult:
    """Per-sample Normal and Student-t fits with KS tests; ``summary()`` gives the paper's numbers."""

    fits: dict[str, LawFit]
    n_values: int
    alpha: float
    pvalue_method: str
    n_bootstrap: int | None
    ids: np.ndarray
    labels: np.ndarray
    settings: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def rejected(self, law: str) -> np.ndarray:
        """(N,) bool: the KS test rejects the fitted ``law`` at level ``alpha`` (p < alpha)."""
        return self.fits[law].pvalue < self.alpha

    def to_frame(self) -> "Any":
        """One row per sample: id, label, fitted parameters, log-likelihood, KS statistic, p-value."""
        import pandas as pd

        columns: dict[str, Any] = {"sample": np.arange(len(self)), "id": self.ids, "label": self.labels,
                                   "n_values": np.full(len(self), self.n_values)}
        for law, fit in self.fits.items():
            for name, values in fit.params.items():
                columns[f"{law}_{name}"] = values
            columns[f"{law}_loglik"] = fit.loglik
            columns[f"{law}_ks"] = fit.stat
            columns[f"{law}_pvalue"] = fit.pvalue
            columns[f"{law}_rejected"] = self.rejected(law)
            for name, values in fit.extra.items():
                columns[f"{law}_{name}"] = values
        return pd.DataFrame(columns)

    def summary(self) -> dict[str, Any]:
        """Fractions not rejected per law with Wilson 95% CIs, the p-value method, the fitted df."""
        n = len(self)
        laws = {}
        for law in self.fits:
            kept = int((~self.rejected(law)).sum())
            lo, hi = wilson_interval(kept, n)
            laws[law] = {"not_rejected": kept, "fraction_not_rejected": kept / n if n else float("nan"),
                         "ci95": [lo, hi], "median_pvalue": float(np.median(self.fits[law].pvalue))}
        df = self.fits["t"].params["df"]
        laws["t"]["df"] = {"median": float(np.median(df)), "q25": float(np.quantile(df, 0.25)),
                           "q75": float(np.quantile(df, 0.75)), "bounds": [DF_MIN, DF_MAX],
                           "fraction_at_upper_bound": float(np.mean(df >= DF_MAX * (1 - 1e-9))),
                           "fraction_converged": float(np.mean(self.fits["t"].extra["converged"]))}
        return {"num_samples": n, "values_per_sample": self.n_values, "alpha": self.alpha,
                "pvalue_method": self.pvalue_method, "pvalue_note": pvalue_note(self.pvalue_method, self.n_bootstrap),
                "bootstrap_draws": self.n_bootstrap, "laws": laws, "settings": self.settings}


def pvalue_note(method: str, n_bootstrap: int | None = None) -> str:
    """One sentence saying how the p-values were computed."""
    if method == "asymptotic":
        return ("exact KS null distribution (scipy kstwo) with the fitted parameters taken as known: "
                "conservative, since they were estimated on the same sample (Lilliefors)")
    return (f"parametric bootstrap: {n_bootstrap} samples drawn from each sample's fitted law, refitted "
            f"and tested; p = (1 + #(D* >= D)) / (B + 1)")


def fit_norm(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normal MLE of each row of ``x`` (N, M): loc (mean), scale (std, ddof 0) and log-likelihood."""
    loc = x.mean(axis=1)
    scale = x.std(axis=1)
    m = x.shape[1]
    loglik = -0.5 * m * (np.log(2 * np.pi * scale**2) + 1)
    return loc, scale, loglik


def value_scales(x: np.ndarray) -> np.ndarray:
    """(N,) factors to divide the rows of ``x`` (N, M) by before fitting: 1 where the largest ``|value|``
    lies within ``[2^-128, 2^128]`` (results unchanged), else the power of two just below it, so that the
    scaled row has values in (-2, 2) and no fourth power over- or underflows; a power of two divides exactly."""
    _, exponent = np.frexp(np.abs(x).max(axis=1))
    exponent = exponent - 1  # |x| / 2^(e-1) in [1, 2); 2^1023 is still finite where 2^1024 is not
    return np.where(np.abs(exponent) > _SAFE_EXPONENT, np.ldexp(1.0, exponent), 1.0)


def _unscale(params: dict[str, np.ndarray], loglik: np.ndarray, scales: np.ndarray,
             m: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Parameters and log-likelihood of a fit to ``x / scales`` turned into those of the fit to ``x``
    (loc and scale are equivariant; each of the ``m`` densities is divided by the scale)."""
    params = {**params, "loc": params["loc"] * scales, "scale": params["scale"] * scales}
    return params, loglik - m * np.log(scales)


def _fitted_cdf(law: str, loc: np.ndarray, scale: np.ndarray, df: np.ndarray | None):
    """``cdf(values, rows)``: the CDF of each row's fitted law at ``values`` (K, B) of rows ``rows`` (K,)."""
    def cdf(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
        z = (values - loc[rows, None]) / scale[rows, None]
        return special.ndtr(z) if law == "norm" else special.stdtr(df[rows, None], z)
    return cdf


def _fit_and_stat(law: str, x_sorted: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, dict]:
    """Fit ``law`` to sorted rows (n, M); parameters, log-likelihood, KS statistic, diagnostics.
    The CDF is evaluated only at the values that can set the statistic (:func:`ks_statistic_monotone`)."""
    if law == "norm":
        loc, scale, loglik = fit_norm(x_sorted)
        params, extra, df = {"loc": loc, "scale": scale}, {}, None
    else:
        fit = fit_t(x_sorted)
        params = {"df": fit.df, "loc": fit.loc, "scale": fit.scale}
        extra = {"df_at_bound": fit.at_bound, "converged": fit.converged}
        loc, scale, loglik, df = fit.loc, fit.scale, fit.loglik, fit.df
    return params, loglik, ks_statistic_monotone(x_sorted, _fitted_cdf(law, loc, scale, df)), extra


def _bootstrap_draws(law: str, params: dict[str, np.ndarray], rows: int, m: int, n_bootstrap: int,
                     rng: np.random.Generator):
    """Yield ``(rows slice, draws (k, n_bootstrap, m))`` block by block: the samples drawn from the fitted
    laws of one chunk of ``rows`` samples, in the order ``rng`` draws them (loc 0, scale 1)."""
    per_block = max(1, _CHUNK_VALUES // (n_bootstrap * m))
    for start in range(0, rows, per_block):
        sl = slice(start, min(rows, start + per_block))
        k = sl.stop - sl.start
        if law == "norm":
            yield sl, rng.standard_normal((k, n_bootstrap, m))
        else:
            yield sl, rng.standard_t(params["df"][sl, None, None], size=(k, n_bootstrap, m))


def _bootstrap_pvalues(law: str, stat: np.ndarray, params: dict[str, np.ndarray], m: int,
                       n_bootstrap: int, rng: np.random.Generator) -> np.ndarray:
    """Parametric-bootstrap p-values (n,) for one chunk of samples (see the module docstring)."""
    rows = stat.shape[0]
    counts = np.zeros(rows, dtype=np.int64)
    for sl, draws in _bootstrap_draws(law, params, rows, m, n_bootstrap, rng):
        k = sl.stop - sl.start
        draws = np.sort(draws.reshape(k * n_bootstrap, m), axis=1)
        _, _, boot_stat, _ = _fit_and_stat(law, draws)
        counts[sl] = (boot_stat.reshape(k, n_bootstrap) >= stat[sl, None]).sum(axis=1)
    return (1.0 + counts) / (n_bootstrap + 1.0)


def _fit_chunk(x: np.ndarray, m: int) -> dict[str, tuple]:
    """Both laws fitted to the rows of one chunk: law -> (params, loglik, KS statistic, diagnostics)."""
    x_sorted = np.sort(x.astype(np.float64), axis=1)
    scales = value_scales(x_sorted)
    fits = {}
    for law in LAWS:
        params, loglik, stat, extra = _fit_and_stat(law, x_sorted / scales[:, None])
        params, loglik = _unscale(params, loglik, scales, m)
        fits[law] = (params, loglik, stat, extra)
    return fits


def _fit_chunks(x: np.ndarray, rows: int, bootstrap: bool, n_bootstrap: int, seed: int,
                quiet: bool) -> list[dict[str, tuple]]:
    """The fits of every chunk of ``rows`` samples (law -> params, loglik, stat, diagnostics, bootstrap
    p-values or None), in order. Under a process group each rank fits a contiguous run of chunks and
    the fits are gathered; the bootstrap draws come from one generator in chunk order (norm, then t),
    so a rank first replays the draws of the chunks before its own (drawing, not fitting: the t draws
    need the gathered df) and every sample gets the draws it gets in one process."""
    n, m = x.shape
    group = distributed.current()
    starts = list(range(0, n, rows))
    mine = distributed.share(len(starts), group)
    hide = distributed.quiet_here(quiet, group)

    def fit_mine() -> dict[int, dict[str, tuple]]:
        return {c: _fit_chunk(x[starts[c]:starts[c] + rows], m)
                for c in tqdm(mine, desc="distfit", disable=hide, unit="chunk")}

    fitted: dict[int, dict[str, tuple]] = {}
    for part in distributed.gather_objects(group, distributed.synchronised(group, fit_mine)):
        fitted.update(part)
    if not bootstrap:
        return [{law: (*fitted[c][law], None) for law in LAWS} for c in range(len(starts))]
    rng = np.random.default_rng(seed)

    def bootstrap_mine() -> dict[int, dict[str, np.ndarray]]:
        for c in range(mine.start):  # replay the draws of the chunks before this rank's
            for law in LAWS:
                for _ in _bootstrap_draws(law, fitted[c][law][0], len(fitted[c][law][2]), m, n_bootstrap, rng):
                    pass
        return {c: {law: _bootstrap_pvalues(law, fitted[c][law][2], fitted[c][law][0], m, n_bootstrap, rng)
                    for law in LAWS} for c in tqdm(mine, desc="bootstrap", disable=hide, unit="chunk")}

    pvalues: dict[int, dict[str, np.ndarray]] = {}
    for part in distributed.gather_objects(group, distributed.synchronised(group, bootstrap_mine)):
        pvalues.update(part)
    return [{law: (*fitted[c][law], pvalues[c][law]) for law in LAWS} for c in range(len(starts))]


def _check_fit_inputs(x: np.ndarray, alpha: float, pvalues: str, n_bootstrap: int) -> None:
    """Refuse samples no law can be fitted to (fewer than 3 values, NaN or inf, constant rows) and bad settings."""
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 3:
        raise DataError(f"distribution fits need samples as an (N, M) array with M >= 3 values, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise DataError("the samples contain NaN or infinite values")
    constant = np.flatnonzero(x.max(axis=1) == x.min(axis=1))
    if constant.size:
        raise DataError(f"{constant.size} sample(s) are constant (all values equal; first: sample {constant[0]}): "
                        f"no law can be fitted to them")
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"alpha must be in (0, 1), got {alpha}")
    if pvalues not in PVALUE_METHODS:
        raise ConfigError(f"unknown p-value method {pvalues!r}; choose one of {', '.join(PVALUE_METHODS)}")
    if pvalues == "parametric-bootstrap" and n_bootstrap < 1:
        raise ConfigError(f"the number of bootstrap draws must be >= 1, got {n_bootstrap}")


def fit_samples(x: np.ndarray, *, alpha: float = 0.05, pvalues: str = "asymptotic", n_bootstrap: int = 100,
                seed: int = 0, ids: Sequence | None = None, labels: Sequence | None = None,
                settings: dict[str, Any] | None = None, quiet: bool = True) -> DistFitResult:
    """Fit a Normal and a Student-t to every row of ``x`` (N, M) and KS-test each fit (IPOL sec. 5, Fig. 7).

    Both laws are fitted by maximum likelihood to every row at once (the Student-t by the damped Newton
    method of :mod:`maelens.analysis.tfit`), each row rescaled first so that any magnitude fits; the KS
    statistic of each fit is exact and its p-value, asymptotic or bootstrapped, tests that law.

    Args:
        x: N samples of M >= 3 finite values each (e.g. one image's encoder outputs per row).
        alpha: the KS test's level; a law is rejected for a sample when its p-value is below it.
        pvalues: ``asymptotic`` (Kolmogorov's distribution of the statistic, as the paper's test;
            optimistic because the parameters are fitted to the same values) or ``parametric-bootstrap``
            (``n_bootstrap`` samples drawn from each fit and refitted: calibrated, ``n_bootstrap`` times slower).
        n_bootstrap: bootstrap draws per sample and law, with ``pvalues="parametric-bootstrap"``.
        seed: seeds the bootstrap draws.
        ids: one identifier per row (default: the row numbers), kept in the result and its CSV.
        labels: one class label per row (default: -1), kept likewise.
        settings: what produced ``x`` (model, layer, pooling...), stored with the result.
        quiet: no progress bar.

    Returns:
        A :class:`DistFitResult`: per law the fitted parameters, log-likelihood, KS statistic and p-value of
        every sample; ``summary()`` gives the shares of samples whose fit is not rejected (the paper's numbers).
        Under a ``torch.distributed`` process group (every rank passing the same ``x``) each rank fits a
        share of the chunks of samples and every rank gets all fits, equal to one process's
        (:mod:`~maelens.analysis.distributed`).
    """
    x = np.asarray(x)
    _check_fit_inputs(x, alpha, pvalues, n_bootstrap)
    bootstrap = pvalues == "parametric-bootstrap"
    n, m = x.shape
    # With the bootstrap each row costs B refits: smaller chunks keep memory and progress steady.
    rows = max(1, _CHUNK_VALUES // (m * (n_bootstrap if bootstrap else 1)))
    chunks_fitted = _fit_chunks(x, rows, bootstrap, n_bootstrap, seed, quiet)
    parts: dict[str, list] = {law: [chunk[law] for chunk in chunks_fitted] for law in LAWS}
    fits = {}
    for law, chunks in parts.items():
        params = {k: np.concatenate([c[0][k] for c in chunks]) for k in chunks[0][0]}
        extra = {k: np.concatenate([c[3][k] for c in chunks]) for k in chunks[0][3]}
        stat = np.concatenate([c[2] for c in chunks])
        pvalue = np.concatenate([c[4] for c in chunks]) if bootstrap else ks_pvalue(stat, m)
        fits[law] = LawFit(law=law, params=params, loglik=np.concatenate([c[1] for c in chunks]),
                           stat=stat, pvalue=pvalue, extra=extra)
        _check_representable(law, fits[law], x)
    ids_arr = np.asarray(ids).astype(str) if ids is not None else np.arange(n).astype(str)
    labels_arr = np.asarray(labels, dtype=np.int64) if labels is not None else np.full(n, -1, np.int64)
    return DistFitResult(fits=fits, n_values=m, alpha=alpha, pvalue_method=pvalues,
                         n_bootstrap=n_bootstrap if bootstrap else None, ids=ids_arr, labels=labels_arr,
                         settings=dict(settings or {}))


def _check_representable(law: str, fit: LawFit, x: np.ndarray) -> None:
    """Refuse fits whose parameters overflow float64 (values near the largest float, 1.8e308) rather
    than report conclusions drawn from infinities."""
    finite = np.isfinite(fit.loglik) & np.all([np.isfinite(v) for v in fit.params.values()], axis=0)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise DataError(f"{bad.size} of {len(finite)} samples have values too large for a {law} fit in float64 "
                        f"(first: sample {bad[0]}, largest |value| {np.abs(x[bad[0]]).max():.3g}): divide the "
                        f"values by a constant first")


# ----------------------------------------------------------------------------- samples

def as_samples(features: np.ndarray, token_index: int | None = None) -> np.ndarray:
    """(N, ...) features -> (N, M) samples; with ``token_index``, (N, K, D) tokens -> (N, D) of that token."""
    features = np.asarray(features)
    if features.ndim < 2:
        raise DataError(f"features must have one row per sample, got shape {features.shape}")
    if token_index is None:
        return features.reshape(features.shape[0], -1)
    if features.ndim != 3:
        raise ConfigError(f"token_index needs per-token features (N, K, D), got shape {features.shape}")
    if not -features.shape[1] <= token_index < features.shape[1]:
        raise ConfigError(f"token_index {token_index} is out of range: the samples have {features.shape[1]} tokens")
    return features[:, token_index, :]


def encoder_samples(model: Any, dataset: Any, *, features: str = "tokens", token_index: int | None = None,
                    apply_norm: bool = True, mask_ratio: float = 0.75, masking: str = "random",
                    batch_size: int = 64, seed: int = 0, device: str = "cpu", num_workers: int = 0,
                    quiet: bool = False) -> "Any":
    """One sample per image from the encoder output (IPOL sec. 5): its visible patch tokens x dim
    flattened (``tokens``), one of them (``token_index``, in the encoder's token order: the patch
    order when nothing is masked, the mask's order otherwise), the ``cls`` or the ``mean`` token."""
    from .features import FeatureSet, extract_features

    if features not in DISTFIT_FEATURES:
        raise ConfigError(f"unknown features {features!r}; choose one of {', '.join(DISTFIT_FEATURES)}")
    if token_index is not None and features != "tokens":
        raise ConfigError("token_index picks one visible patch token: use it with features='tokens'")
    fs = extract_features(model, dataset, mask_ratio=mask_ratio, masking=masking, pool=features,
                          apply_norm=apply_norm, batch_size=batch_size, seed=seed, device=device,
                          num_workers=num_workers, quiet=quiet)
    settings = {**fs.settings, "features": features, "token_index": token_index}
    return FeatureSet(features=as_samples(fs.features, token_index), labels=fs.labels, ids=fs.ids, settings=settings)


def load_samples(path: str | Path, token_index: int | None = None) -> "Any":
    """Samples from saved features: a ``.npy`` array (N, F) (or (N, K, D)), or a ``.npz`` with a
    ``features`` array (a :class:`~maelens.analysis.features.FeatureSet` file or any such npz)."""
    from .features import FeatureSet, check_feature_rows

    path = Path(path)
    path = check_input(path, "feature file", directory=False)
    if path.suffix == ".npz":
        with np.errstate(over="ignore", under="ignore"):  # FeatureSet keeps float32; wider values are restored below
            fs = FeatureSet.load(path)
        wide = _beyond_float32(path)
        if wide is not None:
            fs = FeatureSet(features=wide, labels=fs.labels, ids=fs.ids, settings=fs.settings)
    elif path.suffix == ".npy":
        try:
            feats = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as err:
            raise DataError(f"{path}: not a readable .npy array ({err})") from err
        if feats.ndim < 2 or not np.issubdtype(feats.dtype, np.number):
            raise DataError(f"{path}: expected a numeric (N, F) array, got {feats.dtype} of shape {feats.shape}")
        check_feature_rows(feats, path)
        n = feats.shape[0]
        fs = FeatureSet(features=feats, labels=np.full(n, -1, np.int64), ids=np.arange(n).astype(str), settings={})
    else:
        raise DataError(f"{path}: expected a .npy or .npz feature file")
    settings = {**fs.settings, "features_file": str(path), "token_index": token_index}
    return FeatureSet(features=as_samples(fs.features, token_index), labels=fs.labels, ids=fs.ids, settings=settings)


def _beyond_float32(path: Path) -> np.ndarray | None:
    """The float64 ``features`` of an ``.npz`` when casting them to float32 (as FeatureSet does) would
    turn values into inf or 0 (beyond about 3e38 or below 1e-38 in magnitude), else None: the fits run
    in float64 and would otherwise report such values as infinite."""
    with np.load(path, allow_pickle=False) as data:
        feats = data["features"]
    if feats.dtype != np.float64 or feats.size == 0:
        return None
    magnitude = np.abs(feats[feats != 0])
    f32 = np.finfo(np.float32)
    if magnitude.size and (magnitude.max() > f32.max or magnitude.min() < f32.tiny):
        return feats
    return None


# ----------------------------------------------------------------------------- ranking (Table 2)

def check_laws(names: Sequence[str] | str) -> tuple[str, ...]:
    """Validate law names (a sequence or a comma-separated string) against scipy.stats continuous laws."""
    if isinstance(names, str):
        names = [part.strip() for part in names.split(",") if part.strip()]
    names = tuple(names)
    bad = [name for name in names if not isinstance(getattr(stats, name, None), stats.rv_continuous)]
    if bad:
        raise ConfigError(f"unknown distribution name(s) {', '.join(repr(b) for b in bad)}: expected scipy.stats "
                          f"continuous distributions such as {', '.join(DEFAULT_RANK_LAWS)}")
    if not names:
        raise ConfigError(f"no distribution names given: expected e.g. {','.join(DEFAULT_RANK_LAWS)}")
    return names


def fit_law(law: str, values: np.ndarray) -> tuple[float, ...]:
    """scipy-ordered parameters of ``law`` fitted to 1-D ``values`` by MLE (vectorised fits for t and
    norm, ``scipy.stats.<law>.fit`` otherwise)."""
    if law == "t":
        fit = fit_t(values[None, :])
        return float(fit.df[0]), float(fit.loc[0]), float(fit.scale[0])
    if law == "norm":
        return float(values.mean()), float(values.std())
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return tuple(float(p) for p in getattr(stats, law).fit(values))


#: The column of :attr:`RankingResult.table` that orders the laws over several samples.
RANK_STATISTIC = "sse_median"


@dataclass
class RankingResult:
    """Laws ranked by the sum of squared errors between a sample's normalised histogram (``bins``
    bins) and the fitted density (IPOL Table 2). ``table``: one row per law (mean / median SSE over
    the samples, how often the law ranks first), ordered by the median SSE (:data:`RANK_STATISTIC`);
    ``per_sample``: one row per (sample, law);
    ``example_values`` / ``example_params`` / ``example_sse``: the first sample, its fits and
    their SSE, for Fig. 8. A sample of extreme magnitude is ranked divided by its ``value_scale``
    (per-sample column; a power of two, 1 unless its largest ``|value|`` is beyond 2^±128, see
    :func:`value_scales`): the ranking is unchanged by scaling, and its parameters, SSE and the
    example are those of the scaled values (``example_scale``)."""

    table: "Any"
    per_sample: "Any"
    bins: int
    example_values: np.ndarray
    example_params: dict[str, tuple[float, ...]]
    example_sse: dict[str, float]
    example_scale: float = 1.0


def density_sse(values: np.ndarray, law: str, params: Sequence[float], bins: int) -> float:
    """Sum over ``bins`` histogram bins of (density histogram - fitted pdf at the bin centre)^2."""
    density, edges = np.histogram(values, bins=bins, density=True)
    centres = 0.5 * (edges[:-1] + edges[1:])
    with np.errstate(all="ignore"):
        pdf = getattr(stats, law).pdf(centres, *params)
    return float(np.sum((density - pdf) ** 2)) if np.isfinite(pdf).all() else float("nan")


def rank_distributions(x: np.ndarray, laws: Sequence[str] | str = DEFAULT_RANK_LAWS, *, bins: int = 100,
                       quiet: bool = True) -> RankingResult:
    """Fit each law to each sample of ``x`` ((M,) or (N, M)) and rank the laws by histogram SSE.

    The paper does not state its bin count; 100 is the default of the ``fitter`` package whose
    sum-of-squared-errors criterion Table 2 reports. Failed fits get SSE NaN and rank last.
    Table 2 ranks the laws on one sample; over several samples the table is ordered by
    :data:`RANK_STATISTIC`, the median SSE over the samples (one diverging fit cannot reorder the
    laws, as it can the mean, which the table also lists as ``sse_mean``). Under a ``torch.distributed``
    process group (every rank passing the same ``x``) each rank fits a share of the samples and every
    rank gets the whole result (:mod:`~maelens.analysis.distributed`).
    """
    import pandas as pd

    laws = check_laws(laws)
    if bins < 2:
        raise ConfigError(f"the number of histogram bins must be >= 2, got {bins}")
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    if x.shape[1] < 3:
        raise DataError(f"ranking needs samples with at least 3 values, got shape {x.shape}")
    scales = value_scales(x)
    values = x / scales[:, None]
    group = distributed.current()

    def rank_mine() -> list[dict[str, Any]]:
        """One row per (sample, law) of this rank's share of the samples (all of them in one process)."""
        rows = []
        for i in tqdm(distributed.share(x.shape[0], group), desc="rank laws",
                      disable=distributed.quiet_here(quiet, group), unit="sample"):
            for law in laws:
                try:
                    params = fit_law(law, values[i])
                    sse = density_sse(values[i], law, params, bins)
                except (ValueError, RuntimeError, FloatingPointError, stats.FitError):
                    params, sse = (), float("nan")
                rows.append({"sample": i, "law": law, "sse": sse, "params": list(params), "value_scale": scales[i]})
        return rows

    rows = [row for part in distributed.gather_objects(group, distributed.synchronised(group, rank_mine))
            for row in part]
    example = {row["law"]: tuple(row["params"]) for row in rows if row["sample"] == 0 and row["params"]}
    example_sse = {row["law"]: row["sse"] for row in rows if row["sample"] == 0 and row["params"]}
    per_sample = pd.DataFrame(rows)
    per_sample["rank"] = per_sample.groupby("sample")["sse"].rank(method="min", na_option="bottom").astype(int)
    grouped = per_sample.groupby("law", sort=False)
    table = pd.DataFrame({
        "law": list(laws),
        "sse_mean": grouped["sse"].mean().reindex(laws).to_numpy(),
        "sse_median": grouped["sse"].median().reindex(laws).to_numpy(),
        "first": grouped["rank"].apply(lambda r: int((r == 1).sum())).reindex(laws).to_numpy(),
        "failed_fits": grouped["sse"].apply(lambda s: int(s.isna().sum())).reindex(laws).to_numpy(),
    })
    table = table.sort_values([RANK_STATISTIC, "law"], na_position="last").reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return RankingResult(table=table, per_sample=per_sample, bins=bins, example_values=values[0].copy(),
                         example_params=example, example_sse=example_sse, example_scale=float(scales[0]))
