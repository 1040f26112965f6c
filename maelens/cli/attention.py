"""``maelens attention-stats`` (IPOL sec. 5 decoder attention metrics over a dataset, Fig. 10) and
``maelens influence-map`` (Fig. 9 for one image)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..choices import SPLITS
from ..errors import ConfigError
from . import launch
from .common import (
    DEVICE_HELP,
    add_checkpoint_arg,
    add_data_args,
    add_mask_args,
    add_overwrite_arg,
    add_run_args,
    load_checkpoint_from_args,
    non_negative_int,
    preflight,
    seed_int,
)


def register(subparsers) -> None:
    """Add the ``attention-stats`` and ``influence-map`` commands."""
    stats = subparsers.add_parser(
        "attention-stats", help="decoder attention consistency, locality, black patches, positional bias (IPOL sec. 5)",
        description="Stream a dataset through the MAE, record every decoder layer's attention and report "
                    "consistency, locality, black proportion and positional bias (IPOL sec. 5, Fig. 10), plus "
                    "mean attention distance and entropy per head. The paper leaves the black proportion's "
                    "denominator open: black_fraction divides by the non-important patches (the curve drawn), "
                    "black_fraction_of_all by all patches. Writes attention_stats.csv (one row per layer), "
                    "attention_stats.json, attention_heads.csv and figures to --out.")
    add_checkpoint_arg(stats)
    add_data_args(stats)
    add_mask_args(stats, default_mask="grid")
    _add_top_n(stats)
    stats.add_argument("--encoder", action="store_true", help="also report distance and entropy of the encoder layers")
    stats.add_argument("--all-images", action="store_true",
                       help="pool locality and black proportion over all images, not only fully consistent ones")
    stats.add_argument("--num-maps", type=non_negative_int, default=4, metavar="M",
                       help="influence maps to draw for the first M images (default: %(default)s)")
    add_run_args(stats)
    add_overwrite_arg(stats)
    stats.set_defaults(func=run_stats)

    infl = subparsers.add_parser(
        "influence-map", help="influence-field map of one image, one panel per decoder layer (IPOL Fig. 9)",
        description="Colour each most-important patch by its importance rank and every other patch by its "
                    "influencer's colour (black if none among its top-n attention entries), per decoder layer.")
    add_checkpoint_arg(infl)
    source = infl.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", type=Path, metavar="PATH", help="an image file")
    source.add_argument("--index", type=int, metavar="I", help="the I-th image of --data/--split")
    infl.add_argument("--data", default="bundled", metavar="SPEC", help="dataset for --index (default: %(default)s)")
    infl.add_argument("--split", default="test", choices=SPLITS,
                      help="split for --index (default: %(default)s)")
    add_mask_args(infl, default_mask="grid")
    _add_top_n(infl)
    infl.add_argument("--no-overlay", action="store_true", help="draw the colours alone, not over the image")
    infl.add_argument("--out", type=Path, required=True, metavar="FIG", help="output figure (.png, .pdf, .svg)")
    infl.add_argument("--seed", type=seed_int, default=0, help="mask seed (default: %(default)s)")
    infl.add_argument("--device", default="auto", help=DEVICE_HELP)
    infl.set_defaults(func=run_influence_map)


def _add_top_n(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--top-n", type=int, default=5, metavar="N",
                        help="attention entries of a row searched for its influencer (default: %(default)s)")
    parser.add_argument("--include-self", action=argparse.BooleanOptionalAction, default=True,
                        help="whether a patch's attention to itself (the diagonal of W) counts among its top-n "
                             "entries: the literal reading of the paper's \"take top-n attention values\" "
                             "(default: counts; --no-include-self searches the other patches only)")


def _load(args: argparse.Namespace, encoder_only: bool = False, regressor: bool = False):
    """The model of ``--ckpt`` (head counts as given or stored) and its settings record; a model without
    a decoder is refused unless ``encoder_only`` (``attention-stats --encoder``) or, for a CAE, ``regressor``."""
    loaded = load_checkpoint_from_args(args)
    if not encoder_only and not (regressor and loaded.method == "cae"):
        loaded.model.require_decoder(str(args.ckpt), "decoder attention metrics",
                                     " (--encoder alone reports the encoder's attention distance and entropy)")
    return loaded.model, loaded.settings()


def _dataset(model, spec: str, split: str, limit: int | None):
    from ..data import load_dataset

    cfg = model.config
    return load_dataset(spec, image_size=cfg.img_size, split=split, limit=limit, mean=cfg.norm_mean, std=cfg.norm_std)


def _pixels(model, image):
    from ..data import denormalize

    return denormalize(image.cpu(), model.config.norm_mean, model.config.norm_std).permute(1, 2, 0).numpy()


def run_stats(args: argparse.Namespace) -> int:
    from ..analysis.attention_dataset import attention_stats
    from ..io import output_folder, save_figure, to_json, write_csv, write_json, write_text
    from ..plots.attention import plot_head_metrics, plot_influence_map, plot_layer_curves, plot_positional_bias

    def setup():
        model, model_settings = _load(args, encoder_only=args.encoder, regressor=True)
        return model, model_settings, _dataset(model, args.data, args.split, args.num_images)

    model, model_settings, dataset = launch.prepare(args, "dir", setup)
    if getattr(model, "method", "mae") == "cae" and not args.encoder:
        if not launch.is_main():  # the regressor's statistics are not sharded: rank 0 computes and writes them
            return 0
        from .cae_attention import run_regressor_stats

        return run_regressor_stats(args, model, model_settings, dataset)
    if not model.has_decoder:
        return _run_encoder_stats(args, model, model_settings, dataset)
    report = attention_stats(model, dataset, masking=args.mask, mask_ratio=args.mask_ratio, top_n=args.top_n,
                             include_self=args.include_self, encoder=args.encoder, all_images=args.all_images,
                             batch_size=args.batch_size,
                             seed=args.seed, device=args.device, num_workers=args.num_workers,
                             num_examples=max(args.num_maps, 0), quiet=args.quiet)
    if not launch.is_main():  # rank 0 writes and prints
        return 0
    doc = {**model_settings, "data": args.data, "split": args.split, **report.to_dict()}
    frame = report.to_frame()
    columns = ["part", "layer", "consistency", "soft_consistency", "locality", "black_fraction",
               "black_fraction_of_all",
               "mean_attention_distance", "entropy", "positional_ks_p", "positional_chi2_p"]
    text = frame[columns].to_string(index=False, float_format=lambda v: f"{v:.4g}")
    out: Path = args.out
    with output_folder(out, args.overwrite, command="maelens attention-stats") as staging:
        write_csv(staging / "attention_stats.csv", frame)
        write_json(staging / "attention_stats.json", doc)
        write_csv(staging / "attention_heads.csv", report.heads_frame())
        save_figure(plot_layer_curves(report), staging / "layer_curves.png")
        save_figure(plot_positional_bias(report, 0), staging / "positional_bias.png")
        save_figure(plot_head_metrics(report), staging / "head_metrics.png")
        if report.examples is not None:
            ids = getattr(dataset, "ids", None)
            for b, index in enumerate(report.examples.indices):
                image = _pixels(model, dataset[int(index)][0])
                title = f"image {index}" + (f" ({ids[index]})" if ids is not None else "")
                save_figure(plot_influence_map(report.examples, b, image, title=title),
                            staging / f"influence_map_{index:03d}.png")
        write_text(staging / "attention_stats.txt", text + "\n")
    if args.json:
        print(to_json(doc))
    elif not args.quiet:
        print(text)
        print(f"wrote {out}/attention_stats.csv, attention_stats.json, attention_heads.csv and figures",
              file=sys.stderr)
    return 0


def _run_encoder_stats(args: argparse.Namespace, model, model_settings: dict, dataset) -> int:
    """``attention-stats --encoder`` on a model without a decoder (fine-tuned, timm): the encoder's
    attention distance and entropy per head, in the files and columns of the full report."""
    from ..analysis.encoder_attention import encoder_attention_stats

    report = encoder_attention_stats(model, dataset, masking=args.mask, mask_ratio=args.mask_ratio,
                                     batch_size=args.batch_size, seed=args.seed, device=args.device,
                                     num_workers=args.num_workers, quiet=args.quiet)
    if not launch.is_main():
        return 0
    doc = {**model_settings, "data": args.data, "split": args.split, **report.to_dict()}
    text = report.to_frame().to_string(index=False, float_format=lambda v: f"{v:.4g}")
    return write_report(args, doc, {"attention_stats.csv": report.to_frame(), "attention_heads.csv": report.heads_frame()},
                        "attention_stats", text, f"wrote {args.out}/attention_stats.csv, attention_stats.json and "
                        "attention_heads.csv (encoder only: the model has no decoder)")


def write_report(args: argparse.Namespace, doc: dict, tables: dict, name: str, text: str, wrote: str) -> int:
    """Write the CSV ``tables`` (file name -> DataFrame), NAME.json (``doc``) and NAME.txt (``text``) into ``--out``
    as one staged folder, then print the JSON (``--json``) or the text and the ``wrote`` line."""
    from ..io import output_folder, to_json, write_csv, write_json, write_text

    with output_folder(args.out, args.overwrite, command="maelens attention-stats") as staging:
        for file, frame in tables.items():
            write_csv(staging / file, frame)
        write_json(staging / f"{name}.json", doc)
        write_text(staging / f"{name}.txt", text + "\n")
    if args.json:
        print(to_json(doc))
    elif not args.quiet:
        print(text)
        print(wrote, file=sys.stderr)
    return 0


def run_influence_map(args: argparse.Namespace) -> int:
    from ..analysis.attention_dataset import influence_fields
    from ..io import save_figure
    from ..plots.attention import plot_influence_map

    preflight(args, "figure")
    model, _ = _load(args)
    if args.image is not None:
        from ..data import load_image

        cfg = model.config
        image, name = load_image(args.image, cfg.img_size, cfg.norm_mean, cfg.norm_std), args.image.name
    else:
        dataset = _dataset(model, args.data, args.split, None)
        if not 0 <= args.index < len(dataset):
            raise ConfigError(f"--index must be in [0, {len(dataset) - 1}] for {args.data} ({args.split}), "
                              f"got {args.index}")
        image, name = dataset[args.index][0], f"{args.data} #{args.index}"
    fields = influence_fields(model, image, masking=args.mask, mask_ratio=args.mask_ratio, top_n=args.top_n,
                              include_self=args.include_self, seed=args.seed)
    fig = plot_influence_map(fields, 0, None if args.no_overlay else _pixels(model, image), title=name)
    save_figure(fig, args.out)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0
