"""``maelens segment``: fine-tune a Segmenter whose encoder comes from an MAE checkpoint or is trained from
scratch (IPOL sec. 6 "Pre-training", Fig. 12), writing logs, metrics, figures and checkpoints."""

from __future__ import annotations

import argparse
import os

from ..choices import DECODERS, FINETUNE_OPTIMIZERS, SEG_SPEC_HELP
from ..segmentation.config import SegmentConfig
from .common import (
    add_checkpoint_arg,
    add_run_args,
    load_checkpoint_from_args,
    non_negative_int,
    positive_float,
    positive_int,
    preflight,
)
from .runargs import add_run_loop_args, config_defaults, run_loop_options


def _decay(text: str) -> float:
    value = positive_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text}")
    return value


def _classes(text: str) -> int:
    value = positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"expected at least 2 classes, got {value}")
    return value


def register(subparsers) -> None:
    """Add the ``segment`` sub-command."""
    from ..models.presets import PRESETS

    p = subparsers.add_parser(
        "segment", help="fine-tune a Segmenter on an MAE encoder (or from scratch) and score it (mIoU)",
        description="Semantic segmentation with Segmenter (Strudel et al. 2021) on an MAE's ViT encoder: the "
                    "encoder from --ckpt (any format maelens loads) or freshly initialised (--from-scratch), a "
                    "linear or mask-transformer decoder, evaluation cross-entropy / pixel accuracy / mIoU per "
                    "epoch (IPOL sec. 6, Fig. 12).")
    source = p.add_mutually_exclusive_group(required=True)
    add_checkpoint_arg(source, required=False, options=p)
    source.add_argument("--from-scratch", action="store_true", help="a freshly initialised encoder of --preset")
    d = config_defaults(SegmentConfig)
    p.add_argument("--preset", default=d["preset"], choices=sorted(PRESETS),
                   help="architecture for --from-scratch (default: %(default)s)")
    p.add_argument("--decoder", default=d["decoder"], choices=DECODERS,
                   help="linear, or mask (Segmenter's mask transformer) (default: %(default)s)")
    p.add_argument("--data", default=d["data"], metavar="SPEC", help=f"{SEG_SPEC_HELP} (default: %(default)s)")
    p.add_argument("--num-classes", type=_classes, default=None, metavar="K",
                   help="classes of a generic mask folder (default: largest label + 1)")
    p.add_argument("--num-images", type=positive_int, default=None, metavar="N", help="use at most N training images")
    p.add_argument("--eval-images", type=positive_int, default=None, metavar="N",
                   help="evaluate on at most N images of the test split")
    p.add_argument("--batch-size", type=positive_int, default=d["batch_size"], metavar="B",
                   help="images per process and micro-batch (default: %(default)s)")
    p.add_argument("--num-workers", type=non_negative_int, default=d["num_workers"], metavar="W",
                   help="data loader processes")
    p.add_argument("--optimizer", default=d["optimizer"], choices=FINETUNE_OPTIMIZERS,
                   help="(default: %(default)s; Segmenter used sgd)")
    p.add_argument("--layer-decay", type=_decay, default=None, metavar="D",
                   help="layer-wise lr decay of the encoder (MAE fine-tuning uses 0.75; default: none)")
    add_run_loop_args(p, SegmentConfig, unset=("warmup_epochs",), help={
        "warmup_epochs": f"linear warm-up (default: {d['warmup_epochs']:g} epoch, or --epochs when fewer)"})
    p.add_argument("--figure-images", type=non_negative_int, default=d["figure_images"], metavar="N",
                   help="images in the prediction figure (0: none)")
    add_run_args(p)
    p.set_defaults(device="auto", func=_segment)


def _segment(args: argparse.Namespace) -> int:
    from ..io import to_json
    from ..plots.segmentation import epoch_figures
    from ..segmentation import SCRATCH, finetune
    from .eta import EpochClock

    preflight(args, "dir", allow_auto=True)
    # the shared loader honours every --ckpt option (head counts, --arch, --image-size)
    encoder = None if args.from_scratch else load_checkpoint_from_args(args, device="cpu").model
    options = run_loop_options(args)
    if options["warmup_epochs"] is None:  # the library's default warm-up, shortened to a shorter run
        options["warmup_epochs"] = min(config_defaults(SegmentConfig)["warmup_epochs"], float(args.epochs))
    config = SegmentConfig(
        init=SCRATCH if args.from_scratch else args.ckpt, preset=args.preset, num_heads=args.num_heads,
        decoder_num_heads=args.decoder_num_heads, decoder=args.decoder, data=args.data,
        num_classes=args.num_classes, num_images=args.num_images, eval_images=args.eval_images,
        batch_size=args.batch_size, layer_decay=args.layer_decay, optimizer=args.optimizer, seed=args.seed,
        device=args.device, num_workers=args.num_workers, out=str(args.out), figure_images=args.figure_images,
        quiet=args.quiet, **options)
    clock = EpochClock("segment", config.epochs, args.quiet)

    def epoch_end(event) -> None:  # the figures, then the overall ETA at the pace so far
        epoch_figures(event)
        clock.epoch_done(event.epoch)

    result = finetune(config, encoder=encoder, on_epoch_end=epoch_end)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    s = result.summary
    if args.json:
        print(to_json(s))
    elif not args.quiet:
        if s["resumed_from"]:
            print(f"resumed from {s['resumed_from']}")
        print(f"{s['segmenter']['encoder']['name']} encoder ({s['init']}), {args.decoder} decoder, "
              f"{s['segmenter']['num_classes']} classes, {s['train_images']} training / {s['eval_images']} "
              f"evaluation images, {s['trainable_parameters']:,} parameters")
        print(f"{'epoch':>5}  {'train loss':>10}  {'eval loss':>9}  {'pixel acc':>9}  {'mIoU':>6}")
        for r in result.history:
            print(f"{r['epoch']:>5}  {r['train_loss']:>10.4f}  {r['eval_loss']:>9.4f}  "
                  f"{100 * r['pixel_accuracy']:>8.1f}%  {100 * r['miou']:>5.1f}%")
        print(f"checkpoint: {result.checkpoint}\nlog.csv, metrics.json, predictions.png, curves.png in {result.out_dir}")
    return 0
