"""Hostile files and faults, by class (issues 29 and 30): every stored format's every field fed the bad values
of its class, headers and archives that lie, reads that would never end, paths the system refuses, data
whose metadata lies, pixels in other ranges, labels that do not match their classes, options whose product
is absurd. Each ends in one line on stderr and exit status 2 (or, where the input has a meaning, computes on
that meaning); none blocks, none allocates what the shapes announce before checking them.

The bad values are generated from each field's rule, not listed by hand, so a field added to a schema is
walked too; the values tried here are not the ones the issues list."""

from __future__ import annotations

import argparse
import json
import math
import os
import struct
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from maelens.checkpoint import save_checkpoint
from maelens.checkpoint.infer import HF_CONFIG_FIELDS, OFFICIAL_ARGS_FIELDS
from maelens.checkpoint.store import RUN_EXTRA_FIELDS, RUN_STATE_FIELDS
from maelens.cli import main
from maelens.data import load_dataset, read_image
from maelens.errors import ConfigError, DataError, OutputError
from maelens.io import LOCK_NAME, atomic_path, folder_lock, output_folder
from maelens.models import create_model
from maelens.models.simclr_config import SIMCLR_CONFIG_FIELDS, SimCLRConfig
from maelens.validation import MODEL_CONFIG_FIELDS, Field, _conforms


def bad_values(rule: Field) -> list:
    """Values of each class a field of ``rule`` must refuse: wrong type, zero, negative, non-finite, null,
    absurdly large; only those the rule does refuse are returned (zero is fine for a depth of 0 allowed)."""
    if rule.kind == "bool":
        candidates = ["true", 1, 0.0, [True]]
    elif rule.kind == "str":
        candidates = [3, 2.5, ["x"], {"a": 1}]
    elif rule.kind == "floats":
        n = rule.length or 3
        candidates = [[0.25] * (n - 1), [0.25] * (n + 2), "0.5", [math.nan] * n, [0.3, -math.inf, 0.3][:n] + [0.3] * (n - 3),
                      [0.0] * n, [-2.0] * n, 0.7]
    else:
        candidates = ["12", 3.25 if rule.kind == "int" else [0.5], True, 0, -7, math.nan, -math.inf, 10**15]
    candidates.append(None)
    return [v for v in candidates if not (v is None and rule.optional) and not (v is not None and _conforms(v, rule))]


def walk(schema: dict[str, Field], skip: tuple[str, ...] = ()) -> list[tuple[str, object]]:
    return [(name, value) for name, rule in schema.items() if name not in skip for value in bad_values(rule)]


