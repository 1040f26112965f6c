"""``maelens segment``: fine-tune a Segmenter whose encoder comes from an MAE checkpoint or is trained from
scratch (IPOL sec. 6 "Pre-training", Fig. 12), writing logs, metrics, figures and checkpoints."""

from __future__ import annotations

import argparse
import os

from .common import (
    add_checkpoint_arg,
    add_run_args,
    load_checkpoint_from_args,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    preflight,
)
from .names import library_literal


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
    SEG_DEFAULT, SEG_SPEC_HELP = (library_literal("data.segmentation", name) for name in ("SEG_DEFAULT", "SEG_SPEC_HELP"))
    PRESETS = library_literal("models.presets", "PRESETS")
    DECODERS = library_literal("segmentation.decoders", "DECODERS")
    OPTIMIZERS = library_literal("segmentation.optim", "OPTIMIZERS")
    SCHEDULES = library_literal("train.config", "SCHEDULES")
    PRECISIONS = library_literal("train.precision", "PRECISIONS")

    p = subparsers.add_parser(
        "segment", help="fine-tune a Segmenter on an MAE encoder (or from scratch) and score it (mIoU)",
        description="Semantic segmentation with Segmenter (Strudel et al. 2021) on an MAE's ViT encoder: the "
                    "encoder from --ckpt (any format maelens loads) or freshly initialised (--from-scratch), a "
                    "linear or mask-transformer decoder, evaluation cross-entropy / pixel accuracy / mIoU per "
                    "epoch (IPOL sec. 6, Fig. 12).")
    source = p.add_mutually_exclusive_group(required=True)
    add_checkpoint_arg(source, required=False, options=p)
    source.add_argument("--from-scratch", action="store_true", help="a freshly initialised encoder of --preset")
    p.add_argument("--preset", default="tiny", choices=sorted(PRESETS),
                   help="architecture for --from-scratch (default: %(default)s)")
    p.add_argument("--decoder", default="linear", choices=DECODERS,
                   help="linear, or mask (Segmenter's mask transformer) (default: %(default)s)")
    p.add_argument("--data", default=SEG_DEFAULT, metavar="SPEC", help=f"{SEG_SPEC_HELP} (default: %(default)s)")
    p.add_argument("--num-classes", type=_classes, default=None, metavar="K",
                   help="classes of a generic mask folder (default: largest label + 1)")
    p.add_argument("--num-images", type=positive_int, default=None, metavar="N", help="use at most N training images")
    p.add_argument("--eval-images", type=positive_int, default=None, metavar="N",
                   help="evaluate on at most N images of the test split")
    p.add_argument("--batch-size", type=positive_int, default=32, metavar="B")
    p.add_argument("--num-workers", type=non_negative_int, default=0, metavar="W", help="data loader processes")
    p.add_argument("--epochs", type=positive_int, default=10, metavar="N", help="passes over the data (default: %(default)s)")
    p.add_argument("--optimizer", default="adamw", choices=OPTIMIZERS, help="(default: %(default)s; Segmenter used sgd)")
    p.add_argument("--blr", type=positive_float, default=1e-3, help="base lr: lr = blr * batch / 256 (default: %(default)s)")
    p.add_argument("--lr", type=positive_float, default=None, help="absolute lr (overrides --blr)")
    p.add_argument("--min-lr", type=non_negative_float, default=0.0, help="lr at the end of the decay")
    p.add_argument("--weight-decay", type=non_negative_float, default=0.05, metavar="WD")
    p.add_argument("--layer-decay", type=_decay, default=None, metavar="D",
                   help="layer-wise lr decay of the encoder (MAE fine-tuning uses 0.75; default: none)")
    p.add_argument("--warmup-epochs", type=non_negative_float, default=None, metavar="E",
                   help="linear warm-up (default: 1 epoch)")
    p.add_argument("--schedule", default="cosine", choices=SCHEDULES, help="decay after warm-up")
    p.add_argument("--clip-grad", type=positive_float, default=None, metavar="NORM", help="clip the gradient norm")
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="auto: bfloat16 autocast where the device computes it natively, else float32")
    p.add_argument("--bf16", dest="precision", action="store_const", const="bf16", help="same as --precision bf16")
    p.add_argument("--resume", default=None, metavar="auto|PATH",
                   help="continue from a checkpoint (auto: OUT/checkpoint.pt if there is one)")
    p.add_argument("--figure-images", type=non_negative_int, default=4, metavar="N",
                   help="images in the prediction figure (0: none)")
    add_run_args(p)
    p.set_defaults(device="auto", func=_segment)


def _segment(args: argparse.Namespace) -> int:
    from ..io import to_json
    from ..plots.segmentation import epoch_figures
    from ..segmentation import SCRATCH, SegmentConfig, finetune
    from .eta import EpochClock

    preflight(args, "dir", allow_auto=True)
    # the shared loader honours every --ckpt option (head counts, --arch, --image-size)
    encoder = None if args.from_scratch else load_checkpoint_from_args(args, device="cpu").model
    warmup = args.warmup_epochs if args.warmup_epochs is not None else min(1.0, float(args.epochs))
    config = SegmentConfig(
        init=SCRATCH if args.from_scratch else args.ckpt, preset=args.preset, num_heads=args.num_heads,
        decoder_num_heads=args.decoder_num_heads, decoder=args.decoder, data=args.data,
        num_classes=args.num_classes, num_images=args.num_images, eval_images=args.eval_images,
        epochs=args.epochs, batch_size=args.batch_size, blr=args.blr, lr=args.lr, min_lr=args.min_lr,
        weight_decay=args.weight_decay, layer_decay=args.layer_decay, optimizer=args.optimizer,
        warmup_epochs=warmup, schedule=args.schedule, clip_grad=args.clip_grad, seed=args.seed,
        precision=args.precision, device=args.device, num_workers=args.num_workers, out=str(args.out),
        resume=args.resume, figure_images=args.figure_images, quiet=args.quiet)
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
