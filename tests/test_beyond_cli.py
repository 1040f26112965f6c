"""``maelens cka``, ``rollout``, ``probe-layers`` and ``token-stats`` (issue 14) on tiny checkpoints."""

import json
import os

import numpy as np
import pandas as pd
import pytest
import torch

from maelens.checkpoint import save_checkpoint
from maelens.cli import main
from maelens.models import create_model


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("beyond_cli")
    torch.manual_seed(0)
    ckpt = save_checkpoint(root / "tiny.pt", create_model("tiny"))
    other = save_checkpoint(root / "other.pt", create_model("tiny", decoder_depth=0, depth=2))
    rng = np.random.default_rng(0)
    data = root / "images.npz"
    labels = np.arange(24) % 2
    images = rng.integers(0, 120, (24, 32, 32, 3)) + 120 * labels[:, None, None, None]
    np.savez(data, images=images.astype(np.uint8), labels=labels)
    return {"ckpt": str(ckpt), "other": str(other), "data": str(data)}


def _run(argv, capsys):
    code = main(argv + ["--json", "--quiet"])
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if code == 0 else None), captured.err


def test_cka_one_model_and_two_models(files, tmp_path, capsys):
    out = tmp_path / "cka"
    code, doc, _ = _run(["cka", "--ckpt", files["ckpt"], "--data", files["data"], "--split", "all", "--batch-size",
                         "8", "--out", str(out)], capsys)
    assert code == 0
    assert doc["layers_a"] == [f"encoder.{i}" for i in range(3)] + [f"decoder.{i}" for i in range(4)]
    frame = pd.read_csv(out / "cka.csv")
    assert list(frame.columns) == ["layer_a", "layer_b", "cka"] and len(frame) == 49
    assert np.allclose(frame[frame.layer_a == frame.layer_b].cka, 1.0)
    assert (out / "cka.png").stat().st_size > 0 and json.loads((out / "cka.json").read_text()) == doc
    code, doc, _ = _run(["cka", "--ckpt", files["ckpt"], "--ckpt-b", files["other"], "--parts", "encoder",
                         "--estimator", "minibatch", "--pool", "flatten", "--data", files["data"], "--split", "all",
                         "--batch-size", "8", "--out", str(tmp_path / "two")], capsys)
    assert code == 0 and np.array(doc["cka"]).shape == (3, 2) and doc["layers_b"] == ["encoder.0", "encoder.1"]
    assert doc["checkpoint_b"]["checkpoint"] == files["other"]


def test_rollout_writes_maps_and_figures(files, tmp_path, capsys):
    out = tmp_path / "roll"
    code, doc, _ = _run(["rollout", "--ckpt", files["ckpt"], "--data", files["data"], "--split", "all", "--index", "0",
                         "5", "--head-fusion", "max", "--discard-ratio", "0.5", "--patch", "2,3", "--out", str(out)],
                        capsys)
    assert code == 0 and doc["patch_index"] == 2 * 8 + 3 and doc["mask_ratio"] == 0.0
    with np.load(out / "rollout.npz") as z:
        assert z["rollout"].shape == (2, 65, 65) and z["cls_maps"].shape == (2, 8, 8)
        np.testing.assert_allclose(z["rollout"].sum(axis=2), 1.0, atol=1e-5)
        np.testing.assert_allclose(z["patch_maps"][1], z["rollout"][1, 1 + 19, 1:].reshape(8, 8))
    assert (out / "rollout_001.png").stat().st_size > 0


def test_probe_layers_and_token_stats(files, tmp_path, capsys):
    out = tmp_path / "probe"
    code, doc, _ = _run(["probe-layers", "--ckpt", files["ckpt"], "--data", files["data"], "--split", "all",
                         "--methods", "knn,linear", "--epochs", "3", "--k", "5", "--out", str(out)], capsys)
    assert code == 0
    frame = pd.read_csv(out / "layer_probes.csv")
    assert len(frame) == 3 * 2 * 2 * 2 and set(frame.layer) == {"encoder.0", "encoder.1", "encoder.2"}
    assert frame[frame.method == "knn"].accuracy.min() > 0.8 and doc["n_train"] == 24
    assert (out / "layer_probes.png").stat().st_size > 0
    out = tmp_path / "tokens"
    code, doc, _ = _run(["token-stats", "--ckpt", files["ckpt"], "--parts", "all", "--k", "2.5", "--data",
                         files["data"], "--split", "all", "--out", str(out)], capsys)
    assert code == 0 and len(doc["layers"]) == 7 and doc["k"] == 2.5
    with np.load(out / "token_stats.npz") as z:
        assert z["position_share"].shape == (7, 8, 8)
    assert len(pd.read_csv(out / "token_stats.csv")) == 7 and (out / "token_stats.png").stat().st_size > 0


