"""Validation of every number maelens reads from a file before anything is built from it (issues 29, 30).

One rule per stored format, applied where the data enters: a :class:`Field` says what one stored value
must be (type, range, finiteness, length, choices), :func:`check_fields` applies a schema (field name ->
Field) to a mapping read from a file and raises one error that names the file and the field, and
:func:`check_model_size` bounds what a model of given shapes would allocate before it is built. The
schemas of the formats live beside their readers (:data:`MODEL_CONFIG_FIELDS` here for maelens's own
:class:`~maelens.models.ModelConfig`, which every format ends in; the Hugging Face ``config.json`` and
official ``args`` schemas in :mod:`maelens.checkpoint.infer`).

Stored field names are written ``'name'`` (quoted) in messages: the command line translates bare
parameter names (``image_size``) into its flags, and a value read from a file must not be blamed on a
flag (issue 30). No torch here: the model configuration imports this module.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from .errors import ConfigError, MaelensError

#: Largest image side accepted anywhere (a 65,536-pixel square is 12 GiB of float32 RGB already).
MAX_IMAGE_SIDE = 1 << 16
#: Largest number of tokens (patches + CLS) per image: one attention map of a head is tokens^2 floats,
#: 16 GiB at this bound, so a larger grid cannot be analysed on any machine maelens targets.
MAX_TOKENS = 1 << 16
#: Largest model or layer width (the official MAE-huge is 1,280 wide; 1 << 16 is 50 times that).
MAX_WIDTH = 1 << 16
#: Largest depth and head count (official models have at most 32 blocks and 16 heads).
MAX_DEPTH = 1 << 10
#: Bytes per stored or computed value (float32).
FLOAT_BYTES = 4


@dataclass(frozen=True)
class Field:
    """What one stored value must be.

    ``kind``: ``int`` (bool refused), ``float`` (an int accepted; finite unless ``finite=False``),
    ``bool``, ``str``, ``floats`` (a list of numbers, ``length`` of them when given), ``list`` or ``dict``;
    ``low`` / ``high``: inclusive bounds, ``above``: an exclusive lower bound; ``choices``: the allowed
    values; ``optional``: None (JSON ``null``) is accepted.
    """

    kind: str
    low: float | None = None
    high: float | None = None
    above: float | None = None
    choices: tuple | None = None
    length: int | None = None
    optional: bool = False
    finite: bool = True

    def expected(self) -> str:
        """The rule in words: ``an integer in [1, 65536]``."""
        words = {"int": "an integer", "float": "a finite number" if self.finite else "a number", "bool": "true or false",
                 "str": "a string", "floats": f"a list of {self.length or 'some'} finite numbers", "list": "a list",
                 "dict": "a dict (a JSON object)"}[self.kind]
        bounds = []
        if self.above is not None:
            bounds.append(f"> {self.above:g}")
        if self.low is not None and self.high is not None:
            bounds.append(f"in [{self.low:g}, {self.high:g}]")
        elif self.low is not None:
            bounds.append(f">= {self.low:g}")
        elif self.high is not None:
            bounds.append(f"<= {self.high:g}")
        if self.choices is not None:
            bounds.append("one of " + ", ".join(map(str, self.choices)))
        text = words + (" " + " and ".join(bounds) if bounds else "")
        return text + (" (or null)" if self.optional else "")


def shown(value: Any, limit: int = 60) -> str:
    """A value as a message quotes it: its repr, one line, at most ``limit`` characters (a 10 MB string
    read from a file must not become a 10 MB message)."""
    text = escape(repr(value))
    return text if len(text) <= limit else text[:limit - 3] + "..."


def escape(text: str) -> str:
    """``text`` on one line: newlines, tabs and other control characters written as escapes (``\\n``),
    so that a path or value holding them cannot break a one-line message (issue 30)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == " " else c.encode("unicode_escape").decode("ascii") for c in text)


