"""Reading image files: uint8 RGB arrays (:func:`read_image`) and normalised model inputs (:func:`load_image`)."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np
import torch

from ..errors import DataError
from .normalization import IMAGENET_MEAN, IMAGENET_STD, denormalize

if TYPE_CHECKING:
    from PIL import Image

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL image as RGB: grayscale replicated, transparency composited over white."""
    from PIL import Image

    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit grayscale: keep the 8 most significant bits rather than clipping at 255.
        arr = np.asarray(img, dtype=np.uint32) >> 8
        return Image.fromarray(arr.astype(np.uint8)).convert("RGB")
    return img.convert("RGB")


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

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: image file not found")
    with _decoding(path), Image.open(path) as img:
        if max_size is not None:
            img.draft("RGB", max_size)
        img.load()
        return to_rgb(img)


def read_image(path: str | Path) -> np.ndarray:
    """Decode ``path`` into a uint8 array (H, W, 3)."""
    return np.array(open_image(path), dtype=np.uint8)


def probe_image(path: str | Path) -> tuple[int, int]:
    """(width, height) from the file header (cheap: no decoding); :class:`DataError` naming ``path``
    when it is not a readable image."""
    from PIL import Image

    with _decoding(path), Image.open(path) as img:
        return img.size


def load_image(path: str | Path, image_size: int, mean: Sequence[float] = IMAGENET_MEAN,
               std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """One image file as a model input (3, S, S): resized, center-cropped, normalised (evaluation transform)."""
    from .transforms import eval_transform

    img = torch.from_numpy(read_image(path)).permute(2, 0, 1).contiguous()
    return eval_transform(image_size, mean, std)(img)


__all__ = ["IMAGE_EXTENSIONS", "denormalize", "load_image", "open_image", "probe_image", "read_image", "to_rgb"]