@pytest.mark.parametrize("argv, message", [
    (["cka", "--pool", "flatten"], "takes pooling mean, cls, tokens"),
    (["cka", "--estimator", "minibatch", "--batch-size", "2"], "at least 4 images"),
    (["cka", "--arch-b", "timm:vit_tiny_patch16_224"], "--ckpt-b, which was not given"),
    (["cka", "--ckpt-b", "OTHER", "--parts", "decoder", "--parts-b", "decoder"], "has no decoder"),
    (["rollout", "--index", "0", "--patch", "9,0"], "outside the 8x8 patch grid"),
    (["rollout", "--index", "99"], "--index must be in [0, 23]"),
    (["rollout", "--index", "0", "--discard-ratio", "1"], "expected a number in [0, 1)"),
    (["probe-layers", "--methods", "tsne-knn"], "not tsne-knn"),
    (["probe-layers", "--pools", "tokens"], "pool by mean, cls, got tokens"),
    (["token-stats", "--k", "-1"], "expected a finite number >= 0"),
])
def test_errors_are_one_line_exit_2_and_write_nothing(files, tmp_path, capsys, argv, message):
    out = tmp_path / "never"
    argv = [files["other"] if a == "OTHER" else a for a in argv]
    code = main([argv[0], "--ckpt", files["ckpt"], "--data", files["data"], "--split", "all", *argv[1:],
                 "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and message in err
    assert not out.exists()


def test_cli_choices_match_the_library():
    from maelens.analysis import cka, layer_outputs, rollout
    from maelens.cli import cka as cka_cli
    from maelens.cli import rollout as rollout_cli

    # one list each, in maelens.choices, read by the library and the parser alike
    assert cka_cli.CKA_ESTIMATORS is cka.CKA_ESTIMATORS and cka_cli.LAYER_POOLS is layer_outputs.LAYER_POOLS
    assert cka_cli.LAYER_PART_CHOICES is layer_outputs.LAYER_PART_CHOICES
    assert rollout_cli.HEAD_FUSIONS is rollout.HEAD_FUSIONS and rollout_cli.DISCARD_SCOPES is rollout.DISCARD_SCOPES


def test_timm_vit_layers_rollout_and_cka_against_a_maelens_model(files, tmp_path, capsys):
    import timm

    from maelens.analysis.layer_outputs import run_layers
    from maelens.checkpoint import load_checkpoint

    torch.manual_seed(0)
    ref = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, depth=2,
                            num_classes=0).eval()
    path = tmp_path / "w.pt"
    torch.save(ref.state_dict(), path)
    # the hooked block outputs of the converted encoder are timm's own block outputs
    x = torch.randn(2, 3, 32, 32)
    seen = []
    handles = [blk.register_forward_hook(lambda m, i, o: seen.append(o)) for blk in ref.blocks]
    with torch.no_grad():
        ref.forward_features(x)
    for h in handles:
        h.remove()
    ours = run_layers(load_checkpoint(path, arch="timm:vit_tiny_patch16_224").model, x)
    for got, want in zip(ours, seen):
        np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-5)
    code, doc, _ = _run(["cka", "--ckpt", str(path), "--arch", "timm:vit_tiny_patch16_224", "--ckpt-b", files["ckpt"],
                         "--parts-b", "encoder", "--data", files["data"], "--split", "all", "--out",
                         str(tmp_path / "cka")], capsys)
    assert code == 0 and np.array(doc["cka"]).shape == (2, 3)
    code, doc, _ = _run(["rollout", "--ckpt", str(path), "--arch", "timm:vit_tiny_patch16_224", "--data",
                         files["data"], "--split", "all", "--index", "1", "--out", str(tmp_path / "roll")], capsys)
    assert code == 0 and doc["patch"] == [2, 2] and doc["layers"] == 2


@pytest.mark.parametrize("command", ["cka", "rollout", "probe-layers", "token-stats"])
def test_used_out_folder_and_missing_device_are_refused_before_any_work(files, tmp_path, capsys, command):
    extra = ["--index", "0"] if command == "rollout" else []
    used = tmp_path / "used"
    used.mkdir()
    (used / "mine.txt").write_text("keep")
    base = [command, "--ckpt", files["ckpt"], "--data", files["data"], "--split", "all", *extra]
    assert main(base + ["--out", str(used)]) == 2
    assert "already holds files" in capsys.readouterr().err and os.listdir(used) == ["mine.txt"]
    assert main(base + ["--out", str(tmp_path / "new"), "--device", "nonsense:3"]) == 2
    assert "--device nonsense:3" in capsys.readouterr().err and not (tmp_path / "new").exists()


def test_rollout_of_image_files(files, tmp_path, capsys):
    from PIL import Image

    png = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(png)
    code, doc, _ = _run(["rollout", "--ckpt", files["ckpt"], "--image", str(png), str(png), "--layers", "2",
                         "--discard-scope", "row", "--discard-ratio", "0.2", "--out", str(tmp_path / "r")], capsys)
    assert code == 0 and doc["images"] == ["photo.png", "photo.png"] and doc["layers"] == 2
    with np.load(tmp_path / "r" / "rollout.npz") as z:
        np.testing.assert_allclose(z["cls_maps"][0], z["cls_maps"][1])