def one_line_error(capsys, command: str = "info") -> str:
    err = capsys.readouterr().err
    lines = err.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith(f"maelens {command}: error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    torch.manual_seed(0)
    path = save_checkpoint(root / "tiny.pt", create_model("tiny"), epoch=3)
    return {"root": root, "path": path, "obj": torch.load(path, weights_only=True)}


def _info(path) -> int:
    return main(["info", "--ckpt", str(path), "--json"])


# ---- stored configurations: one schema per format, every field, every class of bad value ---------------

@pytest.mark.parametrize("field,value", walk(MODEL_CONFIG_FIELDS), ids=str)
def test_maelens_config_field_refused_naming_file_and_field(tiny, tmp_path, capsys, field, value):
    obj = dict(tiny["obj"])
    obj["config"] = {**obj["config"], field: value}
    path = tmp_path / "bad.pt"
    torch.save(obj, path)
    assert _info(path) == 2
    line = one_line_error(capsys)
    assert str(path) in line and f"'{field}'" in line
    assert "--" not in line.split(str(path), 1)[1]  # a stored value is never blamed on a flag


@pytest.mark.parametrize("field,value", walk(RUN_STATE_FIELDS) + [("extra." + f, v) for f, v in walk(RUN_EXTRA_FIELDS)],
                         ids=str)
def test_run_state_field_refused(tiny, tmp_path, capsys, field, value):
    """The run state beside the weights, and the training loop's own record in ``extra`` (what a resumed run reads)."""
    if field.startswith("extra."):
        field = field.split(".", 1)[1]
        obj = {**tiny["obj"], "extra": {"global_step": 12, "history": [], field: value}}
    else:
        obj = {**tiny["obj"], field: value}
    path = tmp_path / "bad.pt"
    torch.save(obj, path)
    assert _info(path) == 2
    line = one_line_error(capsys)
    assert str(path) in line and f"'{field}'" in line


@pytest.mark.parametrize("fields,words", [
    ({"embed_dim": 40000, "depth": 900, "decoder_depth": 0}, "memory"),  # within each field's range, terabytes in all
    ({"img_size": 8000, "patch_size": 2}, "tokens"),
    ({"num_heads": 3}, "'num_heads'"),  # 64 is not divisible by 3
    ({"img_size": 30}, "'patch_size'"),
    ({"mlp_ratio": 0.001}, "'mlp_ratio'"),
], ids=str)
def test_stored_shapes_refused_before_allocation(tiny, tmp_path, capsys, fields, words):
    obj = dict(tiny["obj"])
    obj["config"] = {**obj["config"], **fields}
    path = tmp_path / "bad.pt"
    torch.save(obj, path)
    assert _info(path) == 2
    assert words in one_line_error(capsys)


def _hf_folder(root, model):
    from test_checkpoint_formats import write_hf

    folder = root / "hf"
    write_hf(folder, model, "bin")
    return folder


@pytest.fixture(scope="module")
def hf(tmp_path_factory):
    from test_checkpoint import scrambled

    model = scrambled(create_model("tiny", num_heads=8, decoder_num_heads=2))
    return _hf_folder(tmp_path_factory.mktemp("hf"), model)


@pytest.mark.parametrize("field,value", walk(HF_CONFIG_FIELDS), ids=str)
def test_hf_config_json_field_refused_naming_config_json(hf, tmp_path, capsys, field, value):
    folder = tmp_path / "hf"
    folder.mkdir()
    for f in hf.iterdir():
        (folder / f.name).symlink_to(f)
    config = json.loads((hf / "config.json").read_text())
    (folder / "config.json").unlink()
    (folder / "config.json").write_text(json.dumps({**config, field: value}))
    assert _info(folder) == 2
    line = one_line_error(capsys)
    assert str(folder / "config.json") in line and f"'{field}'" in line
    assert "--" not in line.split("config.json", 1)[1]


@pytest.mark.parametrize("field,value", walk(OFFICIAL_ARGS_FIELDS), ids=str)
def test_official_args_field_refused(tiny, tmp_path, capsys, field, value):
    args = argparse.Namespace(model="mae_vit_base_patch16", input_size=32, norm_pix_loss=False)
    setattr(args, field, value)
    path = tmp_path / "official.pth"
    state = {k: v for k, v in tiny["obj"]["model"].items() if k != "pos_embed"}  # so that input_size is used
    torch.save({"model": state, "args": args, "epoch": 1}, path)
    assert main(["info", "--ckpt", str(path), "--num-heads", "4", "--decoder-num-heads", "4"]) == 2
    line = one_line_error(capsys)
    assert str(path) in line and f"'{field}'" in line


def test_args_of_other_scripts_are_checked_only_where_used(tiny, tmp_path, capsys):
    """timm's training scripts store an ``args`` namespace too (input_size [3, 224, 224], global_pool 'avg'):
    fields maelens does not read are not refused."""
    args = argparse.Namespace(model="vit_tiny_patch16_224", input_size=[3, 224, 224], global_pool="avg",
                              mask_ratio="n/a")
    path = tmp_path / "timm_trained.pth"
    torch.save({"model": tiny["obj"]["model"], "args": args, "epoch": 1}, path)
    assert _info(path) == 0


def test_a_given_head_count_is_blamed_on_its_flag(tiny, capsys):
    assert main(["info", "--ckpt", str(tiny["path"]), "--num-heads", "6"]) == 2
    assert "--num-heads 6 does not divide the encoder width 64" in one_line_error(capsys)


# ---- weights that are not what they claim ------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.int16, torch.uint8, torch.bool, torch.complex128, torch.int32])
def test_non_floating_weights_refused_naming_the_tensor(tiny, tmp_path, capsys, dtype):
    obj = dict(tiny["obj"])
    key = "decoder_blocks.1.mlp.fc2.weight"
    obj["model"] = {**obj["model"], key: obj["model"][key].to(dtype)}
    path = tmp_path / "ints.pt"
    torch.save(obj, path)
    assert _info(path) == 2
    line = one_line_error(capsys)
    assert key in line and str(dtype).replace("torch.", "") in line


def test_every_changed_byte_of_a_zip_checkpoint_is_caught(tiny, tmp_path, capsys):
    """Flip one byte inside each stored tensor's data (seeded positions): torch would load the altered number;
    the CRC-32 of its entry no longer matches."""
    raw = tiny["path"].read_bytes()
    with zipfile.ZipFile(tiny["path"]) as archive:
        entries = [i for i in archive.infolist() if "/data/" in i.filename and i.file_size > 8][::7]
    rng = np.random.default_rng(5)
    for info in entries:
        name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26:info.header_offset + 30])
        start = info.header_offset + 30 + name_len + extra_len  # the local header's own lengths (torch pads it)
        at = start + int(rng.integers(0, info.file_size))
        damaged = bytearray(raw)
        damaged[at] ^= 0x10
        path = tmp_path / "damaged.pt"
        path.write_bytes(bytes(damaged))
        assert _info(path) == 2
        assert "CRC-32" in one_line_error(capsys)


