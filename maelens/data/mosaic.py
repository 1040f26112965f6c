"""The offline segmentation set: Voronoi mosaics of real photographs (issue 10).

Each image is cut into 2-4 Voronoi cells around random seed points; each cell shows a crop of a
different source photograph and its pixels carry that photograph's class. The crops are drawn as the
``bundled`` crops are (square, side 12-30% of the photo's shorter side, never near-flat; see
:func:`~maelens.data.tiles.draw_crops`): training mosaics only from the left 70% of every photograph,
test mosaics only from the right-most :data:`~maelens.data.tiles.HELD_OUT_STRIP` (10%; a test crop's side is
capped by the strip's width), which no pretraining set trains on: the ``bundled`` training crops stop at 70%
of the width and the training tiles of ``photos`` / ``backgrounds`` at 6/7 of it (format 1 of this set tested on
the right 30%, a band of which the ``photos`` training tiles cover: the leak of issue 24).

The label of a cell is "which photograph", which is mostly the colour histogram of the crop: a colour lookup
(:mod:`maelens.segmentation.baselines`; per class counts of the 16-level quantised training colours) labels the
format-1 quick test set about as well as every fine-tuned Segmenter (46.8% pixel accuracy, 31.9% mIoU; 54.0% /
37.7% with a 4x4 majority vote, against 48.5-50.0% / 31.3-32.5%, issue 24); on this format-2 set at 32x32 it
gets 44.8% / 28.7%, 47.6% / 30.6% with the vote (``experiments/results/colour-lookup/lookup-32px.json``). Use it
to exercise the pipeline;
test whether pretraining helps on ``canvas``, whose classes are shapes. Everything is deterministic: the crop
pools, the cells and the choice of classes come from :data:`MOSAIC_SEED` and the file names, recorded in the
set's ``info``.
"""

from __future__ import annotations

import zlib

import numpy as np

from ..errors import DataError
from .cache import Arrays, cached_arrays
from .images import open_image
from .segdataset import SegRaw
from .sources import Photo
from .tiles import (
    BUNDLED_TEST_STRIP,
    HELD_OUT_STRIP,
    Located,
    draw_crops,
    opencv_photos,
    skimage_photos,
    wallpaper_photos,
)

FORMAT_VERSION = 2
MOSAIC_SEED = 20231
MOSAIC_SIZES = {"train": 1024, "test": 256}
CELLS = (2, 4)
POOL = {"train": 96, "test": 32}
"""Crops drawn per class and split (shared by the photographs of a class), each reused in several mosaics."""

COLLECTIONS = ("skimage", "photos")


def _photos(collection: str) -> Located:
    if collection == "skimage":
        return skimage_photos(tiles=False)
    return skimage_photos(tiles=True) + wallpaper_photos() + opencv_photos()


def photo_class(photo: Photo, collection: str) -> str:
    """The class of a photograph: its bundled label for ``skimage`` (the stereo pair is one class), else its title."""
    return photo.label if collection == "skimage" else photo.title


