"""``maelens distfit``: Gaussian vs Student-t KS tests on encoder outputs, saved features or the
synthetic attention experiment, and the ranking of candidate laws (IPOL sec. 5, Figs. 5-8, Table 2)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..choices import ATTENTION_SCALES, DISTFIT_FEATURES, INPUT_LAWS, PVALUE_METHODS, WEIGHT_INITS
from ..errors import ConfigError
from . import launch
from .common import (
    add_checkpoint_arg,
    add_data_args,
    add_mask_args,
    add_overwrite_arg,
    add_run_args,
    load_checkpoint_from_args,
    positive_float,
    positive_int,
)

_RANK_LAWS = "t,cauchy,lognorm,beta,norm"


def register(subparsers) -> None:
    """Add the ``distfit`` command."""
    p = subparsers.add_parser(
        "distfit", help="Gaussian vs Student-t KS tests on embeddings; law ranking (IPOL sec. 5)",
        description="Fit a Normal and a Student-t (MLE, per sample) to each image's encoder output, to saved "
                    "features, or to the outputs of a random self-attention layer (--synthetic), KS-test each fit "
                    "and rank candidate laws by histogram SSE. Writes distfit.csv (one row per sample), "
                    "distfit.json (fractions not rejected with Wilson 95%% CIs), ranking.csv and figures to --out.")
    source = p.add_mutually_exclusive_group(required=True)
    add_checkpoint_arg(source, required=False, options=p)
    source.add_argument("--synthetic", action="store_true",
                        help="the synthetic attention experiment (IPOL Figs. 5-6) instead of a model")
    source.add_argument("--features-file", type=Path, metavar="PATH",
                        help="saved features: .npy (N, F) array, or .npz with a 'features' array (e.g. from extract_features)")
    add_data_args(p)
    add_mask_args(p)
    p.add_argument("--features", default="tokens", choices=DISTFIT_FEATURES,
                   help="one sample per image: all visible patch tokens flattened, the CLS token or the mean token "
                        "(default: %(default)s)")
    p.add_argument("--token-index", type=int, default=None, metavar="I",
                   help="use only visible token I (encoder order; patch order when nothing is masked)")
    p.add_argument("--no-norm", action="store_true", help="take the encoder output before its final LayerNorm")
    p.add_argument("--alpha", type=float, default=0.05, help="KS test level (default: %(default)s)")
    p.add_argument("--pvalues", default="asymptotic", choices=PVALUE_METHODS,
                   help="asymptotic: exact KS law with fitted parameters taken as known (conservative); "
                        "parametric-bootstrap: calibrated by refitting draws from each fitted law (default: %(default)s)")
    p.add_argument("--bootstrap", type=int, default=100, metavar="B",
                   help="bootstrap draws per sample; cost grows as B x samples x values (default: %(default)s)")
    p.add_argument("--rank-laws", default=_RANK_LAWS, metavar="LAWS",
                   help="comma-separated scipy.stats continuous laws to rank (default: %(default)s)")
    p.add_argument("--rank-samples", type=int, default=10, metavar="K",
                   help="random samples used for the ranking, 0 to skip it (default: %(default)s)")
    p.add_argument("--bins", type=int, default=100, help="histogram bins of the ranking SSE (default: %(default)s)")
    syn = p.add_argument_group("synthetic attention experiment (--synthetic)")
    syn.add_argument("--tokens", type=positive_int, default=4, help="tokens per sample (default: %(default)s)")
    syn.add_argument("--dim", type=positive_int, default=160, help="input dimension (default: %(default)s; Fig. 5 uses 16000)")
    syn.add_argument("--head-dim", type=positive_int, default=None, help="attention head dimension (default: --dim)")
    syn.add_argument("--samples", type=positive_int, default=1000, help="number of samples (default: %(default)s)")
    syn.add_argument("--input", default="chi2", choices=INPUT_LAWS,
                     help="law of the i.i.d. inputs (default: %(default)s)")
    syn.add_argument("--input-df", type=positive_float, default=1.0, help="degrees of freedom of the chi2 input (default: %(default)s)")
    syn.add_argument("--init", default="uniform", choices=WEIGHT_INITS,
                     help="weight initialisation; uniform = U(-1/sqrt(d), 1/sqrt(d)) (default: %(default)s)")
    syn.add_argument("--attention-scale", default="tokens", choices=ATTENTION_SCALES,
                     help="divide the logits by sqrt(tokens) as the paper writes, or by sqrt(head dim) (default: %(default)s)")
    add_run_args(p)
    add_overwrite_arg(p)
    p.set_defaults(func=run)


def _check_args(args: argparse.Namespace) -> tuple[str, ...]:
    from ..analysis.distfit import check_laws

    try:
        laws = check_laws(args.rank_laws)
    except ConfigError as err:
        raise ConfigError(f"--rank-laws: {err}") from None
    for name, value, low in (("--bootstrap", args.bootstrap, 1), ("--rank-samples", args.rank_samples, 0),
                             ("--bins", args.bins, 2)):
        if value < low:
            raise ConfigError(f"{name} must be >= {low}, got {value}")
    if not 0.0 < args.alpha < 1.0:
        raise ConfigError(f"--alpha must be in (0, 1), got {args.alpha}")
    if args.token_index is not None and args.ckpt and args.features != "tokens":
        raise ConfigError("--token-index picks one visible patch token: use it with --features tokens")
    return laws


def _load(args: argparse.Namespace) -> tuple[Any, Any, Any, dict[str, Any]] | tuple[Any, Any]:
    """What the samples come from: the samples themselves (``_samples``'s tuple) for ``--synthetic`` and
    ``--features-file``, or the loaded checkpoint and its dataset, whose features ``_samples`` extracts."""
    from ..analysis import distfit

    if args.synthetic:
        from ..analysis.synthetic import synthetic_attention_samples

        options = {"samples": args.samples, "tokens": args.tokens, "dim": args.dim, "head_dim": args.head_dim or args.dim,
                   "input": args.input, "input_df": args.input_df, "init": args.init, "scale": args.attention_scale,
                   "seed": args.seed}
        x = synthetic_attention_samples(**options)
        return x, None, None, {"source": "synthetic attention", **options}
    if args.features_file is not None:
        fs = distfit.load_samples(args.features_file, args.token_index)
        return fs.features, fs.ids, fs.labels, {"source": "features file", **fs.settings}
    from ..data import load_dataset

    loaded = load_checkpoint_from_args(args)
    cfg = loaded.model.config
    return loaded, load_dataset(args.data, image_size=cfg.img_size, split=args.split, limit=args.num_images,
                                seed=args.seed, mean=cfg.norm_mean, std=cfg.norm_std, quiet=args.quiet)


def _samples(args: argparse.Namespace, source: tuple) -> tuple[Any, Any, Any, dict[str, Any]]:
    """(N, M) samples, ids, labels and the settings describing where they came from (``source``: what
    :func:`_load` returned)."""
    import numpy as np

    from ..analysis import distfit

    if len(source) == 4:
        return source  # type: ignore[return-value]
    loaded, dataset = source
    model = loaded.model
    fs = distfit.encoder_samples(model, dataset, features=args.features, token_index=args.token_index,
                                 apply_norm=not args.no_norm, mask_ratio=args.mask_ratio, masking=args.mask,
                                 batch_size=args.batch_size, seed=args.seed, device=args.device,
                                 num_workers=args.num_workers, quiet=args.quiet)
    settings = {"source": "checkpoint", **loaded.settings(), "data": args.data, "split": args.split,
                "num_images": len(fs), **fs.settings}
    return np.asarray(fs.features), fs.ids, fs.labels, settings


def _table(summary: dict[str, Any], ranking_table: Any | None) -> str:
    lines = [f"{summary['num_samples']} samples x {summary['values_per_sample']} values; "
             f"p-values: {summary['pvalue_method']}",
             f"{'law':<6} {'not rejected at ' + format(summary['alpha'], 'g'):>24}  95% CI"]
    for law, info in summary["laws"].items():
        lo, hi = info["ci95"]
        count = f"{info['not_rejected']}/{summary['num_samples']} ({info['fraction_not_rejected']:.1%})"
        lines.append(f"{law:<6} {count:>24}  [{lo:.1%}, {hi:.1%}]")
    df = summary["laws"]["t"]["df"]
    lines.append(f"Student-t df: median {df['median']:.3g} (IQR {df['q25']:.3g}-{df['q75']:.3g}), "
                 f"{df['fraction_at_upper_bound']:.1%} at the bound {df['bounds'][1]:g}")
    if ranking_table is not None:
        lines.append("law ranking by median histogram SSE over the ranked samples:")
        lines.append(ranking_table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..analysis.distfit import fit_samples, rank_distributions
    from ..io import output_folder, save_figure, to_json, write_csv, write_json, write_text
    from ..plots.distfit import plot_df_distribution, plot_pvalue_ecdf, plot_ranking

    laws, source = launch.prepare(args, "dir", lambda: (_check_args(args), _load(args)))
    x, ids, labels, settings = _samples(args, source)
    result = fit_samples(x, alpha=args.alpha, pvalues=args.pvalues, n_bootstrap=args.bootstrap, seed=args.seed,
                         ids=ids, labels=labels, settings=settings, quiet=args.quiet)
    ranking = chosen = None
    if args.rank_samples > 0:
        chosen = np.random.default_rng(args.seed).permutation(len(result))[:args.rank_samples]
        ranking = rank_distributions(x[chosen], laws, bins=args.bins, quiet=args.quiet)
    if not launch.is_main():  # rank 0 writes and prints
        return 0
    result.settings["world_size"] = launch.world_size()
    out: Path = args.out
    files = ["distfit.csv", "distfit.json", "pvalues_ecdf.png", "df_hist.png"]
    doc = result.summary()
    ranking_table = None
    with output_folder(out, args.overwrite, command="maelens distfit") as staging:
        write_csv(staging / "distfit.csv", result.to_frame())
        save_figure(plot_pvalue_ecdf(result), staging / "pvalues_ecdf.png")
        save_figure(plot_df_distribution(result), staging / "df_hist.png")
        if ranking is not None:
            ranking.per_sample["sample"] = chosen[ranking.per_sample["sample"].to_numpy()]
            ranking.per_sample.insert(1, "id", result.ids[ranking.per_sample["sample"].to_numpy()])
            ranking_table = ranking.table
            write_csv(staging / "ranking.csv", ranking.table)
            write_csv(staging / "ranking_samples.csv", ranking.per_sample)
            scaled = f", divided by {ranking.example_scale:.3g}" if ranking.example_scale != 1 else ""
            title = f"sample {chosen[0]} ({x.shape[1]} values{scaled}, {args.bins} bins)"
            save_figure(plot_ranking(ranking, title=title), staging / "ranking.png")
            files += ["ranking.csv", "ranking_samples.csv", "ranking.png"]
            doc["ranking"] = {"bins": args.bins,
                              "criterion": "sum of squared errors, normalised histogram vs fitted pdf",
                              "ordered_by": "median SSE over the samples (sse_median)",
                              "samples": chosen.tolist(), "table": ranking.table.to_dict(orient="records")}
        text = _table(doc, ranking_table)
        write_text(staging / "distfit.txt", text + "\n")
        doc["files"] = files + ["distfit.txt"]
        write_json(staging / "distfit.json", doc)
    if args.json:
        print(to_json(doc))
    elif not args.quiet:
        print(text)
        print(f"wrote {', '.join(doc['files'])} to {out}", file=sys.stderr)
    return 0
