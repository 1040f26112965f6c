"""Image sets cut from photographs: the bundled crops and the ``photos`` / ``backgrounds`` tiles.

They stand in, offline, for the low-resolution natural images the IPOL paper trains and analyses
its MAE on (64x64 ImageNet images; Sarbout & Colom, sec. 4, experimental setup). Both are deterministic (no dependence on any seed argument), prepared once per image size and
cached, and split spatially: test images come from a strip on the right of each photograph
that no training image overlaps.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..errors import DataError
from .cache import Arrays, cached_arrays
from .images import open_image, probe_image
from .sources import OPENCV_SAMPLES, SKIMAGE, SKIMAGE_TILE_EXCLUDE, WALLPAPER_COLLECTIONS, Photo

FORMAT_VERSION = 2
FLAT_STD = 10.0
"""Tiles whose pixel standard deviation (all channels, 0-255 scale) is below this are near-flat
(sky, black borders) and left out."""

BUNDLED_TRAIN, BUNDLED_TEST = 96, 32
BUNDLED_SIDE = (0.12, 0.30)
BUNDLED_TEST_STRIP = 0.30
TILES_PER_SIDE = 8
TILES_TEST_COLUMNS = 0.20
HELD_OUT_STRIP = 0.10
"""The right-most 10% of every photograph: no set that MAE pretraining trains on reaches into it (the ``bundled``
and mosaic training crops stop at 70% of the width, the training tiles of ``photos`` / ``backgrounds`` at 6/7 of
it at most, see :func:`tile_grid`), so the segmentation sets (``mosaic``, ``canvas``) take their test pixels
from it alone."""

Located = list[tuple[Photo, Path]]


def box_std(img: np.ndarray, x0: np.ndarray, y0: np.ndarray, side: np.ndarray) -> np.ndarray:
    """Pixel standard deviation of K square boxes of ``img`` (H, W, C) at once, from summed-area
    tables: boxes ``img[y0:y0+side, x0:x0+side]``, (K,) each -> (K,)."""
    f = img.astype(np.float64)
    c = f.shape[2]
    sums = [np.pad(g.cumsum(0).cumsum(1), ((1, 0), (1, 0))) for g in (f.sum(axis=2), (f * f).sum(axis=2))]
    x1, y1 = x0 + side, y0 + side
    s1, s2 = (t[y1, x1] - t[y0, x1] - t[y1, x0] + t[y0, x0] for t in sums)
    n = side.astype(np.float64) ** 2 * c
    mean = s1 / n
    return np.sqrt(np.maximum(s2 / n - mean * mean, 0.0))


def draw_crops(img: np.ndarray, columns: tuple[int, int], count: int, seed: int) -> np.ndarray:
    """``count`` non-flat square crops (K, 3) as (x0, y0, side) inside the column range ``columns``,
    sides log-uniform in :data:`BUNDLED_SIDE` times the shorter side of the photo."""
    h, w = img.shape[:2]
    lo, hi = columns
    rng = np.random.default_rng(seed)
    k = 8 * count
    frac = np.exp(rng.uniform(np.log(BUNDLED_SIDE[0]), np.log(BUNDLED_SIDE[1]), k))
    side = np.minimum(np.round(frac * min(h, w)).astype(np.int64), min(hi - lo, h))
    x0 = lo + (rng.random(k) * (hi - lo - side + 1)).astype(np.int64)
    y0 = (rng.random(k) * (h - side + 1)).astype(np.int64)
    ok = box_std(img, x0, y0, side) >= FLAT_STD
    return np.stack([x0, y0, side], axis=1)[ok][:count]


def build_bundled(image_size: int, photos: Located) -> Arrays:
    """Crops of the scikit-image photographs resized to ``image_size``: per class
    :data:`BUNDLED_TRAIN` from the left 70% of its photo(s) and :data:`BUNDLED_TEST` from the right 30%."""
    from PIL import Image

    classes = sorted({p.label for p, _ in photos})
    per_class = {c: sum(p.label == c for p, _ in photos) for c in classes}
    images, labels, ids, test = [], [], [], []
    for photo, path in photos:
        pil = open_image(path)
        img = np.asarray(pil)
        w = img.shape[1]
        cut = int(w * (1 - BUNDLED_TEST_STRIP))
        m = per_class[photo.label]
        for is_test, columns, count in ((False, (0, cut), BUNDLED_TRAIN // m), (True, (cut, w), BUNDLED_TEST // m)):
            seed = zlib.crc32(f"{photo.file}:{'test' if is_test else 'train'}".encode())
            for x0, y0, s in draw_crops(img, columns, count, seed).tolist():
                crop = pil.resize((image_size, image_size), Image.BICUBIC, box=(x0, y0, x0 + s, y0 + s))
                images.append(np.asarray(crop))
                ids.append(f"{photo.title}/x{x0}y{y0}s{s}")
                labels.append(classes.index(photo.label))
                test.append(is_test)
    return _arrays(images, labels, classes, ids, test, image_size, photos)


def tile_grid(width: int, height: int, image_size: int,
              per_side: int | None) -> tuple[tuple[int, int], int, int, int, int, int]:
    """Where :func:`tile_photo` cuts a ``width`` x ``height`` photograph: the size it is resized to (the
    original size when not reduced), the grid's offsets ``oy, ox`` and extent ``rows, cols`` in tiles of
    ``image_size`` pixels, and ``test_cols``, the number of right-most tile columns in the test split."""
    s = image_size
    scale = 1.0 if per_side is None else per_side * s / min(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale))) if scale < 1 else (width, height)
    w, h = size
    rows, cols = h // s, w // s
    oy, ox = (h - rows * s) // 2, (w - cols * s) // 2
    return size, oy, ox, rows, cols, max(1, round(TILES_TEST_COLUMNS * cols))


def tile_photo(path: Path, image_size: int, per_side: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Non-overlapping ``image_size`` tiles of one photograph, first resized so that its shorter side
    holds ``per_side`` tiles (never enlarged; ``None`` keeps the native size), grid centred
    (:func:`tile_grid`).

    Returns tiles (T, S, S, 3) uint8, their (T, 2) (row, column) and the (T,) is-test flags
    (tiles in the right-most :data:`TILES_TEST_COLUMNS` of the columns).
    """
    from PIL import Image

    s = image_size
    width, height = probe_image(path)
    size, oy, ox, rows, cols, test_cols = tile_grid(width, height, s, per_side)
    if size != (width, height):
        img = np.asarray(open_image(path, max_size=size).resize(size, Image.BICUBIC))
    else:
        img = np.asarray(open_image(path))
    if rows == 0 or cols == 0:
        return np.zeros((0, s, s, 3), np.uint8), np.zeros((0, 2), np.int64), np.zeros(0, bool)
    tiles = img[oy:oy + rows * s, ox:ox + cols * s].reshape(rows, s, cols, s, 3).swapaxes(1, 2).reshape(-1, s, s, 3)
    rc = np.stack(np.divmod(np.arange(rows * cols), cols), axis=1)
    keep = tiles.reshape(len(tiles), -1).std(axis=1) >= FLAT_STD
    test = rc[:, 1] >= cols - test_cols
    return tiles[keep], rc[keep], test[keep]


