"""Issue 11: the paper's data sets in the formats they are distributed in, built here in miniature:
downsampled ImageNet 64x64 batches (pickles and .npz), Places365's file lists with the paper's class
selection, a weather-style ImageFolder, and a hostile pickle that must be refused."""

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from maelens.cli import main
from maelens.data import load_dataset
from maelens.data.places import PAPER_CLASSES
from maelens.errors import DataError


def _imagenet_batch(n: int, first_label: int, side: int = 64) -> dict:
    """Image i: red = 10 * i + 1 everywhere except the pixel at (row 1, col 2) = 255; green = 7, blue = 200;
    label first_label + i (1-based class numbers)."""
    planes = np.empty((n, 3, side, side), np.uint8)
    planes[:, 0] = (10 * np.arange(n) + 1)[:, None, None]
    planes[:, 0, 1, 2] = 255
    planes[:, 1], planes[:, 2] = 7, 200
    return {"data": planes.reshape(n, 3 * side * side), "labels": [first_label + i for i in range(n)],
            "mean": np.zeros(3 * side * side)}


@pytest.fixture()
def imagenet64(tmp_path: Path) -> Path:
    root = tmp_path / "Imagenet64"
    root.mkdir()
    for name, batch in (("train_data_batch_1", _imagenet_batch(3, 1)), ("train_data_batch_2", _imagenet_batch(2, 999)),
                        ("val_data", _imagenet_batch(2, 500))):
        (root / name).write_bytes(pickle.dumps(batch, protocol=4))
    return root


def test_imagenet64_pickles_channel_planar_and_one_based(imagenet64: Path) -> None:
    train = load_dataset(str(imagenet64), image_size=64, split="train")
    test = load_dataset(str(imagenet64), image_size=64, split="test")
    assert len(train) == 5 and len(test) == 2 and len(train.classes) == 1000
    assert train.labels.tolist() == [0, 1, 2, 998, 999]  # class numbers 1, 2, 3, 999, 1000
    assert test.labels.tolist() == [499, 500] and test.classes[499] == "500"
    assert train.ids[3] == "train_data_batch_2/0"
    pixels = train.pixels(1)  # uint8 (3, 64, 64): red plane first, row-major
    assert pixels[:, 0, 0].tolist() == [11, 7, 200] and pixels[0, 1, 2] == 255 and pixels[0, 2, 1] == 11
    assert train[0][0].shape == (3, 64, 64)


def test_imagenet64_npz_release_and_bad_batches(tmp_path: Path) -> None:
    batch = _imagenet_batch(2, 3, side=8)
    np.savez(tmp_path / "val_data.npz", data=batch["data"], labels=np.array(batch["labels"]))
    ds = load_dataset(str(tmp_path), image_size=8, split="test")
    assert ds.labels.tolist() == [2, 3] and ds.pixels(1)[:, 0, 0].tolist() == [11, 7, 200]
    np.savez(tmp_path / "val_data.npz", data=batch["data"], labels=np.array([0, 1]))
    with pytest.raises(DataError, match="class numbers 1..1000"):
        load_dataset(str(tmp_path), image_size=8, split="test")
    np.savez(tmp_path / "val_data.npz", data=batch["data"][:, :100], labels=np.array([1, 2]))
    with pytest.raises(DataError, match=r"'data' uint8 \(N, 3\*S\*S\)"):
        load_dataset(str(tmp_path), image_size=8, split="test")


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_hostile_imagenet_pickle_is_refused_and_runs_nothing(imagenet64: Path, capsys) -> None:
    marker = imagenet64.parent / "pwned"
    batch = _imagenet_batch(2, 1)
    batch["labels"] = _Exploit(marker)
    (imagenet64 / "val_data").write_bytes(pickle.dumps(batch))
    with pytest.raises(DataError, match="refused for safety.*(posix|os).system"):
        load_dataset(str(imagenet64), image_size=64, split="test")
    assert main(["data", "info", "--data", str(imagenet64)]) == 2
    err = capsys.readouterr().err.strip()
    assert "refused for safety" in err and len(err.splitlines()) == 1
    assert not marker.exists()


def test_data_info_shows_imagenet64(imagenet64: Path, capsys) -> None:
    assert main(["data", "info", "--data", str(imagenet64), "--image-size", "64", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["num_train"], info["num_test"], info["num_classes"]) == (5, 2, 1000)
    assert "downsampled ImageNet 64x64" in info["sources"][0]


def _png(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(path)


@pytest.fixture()
def places(tmp_path: Path) -> Path:
    """Places365 file lists: 5 categories, 6 images each of the first 4 and 2 of the fifth under data_256/."""
    root = tmp_path / "places365"
    categories = ["/a/airfield", "/a/amphitheater", "/a/apartment_building/outdoor", "/a/aquarium",
                  "/b/baseball_field"]
    root.mkdir()
    (root / "categories_places365.txt").write_text("".join(f"{c} {i}\n" for i, c in enumerate(categories)))
    lines = []
    for number, category in enumerate(categories):
        for k in range(6 if number < 4 else 2):
            name = f"{category}/{k + 1:08d}.jpg"
            _png(root / "data_256" / name.lstrip("/"), 40 * number)
            lines.append(f"{name} {number}")
    (root / "places365_train_standard.txt").write_text("\n".join(lines) + "\n")
    (root / "places365_val.txt").write_text("Places365_val_00000001.jpg 0\n")  # not read
    return root


def test_places365_file_lists_and_the_papers_classes(places: Path) -> None:
    every = load_dataset(str(places), image_size=8, split="all")
    assert every.classes == ["airfield", "amphitheater", "apartment_building/outdoor", "aquarium", "baseball_field"]
    assert len(every) == 26 and every.ids[0] == "a/airfield/00000001.jpg"
    spec = f"{places}:classes={','.join(PAPER_CLASSES)}"
    chosen = load_dataset(spec, image_size=8, split="all")
    assert chosen.classes == list(PAPER_CLASSES) and len(chosen) == 6 + 6 + 6 + 2
    assert chosen.labels.tolist() == [0] * 6 + [1] * 6 + [2] * 6 + [3] * 2
    assert chosen.pixels(18)[:, 0, 0].tolist() == [160] * 3  # baseball_field, category 4
    train, test = (load_dataset(spec, image_size=8, split=s) for s in ("train", "test"))
    assert len(train) + len(test) == 20 and not set(train.ids) & set(test.ids)
    with pytest.raises(DataError, match="no class 'baseball field'.*baseball_field"):
        load_dataset(f"{places}:classes=airfield,baseball field", image_size=8)


def test_places365_bad_lists(places: Path) -> None:
    (places / "places365_train_standard.txt").write_text("/a/airfield/00000001.jpg 9\n")
    with pytest.raises(DataError, match="class 9, but categories_places365.txt lists 5"):
        load_dataset(str(places), image_size=8)
    (places / "places365_train_standard.txt").write_text("/z/nowhere/1.jpg 0\n")
    with pytest.raises(DataError, match="first listed image, z/nowhere/1.jpg"):
        load_dataset(str(places), image_size=8)


def test_weather_image_folder_with_class_selection(tmp_path: Path) -> None:
    """The weather set is an ImageFolder (11 class folders); :classes= works on any source."""
    for number, name in enumerate(("dew", "fogsmog", "frost")):
        for k in range(4):
            _png(tmp_path / "weather" / name / f"{k}.jpg", 50 * number)
    ds = load_dataset(f"{tmp_path / 'weather'}:classes=frost,dew", image_size=8, split="all")
    assert ds.classes == ["frost", "dew"] and ds.labels.tolist() == [1] * 4 + [0] * 4
