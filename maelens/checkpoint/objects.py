"""Model objects in hand (a notebook's ``timm.create_model(...)`` or ``ViTMAEForPreTraining.from_pretrained(...)``)
read as their saved files would be.

:func:`~maelens.checkpoint.load_checkpoint` and :func:`~maelens.checkpoint.load_model` take, besides a path:

- a maelens :class:`~maelens.models.MaskedAutoencoderViT` or :class:`~maelens.models.simclr.SimCLR` (also
  inside DDP / ``torch.compile`` wrappers): read as the checkpoint :func:`save_checkpoint` would write;
- a timm ``VisionTransformer``: converted exactly (:func:`~maelens.checkpoint.timm_vit.convert_timm_vit`,
  the conversion of ``--arch timm:NAME``, with its refusals and its check against timm's output);
- a transformers ``ViTMAEForPreTraining``, ``ViTMAEModel``, ``ViTModel`` or ``ViTForImageClassification``:
  its ``state_dict()`` and ``config`` read as the folder ``save_pretrained`` writes (no
  ``preprocessor_config.json``: ImageNet normalisation, as for a folder without one).

:func:`as_model` is what every analysis calls on its ``model`` argument: a maelens model is used as it is,
any other supported object is converted (a new model, on the CPU, in eval mode; the object is not changed).
Neither timm nor transformers is imported here: an object is recognised through the modules already loaded.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from torch import nn

from ..errors import ConfigError
from ..models import MaskedAutoencoderViT
from ..models.simclr import SimCLR
from .layouts import Layout, classify
from .timm_vit import TimmEncoder, convert_timm_vit

#: transformers classes read as their saved folders (transformers is an optional extra).
TRANSFORMERS_CLASSES = ("ViTMAEForPreTraining", "ViTMAEModel", "ViTModel", "ViTForImageClassification")
#: What :func:`as_model` accepts, for error messages.
ACCEPTED = ("a maelens model, a timm VisionTransformer, or a transformers " + " / ".join(TRANSFORMERS_CLASSES))


@dataclass
class HeldModel:
    """A model object read as a file: ``where`` describes it, ``layout`` holds its weights under official
    names; ``hf_config`` (transformers' config as a dict) or ``timm`` (the converted encoder) when it is one."""

    where: str
    layout: Layout
    hf_config: dict[str, Any] | None = None
    timm: TimmEncoder | None = None


def _transformers_class(model: nn.Module) -> str | None:
    """The class name when ``model`` is one of :data:`TRANSFORMERS_CLASSES` (transformers loaded), else None."""
    transformers = sys.modules.get("transformers")
    if transformers is None:
        return None
    for name in TRANSFORMERS_CLASSES:
        cls = getattr(transformers, name, None)
        if cls is not None and isinstance(model, cls):
            return name
    return None


def _is_timm(model: nn.Module) -> bool:
    return type(model).__module__.split(".")[0] == "timm"


def read_object(model: nn.Module) -> HeldModel:
    """``model`` as a file holding it would be classified.

    Raises:
        ConfigError: ``model`` is none of the supported kinds (:data:`ACCEPTED`).
        CheckpointError: a timm model maelens cannot represent exactly (the reason named).
    """
    from .store import unwrap_model

    bare = unwrap_model(model)
    if isinstance(bare, (MaskedAutoencoderViT, SimCLR)):
        from .. import __version__

        # the checkpoint save_checkpoint would write, without optimizer or epoch
        where = f"maelens {type(bare).__name__} {bare.config.name} (in memory)"
        payload = {"model": bare.state_dict(), "config": bare.config.to_dict(), "maelens_version": __version__}
        return HeldModel(where, classify(payload, where))
    if _is_timm(bare):
        encoder = convert_timm_vit(bare)
        name = encoder.config.name.removeprefix("timm:")
        return HeldModel(f"timm {type(bare).__name__} {name} (in memory)", Layout("timm", encoder.state),
                         timm=encoder)
    hf_class = _transformers_class(bare)
    if hf_class is not None:
        where = f"transformers {hf_class} (in memory)"
        layout = classify(dict(bare.state_dict()), where)
        layout.notes.insert(0, "read from a transformers model object (no preprocessor config: ImageNet "
                               "normalisation, as for a folder without preprocessor_config.json)")
        return HeldModel(where, layout, hf_config=bare.config.to_dict())
    raise ConfigError(f"model: expected a checkpoint path or {ACCEPTED}, got a {type(bare).__name__}")


def as_model(model: Any, parameter: str = "model") -> MaskedAutoencoderViT | SimCLR:
    """The maelens model an analysis runs: ``model`` itself when it is one (unwrapped from DDP or
    ``torch.compile``), else the exact conversion of a supported object (:func:`read_object`), in eval mode.

    Raises:
        ConfigError: naming ``parameter`` when ``model`` is not a model maelens can analyse.
    """
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{parameter}: expected {ACCEPTED} (a path goes through maelens.load_model), "
                          f"got a {type(model).__name__}")
    from .store import load_checkpoint, unwrap_model

    bare = unwrap_model(model)
    if isinstance(bare, (MaskedAutoencoderViT, SimCLR)):
        return bare
    try:
        return load_checkpoint(bare).model
    except ConfigError as err:
        raise ConfigError(str(err).replace("model:", f"{parameter}:", 1)) from None


__all__ = ["ACCEPTED", "HeldModel", "TRANSFORMERS_CLASSES", "as_model", "read_object"]