@pytest.mark.parametrize("fraction", [0.003, 0.37, 0.91, 0.9999])
def test_truncated_checkpoint_is_one_line_never_cut_mid_word(tiny, tmp_path, capsys, fraction):
    raw = tiny["path"].read_bytes()
    path = tmp_path / "cut.pt"
    path.write_bytes(raw[:int(len(raw) * fraction)])
    assert _info(path) == 2
    line = one_line_error(capsys)
    assert "damaged or truncated" in line or "not a PyTorch checkpoint" in line
    assert line.endswith((")", ".")) or line[-1].isalnum()


def _safetensors(tmp_path, header: dict | bytes, data: bytes, length: int | None = None):
    body = header if isinstance(header, bytes) else json.dumps(header).encode()
    path = tmp_path / "model.safetensors"
    path.write_bytes(struct.pack("<Q", len(body) if length is None else length) + body + data)
    return path


@pytest.mark.parametrize("case", ["past-end", "into-data", "offsets-outside", "overlap", "shape-lies", "dtype",
                                  "not-object", "short"])
def test_safetensors_header_that_lies_is_refused(tmp_path, capsys, case):
    good = {"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
            "v": {"dtype": "F32", "shape": [2], "data_offsets": [24, 32]}}
    data = bytes(32)
    body = json.dumps(good).encode()
    if case == "past-end":
        path = _safetensors(tmp_path, good, data, length=len(body) + 10**9)
    elif case == "into-data":
        path = _safetensors(tmp_path, good, data, length=len(body) + 5)
    elif case == "offsets-outside":
        path = _safetensors(tmp_path, {**good, "v": {"dtype": "F32", "shape": [2], "data_offsets": [24, 4000]}}, data)
    elif case == "overlap":
        path = _safetensors(tmp_path, {**good, "v": {"dtype": "F32", "shape": [2], "data_offsets": [16, 24]}}, data)
    elif case == "shape-lies":
        path = _safetensors(tmp_path, {**good, "w": {"dtype": "F32", "shape": [2000, 3000], "data_offsets": [0, 24]}},
                            data)
    elif case == "dtype":
        path = _safetensors(tmp_path, {**good, "v": {"dtype": "F99", "shape": [2], "data_offsets": [24, 32]}}, data)
    elif case == "not-object":
        path = _safetensors(tmp_path, b"[1, 2, 3]", data)
    else:
        path = tmp_path / "model.safetensors"
        path.write_bytes(b"\x05\x00")
    assert _info(path) == 2
    assert "not a valid safetensors file" in one_line_error(capsys)


# ---- reads that never end, and paths the system refuses ------------------------------------------------

def _fifo(tmp_path, name="pipe"):
    path = tmp_path / name
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("argv", [
    ["info", "--ckpt", "{fifo}"],
    ["info", "--ckpt", "/dev/zero"],
    ["data", "info", "--data", "{fifo}", "--image-size", "16"],
    ["distfit", "--features-file", "{fifo_npy}", "--out", "{out}"],
    ["evaluate", "--features", "{fifo_npz}", "--out", "{out}"],
], ids=lambda a: a[0] + ":" + a[2])
def test_non_regular_files_are_refused_before_opening(tmp_path, capsys, argv):
    names = {"fifo": _fifo(tmp_path), "fifo_npy": _fifo(tmp_path, "f.npy"), "fifo_npz": _fifo(tmp_path, "f.npz"),
             "out": tmp_path / "out"}
    argv = [a.format(**names) for a in argv]
    assert main(argv) == 2  # returns: it did not block on the FIFO
    line = one_line_error(capsys, argv[0] if argv[0] != "data" else "data")
    assert "not a regular file" in line


