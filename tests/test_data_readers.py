"""Readers for users' data: ImageFolder, CIFAR batches (restricted unpickling), .npz, IDX / Fashion-MNIST."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from maelens.data import IMAGENET_MEAN, IMAGENET_STD, denormalize, load_dataset
from maelens.data.cifar import read_pickle
from maelens.data.idx import read_idx
from maelens.data.sources import FASHION_MNIST_DIR
from maelens.errors import ConfigError, DataError

MEAN = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(3, 1, 1)


def normalised(rgb: tuple[int, int, int]) -> torch.Tensor:
    """The model input (3, 1, 1) of a pixel of colour ``rgb``."""
    return (torch.tensor(rgb, dtype=torch.float32).view(3, 1, 1) / 255 - MEAN) / STD


# ---------------------------------------------------------------- ImageFolder


def _solid(path: Path, mode: str, value, size=(16, 16), fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value).save(path, format=fmt)
    return path


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "imgs"
    _solid(root / "cat" / "red.png", "RGB", (255, 0, 0))
    _solid(root / "cat" / "gray.png", "L", 100)
    _solid(root / "cat" / "sub" / "deep.png", "RGB", (0, 0, 255))
    _solid(root / "dog" / "green.jpg", "RGB", (0, 255, 0), fmt="JPEG")
    _solid(root / "dog" / "clear.png", "RGBA", (10, 20, 30, 0))
    _solid(root / "dog" / "opaque.png", "RGBA", (10, 20, 30, 255))
    (root / "dog" / "notes.txt").write_text("not an image, ignored")
    return root


def _by_id(ds, name: str):
    return ds[ds.ids.index(name)]


def test_image_folder_classes_conversions_and_split(folder: Path) -> None:
    ds = load_dataset(str(folder), image_size=16, split="all")
    assert ds.classes == ["cat", "dog"]
    assert sorted(ds.ids) == ["cat/gray.png", "cat/red.png", "cat/sub/deep.png",
                              "dog/clear.png", "dog/green.jpg", "dog/opaque.png"]
    assert ds.class_counts() == {"cat": 3, "dog": 3}
    x, y = _by_id(ds, "cat/red.png")
    assert x.shape == (3, 16, 16) and x.dtype == torch.float32 and y == 0
    torch.testing.assert_close(x, normalised((255, 0, 0)).expand(3, 16, 16))
    gray, _ = _by_id(ds, "cat/gray.png")  # grayscale replicated to RGB
    torch.testing.assert_close(gray, normalised((100, 100, 100)).expand(3, 16, 16))
    clear, y = _by_id(ds, "dog/clear.png")  # fully transparent -> composited over white
    assert y == 1
    torch.testing.assert_close(clear, normalised((255, 255, 255)).expand(3, 16, 16))
    torch.testing.assert_close(_by_id(ds, "dog/opaque.png")[0], normalised((10, 20, 30)).expand(3, 16, 16))
    train = load_dataset(str(folder), image_size=16, split="train")
    test = load_dataset(str(folder), image_size=16, split="test")
    assert set(train.ids).isdisjoint(test.ids) and sorted(train.ids + test.ids) == sorted(ds.ids)
    assert train.classes == test.classes == ["cat", "dog"]


def test_image_folder_train_test_subfolders_share_classes(tmp_path: Path) -> None:
    _solid(tmp_path / "train" / "a" / "1.png", "RGB", (1, 2, 3))
    _solid(tmp_path / "train" / "b" / "2.png", "RGB", (1, 2, 3))
    _solid(tmp_path / "val" / "b" / "3.png", "RGB", (1, 2, 3))
    train = load_dataset(str(tmp_path), image_size=8, split="train")
    test = load_dataset(str(tmp_path), image_size=8, split="test")
    assert train.ids == ["train/a/1.png", "train/b/2.png"] and test.ids == ["val/b/3.png"]
    assert train.classes == test.classes == ["a", "b"]
    assert test.labels.tolist() == [1]


def test_sixteen_bit_and_palette_images_become_rgb() -> None:
    from maelens.data.images import to_rgb

    deep = Image.fromarray(np.full((2, 2), 0xABCD, dtype=np.uint16))
    assert np.asarray(to_rgb(deep))[0, 0].tolist() == [0xAB] * 3
    palette = Image.new("P", (2, 2), 1)
    palette.putpalette([0, 0, 0, 200, 10, 20] + [0] * 762)
    assert np.asarray(to_rgb(palette))[0, 0].tolist() == [200, 10, 20]
    palette.info["transparency"] = 1
    assert np.asarray(to_rgb(palette))[0, 0].tolist() == [255, 255, 255]


def test_flat_folder_is_unlabelled(tmp_path: Path) -> None:
    for i in range(12):
        _solid(tmp_path / f"img{i:02d}.png", "RGB", (i, i, i))
    ds = load_dataset(str(tmp_path), image_size=8, split="all")
    assert len(ds) == 12 and ds.classes == [] and (ds.labels == -1).all()
    assert ds.class_counts() == {"unlabelled": 12}


def test_unreadable_image_is_reported_by_path(folder: Path) -> None:
    bad = folder / "dog" / "broken.jpg"
    bad.write_bytes(b"this is not a JPEG")
    with pytest.raises(DataError, match="broken.jpg: not a readable image"):
        load_dataset(str(folder), image_size=16, split="all")


def test_truncated_image_is_reported_by_path_when_read(tmp_path: Path) -> None:
    path = _solid(tmp_path / "a" / "big.png", "RGB", (0, 0, 0), size=(64, 64))
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:200])  # header intact, pixel data cut
    ds = load_dataset(str(tmp_path), image_size=16, split="all")
    with pytest.raises(DataError, match="big.png"):
        ds[0]


def test_load_dataset_argument_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file or directory"):
        load_dataset(str(tmp_path / "missing"), image_size=8)
    with pytest.raises(ConfigError, match="split"):
        load_dataset(str(tmp_path), image_size=8, split="validation")
    with pytest.raises(ConfigError, match="image_size"):
        load_dataset(str(tmp_path), image_size=0)
    with pytest.raises(ConfigError, match="limit"):
        load_dataset(str(tmp_path), image_size=8, limit=0)
    with pytest.raises(DataError, match="no images found"):
        load_dataset(str(tmp_path), image_size=8)


# ---------------------------------------------------------------- CIFAR


def _cifar_batch(n: int, offset: int, label_key: str = "labels") -> dict:
    """Image i: red = offset+i everywhere, green = 7, blue = 200, except red pixel (row 1, col 2) = 255."""
    data = np.empty((n, 3, 32, 32), dtype=np.uint8)
    data[:, 0] = (offset + np.arange(n))[:, None, None]
    data[:, 1], data[:, 2] = 7, 200
    data[:, 0, 1, 2] = 255
    return {b"batch_label": b"fixture", b"data": data.reshape(n, 3072), label_key.encode(): list(range(n)),
            b"filenames": [f"img_{offset + i}.png".encode() for i in range(n)]}


def _dump(obj, path: Path, protocol: int = 2) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=protocol))


def test_cifar10_batches(tmp_path: Path) -> None:
    _dump(_cifar_batch(3, 0), tmp_path / "data_batch_1")
    _dump(_cifar_batch(2, 10), tmp_path / "data_batch_2", protocol=pickle.HIGHEST_PROTOCOL)
    _dump(_cifar_batch(2, 20), tmp_path / "test_batch")
    _dump({b"label_names": [b"plane", b"car", b"bird"], b"num_vis": 3072}, tmp_path / "batches.meta")
    train = load_dataset(str(tmp_path), image_size=32, split="train")
    test = load_dataset(str(tmp_path), image_size=32, split="test")
    assert len(train) == 5 and len(test) == 2
    assert train.classes == ["plane", "car", "bird"]
    assert train.labels.tolist() == [0, 1, 2, 0, 1]
    assert train.ids[3] == "data_batch_2/img_10.png"
    pixels = train.pixels(3)  # uint8 (3, 32, 32) as stored
    assert pixels[:, 0, 0].tolist() == [10, 7, 200] and pixels[0, 1, 2] == 255 and pixels[0, 2, 1] == 10
    x, _ = test[1]
    torch.testing.assert_close(x[:, :1, :1], normalised((21, 7, 200)))


def test_cifar100_layout(tmp_path: Path) -> None:
    _dump(_cifar_batch(4, 0, "fine_labels"), tmp_path / "train")
    _dump(_cifar_batch(1, 4, "fine_labels"), tmp_path / "test")
    _dump({"fine_label_names": ["apple", "bee", "cup", "dog"], "coarse_label_names": ["x"]}, tmp_path / "meta")
    ds = load_dataset(str(tmp_path), image_size=16, split="all")
    assert len(ds) == 5 and ds.classes == ["apple", "bee", "cup", "dog"]
    assert ds[0][0].shape == (3, 16, 16)


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_for_safety(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    batch = _cifar_batch(2, 0)
    batch[b"labels"] = _Exploit(marker)
    _dump(batch, tmp_path / "data_batch_1")
    _dump(_cifar_batch(1, 0), tmp_path / "test_batch")
    with pytest.raises(DataError, match="refused for safety.*(posix|os).system"):
        load_dataset(str(tmp_path), image_size=32, split="train")
    assert not marker.exists()
    with pytest.raises(DataError, match="refused for safety"):
        read_pickle(_write(tmp_path / "torch_like", pickle.dumps(Path("x"))))


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_pickle_that_is_not_a_dict(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="expected a pickled dict"):
        read_pickle(_write(tmp_path / "list", pickle.dumps([1, 2])))
    with pytest.raises(DataError, match="not a readable pickle"):
        read_pickle(_write(tmp_path / "junk", b"\x00garbage"))


# ---------------------------------------------------------------- .npz


def test_npz_uint8_goes_through_the_eval_transform(tmp_path: Path) -> None:
    images = np.zeros((4, 8, 8, 3), dtype=np.uint8)
    images[:, :, :, 0] = np.arange(4)[:, None, None] * 60
    path = tmp_path / "x.npz"
    np.savez(path, images=images, labels=np.array([0, 1, 0, 1]), classes=np.array(["even", "odd"]),
             split=np.array(["train", "train", "test", "train"]))
    train = load_dataset(str(path), image_size=16, split="train")
    test = load_dataset(str(path), image_size=16, split="test")
    assert len(train) == 3 and test.ids == ["2"] and train.classes == ["even", "odd"]
    x, y = test[0]
    assert x.shape == (3, 16, 16) and y == 0
    torch.testing.assert_close(x, normalised((120, 0, 0)).expand(3, 16, 16))


def test_npz_float_inputs_are_used_as_they_are(tmp_path: Path) -> None:
    inputs = np.random.default_rng(0).standard_normal((5, 3, 8, 8)).astype(np.float32)
    path = tmp_path / "f.npz"
    np.savez(path, images=inputs)
    ds = load_dataset(str(path), image_size=8, split="all")
    assert (ds.labels == -1).all()
    for i in range(5):
        assert torch.equal(ds[i][0], torch.from_numpy(inputs[i]))
    with pytest.raises(DataError, match=r"must be \(N, 3, 16, 16\)"):
        load_dataset(str(path), image_size=16, split="all")
    augmented = load_dataset(str(path), image_size=8, split="all", train=True)[0][0]
    assert augmented.shape == (3, 8, 8)


def test_npz_errors(tmp_path: Path) -> None:
    np.savez(tmp_path / "a.npz", pixels=np.zeros((2, 4, 4, 3), np.uint8))
    with pytest.raises(DataError, match="no 'images' array.*pixels"):
        load_dataset(str(tmp_path / "a.npz"), image_size=4)
    np.savez(tmp_path / "b.npz", images=np.zeros((2, 4, 4, 5), np.uint8))
    with pytest.raises(DataError, match=r"\(N, H, W, 3\)"):
        load_dataset(str(tmp_path / "b.npz"), image_size=4)
    np.savez(tmp_path / "c.npz", images=np.array([{"a": 1}], dtype=object))
    with pytest.raises(DataError, match="not a readable .npz"):
        load_dataset(str(tmp_path / "c.npz"), image_size=4)
    np.savez(tmp_path / "d.npz", images=np.zeros((2, 4, 4, 3), np.uint8), labels=np.zeros(3, np.int64))
    with pytest.raises(DataError, match="'labels' must have one entry per image: 2 images but 3"):
        load_dataset(str(tmp_path / "d.npz"), image_size=4)


# ---------------------------------------------------------------- IDX / Fashion-MNIST


def _idx_bytes(arr: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.astype(np.uint8).tobytes()


def _write_idx_dir(root: Path, n_train: int = 6, n_test: int = 4) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        imgs = np.zeros((n, 28, 28), dtype=np.uint8)
        imgs[:, 10:18, 10:18] = (np.arange(n) * 20 + 50)[:, None, None]
        (root / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(imgs)))
        (root / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(np.arange(n) % 3)))


def test_idx_header_offsets(tmp_path: Path) -> None:
    imgs = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = _idx_bytes(imgs)
    assert len(raw) == 16 + imgs.size  # images: 16-byte header
    assert len(_idx_bytes(np.arange(5))) == 8 + 5  # labels: 8-byte header
    path = _write(tmp_path / "x-idx3-ubyte", raw)
    assert np.array_equal(read_idx(path), imgs)
    with pytest.raises(DataError, match="bad magic"):
        read_idx(_write(tmp_path / "bad", b"\x01\x02\x03\x04rest"))
    with pytest.raises(DataError, match="truncated"):
        read_idx(_write(tmp_path / "short", raw[:-3]))


def test_idx_directory_split_resize_and_gray_to_rgb(tmp_path: Path) -> None:
    _write_idx_dir(tmp_path)
    train = load_dataset(str(tmp_path), image_size=56, split="train")
    test = load_dataset(str(tmp_path), image_size=56, split="test")
    assert len(train) == 6 and len(test) == 4 and train.labels.tolist() == [0, 1, 2, 0, 1, 2]
    x, _ = test[1]
    assert x.shape == (3, 56, 56)
    centre = x[:, 28, 28]  # 28 -> 56 doubles the 8x8 block at 10..18 to 20..36
    torch.testing.assert_close(centre.view(3, 1, 1), normalised((70, 70, 70)))


def test_fashion_mnist_missing_names_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("maelens.data.idx.FASHION_MNIST_DIR", tmp_path / "nowhere")
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist", image_size=28)


def test_fashion_mnist_spec_reads_the_given_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_idx_dir(tmp_path, n_train=5, n_test=3)
    monkeypatch.setattr("maelens.data.idx.FASHION_MNIST_DIR", tmp_path)
    ds = load_dataset("fashion-mnist", image_size=32, split="test")
    assert len(ds) == 3 and ds.classes[0] == "T-shirt/top" and ds.classes[9] == "Ankle boot"


@pytest.mark.skipif(not (FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file(),
                    reason="Debian package dataset-fashion-mnist is not installed")
def test_installed_fashion_mnist() -> None:
    test = load_dataset("fashion-mnist", image_size=32, split="test", limit=50)
    assert len(test) == 50 and test.class_counts() == {c: 5 for c in test.classes}
    x, _ = test[0]
    assert x.shape == (3, 32, 32)
    pixels = denormalize(x)
    torch.testing.assert_close(pixels[0], pixels[1])  # grayscale replicated to RGB
