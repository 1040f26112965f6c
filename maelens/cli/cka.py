"""``maelens cka``: linear or minibatch CKA between the layers of one model, or of two models."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..choices import CKA_ESTIMATORS, LAYER_PART_CHOICES, LAYER_POOLS
from . import launch
from .common import (
    add_checkpoint_arg,
    add_data_args,
    add_mask_args,
    add_overwrite_arg,
    add_run_args,
    image_size_arg,
    load_checkpoint_from_args,
    positive_heads,
)


def register(subparsers) -> None:
    """Add the ``cka`` command."""
    cka = subparsers.add_parser(
        "cka", help="CKA similarity between every pair of layers of one model or of two models",
        description="Stream a dataset through the model(s), record every block's output in one pass and compute "
                    "linear CKA (Kornblith et al. 2019; float64 cross-covariance accumulators, memory independent "
                    "of the number of images) or minibatch CKA with the unbiased HSIC estimator (Nguyen et al. "
                    "2021) between every pair of layers. With --ckpt-b, rows are the layers of --ckpt and columns "
                    "those of --ckpt-b, which sees the same images re-normalised and resized for it. Writes "
                    "cka.csv (layer_a, layer_b, cka), cka.json and cka.png to --out.")
    add_checkpoint_arg(cka)
    cka.add_argument("--ckpt-b", metavar="PATH", help="a second checkpoint to compare against (any format --ckpt takes)")
    cka.add_argument("--arch-b", metavar="timm:NAME", help="timm architecture of --ckpt-b (as --arch)")
    cka.add_argument("--num-heads-b", type=positive_heads, metavar="H", help="encoder heads of --ckpt-b (as --num-heads)")
    cka.add_argument("--decoder-num-heads-b", type=positive_heads, metavar="H",
                     help="decoder heads of --ckpt-b (as --decoder-num-heads)")
    cka.add_argument("--image-size-b", type=image_size_arg, metavar="N", help="input size of --ckpt-b (as --image-size)")
    cka.add_argument("--parts", default="auto", choices=LAYER_PART_CHOICES,
                     help="layers compared: encoder blocks, decoder blocks, both (all), or auto: the encoder and the "
                          "decoder where the model has one (default: %(default)s)")
    cka.add_argument("--parts-b", default="auto", choices=LAYER_PART_CHOICES, help="layers of --ckpt-b (default: %(default)s)")
    cka.add_argument("--estimator", default="linear", choices=CKA_ESTIMATORS,
                     help="linear: exact, streamed; minibatch: mean over batches of the unbiased HSIC estimate, batches "
                          "of --batch-size >= 4 images (default: %(default)s)")
    cka.add_argument("--pool", default="mean", choices=LAYER_POOLS,
                     help="rows compared: mean of the patch tokens or the CLS token per image, every patch token "
                          "(tokens; linear only) or an image's patch tokens concatenated (flatten; minibatch only) "
                          "(default: %(default)s)")
    add_data_args(cka)
    add_mask_args(cka, default_ratio=0.0)
    add_run_args(cka)
    add_overwrite_arg(cka)
    cka.set_defaults(func=run_cka)


def _second(args: argparse.Namespace) -> argparse.Namespace:
    """The --ckpt-b options under the names :func:`load_checkpoint_from_args` reads."""
    return argparse.Namespace(ckpt=args.ckpt_b, num_heads=args.num_heads_b, decoder_num_heads=args.decoder_num_heads_b,
                              arch=args.arch_b, image_size=args.image_size_b, device=args.device)


def run_cka(args: argparse.Namespace) -> int:
    from ..analysis.cka import check_estimator, layer_cka
    from ..analysis.layer_outputs import resolve_parts
    from ..data import load_dataset
    from ..errors import ConfigError
    from ..io import output_folder, save_figure, to_json, write_csv, write_json
    from ..plots.layers import plot_cka

    def setup():
        check_estimator(args.estimator, args.pool)
        if args.ckpt_b is None and any(getattr(args, f"{o}_b") is not None
                                       for o in ("arch", "num_heads", "decoder_num_heads", "image_size")):
            raise ConfigError("--arch-b, --num-heads-b, --decoder-num-heads-b and --image-size-b describe --ckpt-b, "
                              "which was not given")
        loaded = load_checkpoint_from_args(args)
        loaded_b = load_checkpoint_from_args(_second(args)) if args.ckpt_b is not None else None
        cfg = loaded.model.config
        return loaded, loaded_b, load_dataset(args.data, image_size=cfg.img_size, split=args.split,
                                              limit=args.num_images, seed=args.seed, mean=cfg.norm_mean,
                                              std=cfg.norm_std, quiet=args.quiet)

    loaded, loaded_b, dataset = launch.prepare(args, "dir", setup)
    model = loaded.model
    parts = resolve_parts(model, args.parts)
    parts_b = resolve_parts(loaded_b.model, args.parts_b) if loaded_b is not None else None
    result = layer_cka(model, dataset, model_b=loaded_b.model if loaded_b else None, parts=parts, parts_b=parts_b,
                       pool=args.pool, estimator=args.estimator, mask_ratio=args.mask_ratio, masking=args.mask,
                       batch_size=args.batch_size, seed=args.seed, device=args.device,
                       num_workers=args.num_workers, quiet=args.quiet)
    if not launch.is_main():  # rank 0 writes and prints
        return 0
    result.settings.update(data=args.data, split=args.split, checkpoint=loaded.settings())
    if loaded_b is not None:
        result.settings["checkpoint_b"] = loaded_b.settings()
    doc = result.to_dict()
    label_b = f"layer of {Path(args.ckpt_b).name}" if args.ckpt_b else "layer"
    title = (f"{args.estimator} CKA, {args.pool} pooling, {result.settings['num_images']} images")
    out: Path = args.out
    with output_folder(out, args.overwrite, command="maelens cka") as staging:
        write_csv(staging / "cka.csv", result.to_frame())
        write_json(staging / "cka.json", doc)
        save_figure(plot_cka(result.matrix, result.names_a, result.names_b, title=title,
                             label_a=f"layer of {Path(args.ckpt).name}", label_b=label_b), staging / "cka.png")
    if args.json:
        print(to_json(doc))
    elif not args.quiet:
        import pandas as pd

        print(pd.DataFrame(result.matrix, index=result.names_a, columns=result.names_b).to_string(
            float_format=lambda v: f"{v:.3f}"))
        print(f"wrote {out}/cka.csv, cka.json and cka.png", file=sys.stderr)
    return 0
