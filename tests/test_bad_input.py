"""Bad input never ends in a traceback (issue 16): every command answers one line on stderr, exit
status 2, and writes nothing, for bad option values, devices, output locations, images and feature
files; defaults adapt to the other options instead of conflicting with them; an interrupted
checkpoint save never becomes the checkpoint that is loaded."""

import errno
import json
import os
import struct
import subprocess
import sys
import tempfile
import warnings
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from maelens.analysis.features import FeatureSet
from maelens.checkpoint import load_checkpoint, save_checkpoint
from maelens.checkpoint.files import locate
from maelens.cli import main
from maelens.data import read_image
from maelens.errors import DataError
from maelens.models import create_model

BOMB_SIDE = 20000  # 4e8 pixels: over twice Pillow's default MAX_IMAGE_PIXELS, so an error, not a warning


def write_bomb_png(path, side=BOMB_SIDE):
    """A valid 1-bit greyscale PNG of ``side`` x ``side`` pixels: about 60 KB on disk, written row by
    row through zlib without ever holding the image in memory."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + packed bits
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny checkpoint, a 3-class .npz of 24 images, a decompression-bomb PNG and an ImageFolder holding it."""
    root = tmp_path_factory.mktemp("bad_input")
    torch.manual_seed(0)
    ckpt = save_checkpoint(root / "tiny.pt", create_model("tiny"))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (24, 32, 32, 3), dtype=np.uint8)
    data = root / "images.npz"
    np.savez(data, images=images, labels=np.arange(24) % 3, split=np.array(["train"] * 16 + ["test"] * 8))
    bomb = write_bomb_png(root / "bomb.png")
    folder = root / "folder"
    for name in ("a", "b"):
        (folder / name).mkdir(parents=True)
        Image.fromarray(images[0]).save(folder / name / "small.png")
    write_bomb_png(folder / "b" / "huge.png")
    feats = root / "feats.npz"
    FeatureSet(rng.normal(size=(24, 8)).astype(np.float32), np.arange(24) % 3, np.arange(24).astype(str)).save(feats)
    return {"root": root, "ckpt": str(ckpt), "data": str(data), "bomb": str(bomb), "folder": str(folder),
            "feats": str(feats)}


