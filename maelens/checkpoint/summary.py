"""What ``maelens info`` reports about a loaded checkpoint, as a plain dict and as a text table."""

from __future__ import annotations

from typing import Any

from .infer import NOT_STORED, match_preset
from .layouts import FORMATS
from .store import LoadedCheckpoint


def summarize(ckpt: LoadedCheckpoint) -> dict[str, Any]:
    """Format, architecture (preset name or ``custom``), trainable parameters, epoch, decoder and loss
    (for a SimCLR model: backbone and projection-head parameters, feature width, temperature)."""
    model, config = ckpt.model, ckpt.config
    if ckpt.method != "mae":
        from .cae import cae_summary
        from .simclr import simclr_summary

        method_summary = cae_summary if ckpt.method == "cae" else simclr_summary
        return {"path": ckpt.where, "format": ckpt.format, "format_description": FORMATS[ckpt.format],
                "release": ckpt.release, "architecture": config.name, "config": config.to_dict(),
                "provenance": dict(ckpt.provenance), "trainable_parameters": model.num_trainable_parameters(),
                "epoch": ckpt.epoch, "has_decoder": False, **method_summary(config, model), "notes": list(ckpt.notes)}
    trainable = [(name, p.numel()) for name, p in model.named_parameters() if p.requires_grad]
    decoder = sum(n for name, n in trainable if name.startswith(("decoder_", "mask_token")))
    total = sum(n for _, n in trainable)
    shown = config.to_dict()
    for key in ("num_heads", "decoder_num_heads"):
        if ckpt.provenance.get(key) == NOT_STORED:
            shown[key] = None  # a placeholder was used to build the model; the file does not say
    return {
        "path": ckpt.where,
        "format": ckpt.format,
        "format_description": FORMATS[ckpt.format],
        "release": ckpt.release,
        "architecture": ((match_preset(config) if ckpt.heads_known else None)
                         or (config.name if ckpt.format == "timm" else "custom")),
        "config": shown,
        "heads_known": ckpt.heads_known,
        "provenance": dict(ckpt.provenance),
        "trainable_parameters": total,
        "encoder_parameters": total - decoder,
        "decoder_parameters": decoder,
        "epoch": ckpt.epoch,
        "has_decoder": config.has_decoder,
        "loss_target": config.loss_target,
        "norm_pix_loss": config.norm_pix_loss,
        "classifier_pooling": ckpt.pooling,
        "notes": list(ckpt.notes),
    }


def format_summary(info: dict[str, Any]) -> str:
    """A human-readable table of :func:`summarize`'s dict."""
    c = info["config"]
    if info.get("method", "mae") != "mae":
        from .cae import format_cae
        from .simclr import format_simclr

        rows = format_cae(info) if info["method"] == "cae" else format_simclr(info)
        return _table(rows + [("note", note) for note in info["notes"]], info["provenance"])
    grid = c["img_size"] // c["patch_size"]
    def heads(value: int | None) -> str:
        return "heads not stored" if value is None else f"{value} heads"

    decoder = (f"{c['decoder_depth']} blocks x {heads(c['decoder_num_heads'])} x {c['decoder_embed_dim']}"
               if info["has_decoder"] else "none (encoder only)")
    rows = [
        ("checkpoint", info["path"]),
        ("format", f"{info['format']} ({info['format_description']}), {info['release']} release"),
        ("architecture", info["architecture"]),
        ("input", f"{c['img_size']}x{c['img_size']}, patch {c['patch_size']} ({grid}x{grid} grid), "
                  f"{c['in_chans']} channels"),
        ("encoder", f"{c['depth']} blocks x {heads(c['num_heads'])} x {c['embed_dim']}, MLP ratio {c['mlp_ratio']:g}"),
        ("decoder", decoder),
        ("parameters", f"{info['trainable_parameters']:,} trainable (encoder {info['encoder_parameters']:,}, "
                       f"decoder {info['decoder_parameters']:,})"),
        ("epoch", "not stored" if info["epoch"] is None else str(info["epoch"])),
        ("loss", f"{info['loss_target']} target, norm_pix_loss {info['norm_pix_loss']}"),
    ]
    if info["classifier_pooling"]:
        rows.append(("pooled feature", info["classifier_pooling"]))
    if not info["heads_known"]:
        rows.append(("note", "analyses need the head counts: pass --num-heads H (and --decoder-num-heads H)"))
    rows += [("note", note) for note in info["notes"]]
    return _table(rows, info["provenance"])


def _table(rows: list[tuple[str, str]], provenance: dict[str, str]) -> str:
    width = max(len(k) for k, _ in rows)
    lines = [f"{k:<{width}}  {v}" for k, v in rows]
    if provenance:
        fact_width = max(len(k) for k in provenance)
        lines.append("where each fact came from:")
        lines += [f"  {fact:<{fact_width}}  {origin}" for fact, origin in provenance.items()]
    return "\n".join(lines)

__all__ = ["format_summary", "summarize"]
