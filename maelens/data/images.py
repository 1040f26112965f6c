"""Reading image files: uint8 RGB arrays (:func:`read_image`) and normalised model inputs (:func:`load_image`)."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np
import torch

from ..errors import DataError
from ..paths import check_input
from .normalization import IMAGENET_MEAN, IMAGENET_STD, denormalize

if TYPE_CHECKING:
    from PIL import Image

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def to_rgb(img: Image.Image, where: str | Path = "image") -> Image.Image:
    """Any PIL image as 8-bit RGB, each mode mapped to [0, 255] by its real range (issue 30): grayscale
    replicated, transparency composited over white; 16-bit integers (``I;16``, and ``I`` holding values in
    0..65535, as Pillow opens 16-bit PNGs) divided by 257; floats (``F``) in [0, 1] scaled by 255 and floats
    already in [0, 255] kept. Other 32-bit integer or float ranges (negative values, NaN, values past 65,535)
    have no known mapping and are refused (a DataError naming ``where``) rather than wrapped modulo 256."""
    from PIL import Image

    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if img.mode.startswith("I") or img.mode == "F":
        return Image.fromarray(_to_8bit(np.asarray(img), img.mode, where)).convert("RGB")
    return img.convert("RGB")


def _to_8bit(arr: np.ndarray, mode: str, where: str | Path) -> np.ndarray:
    """uint8 pixels of a single-channel 16-bit, 32-bit integer or float image, by its range."""
    if arr.size == 0:
        return arr.astype(np.uint8)
    if mode == "F":
        values = arr.astype(np.float64)
        if not np.isfinite(values).all():
            raise DataError(f"{where}: float image holding NaN or infinite values; refused")
        low, high = values.min(), values.max()
        if low >= 0 and high <= 1:
            return np.round(values * 255).astype(np.uint8)
        if low >= 0 and high <= 255:
            return np.round(values).astype(np.uint8)
        raise DataError(f"{where}: float image with values in [{low:g}, {high:g}]: only [0, 1] and [0, 255] have a "
                        "known mapping to 8-bit pixels; rescale it to one of them")
    values = arr.astype(np.int64)
    low, high = int(values.min()), int(values.max())
    if low < 0 or high > 65535:
        raise DataError(f"{where}: {mode} integer image with values in [{low}, {high}], outside 16-bit 0..65535: "
                        "no known mapping to 8-bit pixels; convert it to 8 or 16 bits")
    return ((values * 255 + 32767) // 65535).astype(np.uint8)


@contextmanager
def _decoding(path: str | Path) -> Iterator[None]:
    """Turn Pillow's failures on ``path`` into one :class:`DataError` naming the file: an unreadable
    file, or an image over Pillow's decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``; the error
    above twice the limit, and the warning below it when warnings are turned into errors)."""
    from PIL import Image, UnidentifiedImageError

    try:
        yield
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise DataError(f"{path}: refused as a possible decompression bomb ({err})") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise DataError(f"{path}: not a readable image ({err.__class__.__name__}: {err})") from err


def open_image(path: str | Path, *, max_size: tuple[int, int] | None = None) -> Image.Image:
    """Decode ``path`` as an RGB PIL image (JPEG decoding may stop at a reduced scale no smaller
    than ``max_size``, which makes very large photographs fast to downscale)."""
    from PIL import Image

    path = check_input(path, "image", directory=False)
    with _decoding(path), Image.open(path) as img:
        if max_size is not None:
            img.draft("RGB", max_size)
        img.load()
        return to_rgb(img, path)


def read_image(path: str | Path) -> np.ndarray:
    """Decode ``path`` into a uint8 array (H, W, 3)."""
    return np.array(open_image(path), dtype=np.uint8)


def probe_image(path: str | Path) -> tuple[int, int]:
    """(width, height) from the file header (cheap: no decoding); :class:`DataError` naming ``path``
    when it is not a readable image."""
    from PIL import Image

    path = check_input(path, "image", directory=False)  # a listed FIFO would block the open
    with _decoding(path), Image.open(path) as img:
        return img.size


def load_image(path: str | Path, image_size: int, mean: Sequence[float] = IMAGENET_MEAN,
               std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """One image file as a model input (3, S, S): resized, center-cropped, normalised (evaluation transform)."""
    from .transforms import eval_transform

    img = torch.from_numpy(read_image(path)).permute(2, 0, 1).contiguous()
    return eval_transform(image_size, mean, std)(img)


__all__ = ["IMAGE_EXTENSIONS", "denormalize", "load_image", "open_image", "probe_image", "read_image", "to_rgb"]
