"""The ``canvas`` segmentation set: Fashion-MNIST items pasted on photographs, labelled by shape (issue 24).

Why: the IPOL paper's headline claim (Sarbout & Colom, sec. 6 "Pre-training", Fig. 12: an MAE-pretrained
Segmenter reaches a lower evaluation loss than one trained from scratch) can only show on a set where the
label is not a colour. On ``mosaic`` a per-pixel colour lookup scores as well as any segmenter. Here every
canvas holds 2-4 Fashion-MNIST articles (Debian ``dataset-fashion-mnist``) at random positions and scales,
each with its own random tint, brightness and contrast, over a textured crop of a photograph; the label of a
pixel is the class of the article covering it (10 classes) or ``background``: a colour says nothing about
the class, the outline does.

Splits and what pretraining may have seen (checked by ``tests/test_canvas.py`` from the crop boxes):

- training canvases (labelled, and the unlimited unlabelled stream for MAE pretraining, ``--data canvas``)
  take the official Fashion-MNIST training items and background crops from the left 70% of each photograph;
- test canvases take the official test items and background crops from the right-most
  :data:`~maelens.data.tiles.HELD_OUT_STRIP` (10%) of each photograph, a strip no pretraining set trains on:
  ``bundled`` and ``mosaic`` training crops stop at 70% of the width, ``photos[:K|full]`` and
  ``backgrounds[:K|full]`` training tiles at 6/7 of it at most (the tile grid puts round(20%) of its columns,
  at least one, in the test split; (c - round(c/5)) / c peaks at 6/7 for c = 7 columns, and centring the grid
  only lowers it), plus the bicubic footprint of the resizing, and the canvas stream stops at 70%.
  Pretraining sets' *test* splits (``photos``: about the right 20%) overlap the strip; nothing is fitted to them.
  ``fashion-mnist`` pretraining reads the official training files; test canvases hold only official test items.
  A user's own pretraining data (folders, ImageNet batches) cannot be checked and is the user's to keep apart.

Canvases are seeded per index (:data:`CANVAS_SEED`, the split, the index), so canvas ``i`` of a split is the
same whatever the count asked for: the unlabelled stream is unlimited (:func:`canvas_stream`) and any prefix of
it can be cached (``--data canvas:N``). The sizes are recorded in the set's ``info``. Cached canvases take 3 KB
each at 32 px and 12 KB at 64 px (the default stream of 20,000: 61 MB / 246 MB; the labelled sets 20 / 80 MB).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import DataError
from .cache import cached_arrays
from .dataset import RawSet
from .images import open_image, probe_image
from .segdataset import SegRaw
from .sources import FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, FASHION_MNIST_INSTALL, Photo
from .tiles import (
    BUNDLED_TEST_STRIP,
    HELD_OUT_STRIP,
    Located,
    draw_crops,
    opencv_photos,
    skimage_photos,
    wallpaper_photos,
)

if TYPE_CHECKING:
    from PIL import Image

FORMAT_VERSION = 2
CANVAS_SEED = 20240
#: Labelled canvases per split (the few-label study subsets the training ones).
CANVAS_SIZES = {"train": 4096, "test": 1024}
#: Unlabelled canvases of ``--data canvas`` for pretraining (``canvas:N`` for another prefix of the stream).
STREAM_DEFAULT = 20000
ITEMS = (2, 4)
#: Side of a pasted article as a fraction of the canvas side (log-uniform).
ITEM_SIDE = (0.4, 0.75)
#: Largest share of an article's box that earlier articles may cover, and the places tried to achieve it.
MAX_COVER, PLACEMENT_TRIES = 0.25, 12
#: Fashion-MNIST intensity (0-1) at which a pixel is fully the article's; the label needs half of it.
OPAQUE = 0.15
BACKGROUND_CROPS = {"train": 24, "test": 12}
"""Background crops per photograph and split (side 12-30% of its shorter side, never near-flat)."""
#: Shorter side (pixels) the photographs are reduced to before the background crops are cut.
PHOTO_SIDE = 512
CLASSES = (*FASHION_MNIST_CLASSES, "background")
BACKGROUND = len(CLASSES) - 1
#: The photograph columns (fractions of the width) each split's backgrounds come from.
COLUMNS = {"train": (0.0, 1 - BUNDLED_TEST_STRIP), "test": (1 - HELD_OUT_STRIP, 1.0)}
_STREAMS = {"train": 1, "test": 2, "unlabelled": 3}


def _photos() -> Located:
    """The photographs of ``photos`` (scikit-image's, the Debian wallpapers and OpenCV samples installed)."""
    return skimage_photos(tiles=True) + wallpaper_photos() + opencv_photos()


def fashion_items(part: str, root: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The official ``part`` ("train" or "test") Fashion-MNIST items: (N, 28, 28) uint8 and (N,) labels;
    a :class:`DataError` naming the Debian package when it is not installed."""
    from .idx import is_idx_dir, read_idx_dir

    root = FASHION_MNIST_DIR if root is None else root
    if not is_idx_dir(root):
        raise DataError(f"data=canvas needs Fashion-MNIST, not found in {root}; install it with "
                        f"`{FASHION_MNIST_INSTALL}` (Debian package dataset-fashion-mnist)")
    raw = read_idx_dir(root, part, list(FASHION_MNIST_CLASSES))
    return np.asarray(raw.images)[..., 0], np.asarray(raw.labels)


def column_range(width: int, split: str) -> tuple[int, int]:
    """The pixel columns ``[lo, hi)`` of a ``width``-wide photograph that ``split``'s backgrounds come from
    (rounded inwards, so they never cross the fractions of :data:`COLUMNS`)."""
    lo, hi = COLUMNS[split]
    return int(np.ceil(lo * width)), int(np.floor(hi * width))


def background_boxes(img: np.ndarray, photo: Photo, split: str) -> np.ndarray:
    """The (K, 3) crop boxes (x0, y0, side) of ``split``'s backgrounds in the photograph ``img`` (H, W, 3):
    :data:`BACKGROUND_CROPS` non-flat squares inside :func:`column_range`, side 12-30% of the shorter side."""
    seed = zlib.crc32(f"canvas:{photo.file}:{split}".encode())
    return draw_crops(img, column_range(img.shape[1], split), BACKGROUND_CROPS[split], seed)


def reduced_photo(path: Path) -> "Image.Image":
    """The photograph at ``path``, reduced (never enlarged) so that its shorter side is at most
    :data:`PHOTO_SIDE` pixels: the background crops are drawn from it (decoding is several times faster)."""
    from PIL import Image

    width, height = probe_image(path)
    r = min(1.0, PHOTO_SIDE / min(width, height))
    size = (max(1, round(width * r)), max(1, round(height * r)))
    pil = open_image(path, max_size=size)
    return pil if pil.size == size else pil.resize(size, Image.BICUBIC)


def background_pool(image_size: int, photos: Located, split: str) -> np.ndarray:
    """(P, S, S, 3) uint8 background crops of ``split`` (see :func:`background_boxes`) resized to ``image_size``,
    built once per size and cached."""
    key = {"version": FORMAT_VERSION, "kind": "canvas-backgrounds", "split": split, "size": image_size,
           "crops": BACKGROUND_CROPS, "columns": COLUMNS, "photo_side": PHOTO_SIDE,
           "files": [[str(p), p.stat().st_size] for _, p in photos]}

    def build() -> dict[str, np.ndarray]:
        from PIL import Image

        pool = []
        for photo, path in photos:
            pil = reduced_photo(path)
            pool += [np.asarray(pil.resize((image_size, image_size), Image.BICUBIC, box=(x0, y0, x0 + s, y0 + s)))
                     for x0, y0, s in background_boxes(np.asarray(pil), photo, split).tolist()]
        return {"images": np.stack(pool) if pool else np.zeros((0, image_size, image_size, 3), np.uint8)}

    pool = cached_arrays(f"canvas-backgrounds-{split}-{image_size}px", key, build)[0]["images"]
    if not len(pool):
        raise DataError("no background photograph is installed for data=canvas")
    return pool


def draw_canvas(rng: np.random.Generator, items: np.ndarray, labels: np.ndarray,
                backgrounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One canvas: (S, S, 3) uint8 image and (S, S) uint8 labels (article class or :data:`BACKGROUND`)."""
    from PIL import Image

    size = backgrounds.shape[1]
    # a background crop, flipped half of the time
    img = backgrounds[rng.integers(len(backgrounds))].astype(np.float32) / 255
    if rng.random() < 0.5:
        img = img[:, ::-1]
    mask = np.full((size, size), BACKGROUND, np.uint8)
    taken = np.zeros((size, size), bool)
    for _ in range(int(rng.integers(ITEMS[0], ITEMS[1] + 1))):
        # an article at a random scale and place, covering at most MAX_COVER of its box with earlier ones
        # (the best of PLACEMENT_TRIES places otherwise); later articles cover earlier ones
        k = int(rng.integers(len(items)))
        side = int(round(size * np.exp(rng.uniform(*np.log(ITEM_SIDE)))))
        shape = np.asarray(Image.fromarray(items[k]).resize((side, side), Image.BILINEAR), np.float32) / 255
        places = rng.integers(0, size - side + 1, (PLACEMENT_TRIES, 2))
        cover = [taken[y:y + side, x:x + side].mean() for y, x in places]
        fits = np.flatnonzero(np.asarray(cover) <= MAX_COVER)
        y, x = places[fits[0] if len(fits) else int(np.argmin(cover))]
        taken[y:y + side, x:x + side] = True
        # its own tint (a colour of largest channel 1), brightness and contrast
        tint = rng.uniform(0.0, 1.0, 3)
        tint /= tint.max()
        brightness, contrast = rng.uniform(0.25, 1.0), rng.uniform(0.3, 1.0)
        colour = brightness * tint * (1 - contrast + contrast * shape[..., None])
        alpha = np.clip(shape / OPAQUE, 0, 1)[..., None]
        region = img[y:y + side, x:x + side]
        img[y:y + side, x:x + side] = alpha * colour + (1 - alpha) * region
        mask[y:y + side, x:x + side][alpha[..., 0] >= 0.5] = labels[k]
    return np.round(img * 255).astype(np.uint8), mask


def _rng(stream: str, index: int, seed: int) -> np.random.Generator:
    return np.random.default_rng([seed, _STREAMS[stream], index])


def build_canvases(image_size: int, photos: Located, stream: str, count: int, seed: int = CANVAS_SEED,
                   start: int = 0) -> dict[str, np.ndarray]:
    """Canvases ``start .. start + count - 1`` of ``stream`` ("train", "test" or "unlabelled", which draws
    from the training items and backgrounds): ``images`` (N, S, S, 3) uint8, ``masks`` (N, S, S) uint8, ``ids``."""
    part = "test" if stream == "test" else "train"
    items, labels = fashion_items(part)
    backgrounds = background_pool(image_size, photos, part)
    out = [draw_canvas(_rng(stream, i, seed), items, labels, backgrounds) for i in range(start, start + count)]
    return {"images": np.stack([o[0] for o in out]), "masks": np.stack([o[1] for o in out]),
            "ids": np.asarray([f"canvas-{stream}-{i:06d}" for i in range(start, start + count)], dtype=str)}


def canvas_stream(image_size: int, *, seed: int = CANVAS_SEED, start: int = 0) -> Iterator[np.ndarray]:
    """The unlimited stream of unlabelled training canvases, (S, S, 3) uint8 each, from index ``start``:
    canvas ``i`` is the ``i``-th of ``--data canvas:N`` for every N > i."""
    photos = _photos()
    items, labels = fashion_items("train")
    backgrounds = background_pool(image_size, photos, "train")
    i = start
    while True:
        yield draw_canvas(_rng("unlabelled", i, seed), items, labels, backgrounds)[0]
        i += 1


def load_canvases(image_size: int, stream: str, count: int) -> tuple[dict[str, np.ndarray], str]:
    """The first ``count`` canvases of ``stream`` at ``image_size`` (built once, then cached; the unlabelled stream
    without its masks) and a description."""
    photos = _photos()
    fashion_items("train" if stream != "test" else "test")  # says which package is missing before any work
    key = {"version": FORMAT_VERSION, "kind": "canvas", "stream": stream, "masks": stream != "unlabelled",
           "size": image_size, "count": count, "seed": CANVAS_SEED, "items": ITEMS, "side": ITEM_SIDE,
           "cover": MAX_COVER, "tries": PLACEMENT_TRIES, "opaque": OPAQUE, "crops": BACKGROUND_CROPS,
           "columns": COLUMNS, "files": [[str(path), path.stat().st_size] for _, path in photos]}
    def build() -> dict[str, np.ndarray]:
        arrays = build_canvases(image_size, photos, stream, count)
        return {k: v for k, v in arrays.items() if k != "masks" or stream != "unlabelled"}  # the stream keeps no labels

    arrays, path = cached_arrays(f"canvas-{stream}-{count}-{image_size}px", key, build)
    return arrays, (f"canvases of Fashion-MNIST items on crops of {len(photos)} photographs (seed {CANVAS_SEED}, "
                    f"cached in {path})")


def canvas_info(image_size: int) -> dict:
    """What the set records about itself (in every result that uses it)."""
    return {"canvas": {"format": FORMAT_VERSION, "seed": CANVAS_SEED, "sizes": CANVAS_SIZES, "image_size": image_size,
                       "items_per_canvas": list(ITEMS), "item_side": list(ITEM_SIDE),
                       "max_cover": MAX_COVER,
                       "background_columns": {s: list(c) for s, c in COLUMNS.items()},
                       "background_crops_per_photo": BACKGROUND_CROPS, "classes": list(CLASSES)}}


def canvas_raw(image_size: int, split: str) -> tuple[SegRaw, dict]:
    """The labelled ``split`` ("train", "test" or "all") of the canvas set as a :class:`SegRaw`, with its settings."""
    parts = ["train", "test"] if split == "all" else [split]
    loaded = [load_canvases(image_size, s, CANVAS_SIZES[s]) for s in parts]
    images = np.concatenate([a["images"] for a, _ in loaded])
    masks = np.concatenate([a["masks"] for a, _ in loaded])
    ids = [str(i) for a, _ in loaded for i in a["ids"]]
    raw = SegRaw(images, masks, list(CLASSES), ids, [loaded[0][1], "Fashion-MNIST (Zalando SE, MIT licence)"])
    return raw, canvas_info(image_size)


def canvas_images(image_size: int, split: str, option: str = "") -> RawSet:
    """``--data canvas[:N]`` for MAE pretraining: the first N (default :data:`STREAM_DEFAULT`) unlabelled canvases
    as the training split, the labelled test canvases (labels dropped) as the test split."""
    if option and not (option.isdigit() and int(option) > 0):
        raise DataError(f"canvas:{option}: expected canvas or canvas:N with N a positive number of canvases")
    count = int(option) if option else STREAM_DEFAULT
    parts = {"train": [("unlabelled", count)], "test": [("test", CANVAS_SIZES["test"])],
             "all": [("unlabelled", count), ("test", CANVAS_SIZES["test"])]}[split]
    loaded = [load_canvases(image_size, s, n) for s, n in parts]
    images = np.concatenate([a["images"] for a, _ in loaded])
    ids = [str(i) for a, _ in loaded for i in a["ids"]]
    return RawSet(images, np.full(len(images), -1, np.int64), [], ids, [loaded[0][1]])


__all__ = [
    "BACKGROUND", "BACKGROUND_CROPS", "CANVAS_SEED", "CANVAS_SIZES", "CLASSES", "COLUMNS", "FORMAT_VERSION", "ITEMS",
    "ITEM_SIDE", "MAX_COVER", "OPAQUE", "PLACEMENT_TRIES", "PHOTO_SIDE", "STREAM_DEFAULT", "background_boxes",
    "background_pool", "build_canvases", "canvas_images", "canvas_info", "canvas_raw", "canvas_stream",
    "column_range", "draw_canvas", "fashion_items", "load_canvases", "reduced_photo",
]