def test_a_checkpoint_name_taken_by_a_folder_or_fifo_inside_a_run_folder(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoint.pt").mkdir()
    assert _info(tmp_path / "run") == 2
    assert "checkpoint.pt: is a directory, expected a file" in one_line_error(capsys)
    os.mkfifo(tmp_path / "model.safetensors")
    assert _info(tmp_path) == 2
    assert "FIFO" in one_line_error(capsys)


def test_symlink_loop_and_dangling_link_are_named_as_such(tmp_path, capsys):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    assert _info(tmp_path / "a") == 2
    assert "symlink loop" in one_line_error(capsys)
    (tmp_path / "gone").symlink_to(tmp_path / "nothing-here.pt")
    assert main(["data", "info", "--data", str(tmp_path / "gone"), "--image-size", "8"]) == 2
    assert "which does not exist" in one_line_error(capsys, "data")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_unreadable_file_is_one_line(tiny, tmp_path, capsys):
    path = tmp_path / "locked.pt"
    path.write_bytes(tiny["path"].read_bytes())
    path.chmod(0)
    assert _info(path) == 2
    assert "permission denied" in one_line_error(capsys)


def test_os_refusal_of_our_own_path_is_one_line(tmp_path, capsys, monkeypatch):
    """Any OSError naming a path, wherever it is raised, is the one-line message with the path, escaped."""
    def refuse(args):
        raise IsADirectoryError(21, "Is a directory", str(tmp_path / "a\nb"))

    args = argparse.Namespace(command="info", func=refuse)
    monkeypatch.setattr("maelens.cli.build_parser", lambda: argparse.Namespace(parse_args=lambda argv: args))
    assert main(["info"]) == 2
    assert one_line_error(capsys).endswith("a\\nb: Is a directory")


def test_control_characters_in_a_path_keep_the_message_on_one_line(tmp_path, capsys):
    for name in ("new\nline.pt", "tab\there.pt", "bell\x07.pt", "cr\rhere.pt"):
        assert _info(tmp_path / name) == 2
        line = one_line_error(capsys)
        assert "does not exist" in line and "\\" in line


@pytest.mark.parametrize("length", [200, 240, 255])
def test_staging_names_fit_when_the_target_name_does(tmp_path, length):
    name = "r" * (length - 4) + ".npz"
    with atomic_path(tmp_path / name) as tmp:
        assert len(tmp.name) <= 255
        tmp.write_bytes(b"x")
    assert (tmp_path / name).read_bytes() == b"x"
    folder = "f" * length
    with output_folder(tmp_path / folder) as staging:
        assert len(staging.name) <= 255
        (staging / "a.txt").write_text("a")
    assert (tmp_path / folder / "a.txt").read_text() == "a"


def test_a_long_out_name_is_written_through_the_cli(tiny, tmp_path):
    data = tmp_path / "d.npz"
    np.savez(data, images=np.zeros((4, 32, 32, 3), np.uint8), labels=np.arange(4) % 2)
    out = tmp_path / ("x" * 246 + ".npz")
    assert main(["features", "--ckpt", str(tiny["path"]), "--data", str(data), "--split", "all", "--out", str(out),
                 "--quiet"]) == 0
    assert out.is_file()


def test_lock_path_taken_by_a_folder_is_one_error(tmp_path):
    (tmp_path / "run" / LOCK_NAME).mkdir(parents=True)
    with pytest.raises(OutputError, match="a folder has that name"):
        with folder_lock(tmp_path / "run"):
            pass


# ---- data files trusted in their metadata ----------------------------------------------------------------

@pytest.mark.parametrize("arrays,words", [
    ({"images": np.zeros((3, 0, 8, 3), np.uint8)}, "height and width"),
    ({"images": np.zeros((3, 8, 0), np.uint8)}, "height and width"),
    ({"images": np.zeros((2, 8, 8, 3), np.uint8), "labels": np.zeros(50_000, np.int64)}, "2 images but 50000"),
    ({"images": np.zeros((2, 8, 8, 3), np.uint8), "labels": np.array([0.5, 1.5])}, "'labels' must be"),
    ({"images": np.zeros((2, 8, 8, 3), np.uint8), "labels": np.array(["a", "b"])}, "'labels' must be"),
    ({"images": np.zeros((2, 8, 8, 3), np.uint8), "labels": np.array(4)}, "'labels' must be"),
    ({"images": np.zeros((2, 8, 8, 3), np.uint8), "labels": np.array([0, 2**40])}, "names no class"),
    ({"images": np.zeros((2, 8, 8, 3), np.uint8), "labels": np.array([0, 3]), "classes": np.array(["a", "b"])},
     "label 3 names no class"),
    ({"images": np.zeros((2, 8, 8, 3), np.uint8), "labels": np.array([0, -5])}, "label -5"),
    ({"images": np.zeros((2, 8, 8, 3), np.uint8), "ids": np.array(["a"])}, "'ids'"),
    ({"images": np.zeros((2, 3, 8, 9), np.float32)}, "(N, 3, S, S)"),
    ({"images": np.zeros((2, 8, 8, 3), np.uint8), "split": np.array([1, 0])}, "'split'"),
], ids=str)
def test_npz_metadata_is_checked(tmp_path, capsys, arrays, words):
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    assert main(["data", "info", "--data", str(path), "--image-size", "8"]) == 2
    assert words in one_line_error(capsys, "data")


def _cifar(root, batches, labels=None, announce=None):
    import pickle

    root.mkdir(exist_ok=True)
    for k in batches:
        lab = list(range(3)) if labels is None else labels
        batch = {b"data": np.zeros((3, 3072), np.uint8), b"labels": lab,
                 b"batch_label": (f"training batch {k} of {announce}" if announce else "fixture").encode()}
        (root / f"data_batch_{k}").write_bytes(pickle.dumps(batch, protocol=2))
    (root / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((3, 3072), np.uint8), b"labels": [0, 1, 2]}))
    (root / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"a", b"b", b"c"]}))
    return root


