"""Loading the Context Autoencoder of a maelens CAE run (its stored config says ``method: cae``), and what
``maelens info`` says about it.

The file is maelens's own format (:func:`~maelens.checkpoint.save_checkpoint`, ``weights_only``); the model is
rebuilt from the stored :class:`~maelens.models.cae_config.CAEConfig` and the weights must fit it exactly. The
stored config fixes the head counts, so the MAE loading options that supply them (and ``--arch``) are refused;
``image_size`` regenerates the fixed sin-cos position table for the new grid, as for an MAE.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from ..errors import CheckpointError, ConfigError
from ..models.cae import ContextAutoencoder
from ..models.cae_config import CAEConfig
from .layouts import Layout, name_list


def load_cae(layout: Layout, where: str, device: str | torch.device, *, given: dict[str, Any],
             image_size: int | None) -> tuple[ContextAutoencoder, CAEConfig, dict[str, str]]:
    """(model in eval mode, config, provenance) of a maelens CAE checkpoint's ``layout``; ``given``: the
    MAE-only options the caller set (refused when not None)."""
    if any(v is not None for v in given.values()):
        flags = ", ".join(f"--{k.replace('_', '-')}" for k, v in given.items() if v is not None)
        raise ConfigError(f"{where} is a CAE whose stored config gives its architecture: {flags} apply to MAE "
                          f"checkpoints only")
    config = _stored_config(layout, where)
    provenance = {"architecture": "maelens config (CAE)", "img_size": "maelens config",
                  "pos_embed": "the fixed 2-D sin-cos table"}
    state = dict(layout.state)
    if image_size is not None and image_size != config.img_size:
        try:
            config = replace(config, img_size=image_size)
        except ConfigError as err:
            raise ConfigError(f"image_size={image_size}: {err}") from None
        state.pop("pos_embed", None)  # fixed sin-cos: regenerated for the new grid by the model
        provenance["img_size"] = f"given (--image-size {image_size}); trained at {layout.rest['config']['img_size']}"
    model = ContextAutoencoder(config)
    expected = model.state_dict()
    state.setdefault("pos_embed", expected["pos_embed"])
    missing = [k for k in expected if k not in state]
    unused = [k for k in state if k not in expected]
    wrong = [k for k, t in state.items() if k in expected and t.shape != expected[k].shape]
    problems = [f"{what} {name_list(keys)}" for what, keys in
                (("lacks", missing), ("has unused tensors", unused), ("has wrong shapes for", wrong)) if keys]
    if problems:
        raise CheckpointError(f"{where} does not fit its {config.name} CAE: it {'; it '.join(problems)}")
    model.load_state_dict(state)
    model.to(device).eval()
    return model, config, provenance


def _stored_config(layout: Layout, where: str) -> CAEConfig:
    try:
        return CAEConfig.from_dict(layout.rest["config"])
    except (ConfigError, TypeError, ValueError) as err:
        raise CheckpointError(f"{where}: its CAE config is invalid ({err})") from None


def cae_summary(config: CAEConfig, model: ContextAutoencoder) -> dict[str, Any]:
    """What ``maelens info`` adds for a CAE: the parameters of its encoder, regressor and decoder, and its loss."""
    return {"method": config.method, "parameter_counts": model.parameter_counts(), "target": config.target,
            "norm_pix_loss": config.norm_pix_loss, "alignment_weight": config.alignment_weight}


def format_cae(info: dict[str, Any]) -> list[tuple[str, str]]:
    """The rows of ``maelens info``'s table for a CAE checkpoint."""
    c, n = info["config"], info["parameter_counts"]
    grid = c["img_size"] // c["patch_size"]
    target = "HOG (MaskFeat)" if c["target"] == "hog" else ("norm-pixel" if c["norm_pix_loss"] else "pixel")
    return [
        ("checkpoint", info["path"]),
        ("format", f"{info['format']} ({info['format_description']}), {info['release']} release"),
        ("architecture", f"{info['architecture']}: Context Autoencoder (encoder, latent contextual regressor, decoder)"),
        ("input", f"{c['img_size']}x{c['img_size']}, patch {c['patch_size']} ({grid}x{grid} grid), "
                  f"{c['in_chans']} channels"),
        ("encoder", f"{c['depth']} blocks x {c['num_heads']} heads x {c['embed_dim']}, MLP ratio {c['mlp_ratio']:g} "
                    "(visible patches only)"),
        ("regressor", f"{c['regressor_depth']} cross-attention blocks (mask queries over visible representations "
                      "and queries)"),
        ("decoder", f"{c['cae_decoder_depth']} self-attention blocks over the predicted masked representations"),
        ("parameters", f"{info['trainable_parameters']:,} trainable (encoder {n['encoder']:,}, regressor "
                       f"{n['regressor']:,}, decoder {n['decoder']:,})"),
        ("epoch", "not stored" if info["epoch"] is None else str(info["epoch"])),
        ("loss", f"{target} reconstruction + {c['alignment_weight']:g} x alignment (MSE to the encoder's "
                 "stop-gradient representations)"),
    ]


__all__ = ["cae_summary", "format_cae", "load_cae"]
