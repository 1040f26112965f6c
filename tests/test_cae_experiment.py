"""experiments/cae.py: the verdict table from per-seed measurements, the sizes of each scale, and a smoke run
of the whole study (one epoch, few images) writing its files."""

import json
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))

import cae as study  # noqa: E402
from common import Context  # noqa: E402


def measurements(shift):
    """Per-seed values: MAE linear .50/.52/.54, attentive linear + shift; CAE two points above MAE; no-align CAE
    one point below CAE; Fig. 4 error .2/.25/.3 with alignment, .1 more without."""
    rows = []
    for seed, base in enumerate((0.50, 0.52, 0.54)):
        rows.append({"arm": "mae", "seed": seed, "fig4_mse": float("nan"), "linear": base, "attentive": base + shift})
        rows.append({"arm": "cae", "seed": seed, "fig4_mse": 0.2 + 0.05 * seed, "linear": base + 0.02,
                     "attentive": base + 0.02 + shift})
        rows.append({"arm": "cae-noalign", "seed": seed, "fig4_mse": 0.3 + 0.05 * seed, "linear": base + 0.01,
                     "attentive": base + 0.01 + shift})
    return pd.DataFrame(rows)


def test_verdicts_follow_the_paired_differences():
    table = study.verdicts(measurements(shift=0.1)).set_index("claim")
    # every difference is constant over seeds: a zero-width interval on the paper's side
    assert abs(table.loc["fig4", "estimate"] - 0.1) < 1e-12
    assert set(table["verdict"]) == {"holds"}
    opposite = study.verdicts(measurements(shift=-0.1)).set_index("claim")
    assert opposite.loc["att-lin-mae", "verdict"] == "opposite" and opposite.loc["cae-mae-att", "verdict"] == "holds"
    two = measurements(0.1)
    assert set(study.verdicts(two[two["seed"] < 2])["verdict"]) == {"n/a"}  # fewer than 3 seeds


def test_an_undertrained_model_stops_the_claims_of_its_arm_only():
    frame = measurements(shift=0.1)
    frame["trained"] = True
    frame.loc[(frame["arm"] == "mae") & (frame["seed"] == 1), "trained"] = False
    assert study.undertrained_models(frame) == ["mae seed 1"]
    table = study.verdicts(frame).set_index("claim")
    for claim in ("att-lin-mae", "cae-mae-att", "cae-mae-lin"):  # the claims that compare an MAE
        assert table.loc[claim, "verdict"] == "n/a"
        assert table.loc[claim, "reason"] == "undertrained: mae seed 1 not better than the mean-colour fill"
    for claim in ("fig4", "att-lin-cae", "align-att", "align-lin"):  # CAE arms only: judged as before
        assert table.loc[claim, "verdict"] == "holds" and table.loc[claim, "reason"] == ""
    frame.loc[frame["arm"] == "cae-noalign", "trained"] = False
    table = study.verdicts(frame).set_index("claim")
    assert table.loc["fig4", "reason"].startswith("undertrained: cae-noalign seed 0, cae-noalign seed 1, ")
    assert table.loc["att-lin-cae", "verdict"] == "holds"
    assert study.undertrained_models(measurements(0.1)) == []  # measurements without a fill test: no gate


def test_scales(tmp_path):
    quick_ctx = Context(out=tmp_path, scale="quick")
    quick = study.Sizes.for_scale(quick_ctx)
    paper = study.Sizes.for_scale(Context(out=tmp_path, scale="paper-cpu"))
    assert quick.seeds == paper.seeds == 3 and quick.epochs < paper.epochs
    # the comparison budget of the other training comparisons (at paper-cpu at least 510 steps)
    assert quick.epochs == quick_ctx.comparison_epochs == 20
    assert study._presets(Context(out=tmp_path, scale="paper-cpu")) == {"mae": "ipol64", "cae": "cae-ipol64",
                                                                         "cae-noalign": "cae-ipol64"}


def test_smoke_run_writes_tables_figures_and_verdicts(tmp_path):
    ctx = Context(out=tmp_path, scale="quick", quiet=True)
    sizes = study.Sizes(epochs=1, seeds=3, batch_size=32, blr=1e-2, probe_train=96, probe_test=48, probe_epochs=1,
                        analysis_images=16, train_images=64)
    outcome = study.run_study(ctx, sizes)
    folder = tmp_path / "cae"
    for name in ("measurements.csv", "verdicts.csv", "encoder_ks.csv", "attention_distance.csv", "cka_mae_cae.csv",
                 "fig4_reconstruction.png", "attention_distance.png", "cka_mae_cae.png", "result.json"):
        assert (folder / name).is_file(), name
    result = json.loads((folder / "result.json").read_text())
    assert len(result["metrics"]["verdicts"]) == len(study.CLAIMS)
    assert all(v["verdict"] in ("holds", "tie", "opposite", "n/a") for v in result["metrics"]["verdicts"])
    frame = pd.read_csv(folder / "measurements.csv")
    assert len(frame) == 9 and frame[frame["arm"] == "mae"]["fig4_mse"].isna().all()
    # one epoch on 64 images: every model is worse than the mean-colour fill, so no claim gets a verdict
    assert not frame["trained"].any() and len(result["metrics"]["undertrained"]) == 9
    assert all(v["verdict"] == "n/a" and v["reason"].startswith("undertrained: ")
               for v in result["metrics"]["verdicts"])
    from claims import verdict

    assert verdict("cae", result["metrics"]).reason.startswith("undertrained: cae seed 0, ")
    # the result's one word is the headline claim's (Fig. 4); every claim's word is in the interpretation
    assert outcome.holds == next(v["verdict"] for v in result["metrics"]["verdicts"] if v["claim"] == "fig4")
    assert all(f"{key} " in outcome.interpretation for key in study.CLAIMS)


def test_run_py_offers_the_study():
    import run

    assert run.EXPERIMENTS["cae"] is study.cae