@pytest.mark.parametrize("batches,labels,announce,words", [
    ([1, 2, 4], None, None, "data_batch_3 missing"),
    ([1, 2, 3], None, 4, "data_batch_4 missing"),
    ([2, 3], None, None, "data_batch_1 missing"),
    ([1], ["x", "y", "z"], None, "'labels' must be"),
    ([1], 7, None, "'labels' must be"),
    ([1], [0.0, 1.0, 2.0], None, "'labels' must be"),
    ([1], [0, 1], None, "3 images but 2 labels"),
    ([1], [0, 1, 9], None, "label 9 names no class"),
], ids=str)
def test_cifar_batches_are_checked_against_each_other(tmp_path, batches, labels, announce, words):
    root = _cifar(tmp_path / "cifar", batches, labels, announce)
    with pytest.raises(DataError, match=words):
        load_dataset(str(root), image_size=32, split="train")


def test_complete_announced_cifar_loads(tmp_path):
    root = _cifar(tmp_path / "cifar", [1, 2], announce=2)
    assert len(load_dataset(str(root), image_size=32, split="train")) == 6


# ---- pixels read in their real range ---------------------------------------------------------------------

@pytest.mark.parametrize("values,expected", [
    (np.array([[0.0, 0.2], [0.6, 1.0]], np.float32), [[0, 51], [153, 255]]),  # float in [0, 1]
    (np.array([[0.0, 17.0], [128.0, 250.0]], np.float32), [[0, 17], [128, 250]]),  # float in [0, 255]
    (np.array([[0, 257], [25700, 65535]], np.int32), [[0, 1], [100, 255]]),  # 16-bit values in 32-bit storage
], ids=["float01", "float255", "int32-16bit"])
def test_image_modes_are_mapped_by_their_real_range(tmp_path, values, expected):
    path = tmp_path / "img.tif"
    Image.fromarray(values).save(path)
    pixels = read_image(path)
    assert pixels.shape == (2, 2, 3) and pixels[..., 0].tolist() == expected
    assert (pixels[..., 0] == pixels[..., 2]).all()


@pytest.mark.parametrize("values,words", [
    (np.array([[0, 70000]], np.int32), "outside 16-bit"),
    (np.array([[-3, 10]], np.int32), "outside 16-bit"),
    (np.array([[0.0, np.nan]], np.float32), "NaN"),
    (np.array([[-0.5, 0.5]], np.float32), "known mapping"),
    (np.array([[0.0, 4000.0]], np.float32), "known mapping"),
], ids=str)
def test_image_ranges_without_a_mapping_are_refused(tmp_path, values, words):
    path = tmp_path / "img.tif"
    Image.fromarray(values).save(path)
    with pytest.raises(DataError, match=words):
        read_image(path)


# ---- labels, classes and splits that do not match ----------------------------------------------------------

def _features(path, labels, classes, dim=6, seed=0):
    rng = np.random.default_rng(seed)
    feats = rng.normal(size=(len(labels), dim)).astype(np.float32)
    np.savez(path, features=feats, labels=np.asarray(labels), ids=np.arange(len(labels)).astype(str),
             settings=np.array(json.dumps({"classes": classes})))
    return path


