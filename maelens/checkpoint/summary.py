"""What ``maelens info`` reports about a loaded checkpoint, as a plain dict and as a text table."""

from __future__ import annotations

from typing import Any

from .infer import match_preset
from .layouts import FORMATS
from .store import LoadedCheckpoint


def summarize(ckpt: LoadedCheckpoint) -> dict[str, Any]:
    """Format, architecture (preset name or ``custom``), trainable parameters, epoch, decoder and loss."""
    model, config = ckpt.model, ckpt.config
    trainable = [(name, p.numel()) for name, p in model.named_parameters() if p.requires_grad]
    decoder = sum(n for name, n in trainable if name.startswith(("decoder_", "mask_token")))
    total = sum(n for _, n in trainable)
    return {
        "path": str(ckpt.path),
        "format": ckpt.format,
        "format_description": FORMATS[ckpt.format],
        "architecture": match_preset(config) or "custom",
        "config": config.to_dict(),
        "trainable_parameters": total,
        "encoder_parameters": total - decoder,
        "decoder_parameters": decoder,
        "epoch": ckpt.epoch,
        "has_decoder": config.has_decoder,
        "loss_target": config.loss_target,
        "norm_pix_loss": config.norm_pix_loss,
        "notes": list(ckpt.notes),
    }


def format_summary(info: dict[str, Any]) -> str:
    """A human-readable table of :func:`summarize`'s dict."""
    c = info["config"]
    grid = c["img_size"] // c["patch_size"]
    decoder = (f"{c['decoder_depth']} blocks x {c['decoder_num_heads']} heads x {c['decoder_embed_dim']}"
               if info["has_decoder"] else "none (encoder only)")
    rows = [
        ("checkpoint", info["path"]),
        ("format", f"{info['format']} ({info['format_description']})"),
        ("architecture", info["architecture"]),
        ("input", f"{c['img_size']}x{c['img_size']}, patch {c['patch_size']} ({grid}x{grid} grid), "
                  f"{c['in_chans']} channels"),
        ("encoder", f"{c['depth']} blocks x {c['num_heads']} heads x {c['embed_dim']}, MLP ratio {c['mlp_ratio']:g}"),
        ("decoder", decoder),
        ("parameters", f"{info['trainable_parameters']:,} trainable (encoder {info['encoder_parameters']:,}, "
                       f"decoder {info['decoder_parameters']:,})"),
        ("epoch", "not stored" if info["epoch"] is None else str(info["epoch"])),
        ("loss", f"{info['loss_target']} target, norm_pix_loss {info['norm_pix_loss']}"),
    ]
    rows += [("note", note) for note in info["notes"]]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
