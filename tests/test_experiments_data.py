"""experiments/run.py takes the data of each role (issue 11): the paper's data sets at the paper's protocol,
and Tables 3-4 report t-SNE under the paper's protocol with the transform protocol beside it."""

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))

import paper  # noqa: E402
import run  # noqa: E402
from common import Context, _data_tag  # noqa: E402


def test_roles_default_to_the_installed_data(tmp_path):
    quick = Context(out=tmp_path)
    assert (quick.pretrain_data, quick.segmentation_data) == ("bundled", "mosaic")
    assert quick.table4_data == quick.labelled_data and _data_tag(None) == ""
    given = Context(out=tmp_path, scale="full", pretrain="/d/Imagenet64", table3="/d/places:classes=airfield,aquarium",
                    table4="/d/weather", segmentation="/d/ADEChallengeData2016")
    assert given.data_settings() == {"pretrain_data": "/d/Imagenet64", "labelled_data": "/d/places:classes=airfield,"
                                     "aquarium", "table4_data": "/d/weather",
                                     "segmentation_data": "/d/ADEChallengeData2016"}
    tag = _data_tag("/d/Imagenet64")
    assert tag.startswith("-Imagenet64-") and tag == _data_tag("/d/Imagenet64") != _data_tag("/e/Imagenet64")


def test_run_passes_each_role_and_refuses_a_missing_path(tmp_path, monkeypatch, capsys):
    seen = {}

    def fake(ctx):
        seen["ctx"] = ctx
        return paper.Outcome("fake", "ref", "p", "o", "n/a", "")

    monkeypatch.setitem(run.EXPERIMENTS, "fake", fake)
    places = tmp_path / "places"
    places.mkdir()
    assert run.main(["fake", "--out", str(tmp_path / "out"), "--pretrain-data", "bundled", "--table3-data",
                     f"{places}:classes=airfield", "--table4-data", str(places), "--segmentation-data", "mosaic",
                     "--quiet"]) == 0
    ctx = seen["ctx"]
    assert (ctx.pretrain, ctx.table3, ctx.table4, ctx.segmentation) == ("bundled", f"{places}:classes=airfield",
                                                                        str(places), "mosaic")
    with pytest.raises(SystemExit) as exit_info:
        run.main(["fake", "--table4-data", str(tmp_path / "weather")])
    assert exit_info.value.code == 2 and "--table4-data" in capsys.readouterr().err


def _report(rows):
    import pandas as pd

    frame = pd.DataFrame([{"method": m, "accuracy": a, "ci_low": 0.0, "ci_high": 1.0, "n": 10, "protocol": p,
                           "correct": int(10 * a)} for m, a, p in rows])
    return SimpleNamespace(to_frame=lambda: frame.copy())


def test_tables_report_both_tsne_protocols(tmp_path, monkeypatch):
    """The paper-protocol table gets a ``tsne-knn (transform)`` row right after its ``tsne-knn`` row,
    from an evaluation of the same features under the transform protocol."""
    calls = []

    def fake_evaluate(train, test, methods, **kwargs):
        calls.append((train, test, list(methods), kwargs["tsne_protocol"]))
        return _report([("tsne-knn", 0.5, "t-SNE fit on train, test placed by transform")])

    monkeypatch.setattr(paper, "evaluate_features", fake_evaluate)
    report = _report([("knn", 0.9, "k=20"), ("tsne-knn", 0.7, "t-SNE fit on all images (paper protocol)"),
                      ("linear", 0.8, "probe")])
    frame, acc = paper._both_tsne_protocols(report, "train", "test", Context(out=tmp_path, quiet=True))
    assert calls == [("train", "test", ["tsne-knn"], "transform")]
    assert frame["method"].tolist() == ["knn", "tsne-knn", "tsne-knn (transform)", "linear"]
    assert frame["tsne_fit"].tolist() == ["", paper.TSNE_FITS["paper"], paper.TSNE_FITS["transform"], ""]
    assert acc == {"knn": 0.9, "tsne-knn": 0.7, "tsne-knn (transform)": 0.5, "linear": 0.8}


def test_fig7_and_table2_use_every_image_of_the_table4_set(tmp_path):
    """encoder-ks with a Table 4 set: the samples are all its images (train and test), as the paper's
    6,688 weather images; the record names each role's data."""
    rng = np.random.default_rng(0)
    pretrain, weather = tmp_path / "pretrain.npz", tmp_path / "weather.npz"
    np.savez(pretrain, images=rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8),
             split=np.array(["train"] * 32 + ["test"] * 8))  # one step of the quick scale's batch of 32
    np.savez(weather, images=rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8), labels=np.arange(12) % 3,
             split=np.array(["train"] * 8 + ["test"] * 4))

    class OneEpoch(Context):
        epochs = 2

    ctx = OneEpoch(out=tmp_path / "out", pretrain=str(pretrain), table4=str(weather), quiet=True)
    outcome = paper.EXPERIMENTS["encoder-ks"](ctx)
    assert "(12 images, " in outcome.ours
    record = json.loads((tmp_path / "out" / "encoder-ks" / "result.json").read_text())
    assert record["table4_data"] == str(weather) and record["pretrain_data"] == str(pretrain)
    models = [p.name for p in (tmp_path / "out" / "models").iterdir()]
    assert models == [f"tiny-random-pixel-e2{_data_tag(str(pretrain))}"]


def test_the_plain_ycbcr_run_goes_beside_the_rgb_run_in_this_contexts_models_folder(tmp_path):
    # the RGB run was trained elsewhere and moved here: its recorded ``out`` is the old place
    ctx = Context(out=tmp_path / "now")
    moved = tmp_path / "now" / "models" / "ipol64-random-pixel-e57-s1"
    pixel = SimpleNamespace(checkpoint=moved / "checkpoint.pt",
                            summary={"train_config": {"out": "runs/before/models/ipol64-random-pixel-e57-s1"}})
    assert paper.plain_folder(ctx, pixel) == tmp_path / "now" / "models" / "ipol64-random-ycbcr-plain-e57-s1"
    pixel.checkpoint = None  # a run without a checkpoint: the folder name recorded in its summary
    assert paper.plain_folder(ctx, pixel) == tmp_path / "now" / "models" / "ipol64-random-ycbcr-plain-e57-s1"
