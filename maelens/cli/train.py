"""``maelens train`` (pretrain an MAE, or the SimCLR baseline with ``--method simclr``, single process or under
``torchrun``) and ``maelens reconstruct`` (the original / masked / reconstruction / pasted figure from a checkpoint)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..choices import DEFAULT_WARMUP_EPOCHS, LOSSES, TRAINING_METHODS
from ..train.config import RECIPE_FIELDS, TrainConfig
from .common import (
    DEVICE_HELP,
    add_checkpoint_arg,
    add_data_args,
    add_mask_args,
    add_run_args,
    load_checkpoint_from_args,
    non_negative_float,
    non_negative_int,
    note,
    positive_float,
    preflight,
    seed_int,
    warning,
)
from .runargs import add_run_loop_args, config_defaults, run_loop_options


def register(subparsers) -> None:
    """Add the ``train`` and ``reconstruct`` sub-commands."""
    _register_train(subparsers)
    _register_reconstruct(subparsers)


def _register_train(subparsers) -> None:
    from ..models.cae_config import CAE_PRESETS
    from ..models.presets import PRESETS
    from ..models.simclr_config import SIMCLR_PRESETS

    p = subparsers.add_parser(
        "train", help="pretrain an MAE (checkpoint every epoch, logs, reconstruction figures)",
        description="Pretrain an MAE with AdamW and a warm-up + cosine/linear schedule (MAE; IPOL sec. 4). "
                    "Run under `torchrun --nproc_per_node=N -m maelens train ...` for several processes. "
                    "--method simclr trains the SimCLR baseline of IPOL sec. 6 instead, --method cae the Context "
                    "Autoencoder (same trainer and outputs).")
    p.add_argument("--preset", default=None, choices=sorted(PRESETS) + sorted(SIMCLR_PRESETS) + sorted(CAE_PRESETS),
                   help="model preset (default: tiny, simclr-r18 with --method simclr, cae-tiny with --method cae)")
    _add_simclr_args(p)
    p.add_argument("--loss", default="pixel", choices=LOSSES,
                   help="reconstruction target: pixel, norm-pix (MAE), ycbcr (IPOL's weighted YCbCr MSE_w) or "
                        "ycbcr-plain (YCbCr, unweighted) (default: %(default)s)")
    add_data_args(p)
    # no --batch-size given: the library's default (64 per process), lowered to fit a small data set
    p.set_defaults(split="train", batch_size=None)
    add_mask_args(p)
    _cae_mask_defaults(p)
    add_run_args(p)
    p.set_defaults(device="auto")
    # --epochs, --blr, --warmup-epochs, --schedule: unset means the preset's training recipe (ipol64: IPOL sec. 4)
    add_run_loop_args(p, TrainConfig, unset=RECIPE_FIELDS, help={
        "epochs": "passes over the data (default: the preset's recipe, ipol64: 100; else 10)",
        "blr": "base lr: lr = blr * effective batch / 256 (default: the preset's recipe, else 1.5e-4)",
        "weight_decay": "AdamW weight decay (default: %(default)s)",
        "warmup_epochs": f"linear warm-up length, fractional allowed (default: the preset's recipe, else "
                         f"{DEFAULT_WARMUP_EPOCHS:g} as IPOL; either shortened to --epochs when fewer)",
        "schedule": "decay after warm-up (default: the preset's recipe, ipol64: linear as IPOL; else cosine)"})
    p.add_argument("--no-decay-tokens", dest="decay_tokens", action="store_false",
                   help="exempt the CLS and mask tokens from weight decay, as timm's ViT (default: decayed, as the "
                        "official MAE pretraining)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--fused-attn", action=argparse.BooleanOptionalAction, default=None,
                   help="timm's fused attention (default: on for CUDA, off on CPU)")
    p.add_argument("--recon-images", type=non_negative_int, default=config_defaults(TrainConfig)["recon_images"], metavar="N",
                   help="images in each epoch's figure (0: none; default: %(default)s)")
    p.add_argument("--tensorboard", type=Path, default=None, metavar="DIR",
                   help="also write the step and epoch loss, lr and images/s as TensorBoard event files in DIR "
                        "(optional extra: pip install tensorboard)")
    p.set_defaults(func=_train)


def _add_simclr_args(p: argparse.ArgumentParser) -> None:
    """``--method`` and the SimCLR model options (IPOL sec. 6's contrastive baseline)."""
    from ..models.simclr_config import STEMS

    p.add_argument("--method", default=None, choices=TRAINING_METHODS,
                   help="mae (masked autoencoder) or simclr (contrastive ResNet baseline, NT-Xent loss); "
                        "default: the preset's (simclr for the simclr-* presets)")
    g = p.add_argument_group("SimCLR options (with --method simclr)")
    g.add_argument("--temperature", type=positive_float, default=None, metavar="TAU",
                   help="NT-Xent temperature (default: the preset's, 0.5)")
    g.add_argument("--stem", default=None, choices=STEMS,
                   help="ResNet stem: imagenet (torchvision's 7x7 conv + max-pool, the paper's parameter count) "
                        "or cifar (3x3 conv, no max-pool) (default: imagenet)")
    g.add_argument("--no-blur", action="store_true", help="no Gaussian blur in the augmentation")
    from ..models.cae_config import CAE_TARGETS

    g = p.add_argument_group("CAE options (with --method cae)")
    g.add_argument("--cae-target", default=None, choices=CAE_TARGETS,
                   help="what the decoder predicts: pixel (--loss norm-pix standardises each patch) or hog "
                        "(MaskFeat's HOG); the paper's d-VAE / DALL-E tokens are not available offline "
                        "(default: pixel)")
    g.add_argument("--alignment-weight", type=non_negative_float, default=None, metavar="LAMBDA",
                   help="weight of the alignment loss (default: 2, the paper's; 0: no alignment)")


def _cae_mask_defaults(p: argparse.ArgumentParser) -> None:
    """``--mask`` / ``--mask-ratio`` default to None here: MAE's random 75% unless --method cae, whose default is
    the CAE paper's block-wise 50%."""
    p.set_defaults(mask=None, mask_ratio=None)
    for action in p._actions:
        if action.dest == "mask":
            action.help = "masking strategy (default: random; block with --method cae, as the CAE paper)"
        elif action.dest == "mask_ratio":
            action.help = "fraction of patches removed (default: 0.75; 0.5 with --method cae, as the CAE paper)"


def _method_options(args: argparse.Namespace) -> dict:
    """``method``, ``preset`` and SimCLR ``model_overrides`` for :class:`TrainConfig` from the options."""
    from ..errors import ConfigError
    from ..train.methods import method_of_preset

    method = args.method or (method_of_preset(args.preset) if args.preset else "mae")
    preset = args.preset or {"simclr": "simclr-r18", "cae": "cae-tiny"}.get(method, "tiny")
    overrides = {"temperature": args.temperature, "stem": args.stem, "blur_prob": 0.0 if args.no_blur else None}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if overrides and method != "simclr":
        raise ConfigError("--temperature, --stem and --no-blur are SimCLR options: add --method simclr")
    cae = {"target": args.cae_target, "alignment_weight": args.alignment_weight}
    cae = {k: v for k, v in cae.items() if v is not None}
    if cae and method != "cae":
        raise ConfigError("--cae-target and --alignment-weight are CAE options: add --method cae")
    masking = {"masking": args.mask, "mask_ratio": args.mask_ratio}  # None: the method's own (TrainConfig)
    return {"method": method, "preset": preset, "model_overrides": {**overrides, **cae}, **masking}


def _register_reconstruct(subparsers) -> None:
    p = subparsers.add_parser("reconstruct", help="figure of original / masked / reconstruction / pasted images",
                              description="Reconstruct masked images with a checkpoint (IPOL Fig. 4 layout).")
    add_checkpoint_arg(p)
    add_data_args(p)
    p.set_defaults(num_images=8)
    add_mask_args(p)
    p.add_argument("--out", type=Path, required=True, metavar="FIG", help="figure file (.png, .pdf, .svg)")
    p.add_argument("--json", action="store_true", help="print a JSON summary to stdout")
    p.add_argument("--seed", type=seed_int, default=0, help="seed of the masks (default: %(default)s)")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.set_defaults(func=_reconstruct)


def _train(args: argparse.Namespace) -> int:
    from ..io import to_json
    from ..models.presets import preset_recipe
    from ..plots.reconstruction import epoch_reconstruction
    from ..plots.training import epoch_loss_curve, read_records
    from ..run_files import LOG_JSONL
    from ..setup_warnings import WarnOnce, config_warnings, log_warnings
    from ..train import train
    from ..train.config import recipe_options
    from .eta import EpochClock

    preflight(args, "dir", allow_auto=True)
    method = _method_options(args)  # the method, and the preset it implies when none is given
    # the recipe settings not given as options come from the preset's training recipe
    options = recipe_options(method["preset"], dict(epochs=args.epochs, blr=args.blr, warmup_epochs=args.warmup_epochs,
                                               schedule=args.schedule))
    recipe = {k: v for k, v in options["settings_from"].items() if v.startswith("preset")}
    if recipe:
        settings = ", ".join(f"{name} {options[name]}" for name in recipe)
        note(args, f"{settings} from the {method['preset']} preset's recipe "
                   f"({preset_recipe(method['preset']).source}); options override it")
    config = TrainConfig.with_loss(
        args.loss, **method, data=args.data, split=args.split, num_images=args.num_images,
        batch_size=args.batch_size, decay_tokens=args.decay_tokens,
        seed=args.seed, compile=args.compile, fused_attention=args.fused_attn, device=args.device,
        num_workers=args.num_workers, out=str(args.out), recon_images=args.recon_images, quiet=args.quiet,
        **{k: v for k, v in run_loop_options(args).items() if k not in RECIPE_FIELDS}, **options)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    warn = WarnOnce(lambda message: warning(args, message))
    model_config = config.model_config()
    warn(config_warnings(method=config.method, image_size=model_config.img_size,
                         stem=getattr(model_config, "stem", None), peak_lr=config.peak_lr(world_size)))
    clock = EpochClock("train", config.epochs, args.quiet)
    board = None
    if args.tensorboard is not None:
        from ..tensorboard_log import TensorBoardLog, check_tensorboard

        check_tensorboard()  # refused before the run starts when the extra is missing
        board = TensorBoardLog(args.tensorboard) if int(os.environ.get("RANK", "0")) == 0 else None

    def epoch_end(event) -> None:  # the trainer draws nothing itself: recon_epoch_NNN.png and loss.png here
        epoch_reconstruction(event)
        epoch_loss_curve(event)
        last = event.epoch + 1 == config.epochs
        records = read_records(event.out_dir / LOG_JSONL)
        warn(log_warnings(records, world_size=world_size, finished=last))
        if board is not None:
            board.write(records)
        clock.epoch_done(event.epoch)

    try:
        result = train(config, notify=lambda message: note(args, message), on_epoch_end=epoch_end)
    finally:
        if board is not None:
            board.close()
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    if args.json:
        print(to_json(result.summary))
    elif not args.quiet:
        s = result.summary
        if s["resumed_from"]:
            print(f"resumed from {s['resumed_from']}")
        print(f"{s['model']['name']}: {s['trainable_parameters']:,} parameters, {s['images']} images, "
              f"{s['world_size']} process(es) on {s['device']}, effective batch {s['effective_batch_size']}, "
              f"peak lr {s['peak_lr']:.2e}")
        print(f"precision: {s['precision']['precision']} ({s['precision']['reason']}), {s['threads']} thread(s)")
        print(f"{'epoch':>5}  {'loss':>9}  {'lr':>9}  {'images/s':>9}")
        for r in result.history:
            print(f"{r['epoch']:>5}  {r['loss']:>9.4f}  {r['lr']:>9.2e}  {r['images_per_s']:>9.1f}")
        print(f"checkpoint: {result.checkpoint}\nlogs, figures and summary.json in {result.out_dir}")
    return 0


def _reconstruct(args: argparse.Namespace) -> int:
    import torch

    from ..data import load_dataset
    from ..errors import DataError
    from ..io import to_json
    from ..plots.reconstruction import save_reconstruction

    preflight(args, "figure")
    model = load_checkpoint_from_args(args).model
    cfg = model.config
    data = load_dataset(args.data, image_size=cfg.img_size, split=args.split, train=False, limit=args.num_images,
                        seed=args.seed, mean=cfg.norm_mean, std=cfg.norm_std)
    if len(data) == 0:
        raise DataError(f"--data {args.data} (split {args.split}) holds no images to reconstruct")
    imgs = torch.stack([data[i][0] for i in range(len(data))]).to(args.device)
    generator = torch.Generator().manual_seed(args.seed)
    rec = save_reconstruction(model, imgs, args.out, mask_ratio=args.mask_ratio, masking=args.mask,
                              generator=generator, title=f"{Path(args.ckpt).name} - {args.mask} masking")
    summary = {"figure": str(args.out), "checkpoint": str(args.ckpt), "images": len(data), "mask": args.mask,
               "mask_ratio": args.mask_ratio, "seed": args.seed, "loss_per_image": rec.loss.tolist(),
               "mean_loss": float(rec.loss.mean())}
    if args.json:
        print(to_json(summary))
    else:
        print(f"wrote {args.out} ({len(data)} images, mean loss on removed patches {summary['mean_loss']:.4f})")
    return 0
