"""``maelens compare`` and :func:`maelens.analysis.compare.compare_models` (issue 27): the same images and seed
for every model, one table per metric with intervals from maelens.verdict, all-or-nothing output."""

import json

import numpy as np
import pytest
import timm
import torch
from torch.utils.data import TensorDataset

import maelens
from maelens.analysis.compare import COMPARE_ANALYSES, METRICS, ModelEntry, compare_models
from maelens.cli import main
from maelens.cli.compare import checkpoint_paths, labels_of
from maelens.errors import ConfigError
from maelens.verdict import wilson_interval


def tiny(seed):
    torch.manual_seed(seed)
    return maelens.create_model("tiny").eval()


def images(n=40, size=32):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(n, 3, size, size, generator=g)
    labels = torch.arange(n) % 2
    x[labels == 1] += 0.5  # two classes a kNN vote can tell apart
    return TensorDataset(x, labels)


def test_compare_models_tables_and_hand_checked_values():
    data = images()
    a, b = tiny(0), tiny(1)
    entries = [ModelEntry("a", a, data, epoch=0), ModelEntry("a again", a, data, epoch=1),
               ModelEntry("b", b, data, epoch=2)]
    stages = []
    result = compare_models(entries, ["cka", "knn", "attention", "distfit"], seed=0,
                            on_stage=lambda what, done, total: stages.append((what, done, total)))
    assert list(result.metrics) == [m for a in COMPARE_ANALYSES for m in METRICS[a]]
    assert stages[0] == ("attention a", 0, 12) and stages[-1][1:] == (11, 12)
    cka = result.table("cka_to_first")
    # the same model twice: CKA exactly 1 (and its bootstrap interval too); another model below 1
    assert cka["value"].tolist()[:2] == pytest.approx([1.0, 1.0])
    assert cka["ci_low"][1] == pytest.approx(1.0) and cka["value"][2] < 1
    assert (cka["interval"] == "bootstrap").all() and (cka["n"] == 40).all()
    knn = result.table("knn_accuracy")
    detail = result.details["b"]["knn"][0]
    want = wilson_interval(detail["correct"], detail["n"])
    assert (knn["value"][2], knn["ci_low"][2], knn["ci_high"][2]) == pytest.approx((want.estimate, want.low, want.high))
    assert knn["value"][0] == knn["value"][1]  # same model, same seed: same split, same vote
    for metric in result.metrics:
        table = result.table(metric)
        known = table["value"].notna()
        assert (table["ci_low"][known] <= table["value"][known] + 1e-12).all()
        assert (table["value"][known] <= table["ci_high"][known] + 1e-12).all()
    json.dumps(result.to_dict())


def test_a_model_without_a_decoder_gets_na_attention_rows():
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, depth=1,
                            num_classes=0).eval()
    result = compare_models([ModelEntry("mae", tiny(0), images(12)), ModelEntry("timm", vit, images(12))],
                            ["attention"])
    table = result.table("attention_consistency")
    assert np.isnan(table["value"][1]) and "no decoder" in table["note"][1] and table["interval"][1] == "n/a"


def test_bad_requests_are_refused():
    with pytest.raises(ConfigError, match="analyses"):
        compare_models([ModelEntry("a", tiny(0), images(8))], ["knn", "nope"])
    with pytest.raises(ConfigError, match="at least two models"):
        compare_models([ModelEntry("a", tiny(0), images(8))], ["cka"])
    with pytest.raises(ConfigError, match="labels must differ"):
        compare_models([ModelEntry("a", tiny(0), images(8)), ModelEntry("a", tiny(1), images(8))], ["knn"])


def test_paths_globs_and_labels(tmp_path):
    for name in ("run1/checkpoint.pt", "run2/checkpoint.pt", "checkpoint-0003.pt", "checkpoint-0001.pt"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).touch()
    paths = checkpoint_paths([str(tmp_path / "checkpoint-*.pt"), str(tmp_path / "run1/checkpoint.pt"),
                              str(tmp_path / "run2/checkpoint.pt")])
    assert [p.name for p in paths[:2]] == ["checkpoint-0001.pt", "checkpoint-0003.pt"]
    assert labels_of(paths)[2:] == ["run1/checkpoint.pt", "run2/checkpoint.pt"]
    with pytest.raises(ConfigError, match="matches no file"):
        checkpoint_paths([str(tmp_path / "none-*.pt")])


def test_cli_writes_every_table_and_figure_or_nothing(tmp_path, capsys):
    for epoch in range(2):
        maelens.save_checkpoint(tmp_path / f"checkpoint-{epoch:04d}.pt", tiny(epoch), epoch=epoch)
    out = tmp_path / "cmp"
    code = main(["compare", "--ckpt", str(tmp_path / "checkpoint-*.pt"), "--analyses", "knn,cka",
                 "--num-images", "52", "--out", str(out), "--json", "--quiet", "--device", "cpu"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["epoch"] for r in doc["metrics"]["knn_accuracy"]] == [0, 1]
    for metric in ("knn_accuracy", "cka_to_first"):
        assert (out / f"{metric}.csv").is_file() and (out / f"{metric}.png").is_file()
    bad = tmp_path / "bad"
    (tmp_path / "broken.pt").write_text("not a checkpoint")
    code = main(["compare", "--ckpt", str(tmp_path / "checkpoint-0000.pt"), str(tmp_path / "broken.pt"),
                 "--analyses", "knn", "--out", str(bad), "--quiet"])
    assert code == 2 and not bad.exists()
    assert capsys.readouterr().err.startswith("maelens compare: error:")
