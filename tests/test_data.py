"""Transforms, the dataset type, class-balanced limits, and the built-in photo sets (bundled crops, tiles)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from maelens.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImageDataset,
    balanced_subset,
    denormalize,
    eval_transform,
    load_dataset,
    load_image,
    pretrain_transform,
    tiles,
)
from maelens.data.sources import PHOTO_COLLECTIONS, SKIMAGE, WALLPAPER_COLLECTIONS, Photo
from maelens.errors import ConfigError, DataError

MEAN = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(3, 1, 1)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache folder for the module, so the bundled set is built once here."""
    path = tmp_path_factory.mktemp("maelens-cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("MAELENS_CACHE", str(path))
    yield path
    mp.undo()


# ---------------------------------------------------------------- transforms


def test_eval_transform_normalises_exactly() -> None:
    img = torch.tensor([255, 0, 51], dtype=torch.uint8).view(3, 1, 1).expand(3, 8, 8).contiguous()
    out = eval_transform(8)(img)
    expected = torch.tensor([(1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (0.2 - 0.406) / 0.225]).view(3, 1, 1)
    assert out.dtype == torch.float32 and out.shape == (3, 8, 8)
    torch.testing.assert_close(out, expected.expand(3, 8, 8))
    torch.testing.assert_close(denormalize(out), img.float() / 255)


def test_eval_transform_resizes_shorter_side_and_center_crops() -> None:
    img = torch.zeros(3, 20, 60, dtype=torch.uint8)  # three 20x20 blocks: red | green | blue
    img[0, :, :20], img[1, :, 20:40], img[2, :, 40:] = 255, 255, 255
    out = denormalize(eval_transform(32)(img))
    assert out.shape == (3, 32, 32)
    torch.testing.assert_close(out[:, 16, 16], torch.tensor([0.0, 1.0, 0.0]))


def test_pretrain_transform_shapes_determinism_and_constant_images() -> None:
    flat = torch.full((3, 40, 50), 128, dtype=torch.uint8)
    aug = pretrain_transform(16)
    out = aug(flat)
    assert out.shape == (3, 16, 16) and out.dtype == torch.float32
    torch.testing.assert_close(out, ((torch.full((3, 1, 1), 128 / 255) - MEAN) / STD).expand(3, 16, 16))
    ramp = torch.arange(64, dtype=torch.uint8).repeat(3, 64, 1) * 4  # left-to-right ramp
    torch.manual_seed(0)
    first = [aug(ramp) for _ in range(8)]
    torch.manual_seed(0)
    assert all(torch.equal(a, aug(ramp)) for a in first)
    slopes = {bool((a[0, :, -1] > a[0, :, 0]).all()) for a in first}
    assert slopes == {True, False}  # some crops flipped, some not


def test_denormalize_batches_and_clamps() -> None:
    x = torch.full((2, 3, 4, 4), 10.0)
    assert torch.equal(denormalize(x), torch.ones(2, 3, 4, 4))


def test_load_image_matches_eval_transform(tmp_path: Path) -> None:
    arr = np.random.default_rng(0).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "a.png")
    x = load_image(tmp_path / "a.png", 24)
    torch.testing.assert_close(x, eval_transform(24)(torch.from_numpy(arr).permute(2, 0, 1)))
    with pytest.raises(DataError, match="image .*missing.png: does not exist"):
        load_image(tmp_path / "missing.png", 24)


# ---------------------------------------------------------------- dataset type and limits


def test_balanced_subset_by_hand() -> None:
    labels = np.array([0, 0, 0, 0, 1, 1, 2])
    one_each = balanced_subset(labels, 3, seed=0)
    assert sorted(labels[one_each].tolist()) == [0, 1, 2]
    five = balanced_subset(labels, 5, seed=1)
    assert np.bincount(labels[five], minlength=3).tolist() == [2, 2, 1]
    assert five.tolist() == sorted(five.tolist())
    assert np.array_equal(balanced_subset(labels, 5, seed=1), five)
    assert balanced_subset(labels, None).tolist() == list(range(7))
    assert balanced_subset(labels, 99).tolist() == list(range(7))
    unlabelled = balanced_subset(np.full(10, -1), 4, seed=3)
    assert len(unlabelled) == 4 and len(set(unlabelled.tolist())) == 4


def test_from_arrays_dataloader_and_subset() -> None:
    images = np.random.default_rng(0).integers(0, 256, (6, 12, 12, 3), dtype=np.uint8)
    ds = ImageDataset.from_arrays(images, [0, 1, 0, 1, 0, 1], image_size=8, classes=["a", "b"])
    batch, labels = next(iter(DataLoader(ds, batch_size=4)))
    assert batch.shape == (4, 3, 8, 8) and labels.tolist() == [0, 1, 0, 1]
    sub = ds.subset([5, 1])
    assert sub.ids == ["5", "1"] and sub.labels.tolist() == [1, 1]
    assert torch.equal(sub[0][0], ds[5][0])
    with pytest.raises(DataError, match="uint8"):
        ImageDataset.from_arrays(np.zeros((2, 3, 8, 8), np.uint8), image_size=8)


def test_features_run_on_a_loaded_dataset(tmp_path: Path) -> None:
    from maelens.analysis.features import extract_features
    from maelens.models import create_model

    np.savez(tmp_path / "x.npz", images=np.random.default_rng(0).integers(0, 256, (5, 40, 40, 3), dtype=np.uint8),
             labels=np.arange(5) % 2)
    ds = load_dataset(str(tmp_path / "x.npz"), image_size=32, split="all")
    feats = extract_features(create_model("tiny"), ds, batch_size=4, quiet=True)
    assert feats.features.shape[0] == 5 and feats.labels.tolist() == [0, 1, 0, 1, 0]
    assert feats.ids.tolist() == ["0", "1", "2", "3", "4"]


# ---------------------------------------------------------------- photo sets


def test_box_std_matches_numpy() -> None:
    img = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    x0, y0, side = np.array([0, 5, 30, 12]), np.array([0, 7, 20, 1]), np.array([10, 3, 10, 28])
    expected = [img[y:y + s, x:x + s].astype(float).std() for x, y, s in zip(x0, y0, side, strict=True)]
    np.testing.assert_allclose(tiles.box_std(img, x0, y0, side), expected, rtol=1e-9)


def test_draw_crops_stay_in_their_columns_and_skip_flat_areas() -> None:
    img = np.zeros((100, 200, 3), dtype=np.uint8)  # flat left half, noisy right half
    img[:, 100:] = np.random.default_rng(0).integers(0, 256, (100, 100, 3))
    crops = tiles.draw_crops(img, (60, 200), count=20, seed=1)
    assert len(crops) == 20
    x0, y0, side = crops.T
    assert (x0 >= 60).all() and (x0 + side <= 200).all() and (y0 + side <= 100).all()
    assert ((side >= 12) & (side <= 30)).all()
    assert (tiles.box_std(img, x0, y0, side) >= tiles.FLAT_STD).all()
    assert np.array_equal(tiles.draw_crops(img, (60, 200), count=20, seed=1), crops)


def test_tile_photo_by_hand(tmp_path: Path) -> None:
    img = np.full((70, 100, 3), 90, dtype=np.uint8)  # 16-px tiles: 4 rows x 6 cols, offsets (3, 2)
    noise = np.random.default_rng(0).integers(0, 256, (70, 100, 3), dtype=np.uint8)
    img[:, 50:] = noise[:, 50:]  # columns 3..5 of the grid are textured, 0..2 flat (skipped)
    Image.fromarray(img).save(tmp_path / "p.png")
    found, rc, test = tiles.tile_photo(tmp_path / "p.png", 16, per_side=None)
    assert len(found) == 4 * 3 and sorted({c for _, c in rc.tolist()}) == [3, 4, 5]
    r, c = rc[0]
    assert np.array_equal(found[0], img[3 + 16 * r:3 + 16 * (r + 1), 2 + 16 * c:2 + 16 * (c + 1)])
    assert test.tolist() == (rc[:, 1] == 5).tolist()  # right-most 20% of 6 columns = 1 column
    small, _, _ = tiles.tile_photo(tmp_path / "p.png", 16, per_side=2)  # 70 px -> 32 px: 2 x 2 tiles
    assert len(small) <= 4 and small.shape[1:] == (16, 16, 3)


def _fake_photos(root: Path, n: int) -> list[tuple[Photo, Path]]:
    rng = np.random.default_rng(1)
    located = []
    for i in range(n):
        path = root / f"photo{i}.png"
        Image.fromarray(rng.integers(0, 256, (48, 80, 3), dtype=np.uint8)).save(path)
        located.append((Photo(path.name, f"fake/photo{i}", "CC0-1.0"), path))
    return located


def test_photos_spec_tiles_installed_photos(cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    photos = _fake_photos(tmp_path, 3)
    monkeypatch.setattr("maelens.data.load.skimage_photos", lambda tiles: photos[:1])
    monkeypatch.setattr("maelens.data.load.wallpaper_photos", lambda: photos[1:])
    monkeypatch.setattr("maelens.data.load.opencv_photos", lambda: [])
    train = load_dataset("photos:3", image_size=16, split="train")
    test = load_dataset("photos:3", image_size=16, split="test")
    # each 48x80 photo: 3 rows x 5 cols of 16 px; the last column is the test split
    assert (len(train), len(test)) == (3 * 12, 3 * 3)
    assert train.classes == ["fake/photo0", "fake/photo1", "fake/photo2"]
    assert all(re.fullmatch(r"fake/photo\d/r\dc4", i) for i in test.ids)
    assert len(load_dataset("backgrounds:3", image_size=16, split="all")) == 2 * 15
    with pytest.raises(ConfigError, match="photos:K"):
        load_dataset("photos:zero", image_size=16)


def test_backgrounds_without_packages_names_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("maelens.data.load.wallpaper_photos", lambda: [])
    with pytest.raises(DataError, match="apt-get install mate-backgrounds"):
        load_dataset("backgrounds", image_size=16)


def test_bundled_set(cache: Path) -> None:
    train = load_dataset("bundled", image_size=32, split="train")
    test = load_dataset("bundled", image_size=32, split="test")
    assert len(train.classes) == 13 and "motorcycle" in train.classes
    assert train.class_counts() == {c: tiles.BUNDLED_TRAIN for c in train.classes}
    assert test.class_counts() == {c: tiles.BUNDLED_TEST for c in test.classes}
    assert set(train.ids).isdisjoint(test.ids)
    x, y = train[0]
    assert x.shape == (3, 32, 32) and 0 <= y < 13
    widths = {p.title: Image.open(path).width for p, path in SKIMAGE.installed()}
    for ds, is_test in ((train, False), (test, True)):
        for ident in ds.ids:
            name, x0, _, side = re.fullmatch(r"(.+)/x(\d+)y(\d+)s(\d+)", ident).groups()
            cut = int(widths[name] * (1 - tiles.BUNDLED_TEST_STRIP))
            assert (int(x0) >= cut) if is_test else (int(x0) + int(side) <= cut)
    limited = load_dataset("bundled", image_size=32, split="test", limit=26, seed=5)
    assert limited.class_counts() == {c: 2 for c in test.classes}
    assert limited.ids == load_dataset("bundled", image_size=32, split="test", limit=26, seed=5).ids


def test_bundled_is_deterministic_and_cached(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = load_dataset("bundled", image_size=32, split="all")
    rebuilt = tiles.build_bundled(32, tiles.skimage_photos(tiles=False))
    assert np.array_equal(rebuilt["images"], first.raw.images) and rebuilt["ids"].tolist() == first.ids

    def no_rebuild(*args, **kwargs):
        raise AssertionError("the cached set should have been used")

    monkeypatch.setattr(tiles, "build_bundled", no_rebuild)
    assert load_dataset("bundled", image_size=32, split="all").ids == first.ids
    for damaged in cache.glob("bundled-32px-*.npz"):
        damaged.write_bytes(b"damaged")
    monkeypatch.undo()
    assert load_dataset("bundled", image_size=32, split="all").ids == first.ids


def test_catalogue_licences_are_complete() -> None:
    for collection in PHOTO_COLLECTIONS:
        names = [p.title for p in collection.photos]
        assert len(names) == len(set(names)), collection.name
        assert all(p.licence for p in collection.photos), collection.name
    assert len(SKIMAGE.installed()) == len(SKIMAGE.photos)


@pytest.mark.skipif(not any(c.installed() for c in WALLPAPER_COLLECTIONS),
                    reason="no Debian wallpaper package (mate-backgrounds, lomiri-wallpapers-16.04, "
                           "plasma-workspace-wallpapers) is installed")
def test_installed_wallpaper_photo_tiles() -> None:
    _, path = next(x for c in WALLPAPER_COLLECTIONS for x in c.installed())
    found, rc, test = tiles.tile_photo(path, 64, per_side=8)
    assert len(found) > 0 and found.shape[1:] == (64, 64, 3) and test.any() and (~test).any()
    assert rc[:, 0].max() < 8  # the shorter side was resized to hold 8 tiles
