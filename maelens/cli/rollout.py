"""``maelens rollout``: attention-rollout maps (Abnar & Zuidema 2020) of the CLS token and of a patch."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..choices import DISCARD_SCOPES, HEAD_FUSIONS, SPLITS
from .common import (
    DEVICE_HELP,
    _number_type,
    add_checkpoint_arg,
    add_overwrite_arg,
    load_checkpoint_from_args,
    positive_int,
    preflight,
)


def _patch(text: str) -> tuple[int, int]:
    try:
        row, col = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ROW,COL (e.g. 3,4), got {text!r}") from None
    return row, col


discard_ratio = _number_type(float, lambda v: 0 <= v < 1, "a number in [0, 1)", "discard_ratio")


def register(subparsers) -> None:
    """Add the ``rollout`` command."""
    roll = subparsers.add_parser(
        "rollout", help="attention rollout through the encoder: CLS and patch maps over the image",
        description="Attention rollout (Abnar & Zuidema 2020): every encoder layer's attention, fused over heads, "
                    "mixed with the residual as 0.5 I + 0.5 A (rows renormalised) and multiplied through the "
                    "layers. The encoder runs on every patch (mask ratio 0; an MAE encoder sees only the visible "
                    "patches in pretraining). Writes rollout.npz (the N x N rollout of each image, CLS and patch "
                    "maps), rollout.json and one rollout_<i>.png per image to --out.")
    add_checkpoint_arg(roll)
    source = roll.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", type=Path, nargs="+", metavar="PATH", help="image file(s)")
    source.add_argument("--index", type=int, nargs="+", metavar="I", help="the I-th image(s) of --data/--split")
    roll.add_argument("--data", default="bundled", metavar="SPEC", help="dataset for --index (default: %(default)s)")
    roll.add_argument("--split", default="test", choices=SPLITS,
                      help="split for --index (default: %(default)s)")
    roll.add_argument("--head-fusion", default="mean", choices=HEAD_FUSIONS,
                      help="how the heads of a layer are combined (default: %(default)s, as the paper)")
    roll.add_argument("--discard-ratio", type=discard_ratio, default=0.0, metavar="R",
                      help="zero the weakest share R of each fused map before the residual (default: %(default)s)")
    roll.add_argument("--discard-scope", default="map", choices=DISCARD_SCOPES,
                      help="discard over the whole map (except CLS->CLS) or per query row (default: %(default)s)")
    roll.add_argument("--patch", type=_patch, default=None, metavar="ROW,COL",
                      help="patch whose rollout map is drawn (default: the centre of the grid)")
    roll.add_argument("--layers", type=positive_int, default=None, metavar="L",
                      help="roll out through the first L encoder blocks only (default: all)")
    roll.add_argument("--out", type=Path, required=True, metavar="DIR", help="output directory")
    roll.add_argument("--json", action="store_true", help="print the JSON summary to stdout")
    roll.add_argument("--quiet", action="store_true", help="no messages")
    roll.add_argument("--device", default="auto", help=DEVICE_HELP)
    add_overwrite_arg(roll)
    roll.set_defaults(func=run_rollout)


def run_rollout(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from ..analysis.rollout import rollout_maps
    from ..data import denormalize, load_dataset, load_image
    from ..errors import ConfigError
    from ..io import output_folder, save_figure, save_npz, to_json, write_json
    from ..plots.rollout import plot_rollout

    preflight(args, "dir")
    model = load_checkpoint_from_args(args).model
    cfg = model.config
    rows, cols = model.grid_size
    patch = args.patch if args.patch is not None else (rows // 2, cols // 2)
    if not (0 <= patch[0] < rows and 0 <= patch[1] < cols):
        raise ConfigError(f"--patch {patch[0]},{patch[1]}: outside the {rows}x{cols} patch grid")
    if args.image is not None:
        images = [load_image(p, cfg.img_size, cfg.norm_mean, cfg.norm_std) for p in args.image]
        names = [p.name for p in args.image]
    else:
        dataset = load_dataset(args.data, image_size=cfg.img_size, split=args.split, mean=cfg.norm_mean,
                               std=cfg.norm_std)
        bad = [i for i in args.index if not 0 <= i < len(dataset)]
        if bad:
            raise ConfigError(f"--index must be in [0, {len(dataset) - 1}] for {args.data} ({args.split}), got {bad[0]}")
        images = [dataset[i][0] for i in args.index]
        names = [f"{args.data} #{i}" for i in args.index]
    batch = torch.stack(images)
    result = rollout_maps(model, batch, head_fusion=args.head_fusion, discard_ratio=args.discard_ratio,
                          discard_scope=args.discard_scope, layers=args.layers, device=args.device)
    index = patch[0] * cols + patch[1]
    cls_maps = np.stack([result.cls_map(b) for b in range(len(images))])
    patch_maps = np.stack([result.patch_map(b, index) for b in range(len(images))])
    pixels = denormalize(batch, cfg.norm_mean, cfg.norm_std).permute(0, 2, 3, 1).numpy()
    doc = {**result.settings, "images": names, "patch": list(patch), "patch_index": index,
           "cls_map_max_patch": [list(np.unravel_index(int(m.argmax()), m.shape)) for m in cls_maps]}
    out: Path = args.out
    with output_folder(out, args.overwrite, command="maelens rollout") as staging:
        save_npz(staging / "rollout.npz", rollout=result.rollout, cls_maps=cls_maps, patch_maps=patch_maps,
                 names=np.array(names))
        write_json(staging / "rollout.json", doc)
        for b, name in enumerate(names):
            save_figure(plot_rollout(pixels[b], cls_maps[b], patch_maps[b], patch, title=name),
                        staging / f"rollout_{b:03d}.png")
    if args.json:
        print(to_json(doc))
    elif not args.quiet:
        print(f"wrote {out}/rollout.npz, rollout.json and {len(names)} figure(s)", file=sys.stderr)
    return 0