def build_tiles(image_size: int, photos: Located, per_side: int | None, quiet: bool = True) -> Arrays:
    """Tiles of every photo in ``photos`` (see :func:`tile_photo`), labelled by photograph."""
    classes = sorted({p.title for p, _ in photos})
    images, labels, ids, test = [], [], [], []
    for photo, path in tqdm(photos, desc="tiling photos", unit="photo", disable=quiet):
        tiles, rc, is_test = tile_photo(path, image_size, per_side)
        images += list(tiles)
        labels += [classes.index(photo.title)] * len(tiles)
        ids += [f"{photo.title}/r{r}c{c}" for r, c in rc.tolist()]
        test += is_test.tolist()
    return _arrays(images, labels, classes, ids, test, image_size, photos)


def _arrays(images: list[np.ndarray], labels: list[int], classes: list[str], ids: list[str], test: list[bool],
            image_size: int, photos: Located) -> Arrays:
    return {
        "images": np.stack(images) if images else np.zeros((0, image_size, image_size, 3), np.uint8),
        "labels": np.asarray(labels, dtype=np.int64), "classes": np.asarray(classes, dtype=str),
        "ids": np.asarray(ids, dtype=str), "test": np.asarray(test, dtype=bool),
        "sources": np.asarray([str(path) for _, path in photos], dtype=str),
    }


def _fingerprint(photos: Located) -> list[list]:
    return [[str(path), path.stat().st_size] for _, path in photos]


def skimage_photos(tiles: bool) -> Located:
    """scikit-image's photographs (all for the bundled set; without the synthetic colour wheel for tiles)."""
    located = SKIMAGE.installed()
    if tiles:
        located = [(p, path) for p, path in located if p.file not in SKIMAGE_TILE_EXCLUDE]
    if not located:
        raise DataError(f"scikit-image's sample photographs were not found in {SKIMAGE.root}; "
                        "reinstall scikit-image (pip install --force-reinstall scikit-image)")
    return located


def wallpaper_photos() -> Located:
    """The installed Debian wallpaper photographs."""
    return [x for c in WALLPAPER_COLLECTIONS for x in c.installed()]


def opencv_photos() -> Located:
    """The installed OpenCV sample photographs."""
    return OPENCV_SAMPLES.installed()


def load_bundled(image_size: int) -> tuple[Arrays, Path]:
    """The bundled crop set at ``image_size`` (prepared and cached on first use)."""
    photos = skimage_photos(tiles=False)
    key = {"version": FORMAT_VERSION, "kind": "bundled", "size": image_size, "files": _fingerprint(photos)}
    return cached_arrays(f"bundled-{image_size}px", key, lambda: build_bundled(image_size, photos))


def load_tiles(kind: str, image_size: int, photos: Located, per_side: int | None,
               quiet: bool = True) -> tuple[Arrays, Path]:
    """A tile set (``photos`` or ``backgrounds``) at ``image_size`` (prepared and cached on first use)."""
    key = {"version": FORMAT_VERSION, "kind": kind, "size": image_size, "per_side": per_side,
           "files": _fingerprint(photos)}
    scale = "full" if per_side is None else f"{per_side}per-side"
    return cached_arrays(f"{kind}-{scale}-{image_size}px", key,
                         lambda: build_tiles(image_size, photos, per_side, quiet))

__all__ = ["BUNDLED_SIDE", "BUNDLED_TEST_STRIP", "FLAT_STD", "FORMAT_VERSION", "HELD_OUT_STRIP", "TILES_PER_SIDE",
    "TILES_TEST_COLUMNS", "box_std", "build_bundled", "build_tiles", "draw_crops", "load_bundled", "load_tiles",
    "opencv_photos", "skimage_photos", "tile_grid", "tile_photo", "wallpaper_photos"]