def test_evaluate_refuses_labels_beyond_the_recorded_class_names(tmp_path, capsys):
    path = _features(tmp_path / "f.npz", [0, 1, 2, 3, 4, 5] * 5, ["cat", "dog", "eel"])
    assert main(["evaluate", "--features", str(path), "--methods", "knn", "--out", str(tmp_path / "o")]) == 2
    assert "label 5 names no class" in one_line_error(capsys, "evaluate")


def test_evaluate_refuses_test_features_with_another_class_list(tmp_path, capsys):
    train = _features(tmp_path / "a.npz", [0, 1] * 10, ["plane", "ship"])
    test = _features(tmp_path / "b.npz", [0, 1] * 5, ["bee", "cow"], seed=1)
    assert main(["evaluate", "--features", str(train), "--test-features", str(test), "--methods", "knn",
                 "--out", str(tmp_path / "o")]) == 2
    assert "do not mean the same classes" in one_line_error(capsys, "evaluate")


# ---- options whose product is absurd; given values used or refused ------------------------------------------

@pytest.mark.parametrize("size", ["20000", "65540", "1000004"])
def test_image_size_far_beyond_the_model_is_refused_with_the_limit(tiny, tmp_path, capsys, size):
    data = tmp_path / "d.npz"
    np.savez(data, images=np.zeros((2, 32, 32, 3), np.uint8))
    assert main(["features", "--ckpt", str(tiny["path"]), "--data", str(data), "--image-size", size,
                 "--out", str(tmp_path / "f.npz")]) == 2
    line = one_line_error(capsys, "features")
    assert f"--image-size {size}" in line and "limit" in line


@pytest.mark.parametrize("pca", ["7", "41", "100000"])
def test_a_given_pca_dim_beyond_the_data_is_refused_not_lowered(tmp_path, capsys, pca):
    path = _features(tmp_path / "f.npz", [0, 1, 2] * 12, ["a", "b", "c"])
    assert main(["evaluate", "--features", str(path), "--methods", "pca-knn", "--pca-dim", pca,
                 "--out", str(tmp_path / "o")]) == 2
    assert f"--pca-dim {pca} exceeds" in one_line_error(capsys, "evaluate")
    assert main(["evaluate", "--features", str(path), "--methods", "pca-knn", "--pca-dim", "5", "--json", "--quiet",
                 "--out", str(tmp_path / "ok")]) == 0
    assert json.loads(capsys.readouterr().out)["settings"]["pca_dim"] == 5


def test_forced_bf16_on_an_emulating_cpu_warns_once(monkeypatch, capsys):
    import maelens.train.precision as precision
    from maelens.cli.common import warn_slow_paths

    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda *a: [])
    args = argparse.Namespace(command="train", precision="bf16", device="cpu", quiet=False)
    warn_slow_paths(args)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "emulated" in err and "used as given" in err
    warn_slow_paths(argparse.Namespace(command="train", precision="auto", device="cpu", quiet=False))
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda *a: ["amx_bf16"])
    warn_slow_paths(args)
    assert capsys.readouterr().err == ""


def test_a_one_patch_grid_is_refused_by_attention_analyses():
    from maelens.analysis.rollout import rollout_maps

    model = create_model("tiny", img_size=4).eval()
    with pytest.raises(ConfigError, match="1x1 patch grid"):
        rollout_maps(model, torch.zeros(1, 3, 4, 4))


