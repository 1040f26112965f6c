"""The ``canvas`` segmentation set (issue 24): labels, splits, seeding, the held-out strip, missing data."""

import numpy as np
import pytest

from maelens.data import canvas
from maelens.data.images import probe_image
from maelens.data.mosaic import _photos as mosaic_photos
from maelens.data.tiles import BUNDLED_SIDE, BUNDLED_TEST_STRIP, HELD_OUT_STRIP, tile_grid
from maelens.errors import DataError


def _fake_sources(monkeypatch, size=16):
    """Fashion items: a training article of class 0 (a full 28x28 square) and a test article of class 1 (a
    square on the left half); flat grey backgrounds."""
    train = np.zeros((1, 28, 28), np.uint8)
    train[0, :, :] = 255
    test = np.zeros((1, 28, 28), np.uint8)
    test[0, :, :14] = 255
    items = {"train": (train, np.array([0])), "test": (test, np.array([1]))}
    monkeypatch.setattr(canvas, "fashion_items", lambda part, root=None: items[part])
    monkeypatch.setattr(canvas, "background_pool",
                        lambda image_size, photos, split: np.full((2, image_size, image_size, 3), 128, np.uint8))


def test_labels_follow_the_article_and_splits_use_their_items(monkeypatch):
    _fake_sources(monkeypatch)
    train = canvas.build_canvases(16, [], "train", 6)
    test = canvas.build_canvases(16, [], "test", 6)
    unlabelled = canvas.build_canvases(16, [], "unlabelled", 6)
    assert set(np.unique(train["masks"])) <= {0, canvas.BACKGROUND}
    assert set(np.unique(unlabelled["masks"])) <= {0, canvas.BACKGROUND}
    assert set(np.unique(test["masks"])) == {1, canvas.BACKGROUND}
    for images, masks in ((train["images"], train["masks"]), (test["images"], test["masks"])):
        # an opaque article replaces the grey background wherever it is labelled, and only there
        article = masks != canvas.BACKGROUND
        assert article.any() and (~article).any()
        assert (images[~article] == 128).all()
        assert (np.abs(images[article].astype(int) - 128).max(axis=-1) > 0).mean() > 0.9


def test_one_article_by_hand(monkeypatch):
    """A full white 28x28 article resized to the side drawn: a solid square of its class, coloured
    brightness * tint (contrast leaves white at full brightness)."""
    items, labels = np.full((1, 28, 28), 255, np.uint8), np.array([7])
    backgrounds = np.zeros((1, 20, 20, 3), np.uint8)
    rng = np.random.default_rng(0)
    img, mask = canvas.draw_canvas(rng, items, labels, backgrounds)
    assert set(np.unique(mask)) == {7, canvas.BACKGROUND}
    ys, xs = np.nonzero(mask == 7)
    # the union of 2-4 axis-aligned squares: every labelled pixel is coloured, every other one black
    assert (img[mask == canvas.BACKGROUND] == 0).all() and (img[mask == 7].max(axis=-1) > 0).all()
    assert 20 * canvas.ITEM_SIDE[0] - 1 <= ys.max() - ys.min() + 1 <= 20


def test_seeded_per_index_and_the_stream_is_the_unlabelled_set(monkeypatch):
    _fake_sources(monkeypatch)
    whole = canvas.build_canvases(16, [], "unlabelled", 5)
    tail = canvas.build_canvases(16, [], "unlabelled", 2, start=3)
    assert np.array_equal(whole["images"][3:], tail["images"]) and list(tail["ids"]) == list(whole["ids"][3:])
    monkeypatch.setattr(canvas, "_photos", lambda: [])
    stream = canvas.canvas_stream(16)
    assert all(np.array_equal(next(stream), whole["images"][i]) for i in range(5))
    assert not np.array_equal(whole["images"], canvas.build_canvases(16, [], "train", 5)["images"])


