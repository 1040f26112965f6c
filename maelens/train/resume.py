"""Which settings a resumed run may change: equal passes, different is refused with the field named, except
the fields that may change on purpose, which are said once and recorded in the run's log and summary.

A resumed run continues the stored one: its later epochs must use what its first epochs used, or nobody
can tell from the run's record what was trained. Torch-free; used by :class:`~maelens.train.runloop.RunLoop`
and by :func:`~maelens.train.reuse.train_or_load`.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any

from ..choices import DEFAULT_BATCH_SIZE, DEFAULT_WARMUP_EPOCHS
from ..errors import ConfigError
from .config import default_masking
from .runconfig import RunConfig

#: Where the run lives and how it reports: never compared.
UNCOMPARED = ("out", "resume", "quiet", "num_workers", "settings_from", "save_every", "keep_last", "recon_images",
              "figure_images")
#: What may change on purpose in a resumed run: where and how it computes (the numbers may differ in rounding,
#: not in meaning) and a longer run (the lr schedule is stretched from the resumed epoch on).
MAY_CHANGE = ("device", "precision", "compile", "fused_attention", "epochs")
#: Fields added with a default that changed the behaviour, and the value that reproduces what runs stored
#: before the field existed did (issue 18: the CLS / mask tokens were exempt from weight decay).
BEFORE_THE_FIELD = {"decay_tokens": False}


def comparable(settings: dict[str, Any], config_type: type[RunConfig]) -> dict[str, Any]:
    """``settings`` (a stored config dict) as plain JSON values, completed with ``config_type``'s defaults
    for the fields it lacks (or the value of :data:`BEFORE_THE_FIELD`), with the defaults written as None
    replaced by the values they stand for, so that a run stored by an earlier version compares equal to the
    same run now."""
    defaults = {f.name: f.default for f in fields(config_type) if not callable(f.default_factory)}
    defaults.update({f.name: f.default_factory() for f in fields(config_type) if callable(f.default_factory)})
    out = json.loads(json.dumps({**defaults, **BEFORE_THE_FIELD, **_older_names(settings)}, default=str))
    if out.get("warmup_epochs") is None:  # the default since issue 16; earlier versions stored 2.0
        out["warmup_epochs"] = min(DEFAULT_WARMUP_EPOCHS, float(out.get("epochs", 0)))
    if "masking" in out and "mask_ratio" in out:  # None stands for the method's own (TrainConfig)
        masking, ratio = default_masking(out.get("method") or "mae")
        out["masking"] = masking if out["masking"] is None else out["masking"]
        out["mask_ratio"] = ratio if out["mask_ratio"] is None else out["mask_ratio"]
    if out.get("batch_size") is None:  # a stored 64 never stood for a lowered default: those runs were refused
        out["batch_size"] = DEFAULT_BATCH_SIZE
    return out


def _older_names(settings: dict[str, Any]) -> dict[str, Any]:
    if "precision" not in settings and "bf16" in settings:  # stored before issue 12
        return {**settings, "precision": "bf16" if settings["bf16"] else "fp32"}
    return settings


def differences(stored: dict[str, Any], config: RunConfig, ignore: tuple[str, ...] = UNCOMPARED) -> list[str]:
    """The fields of ``config`` whose value differs from the ``stored`` run's (sorted), ``ignore`` left out."""
    wanted = comparable(config.to_dict(), type(config))
    have = comparable(stored, type(config))
    return sorted(k for k, v in wanted.items() if k not in ignore and have.get(k) != v)


def compare_settings(stored: dict[str, Any], config: RunConfig, path: str | Path) -> list[str]:
    """Check that ``config`` continues the run stored in checkpoint ``path`` with config dict ``stored``.

    Raises a ConfigError naming every field that differs and may not (fewer ``epochs`` too); returns one
    sentence per field of :data:`MAY_CHANGE` that changed, for the run to say once and record.
    """
    differ = differences(stored, config)
    have, wanted = comparable(stored, type(config)), comparable(config.to_dict(), type(config))
    # a default warm-up follows epochs (shortened to them), so it changes with them
    derived = ("warmup_epochs",) if config.warmup_epochs is None else ()
    refused = [k for k in differ if k not in MAY_CHANGE + derived or (k == "epochs" and wanted[k] < have[k])]
    if refused:
        what = ", ".join(f"{k}={_show(have.get(k))} (this run: {k}={_show(wanted.get(k))})" for k in refused)
        raise ConfigError(f"{path} was trained with {what}; a resumed run must keep them: give the stored values, "
                          f"or choose another out=FOLDER for a new run")
    return [f"resumed with {k}={_show(wanted[k])} where the stored run had {k}={_show(have.get(k))}"
            for k in differ]


def _show(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (str, list, dict)) or value is None else str(value)


__all__ = ["BEFORE_THE_FIELD", "MAY_CHANGE", "UNCOMPARED", "compare_settings", "comparable", "differences"]