def _conforms(value: Any, rule: Field) -> bool:
    """Whether ``value`` satisfies ``rule`` (None handled by the caller)."""
    if rule.kind == "bool":
        return isinstance(value, bool)
    if rule.kind == "str":
        return isinstance(value, str) and (rule.choices is None or value in rule.choices)
    if rule.kind in ("list", "dict"):
        return isinstance(value, list if rule.kind == "list" else dict)
    if rule.kind == "floats":
        return (isinstance(value, (list, tuple)) and (rule.length is None or len(value) == rule.length)
                and all(_conforms(v, Field("float", rule.low, rule.high, rule.above)) for v in value))
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if rule.kind == "int" and not isinstance(value, int):
        return False
    if rule.kind == "float" and rule.finite and not math.isfinite(value):
        return False
    if rule.above is not None and not value > rule.above:
        return False
    if rule.low is not None and not value >= rule.low:
        return False
    if rule.high is not None and not value <= rule.high:
        return False
    return rule.choices is None or value in rule.choices


def check_value(value: Any, rule: Field, name: str, where: str,
                error: Callable[[str], MaelensError] = ConfigError) -> Any:
    """``value`` when it satisfies ``rule``; otherwise ``error`` with ``WHERE: 'NAME' must be ..., got ...``."""
    if value is None and rule.optional:
        return value
    if value is None or not _conforms(value, rule):
        raise error(f"{_at(where)}'{name}' must be {rule.expected()}, got {shown(value)}")
    return value


def _at(where: str) -> str:
    """The prefix naming the origin of a value (``FILE: ``), nothing for a value given in Python."""
    return f"{where}: " if where else ""


def check_fields(data: Mapping[str, Any], schema: Mapping[str, Field], where: str,
                 error: Callable[[str], MaelensError] = ConfigError) -> None:
    """Check every field of ``schema`` that ``data`` holds (a missing field is the reader's default)."""
    for name, rule in schema.items():
        if name in data:
            check_value(data[name], rule, name, where, error)


# ---- maelens's model configuration: the form every checkpoint format is converted to ----------------

_INT = Field("int", low=1, high=MAX_WIDTH)
#: One rule per field of :class:`~maelens.models.ModelConfig`.
MODEL_CONFIG_FIELDS: dict[str, Field] = {
    "name": Field("str"),
    "img_size": Field("int", low=1, high=MAX_IMAGE_SIDE),
    "patch_size": Field("int", low=1, high=MAX_IMAGE_SIDE),
    "in_chans": Field("int", low=1, high=64),
    "embed_dim": _INT,
    "depth": Field("int", low=1, high=MAX_DEPTH),
    "num_heads": Field("int", low=1, high=MAX_DEPTH),
    "decoder_embed_dim": _INT,
    "decoder_depth": Field("int", low=0, high=MAX_DEPTH),
    "decoder_num_heads": Field("int", low=1, high=MAX_DEPTH),
    "mlp_ratio": Field("float", above=0, high=64),
    "qkv_bias": Field("bool"),
    "layer_norm_eps": Field("float", above=0, high=1),
    "norm_pix_loss": Field("bool"),
    "loss_target": Field("str"),
    "norm_mean": Field("floats", length=3),
    "norm_std": Field("floats", length=3, above=0),
}


def check_model_config(values: Mapping[str, Any], where: str = "") -> None:
    """Raise a :class:`ConfigError` naming the field unless ``values`` (a ModelConfig's fields) describe a
    model that can be built and computes something meaningful: each field by :data:`MODEL_CONFIG_FIELDS`,
    widths divisible by their head counts, the patch dividing the image, at most :data:`MAX_TOKENS`
    tokens, and a size within this machine's memory (:func:`check_model_size`)."""
    check_fields(values, MODEL_CONFIG_FIELDS, where)
    img, patch = values["img_size"], values["patch_size"]
    if img % patch:
        raise ConfigError(f"{_at(where)}'img_size' {img} is not a multiple of 'patch_size' {patch}")
    for width, heads, used in (("embed_dim", "num_heads", True),
                               ("decoder_embed_dim", "decoder_num_heads", values["decoder_depth"] > 0)):
        if used and values[width] % values[heads]:
            raise ConfigError(f"{_at(where)}'{width}' {values[width]} is not divisible by '{heads}' {values[heads]}")
    if values["embed_dim"] * values["mlp_ratio"] < 1:
        raise ConfigError(f"{_at(where)}'mlp_ratio' {values['mlp_ratio']:g} gives an MLP of no unit at width "
                          f"{values['embed_dim']}")
    check_model_size(values, where)