def test_a_worker_process_error_is_its_own_line(tiny, tmp_path, capsys):
    folder = tmp_path / "imgs" / "a"
    folder.mkdir(parents=True)
    for i in range(3):
        Image.fromarray(np.full((32, 32, 3), i * 40, np.uint8)).save(folder / f"{i}.png")
    good = (folder / "0.png").read_bytes()
    (folder / "9.png").write_bytes(good[:len(good) // 2])  # the header reads; decoding fails in the worker
    assert main(["features", "--ckpt", str(tiny["path"]), "--data", str(tmp_path / "imgs"), "--split", "all",
                 "--num-workers", "1", "--out", str(tmp_path / "f.npz"), "--quiet"]) == 2
    line = one_line_error(capsys, "features")
    assert "9.png: not a readable image" in line and "Caught" not in line and "Original" not in line


# ---- segmentation checkpoints: the same rules ----------------------------------------------------------------

@pytest.fixture(scope="module")
def segmenter(tmp_path_factory):
    from maelens.segmentation.model import segmenter_from_scratch
    from maelens.segmentation.store import save_segmenter

    path = tmp_path_factory.mktemp("seg") / "seg.pt"
    save_segmenter(path, segmenter_from_scratch("tiny", 3), epoch=2)
    return torch.load(path, weights_only=True)


@pytest.mark.parametrize("change,words", [
    (lambda p: p["segmenter"]["encoder"].update(embed_dim="64"), "'embed_dim'"),
    (lambda p: p["segmenter"]["encoder"].update(layer_norm_eps=-1.0), "'layer_norm_eps'"),
    (lambda p: p["segmenter"].update(num_classes=0), "'num_classes'"),
    (lambda p: p["segmenter"].update(num_classes=2.5), "'num_classes'"),
    (lambda p: p.update(epoch=math.nan), "'epoch'"),
    (lambda p: p["model"].update({next(iter(p["model"])): torch.zeros(2, dtype=torch.int8)}), "floating point"),
], ids=["width-string", "eps-negative", "classes-zero", "classes-float", "epoch-nan", "int-weights"])
def test_segmentation_checkpoint_fields_are_checked(segmenter, tmp_path, change, words):
    import copy

    from maelens.errors import CheckpointError
    from maelens.segmentation.store import load_segmenter

    payload = copy.deepcopy(segmenter)
    change(payload)
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match=words):
        load_segmenter(tmp_path / "bad.pt")


# ---- sizes announced by a format are checked before they are read ----------------------------------------------

def test_npz_announcing_more_than_it_holds_is_refused(tmp_path, capsys):
    import io

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False,
                                                  "shape": (4096, 2048, 2048, 3)})
    path = tmp_path / "lies.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("images.npy", header.getvalue() + bytes(64))
    assert main(["data", "info", "--data", str(path), "--image-size", "8"]) == 2
    assert "announces shape (4096, 2048, 2048, 3)" in one_line_error(capsys, "data")
    assert main(["evaluate", "--features", str(path), "--out", str(tmp_path / "o")]) == 2
    assert "announces shape" in one_line_error(capsys, "evaluate")


def test_npz_larger_than_memory_is_refused_before_reading(tmp_path, monkeypatch):
    import maelens.validation as validation

    path = tmp_path / "big.npz"
    np.savez_compressed(path, images=np.zeros((64, 32, 32, 3), np.uint8))  # 196,608 bytes, a few hundred compressed
    monkeypatch.setattr(validation, "memory_bytes", lambda: 100_000)
    with pytest.raises(DataError, match="more than this machine's"):
        load_dataset(str(path), image_size=32)


@pytest.mark.parametrize("text,words", [("[" * 200_000, "nested too deeply"), ('{"a": 1', "not a readable JSON"),
                                        ('"just a string"', "should hold a JSON object")], ids=str)
def test_config_json_that_cannot_be_a_config(hf, tmp_path, capsys, text, words):
    folder = tmp_path / "hf"
    folder.mkdir()
    for f in hf.iterdir():
        if f.name != "config.json":
            (folder / f.name).symlink_to(f)
    (folder / "config.json").write_text(text)
    assert _info(folder) == 2
    assert words in one_line_error(capsys)


@pytest.mark.parametrize("shard", ["../escape.safetensors", "/etc/passwd", 7, "sub/dir.safetensors"])
def test_shard_index_naming_files_outside_its_folder_is_refused(tmp_path, capsys, shard):
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"w": shard}}))
    assert _info(tmp_path) == 2
    assert "'weight_map' must name shard files in its folder" in one_line_error(capsys)


@pytest.mark.parametrize("argv", [["--tokens", "50000", "--dim", "20000", "--samples", "9000"],
                                  ["--tokens", "3", "--dim", "10", "--samples", "10000000000000"]], ids=str)
def test_synthetic_sizes_beyond_memory_are_refused_before_allocation(tmp_path, capsys, argv):
    assert main(["distfit", "--synthetic", *argv, "--out", str(tmp_path / "o")]) == 2
    assert "more than this machine's" in one_line_error(capsys, "distfit")


def test_an_allocation_no_check_foresaw_is_one_line(tmp_path, capsys, monkeypatch):
    def allocate(args):
        raise MemoryError("Unable to allocate 3.00 TiB for an array with shape (1000000, 1000000)")

    args = argparse.Namespace(command="info", func=allocate)
    monkeypatch.setattr("maelens.cli.build_parser", lambda: argparse.Namespace(parse_args=lambda argv: args))
    assert main(["info"]) == 2
    assert one_line_error(capsys).endswith("out of memory: Unable to allocate 3.00 TiB for an array with shape "
                                           "(1000000, 1000000)")


