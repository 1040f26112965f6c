"""Loading the SimCLR model of a maelens SimCLR run (its stored config says ``method: simclr``).

The file is maelens's own format (:func:`~maelens.checkpoint.save_checkpoint`, ``weights_only``); the
model is rebuilt from the stored :class:`~maelens.models.simclr_config.SimCLRConfig` and the weights must
fit it exactly. The MAE-only loading options (head counts, a timm architecture) do not apply and are
refused; ``image_size`` only changes the input size the data is prepared at (a ResNet pools globally).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from ..errors import CheckpointError, ConfigError
from ..models.simclr import SimCLR
from ..models.simclr_config import SimCLRConfig
from .layouts import Layout, name_list


def load_simclr(layout: Layout, where: str, device: str | torch.device, *,
                given: dict[str, Any], image_size: int | None) -> tuple[SimCLR, SimCLRConfig, dict[str, str]]:
    """(model in eval mode, config, provenance) of a maelens SimCLR checkpoint's ``layout``; ``given``:
    the MAE-only options the caller set (refused when not None)."""
    refused = [f"--{k.replace('_', '-')}" for k, v in given.items() if v is not None]
    if refused:
        raise ConfigError(f"{where} is a SimCLR model (a ResNet): {', '.join(refused)} apply to MAE "
                          f"checkpoints only")
    try:
        config = SimCLRConfig.from_dict(layout.rest["config"])
    except (ConfigError, TypeError) as err:
        raise CheckpointError(f"{where}: its SimCLR config is invalid ({err})") from None
    provenance = {"architecture": "maelens config (SimCLR)", "img_size": "maelens config"}
    if image_size is not None and image_size != config.img_size:
        config = replace(config, img_size=image_size)
        provenance["img_size"] = f"given (--image-size {image_size}); trained at {layout.rest['config']['img_size']}"
    model = SimCLR(config)
    expected = model.state_dict()
    missing = [k for k in expected if k not in layout.state]
    unexpected = [k for k in layout.state if k not in expected]
    wrong = [f"{k} {tuple(t.shape)} (expected {tuple(expected[k].shape)})" for k, t in layout.state.items()
             if k in expected and tuple(t.shape) != tuple(expected[k].shape)]
    problems = ([f"lacks tensor(s) {name_list(missing)}"] if missing else []) + \
               ([f"has tensors the model does not use: {name_list(unexpected)}"] if unexpected else []) + \
               ([f"has tensor(s) of the wrong shape: {name_list(wrong)}"] if wrong else [])
    if problems:
        raise CheckpointError(f"{where} does not fit its {config.name} SimCLR model: it {'; it '.join(problems)}")
    model.load_state_dict(layout.state)
    model.to(device).eval()
    return model, config, provenance


def simclr_summary(config: SimCLRConfig, model: SimCLR) -> dict[str, Any]:
    """What ``maelens info`` adds for a SimCLR model: parameters of the backbone and of the projection
    head (the head is not used for features), the feature width and the training objective."""
    backbone = sum(p.numel() for p in model.backbone.parameters() if p.requires_grad)
    head = sum(p.numel() for p in model.projector.parameters() if p.requires_grad)
    return {"method": config.method, "backbone_parameters": backbone, "projection_parameters": head,
            "feature_dim": config.feature_dim, "temperature": config.temperature}


def format_simclr(info: dict[str, Any]) -> list[tuple[str, str]]:
    """The rows of ``maelens info``'s table for a SimCLR checkpoint."""
    c = info["config"]
    stem = "torchvision ImageNet stem" if c["stem"] == "imagenet" else "CIFAR stem (3x3 conv, no max-pool)"
    return [
        ("checkpoint", info["path"]),
        ("format", f"{info['format']} ({info['format_description']}), {info['release']} release"),
        ("architecture", f"{info['architecture']}: SimCLR, {c['backbone']} ({stem}) + projection head "
                         f"{info['feature_dim']} -> {c['proj_hidden_dim']} -> {c['proj_dim']}"),
        ("input", f"{c['img_size']}x{c['img_size']}, {len(c['norm_mean'])} channels"),
        ("parameters", f"{info['trainable_parameters']:,} trainable (backbone {info['backbone_parameters']:,}, "
                       f"projection head {info['projection_parameters']:,})"),
        ("features", f"{info['feature_dim']}-d pooled backbone output (the projection head is not used)"),
        ("epoch", "not stored" if info["epoch"] is None else str(info["epoch"])),
        ("loss", f"NT-Xent, temperature {info['temperature']:g}"),
    ]


__all__ = ["format_simclr", "load_simclr", "simclr_summary"]