def model_bytes(values: Mapping[str, Any]) -> tuple[int, int]:
    """``(parameter bytes, bytes of one image's largest activation)`` of a model with these shapes, from the
    shapes alone (nothing allocated): weights of the patch embedding, blocks (qkv, projection, MLP, two
    norms), position tables and decoder; the activation is one head's tokens x tokens attention map."""
    d, depth, c, p = values["embed_dim"], values["depth"], values["in_chans"], values["patch_size"]
    tokens = (values["img_size"] // p) ** 2 + 1
    hidden = int(d * values["mlp_ratio"])

    def blocks(width: int, count: int) -> int:
        mlp = int(width * values["mlp_ratio"]) if width != d else hidden
        return count * (4 * width * width + 2 * width * mlp + 9 * width + mlp)

    params = c * p * p * d + d + tokens * d + blocks(d, depth) + 2 * d
    if values["decoder_depth"]:
        dd = values["decoder_embed_dim"]
        params += d * dd + dd + dd + tokens * dd + blocks(dd, values["decoder_depth"]) + 2 * dd + dd * (p * p * c + 1)
    return params * FLOAT_BYTES, tokens * tokens * FLOAT_BYTES


def memory_bytes() -> int | None:
    """This machine's physical memory in bytes, None when the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def gib(n: float) -> str:
    """A byte count in words: ``3.2 GiB``, ``1.5 TiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} EiB"


def check_model_size(values: Mapping[str, Any], where: str = "") -> None:
    """Refuse, before anything is allocated, a model whose tokens exceed :data:`MAX_TOKENS` or whose weights
    exceed this machine's memory (issue 29: a width asking for terabytes must not exhaust memory first)."""
    tokens = (values["img_size"] // values["patch_size"]) ** 2 + 1
    if tokens > MAX_TOKENS:
        raise ConfigError(f"{_at(where)}'img_size' {values['img_size']} with 'patch_size' {values['patch_size']} makes "
                          f"{tokens:,} tokens per image, over the limit of {MAX_TOKENS:,} (one attention map alone "
                          f"would take {gib(tokens * tokens * FLOAT_BYTES)})")
    weights, _ = model_bytes(values)
    memory = memory_bytes()
    if memory is not None and weights > memory:
        raise ConfigError(f"{_at(where)}these shapes ('embed_dim' {values['embed_dim']}, 'depth' {values['depth']}, "
                          f"'img_size' {values['img_size']}) make a model of {gib(weights)} of float32 weights, more "
                          f"than this machine's {gib(memory)} of memory")


def check_grid(grid: tuple[int, int], what: str, where: str = "") -> None:
    """Refuse a patch grid smaller than 2x2 for analyses that compare patches with each other (attention
    locality, consistency, rollout): with one patch they return "perfect" or NaN values (issue 30)."""
    if min(grid) < 2:
        raise ConfigError(f"{_at(where)}a {grid[0]}x{grid[1]} patch grid is too small for {what}, which compares "
                          "patches with each other (at least 2x2 needed: a smaller patch size or a larger image_size)")


def check_array_bytes(shape: tuple[int, ...], itemsize: int, what: str, options: str) -> None:
    """Refuse, before allocating, an array of ``shape`` whose bytes exceed this machine's memory; ``what`` names
    the array and ``options`` the parameters whose product it is (``samples x tokens x dim``)."""
    need = math.prod(shape) * itemsize
    memory = memory_bytes()
    if memory is not None and need > memory:
        raise ConfigError(f"{options} = {' x '.join(f'{n:,}' for n in shape)} makes {what} of {gib(need)}, more "
                          f"than this machine's {gib(memory)} of memory; choose smaller values")


def check_batch_bytes(batch_size: int, image_size: int, channels: int = 3, option: str = "batch_size") -> None:
    """Refuse a batch whose float32 images alone exceed this machine's memory (batch x image bytes)."""
    need = batch_size * channels * image_size * image_size * FLOAT_BYTES
    memory = memory_bytes()
    if memory is not None and need > memory:
        raise ConfigError(f"{option}={batch_size} images of {image_size}x{image_size} take {gib(need)} as float32 "
                          f"inputs, more than this machine's {gib(memory)} of memory; choose a smaller {option}")


__all__ = ["FLOAT_BYTES", "Field", "MAX_DEPTH", "MAX_IMAGE_SIDE", "MAX_TOKENS", "MAX_WIDTH", "MODEL_CONFIG_FIELDS",
           "check_array_bytes", "check_batch_bytes", "check_fields", "check_grid", "check_model_config", "check_model_size", "check_value",
           "escape", "gib", "memory_bytes", "model_bytes", "shown"]