def run(argv, capsys):
    """(exit status, stderr) of ``maelens ARGV`` in-process (main returns argparse's status too)."""
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def assert_one_line(code, err, *fragments):
    """Exit status 2 and exactly one non-empty stderr line, no traceback, holding every fragment."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def assert_nothing_written(path):
    """Neither ``path`` nor a temporary file of it exists."""
    assert not path.exists()
    assert not list(path.parent.glob(f".{path.name}.*")), "a temporary file was left behind"


# ---- 1. option values refused by argparse itself ------------------------------------------------

BAD_VALUES = [
    (["features", "--ckpt", "c.pt", "--batch-size", "0"], "--batch-size"),
    (["features", "--ckpt", "c.pt", "--batch-size", "-4"], "--batch-size"),
    (["distfit", "--synthetic", "--batch-size", "0"], "--batch-size"),
    (["similarity", "--ckpt", "c.pt", "--query", "0", "--batch-size", "0"], "--batch-size"),
    (["evaluate", "--features", "f.npz", "--batch-size", "0"], "--batch-size"),
    (["attention-stats", "--ckpt", "c.pt", "--batch-size", "0"], "--batch-size"),
    (["train", "--batch-size", "0"], "--batch-size"),
    (["features", "--ckpt", "c.pt", "--num-workers", "-1"], "--num-workers"),
    (["train", "--blr", "nan"], "--blr"),
    (["train", "--blr", "0"], "--blr"),
    (["train", "--blr", "-1e-4"], "--blr"),
    (["train", "--seed", "-1"], "--seed"),
    (["features", "--ckpt", "c.pt", "--seed", "-3"], "--seed"),
    (["train", "--epochs", "0"], "--epochs"),
    (["train", "--warmup-epochs", "inf"], "--warmup-epochs"),
    (["evaluate", "--features", "f.npz", "--perplexity", "0"], "--perplexity"),
    (["evaluate", "--features", "f.npz", "--k", "0"], "--k"),
    (["evaluate", "--features", "f.npz", "--pca-dim", "0"], "--pca-dim"),
    (["evaluate", "--features", "f.npz", "--test-size", "1.5"], "--test-size"),
    (["features", "--ckpt", "c.pt", "--mask-ratio", "nan"], "--mask-ratio"),
    (["data", "info", "--image-size", "0"], "--image-size"),
]


@pytest.mark.parametrize("argv, option", BAD_VALUES, ids=[" ".join(a[-2:]) for a, _ in BAD_VALUES])
def test_bad_option_values_are_refused_by_argparse(argv, option, tmp_path, capsys):
    out = tmp_path / "out"
    extra = [] if argv[0] == "data" else ["--out", out]
    line = assert_one_line(*run([*argv, *extra], capsys), option)
    assert line.startswith(f"maelens {argv[0]}") and "error: argument" in line
    assert not out.exists()


def test_argparse_errors_through_the_console_entry_point(tmp_path):
    out = tmp_path / "f.npz"
    proc = subprocess.run([sys.executable, "-m", "maelens", "features", "--ckpt", "c.pt", "--batch-size", "0",
                           "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == ["maelens features: error: argument --batch-size: expected a positive "
                                        "integer, got 0 (see maelens features --help)"]
    assert not out.exists()


# ---- 2. devices this machine does not have --------------------------------------------------------

def _device_commands(files, out):
    """Every command taking --device, with otherwise valid arguments and the output location ``out``."""
    ckpt, data = files["ckpt"], files["data"]
    return {
        "train": ["train", "--data", data, "--out", out],
        "reconstruct": ["reconstruct", "--ckpt", ckpt, "--data", data, "--out", f"{out}.png"],
        "attention-stats": ["attention-stats", "--ckpt", ckpt, "--data", data, "--out", out],
        "influence-map": ["influence-map", "--ckpt", ckpt, "--data", data, "--index", "0", "--out", f"{out}.png"],
        "distfit": ["distfit", "--ckpt", ckpt, "--data", data, "--out", out],
        "features": ["features", "--ckpt", ckpt, "--data", data, "--out", f"{out}.npz"],
        "evaluate": ["evaluate", "--features", files["feats"], "--out", out],
        "similarity": ["similarity", "--ckpt", ckpt, "--data", data, "--query", "0", "--out", f"{out}.png"],
    }


def _missing_devices():
    devices = ["foo", "cuda:x"]
    if not torch.cuda.is_available():
        devices.append("cuda")
    if torch.cuda.device_count() <= 7:
        devices.append("cuda:7")
    return devices


@pytest.mark.parametrize("command", ["train", "reconstruct", "attention-stats", "influence-map", "distfit",
                                     "features", "evaluate", "similarity"])
def test_unusable_devices_are_one_line(command, files, tmp_path, capsys):
    out = tmp_path / "out"
    argv = _device_commands(files, out)[command]
    for device in _missing_devices():
        assert_one_line(*run([*argv, "--device", device], capsys), f"--device {device}: ")
    assert os.listdir(tmp_path) == []


def test_no_gpu_message_says_why(files, tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    line = assert_one_line(*run(["features", "--ckpt", files["ckpt"], "--device", "cuda",
                                 "--out", tmp_path / "f.npz"], capsys), "--device cuda: CUDA is not available")
    assert "--device cpu" in line


# ---- 3. figure formats ------------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["reconstruct", "influence-map", "similarity"])
def test_unsupported_figure_extension_names_the_supported_ones(command, files, tmp_path, capsys):
    argv = _device_commands(files, tmp_path / "x")[command][:-1] + [tmp_path / "x.xyz"]
    line = assert_one_line(*run(argv, capsys), "x.xyz", ".xyz", ".png", ".pdf", ".svg")
    assert "supported extensions" in line
    assert os.listdir(tmp_path) == []


# ---- 4. output locations ------------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["train", "attention-stats", "distfit", "evaluate"])
def test_existing_file_where_a_directory_is_expected(command, files, tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("keep me")
    argv = _device_commands(files, target)[command]
    assert_one_line(*run(argv, capsys), str(target), "exists and is not a directory")
    assert target.read_text() == "keep me" and os.listdir(tmp_path) == ["taken"]


@pytest.mark.parametrize("command, name", [("features", "feats"), ("reconstruct", "figs"), ("similarity", "sim")])
def test_existing_directory_where_a_file_is_expected(command, name, files, tmp_path, capsys):
    target = tmp_path / name
    target.mkdir()
    argv = _device_commands(files, target)[command][:-1] + [target]
    assert_one_line(*run(argv, capsys), str(target), "is a directory")
    assert os.listdir(target) == []


@pytest.mark.parametrize("command", ["train", "features", "evaluate", "reconstruct"])
def test_unwritable_locations(command, files, tmp_path, capsys):
    blocker = tmp_path / "plain-file"
    blocker.write_text("")
    under_proc = _device_commands(files, "/proc/maelens-test/out")[command]
    assert_one_line(*run(under_proc, capsys), "/proc/maelens-test/out", "cannot write in /proc")
    under_file = _device_commands(files, blocker / "out")[command]
    assert_one_line(*run(under_file, capsys), str(blocker), "is a file, not a directory")
    assert os.listdir(tmp_path) == ["plain-file"]


# ---- 5. data: decompression bombs, bad feature files --------------------------------------------

def test_decompression_bomb_in_an_image_folder(files, tmp_path, capsys):
    out = tmp_path / "f.npz"
    assert_one_line(*run(["features", "--ckpt", files["ckpt"], "--data", files["folder"], "--split", "all",
                          "--out", out], capsys), "huge.png", "decompression bomb")
    assert_nothing_written(out)


def test_decompression_bomb_as_an_image_argument(files, tmp_path, capsys):
    fig = tmp_path / "map.png"
    assert_one_line(*run(["influence-map", "--ckpt", files["ckpt"], "--image", files["bomb"], "--out", fig],
                         capsys), "bomb.png", "decompression bomb")
    sim = tmp_path / "sim.png"
    assert_one_line(*run(["similarity", "--ckpt", files["ckpt"], "--data", files["data"], "--query", files["bomb"],
                          "--out", sim], capsys), "bomb.png", "decompression bomb")
    assert_nothing_written(fig)
    assert_nothing_written(sim)


def test_decompression_bomb_warning_turned_error(files, tmp_path, monkeypatch):
    small = tmp_path / "small.png"
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(small)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 1600 pixels: a warning, below twice the limit
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.raises(DataError, match="small.png: refused as a possible decompression bomb"):
            read_image(small)


def _save_features(path, features, labels=None):
    n = len(features)
    labels = np.arange(n) % 3 if labels is None else labels
    FeatureSet(np.asarray(features, np.float32), np.asarray(labels), np.arange(n).astype(str)).save(path)
    return path


def test_feature_files_with_nan_inf_or_no_rows(tmp_path, capsys):
    features = np.random.default_rng(0).normal(size=(30, 8))
    features[[3, 7], 2], features[11, 0] = np.nan, np.inf
    bad = _save_features(tmp_path / "bad.npz", features)
    empty = _save_features(tmp_path / "empty.npz", np.zeros((0, 8)), np.zeros(0, np.int64))
    npy = tmp_path / "bad.npy"
    np.save(npy, features)
    out = tmp_path / "out"
    assert_one_line(*run(["evaluate", "--features", bad, "--out", out], capsys),
                    "bad.npz", "3 of 30 feature rows hold NaN or infinite values", "row 3")
    assert_one_line(*run(["distfit", "--features-file", bad, "--out", out], capsys), "bad.npz", "3 of 30")
    assert_one_line(*run(["distfit", "--features-file", npy, "--out", out], capsys), "bad.npy", "3 of 30")
    assert_one_line(*run(["evaluate", "--features", empty, "--out", out], capsys), "empty.npz", "no feature rows")
    assert_one_line(*run(["distfit", "--features-file", empty, "--out", out], capsys), "empty.npz", "no feature rows")
    assert not out.exists()


# ---- 6. defaults that fit the other options ----------------------------------------------------------

def _train(files, out, *extra):
    return ["train", "--preset", "tiny", "--data", files["data"], "--batch-size", "8", "--recon-images", "0",
            "--device", "cpu", "--out", out, *extra]


def test_default_warmup_is_clipped_to_a_short_run(files, tmp_path, capsys):
    code, err = run(_train(files, tmp_path / "run", "--epochs", "1"), capsys)
    assert code == 0, err
    notes = [line for line in err.splitlines() if "note:" in line]
    assert notes == ["maelens train: note: warm-up shortened to 1 epoch(s): the default 2 is longer than "
                     "--epochs 1 (set --warmup-epochs to choose)"]
    assert load_checkpoint(tmp_path / "run").train_config["warmup_epochs"] is None  # the default, as such
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["warmup_epochs"] == 1.0
    code, err = run(_train(files, tmp_path / "quiet", "--epochs", "1", "--quiet"), capsys)
    assert code == 0 and "note:" not in err


def test_explicit_warmup_longer_than_the_run_is_an_error(files, tmp_path, capsys):
    out = tmp_path / "run"
    assert_one_line(*run(_train(files, out, "--epochs", "1", "--warmup-epochs", "2"), capsys), "--warmup-epochs")
    assert not out.exists()


def test_default_k_is_clipped_and_explicit_k_is_checked(files, tmp_path, capsys):
    out = tmp_path / "eval"  # 24 images, holdout 0.25: 18 training images
    code, err = run(["evaluate", "--features", files["feats"], "--methods", "knn", "--out", out], capsys)
    assert code == 0, err
    assert [line for line in err.splitlines() if "note:" in line] == [
        "maelens evaluate: note: kNN votes with k=18, all the training images: the default k=20 is more than "
        "the 18 there are (set --k to choose)"]
    assert json.loads((out / "evaluation.json").read_text())["settings"]["k"] == 18
    bad = tmp_path / "bad"
    assert_one_line(*run(["evaluate", "--features", files["feats"], "--methods", "knn", "--k", "19",
                          "--out", bad], capsys), "--k 19", "18 training images")
    assert not bad.exists()


def test_single_class_features_are_refused(tmp_path, capsys):
    one = _save_features(tmp_path / "one.npz", np.random.default_rng(0).normal(size=(20, 4)), np.zeros(20, np.int64))
    out = tmp_path / "eval"
    for methods in ("knn", "linear"):
        assert_one_line(*run(["evaluate", "--features", one, "--methods", methods, "--out", out], capsys),
                        "one.npz", "one class", "at least 2 classes")
    assert not out.exists()


# ---- 7. interrupted checkpoint saves ------------------------------------------------------------------

def test_a_crashed_save_keeps_the_last_checkpoint_and_resume_cleans_up(files, tmp_path, capsys, monkeypatch):
    run_dir = tmp_path / "run"
    assert run(_train(files, run_dir, "--epochs", "1", "--quiet"), capsys)[0] == 0
    real_save = torch.save

    def crash_after_first_bytes(obj, f, *args, **kwargs):
        with open(f, "wb") as handle:
            handle.write(b"PK\x03\x04 first bytes of a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", crash_after_first_bytes)
    assert_one_line(*run(_train(files, run_dir, "--epochs", "2", "--quiet", "--resume", "auto"), capsys),
                    f"no space left on device while writing {run_dir / 'checkpoint.pt'} after epoch 1",
                    "the previous one is kept")
    monkeypatch.setattr(torch, "save", real_save)
    assert load_checkpoint(run_dir).epoch == 0
    assert not list(run_dir.glob(".checkpoint*")), "the failed save left its temporary file"

    # A save killed outright (SIGKILL, power loss) leaves atomic_path's temporary file behind.
    fd, stale = tempfile.mkstemp(prefix=".checkpoint.pt.", suffix=".pt", dir=run_dir)
    os.write(fd, (run_dir / "checkpoint.pt").read_bytes()[:100])
    os.close(fd)
    assert locate(run_dir).weights == run_dir / "checkpoint.pt"
    assert main(["info", "--ckpt", str(run_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["epoch"] == 0
    assert run(_train(files, run_dir, "--epochs", "2", "--quiet", "--resume", "auto"), capsys)[0] == 0
    assert not os.path.exists(stale) and not list(run_dir.glob(".checkpoint*"))
    assert load_checkpoint(run_dir).epoch == 1


def test_temporary_files_are_never_located(files, tmp_path, capsys):
    weights = (files["root"] / "tiny.pt").read_bytes()
    first_save = tmp_path / "first"  # killed during the very first save: only the temporary file exists
    first_save.mkdir()
    (first_save / ".checkpoint.pt.k3j9x2ab.pt").write_bytes(weights[:100])
    line = assert_one_line(*run(["info", "--ckpt", first_save], capsys), "no weight file", "temporary")
    assert line.startswith("maelens info: error:")
    beside = tmp_path / "beside"  # a single weight file next to a stale temporary one is still found
    beside.mkdir()
    (beside / "model.pt").write_bytes(weights)
    (beside / ".model.pt.a1b2c3d4.pt").write_bytes(weights[:100])
    assert locate(beside).weights == beside / "model.pt"
    code, err = run(_train(files, first_save, "--epochs", "1", "--quiet", "--resume", "auto"), capsys)
    assert code == 0, err
    assert not list(first_save.glob(".checkpoint*")) and load_checkpoint(first_save).epoch == 0


def test_library_errors_speak_python_and_the_cli_translates_them():
    """Issue 17: library messages name parameters (``image_size=30``, ``overwrite=True``); the command line
    shows its flags for the same facts."""
    from maelens.cli.common import cli_words

    assert cli_words("image_size=30 is not a multiple of the patch size 4") == \
        "--image-size 30 is not a multiple of the patch size 4"
    assert cli_words("pass num_heads=H and decoder_num_heads=H") == "pass --num-heads H and --decoder-num-heads H"
    assert cli_words("pass overwrite=True, or choose another out=FOLDER") == "pass --overwrite, or choose another --out FOLDER"
    assert cli_words("lower batch_size or accum_iter") == "lower --batch-size or --accum-iter"
    # ordinary words, paths and longer identifiers stay as they are
    assert cli_words("the training data in /runs/batch_size_x, blr=1e-3") == \
        "the training data in /runs/batch_size_x, --blr 1e-3"
    assert cli_words("the learning rate lr=0.1 and my_top_n") == "the learning rate --lr 0.1 and my_top_n"


def test_similarity_figure_without_an_extension_is_a_png(files, tmp_path, capsys):
    """check_figure_path says no extension means PNG: the figure is written as one, the CSV beside it."""
    out = tmp_path / "sim"
    argv = _device_commands(files, out)["similarity"][:-1] + [str(out)]
    code, err = run(argv, capsys)[:2]
    assert code == 0, err
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.with_suffix(".csv").is_file()
