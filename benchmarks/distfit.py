"""Vectorised per-sample Normal + Student-t fits and KS tests (``maelens.analysis.distfit``) against
the scipy loop (``norm.fit``, ``t.fit``, ``kstest`` per sample): time, speed ratio and agreement.

    .venv/bin/python benchmarks/distfit.py [--samples 2000] [--values 1000] [--scipy-samples 200]

The scipy loop runs on the first ``--scipy-samples`` samples and its time is extrapolated to all of
them (said in the output when it is). Samples mix Student-t laws (df log-uniform in [1.5, 60]) and
Gaussians, with random location and scale.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np
from scipy import stats

from maelens.analysis.distfit import fit_samples


def make_samples(n: int, m: int, seed: int) -> np.ndarray:
    """(n, m): 3/4 Student-t rows with log-uniform df in [1.5, 60], 1/4 Gaussian rows; random loc/scale."""
    rng = np.random.default_rng(seed)
    df = np.exp(rng.uniform(np.log(1.5), np.log(60.0), n))
    x = rng.standard_t(df[:, None], (n, m))
    gaussian = rng.random(n) < 0.25
    x[gaussian] = rng.standard_normal((int(gaussian.sum()), m))
    return x * rng.uniform(0.2, 5.0, (n, 1)) + rng.uniform(-3.0, 3.0, (n, 1))


def scipy_loop(x: np.ndarray) -> dict[str, np.ndarray]:
    """Per-sample scipy reference: parameters, KS statistics and p-values (exact, as kstest's default)."""
    out = {k: np.empty(len(x)) for k in ("norm_p", "t_p", "norm_ks", "t_ks", "df", "loc", "scale", "t_loglik")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, row in enumerate(x):
            loc, scale = stats.norm.fit(row)
            res = stats.kstest(row, "norm", args=(loc, scale))
            out["norm_ks"][i], out["norm_p"][i] = res.statistic, res.pvalue
            df, tloc, tscale = stats.t.fit(row)
            res = stats.kstest(row, "t", args=(df, tloc, tscale))
            out["t_ks"][i], out["t_p"][i] = res.statistic, res.pvalue
            out["df"][i], out["loc"][i], out["scale"][i] = df, tloc, tscale
            out["t_loglik"][i] = stats.t.logpdf(row, df, tloc, tscale).sum()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--values", type=int, default=1000)
    parser.add_argument("--scipy-samples", type=int, default=200, help="samples run through the scipy loop")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()

    x = make_samples(args.samples, args.values, args.seed)
    times = []
    for _ in range(2):
        start = time.perf_counter()
        result = fit_samples(x, alpha=args.alpha)
        times.append(time.perf_counter() - start)
    vec_time = min(times)

    k = min(args.scipy_samples, args.samples)
    start = time.perf_counter()
    ref = scipy_loop(x[:k])
    scipy_time = (time.perf_counter() - start) * args.samples / k

    norm, t = result.fits["norm"], result.fits["t"]
    same = {law: float(np.mean((fit.pvalue[:k] < args.alpha) == (ref[f"{law}_p"] < args.alpha)))
            for law, fit in (("norm", norm), ("t", t))}
    interior = ~t.extra["df_at_bound"][:k] & (ref["df"] < 1e3)
    rel = lambda a, b: np.abs(a - b) / np.abs(b)  # noqa: E731
    report = {
        "samples": args.samples, "values": args.values, "scipy_samples": k, "extrapolated": k < args.samples,
        "vectorised_s": vec_time, "scipy_loop_s": scipy_time, "speedup": scipy_time / vec_time,
        "same_decision_norm": same["norm"], "same_decision_t": same["t"],
        "t_loglik_minus_scipy_min": float(np.min(t.loglik[:k] - ref["t_loglik"])),
        "t_loglik_minus_scipy_median": float(np.median(t.loglik[:k] - ref["t_loglik"])),
        "df_rel_diff_median_interior": float(np.median(rel(t.params["df"][:k][interior], ref["df"][interior]))),
        "scale_rel_diff_median": float(np.median(rel(t.params["scale"][:k], ref["scale"]))),
        "norm_pvalue_max_abs_diff": float(np.max(np.abs(norm.pvalue[:k] - ref["norm_p"]))),
        "t_ks_max_abs_diff": float(np.max(np.abs(t.stat[:k] - ref["t_ks"]))),
        "fraction_df_at_bound": float(np.mean(t.extra["df_at_bound"])),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    note = f" (timed on {k} samples, extrapolated)" if report["extrapolated"] else ""
    print(f"{args.samples} samples x {args.values} values, Normal + Student-t fits and KS tests")
    print(f"  vectorised : {vec_time:8.2f} s")
    print(f"  scipy loop : {scipy_time:8.2f} s{note}")
    print(f"  speed-up   : {report['speedup']:8.1f} x")
    print(f"  same accept/reject decision at alpha={args.alpha:g} on the {k} scipy samples: "
          f"Normal {same['norm']:.1%}, Student-t {same['t']:.1%}")
    print(f"  t log-likelihood, vectorised minus scipy: min {report['t_loglik_minus_scipy_min']:.3g}, "
          f"median {report['t_loglik_minus_scipy_median']:.3g} (> 0: the vectorised fit is the better optimum)")
    print(f"  median relative difference: df {report['df_rel_diff_median_interior']:.2g} (df < 1000), "
          f"scale {report['scale_rel_diff_median']:.2g}; Normal p-value max |diff| {report['norm_pvalue_max_abs_diff']:.2g}")


if __name__ == "__main__":
    main()