def test_a_given_perplexity_too_large_for_the_points_is_refused_not_lowered(tmp_path, capsys):
    path = _features(tmp_path / "f.npz", [0, 1, 2] * 8, ["a", "b", "c"])  # 18 training images of the holdout
    assert main(["evaluate", "--features", str(path), "--methods", "tsne-knn", "--perplexity", "6.5", "--k", "5",
                 "--out", str(tmp_path / "o")]) == 2
    assert "perplexity 6.5 needs at least 21 points" in one_line_error(capsys, "evaluate")


def test_a_given_top_k_beyond_the_gallery_is_refused(tiny, tmp_path, capsys):
    data = tmp_path / "d.npz"
    np.savez(data, images=np.random.default_rng(0).integers(0, 255, (5, 32, 32, 3), dtype=np.uint8))
    assert main(["similarity", "--ckpt", str(tiny["path"]), "--data", str(data), "--split", "all", "--query", "0",
                 "--top-k", "6", "--out", str(tmp_path / "s.png"), "--quiet"]) == 2
    assert "top-k 6 exceeds the 4 gallery images" in one_line_error(capsys, "similarity")


def test_a_listed_image_that_is_a_fifo_is_refused_without_blocking(tmp_path, capsys):
    (tmp_path / "categories_places365.txt").write_text("/a/airfield 0\n/b/beach 1\n")
    (tmp_path / "a").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a" / "1.jpg")
    os.mkfifo(tmp_path / "a" / "2.jpg")
    (tmp_path / "places365_train_standard.txt").write_text("/a/1.jpg 0\n/a/2.jpg 1\n")
    assert main(["data", "info", "--data", str(tmp_path), "--image-size", "8"]) == 2
    assert "2.jpg: is a FIFO" in one_line_error(capsys, "data")


@pytest.mark.parametrize("field,value", walk(SIMCLR_CONFIG_FIELDS), ids=str)
def test_simclr_config_field_refused_naming_the_field(field, value):
    """The SimCLR config a SimCLR checkpoint stores (checked by the loader as for the MAE config; the model itself
    is too large to save once per case, so the walk calls the config the loader builds)."""
    stored = {**SimCLRConfig().to_dict(), field: value}
    with pytest.raises(ConfigError, match=f"'{field}'"):
        SimCLRConfig.from_dict(stored)


def test_a_stored_config_that_is_not_a_record_is_refused(tiny, tmp_path, capsys):
    for value in ("tiny", [64, 3], 7):
        torch.save({**tiny["obj"], "config": value}, tmp_path / "c.pt")
        assert _info(tmp_path / "c.pt") == 2
        assert "'config' must be a dict" in one_line_error(capsys)


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan], ids=str)
def test_float_model_inputs_must_be_finite(tiny, tmp_path, capsys, bad):
    images = np.zeros((5, 3, 32, 32), np.float32)
    images[3, 1, 7, 9] = bad
    np.savez(tmp_path / "x.npz", images=images)
    assert main(["features", "--ckpt", str(tiny["path"]), "--data", str(tmp_path / "x.npz"), "--split", "all",
                 "--out", str(tmp_path / "f.npz"), "--quiet"]) == 2
    assert "1 of 5 images with NaN or infinite values (first: image 3)" in one_line_error(capsys, "features")


@pytest.mark.parametrize("settings,words", [("[3, 4]", "'settings' must be a JSON object"),
                                            ('{"classes": "ab"}', "'classes' must be a list of class names"),
                                            ('{"classes": [1, 2]}', "'classes' must be a list of class names")],
                         ids=str)
def test_feature_file_settings_are_checked(tmp_path, capsys, settings, words):
    path = tmp_path / "f.npz"
    np.savez(path, features=np.zeros((8, 3), np.float32), labels=np.arange(8) % 2, settings=np.array(settings))
    assert main(["evaluate", "--features", str(path), "--out", str(tmp_path / "o")]) == 2
    assert words in one_line_error(capsys, "evaluate")


@pytest.mark.parametrize("size", ["65537", "123456789"])
def test_an_image_size_beyond_any_image_is_refused_with_the_limit(tmp_path, capsys, size):
    np.savez(tmp_path / "d.npz", images=np.zeros((4, 8, 8, 3), np.uint8))
    assert main(["data", "info", "--data", str(tmp_path / "d.npz"), "--image-size", size]) == 2
    assert "over the limit of 65,536 pixels a side" in one_line_error(capsys, "data")
