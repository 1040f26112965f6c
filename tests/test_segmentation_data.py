"""Segmentation data: the offline mosaic set, ADE20K and generic mask folders, and bad data."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from maelens.data.mosaic import MOSAIC_SEED, build_mosaics
from maelens.data.segdataset import IGNORE_INDEX
from maelens.data.segmentation import load_segmentation
from maelens.data.tiles import skimage_photos
from maelens.errors import ConfigError, DataError


def write_pair(root: Path, stem: str, image_size=(12, 10), mask=None, mask_size=None, mode="L"):
    """An RGB image and its index mask (values ``mask`` or a left/right 0/1 split)."""
    w, h = image_size
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[:, w // 2:] = 200
    Image.fromarray(rgb).save(root / "images" / f"{stem}.jpg")
    if mask is None:
        mask = np.zeros((h, w), np.uint8)
        mask[:, w // 2:] = 1
    mw, mh = mask_size or image_size
    Image.fromarray(np.asarray(mask, np.uint8)).convert(mode).resize((mw, mh), Image.NEAREST).save(
        root / "masks" / f"{stem}.png")


def test_mosaics_are_deterministic_disjoint_and_labelled_by_photo():
    photos = skimage_photos(tiles=False)
    sizes = {"train": 6, "test": 4}
    a = build_mosaics(16, photos, sizes=sizes)
    b = build_mosaics(16, photos, sizes=sizes)
    for key in ("images", "masks", "ids", "test"):
        assert np.array_equal(a[key], b[key])
    assert a["images"].shape == (10, 16, 16, 3) and a["masks"].shape == (10, 16, 16)
    assert a["test"].sum() == 4
    assert len(a["classes"]) == 13 and a["masks"].max() < 13
    per_image = [len(np.unique(m)) for m in a["masks"]]
    assert min(per_image) >= 1 and max(per_image) <= 4
    c = build_mosaics(16, photos, sizes=sizes, seed=MOSAIC_SEED + 1)
    assert not np.array_equal(a["masks"], c["masks"])


def test_mosaic_spec_gives_images_and_masks():
    train = load_segmentation("mosaic", image_size=32, split="train", train=True, limit=5)
    test = load_segmentation("mosaic", image_size=32, split="test", limit=5)
    assert len(train) == len(test) == 5 and train.num_classes == 13
    x, m = train[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    assert m.shape == (32, 32) and m.dtype == torch.int64 and int(m.max()) < 13
    assert set(test.ids).isdisjoint(train.ids)
    assert test.describe()["mosaic"]["seed"] == MOSAIC_SEED


def test_generic_mask_folder_with_hash_split_and_nearest_resizing(tmp_path):
    for i in range(12):
        write_pair(tmp_path, f"img{i:02d}")
    full = load_segmentation(str(tmp_path), image_size=8, split="all")
    assert len(full) == 12 and full.num_classes == 2  # inferred: largest label + 1
    x, m = full[0]
    assert x.shape == (3, 8, 8) and m.shape == (8, 8)
    assert set(m.unique().tolist()) == {0, 1}  # nearest: no interpolated labels
    assert m[:, :4].eq(0).all() and m[:, 4:].eq(1).all()
    train = load_segmentation(str(tmp_path), image_size=8, split="train", num_classes=5)
    test = load_segmentation(str(tmp_path), image_size=8, split="test", num_classes=5)
    assert train.num_classes == 5 and len(train) + len(test) == 12


def test_generic_folder_with_split_folders_and_ignore_label(tmp_path):
    mask = np.full((10, 12), IGNORE_INDEX, np.uint8)
    mask[:, :3] = 2
    write_pair(tmp_path / "tr", "a", mask=mask)
    write_pair(tmp_path / "te", "b")
    for part, split in (("tr", "train"), ("te", "test")):
        for kind in ("images", "masks"):
            (tmp_path / kind / split).mkdir(parents=True)
            for f in (tmp_path / part / kind).iterdir():
                f.rename(tmp_path / kind / split / f.name)
    train = load_segmentation(str(tmp_path), image_size=12, split="train", num_classes=3)
    test = load_segmentation(str(tmp_path), image_size=12, split="test", num_classes=3)
    assert train.ids == ["train/a"] and test.ids == ["test/b"]
    _, m = train[0]
    assert set(m.unique().tolist()) == {2, IGNORE_INDEX}


def test_ade20k_layout_shifts_labels_and_ignores_zero(tmp_path):
    root = tmp_path / "ADEChallengeData2016"
    mask = np.zeros((10, 12), np.uint8)
    mask[:, 6:] = 150
    mask[:, :3] = 1
    for split in ("training", "validation"):
        write_pair(root / "x", f"ADE_{split}_1", mask=mask)
        for kind, sub in (("images", "images"), ("masks", "annotations")):
            (root / sub / split).mkdir(parents=True, exist_ok=True)
            for f in (root / "x" / kind).iterdir():
                f.rename(root / sub / split / f.name)
    ds = load_segmentation(str(tmp_path), image_size=12, split="test")
    assert ds.num_classes == 150 and ds.ids == ["validation/ADE_validation_1"]
    _, m = ds[0]
    assert m[0, 0] == 0 and m[0, 4] == IGNORE_INDEX and m[0, 11] == 149


def test_bad_data_is_one_data_error(tmp_path):
    write_pair(tmp_path / "sizes", "a", mask_size=(6, 5))
    with pytest.raises(DataError, match="mask is 6x5 but its image"):
        load_segmentation(str(tmp_path / "sizes"), image_size=8, split="all")
    write_pair(tmp_path / "range", "a", mask=np.full((10, 12), 7, np.uint8))
    with pytest.raises(DataError, match=r"a.png: mask labels \[7\] are out of range for 3 classes"):
        load_segmentation(str(tmp_path / "range"), image_size=8, split="all", num_classes=3)
    ade = load_segmentation(str(tmp_path / "range"), image_size=8, split="all")
    ade.raw.label_mode, ade.num_classes = "ade20k", 3  # labels checked on access too
    with pytest.raises(DataError, match="out of range for 3 classes"):
        ade[0]
    for kind in ("images", "masks"):
        (tmp_path / "empty" / kind).mkdir(parents=True)
    with pytest.raises(DataError, match="no images"):
        load_segmentation(str(tmp_path / "empty"), image_size=8, split="all")
    write_pair(tmp_path / "nomask", "a")
    (tmp_path / "nomask" / "masks" / "a.png").unlink()
    with pytest.raises(DataError, match="no mask for 1 image"):
        load_segmentation(str(tmp_path / "nomask"), image_size=8, split="all")
    write_pair(tmp_path / "rgb", "a", mode="RGB")
    with pytest.raises(DataError, match="single-channel"):
        load_segmentation(str(tmp_path / "rgb"), image_size=8, split="all", num_classes=2)
    with pytest.raises(DataError, match="no such file"):
        load_segmentation(str(tmp_path / "missing"), image_size=8)
    with pytest.raises(DataError, match="neither ADE20K"):
        load_segmentation(str(tmp_path / "empty" / "images"), image_size=8)
    with pytest.raises(ConfigError, match="ADE20K has 150"):
        root = tmp_path / "ade"
        for sub in ("images/training", "annotations/training"):
            (root / sub).mkdir(parents=True)
        load_segmentation(str(root), image_size=8, num_classes=3)