def crop_pools(image_size: int, photos: Located, classes: list[str], collection: str) -> dict[str, list[np.ndarray]]:
    """Per split, per class: (P, S, S, 3) uint8 crops from that split's columns of the class's photographs."""
    from PIL import Image

    per_class = {c: sum(photo_class(p, collection) == c for p, _ in photos) for c in classes}
    pools: dict[str, list[list[np.ndarray]]] = {s: [[] for _ in classes] for s in POOL}
    for photo, path in photos:
        pil = open_image(path)
        img = np.asarray(pil)
        w = img.shape[1]
        cut, held_out = int(w * (1 - BUNDLED_TEST_STRIP)), int(np.ceil(w * (1 - HELD_OUT_STRIP)))
        for split, columns in (("train", (0, cut)), ("test", (held_out, w))):
            seed = zlib.crc32(f"mosaic:{photo.file}:{split}".encode())
            count = max(1, POOL[split] // per_class[photo_class(photo, collection)])
            for x0, y0, s in draw_crops(img, columns, count, seed).tolist():
                crop = pil.resize((image_size, image_size), Image.BICUBIC, box=(x0, y0, x0 + s, y0 + s))
                pools[split][classes.index(photo_class(photo, collection))].append(np.asarray(crop))
    return {s: [np.stack(c) if c else np.zeros((0, image_size, image_size, 3), np.uint8) for c in pool]
            for s, pool in pools.items()}


def voronoi_labels(size: int, cells: int, rng: np.random.Generator) -> np.ndarray:
    """(S, S) cell index of every pixel: nearest of ``cells`` uniform seed points."""
    seeds = rng.uniform(0, size, (cells, 2))
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    d = (yy[None] - seeds[:, 0, None, None]) ** 2 + (xx[None] - seeds[:, 1, None, None]) ** 2
    return d.argmin(0)


def build_mosaics(image_size: int, photos: Located, collection: str = "skimage",
                  sizes: dict[str, int] = MOSAIC_SIZES, seed: int = MOSAIC_SEED) -> Arrays:
    """Both splits of the mosaic set at ``image_size`` (arrays as the other cached sets, plus ``masks``)."""
    classes = sorted({photo_class(p, collection) for p, _ in photos})
    pools = crop_pools(image_size, photos, classes, collection)
    usable = {s: [k for k, pool in enumerate(pools[s]) if len(pool)] for s in pools}
    images, masks, ids, test = [], [], [], []
    for split, count in sizes.items():
        rng = np.random.default_rng([seed, zlib.crc32(split.encode())])
        for i in range(count):
            # cells, one distinct class per cell, one crop of that class per cell
            cells = voronoi_labels(image_size, int(rng.integers(CELLS[0], CELLS[1] + 1)), rng)
            chosen = rng.choice(usable[split], size=int(cells.max()) + 1, replace=False)
            img = np.empty((image_size, image_size, 3), np.uint8)
            for cell, k in enumerate(chosen):
                crop = pools[split][k][rng.integers(len(pools[split][k]))]
                img[cells == cell] = crop[cells == cell]
            images.append(img)
            masks.append(np.asarray(chosen, np.uint8)[cells])
            ids.append(f"mosaic-{split}-{i:05d}")
            test.append(split == "test")
    return {"images": np.stack(images), "masks": np.stack(masks), "ids": np.asarray(ids, dtype=str),
            "test": np.asarray(test, dtype=bool), "classes": np.asarray(classes, dtype=str),
            "sources": np.asarray([str(path) for _, path in photos], dtype=str)}


def load_mosaics(image_size: int, collection: str = "skimage") -> tuple[Arrays, str]:
    """The cached mosaic set of ``collection`` (``skimage``: the 13 bundled classes, always installed;
    ``photos``: every installed photograph, one class each) and a one-line description of how it was made."""
    if collection not in COLLECTIONS:
        raise DataError(f"mosaic:{collection}: expected mosaic or mosaic:photos")
    photos = _photos(collection)
    key = {"version": FORMAT_VERSION, "kind": f"mosaic-{collection}", "size": image_size, "seed": MOSAIC_SEED,
           "sizes": MOSAIC_SIZES, "cells": CELLS, "pool": POOL,
           "files": [[str(path), path.stat().st_size] for _, path in photos]}
    arrays, path = cached_arrays(f"mosaic-{collection}-{image_size}px", key,
                                 lambda: build_mosaics(image_size, photos, collection))
    return arrays, f"Voronoi mosaics of {len(photos)} photographs (seed {MOSAIC_SEED}, cached in {path})"


def mosaic_raw(image_size: int, split: str, collection: str = "skimage") -> tuple[SegRaw, dict]:
    """The ``split`` of the mosaic set as a :class:`SegRaw`, with the settings that made it."""
    arrays, described = load_mosaics(image_size, collection)
    is_test = arrays["test"]
    idx = np.arange(len(is_test)) if split == "all" else np.flatnonzero(is_test == (split == "test"))
    raw = SegRaw(arrays["images"][idx], arrays["masks"][idx], arrays["classes"].tolist(),
                 arrays["ids"][idx].tolist(), [described, *arrays["sources"].tolist()])
    info = {"mosaic": {"seed": MOSAIC_SEED, "sizes": MOSAIC_SIZES, "cells": list(CELLS), "crop_pool": POOL,
                       "train_columns": [0.0, 1 - BUNDLED_TEST_STRIP], "test_columns": [1 - HELD_OUT_STRIP, 1.0],
                       "collection": collection}}
    return raw, info

__all__ = ["CELLS", "COLLECTIONS", "FORMAT_VERSION", "MOSAIC_SEED", "MOSAIC_SIZES", "POOL", "build_mosaics",
    "crop_pools", "load_mosaics", "mosaic_raw", "photo_class", "voronoi_labels"]
