"""``maelens attention-stats`` on a CAE checkpoint: IPOL's decoder metrics on the CAE regressor's cross-attention
(:mod:`maelens.analysis.cae_attention`); ``--encoder`` keeps reporting the encoder's distance and entropy."""

from __future__ import annotations

import argparse


def run_regressor_stats(args: argparse.Namespace, model, model_settings: dict, dataset) -> int:
    """Write regressor_stats.csv, .json and .txt to ``--out`` (one row per regressor layer) and print the table."""
    from ..analysis.cae_attention import regressor_attention_stats
    from .attention import write_report

    report = regressor_attention_stats(model, dataset, masking=args.mask, mask_ratio=args.mask_ratio,
                                       top_n=args.top_n, include_self=args.include_self, all_images=args.all_images,
                                       batch_size=args.batch_size, seed=args.seed, device=args.device,
                                       num_workers=args.num_workers, quiet=args.quiet)
    doc = {**model_settings, "data": args.data, "split": args.split, **report.to_dict()}
    text = report.to_frame().to_string(index=False, float_format=lambda v: f"{v:.4g}")
    return write_report(args, doc, {"regressor_stats.csv": report.to_frame()}, "regressor_stats", text,
                        f"wrote {args.out}/regressor_stats.csv, regressor_stats.json (a CAE: IPOL's metrics on its "
                        "regressor's cross-attention; positional bias and influence maps are not carried over)")


__all__ = ["run_regressor_stats"]