def test_missing_fashion_mnist_names_the_package(tmp_path, monkeypatch, capsys):
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        canvas.fashion_items("train", tmp_path)
    from maelens.cli import main

    monkeypatch.setattr(canvas, "FASHION_MNIST_DIR", tmp_path)
    assert main(["segment", "--from-scratch", "--data", "canvas", "--epochs", "1", "--device", "cpu",
                 "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "dataset-fashion-mnist" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def _bicubic_reach(factor: float, photo: bool = False) -> float:
    """Original pixels a bicubic resampling reads beyond its box when reducing by ``factor`` (support 2 output
    pixels), plus one pixel of rounding and, for a whole photograph reduced at least 2x, one JPEG draft block
    (8 pixels: the decoder may work at 1/2-1/8 first). No resampling, no reach."""
    if photo and factor <= 1:
        return 0.0
    return 2 * max(factor, 1.0) + 1 + (8 if photo and factor >= 2 else 0)


def _pretraining_right_edge(width: int, height: int) -> float:
    """Right-most original column that any pretraining set's training images read, resampling included:
    ``photos`` / ``backgrounds`` training tiles (every K from 1 to 32 tiles per side and ``full``, 32 and 64 px
    tiles), ``bundled`` and ``mosaic`` training crops (left 70%) and the canvas training backgrounds (left 70%)."""
    edges = []
    for size in (32, 64):
        for per_side in [*range(1, 33), None]:
            (w, _), _, ox, rows, cols, test_cols = tile_grid(width, height, size, per_side)
            if rows and cols > test_cols:
                factor = width / w
                edges.append((ox + (cols - test_cols) * size) * factor + _bicubic_reach(factor, photo=True))
        crop_side = BUNDLED_SIDE[1] * min(width, height)
        edges.append(width * (1 - BUNDLED_TEST_STRIP) + _bicubic_reach(crop_side / size))
        reduce = max(1.0, min(width, height) / canvas.PHOTO_SIDE)
        edges.append(canvas.column_range(round(width / reduce), "train")[1] * reduce
                     + _bicubic_reach(crop_side / size) + _bicubic_reach(reduce, photo=True))
    return max(edges)


def _held_out_left_edge(width: int, height: int) -> float:
    """Left-most original column that a canvas or mosaic test image reads."""
    reduce = max(1.0, min(width, height) / canvas.PHOTO_SIDE)
    side = min(BUNDLED_SIDE[1] * min(width, height), HELD_OUT_STRIP * width)
    canvas_left = canvas.column_range(round(width / reduce), "test")[0] * reduce
    left = min(canvas_left, np.ceil(width * (1 - HELD_OUT_STRIP)))
    return left - _bicubic_reach(side / 32) - _bicubic_reach(reduce, photo=True)


def test_no_pretraining_set_reaches_the_held_out_strip():
    """For every installed photograph: the columns the canvas (and mosaic) test images come from lie right of
    every column a pretraining set trains on, for every tiling ``photos[:K|full]`` may use."""
    photos = canvas._photos() + mosaic_photos("skimage")
    assert photos
    for _, path in photos:
        width, height = probe_image(path)
        assert _pretraining_right_edge(width, height) < _held_out_left_edge(width, height), path.name
    # the bound of the module docstring: training tiles end at 6/7 of the width at most
    worst = max((c - max(1, round(0.2 * c))) / c for c in range(1, 200))
    assert worst == pytest.approx(6 / 7) and 6 / 7 < 1 - HELD_OUT_STRIP


def test_test_backgrounds_come_from_the_strip(tmp_path):
    """The boxes drawn for the test backgrounds lie inside the held-out strip, those of training inside the
    left 70% (on a textured synthetic photograph)."""
    from maelens.data.sources import Photo

    img = np.random.default_rng(0).integers(0, 256, (300, 500, 3), dtype=np.uint8)
    for split, (lo, hi) in canvas.COLUMNS.items():
        boxes = canvas.background_boxes(img, Photo("x.png", "x", ""), split)
        assert len(boxes) == canvas.BACKGROUND_CROPS[split]
        assert (boxes[:, 0] >= lo * 500).all() and (boxes[:, 0] + boxes[:, 2] <= hi * 500).all()


@pytest.mark.skipif(not (canvas.FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").exists(),
                    reason="needs Debian's dataset-fashion-mnist")
def test_segment_and_train_on_canvas_end_to_end(tmp_path, capsys):
    import json

    from maelens.cli import main

    assert main(["segment", "--from-scratch", "--data", "canvas", "--epochs", "1", "--num-images", "32",
                 "--eval-images", "16", "--batch-size", "16", "--figure-images", "2", "--device", "cpu", "--quiet",
                 "--json", "--out", str(tmp_path / "seg")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["segmenter"]["num_classes"] == len(canvas.CLASSES) == 11
    assert summary["data"]["canvas"]["sizes"] == canvas.CANVAS_SIZES and summary["train_images"] == 32
    assert main(["train", "--preset", "tiny", "--data", "canvas:64", "--epochs", "1", "--batch-size", "32",
                 "--recon-images", "0", "--device", "cpu", "--quiet", "--out", str(tmp_path / "mae")]) == 0
    assert (tmp_path / "mae" / "checkpoint.pt").is_file()
