"""Issue 11: presets carry their training recipe; ``maelens train --preset ipol64`` gets the paper's
(IPOL sec. 4: 100 epochs, linear schedule, 2 warm-up epochs, base lr 1.5e-4), options override it, the run
records where each setting came from, and runs stored before the record existed are still reused."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

import maelens.train
from maelens.cli import main
from maelens.models.presets import RECIPES, preset_recipe
from maelens.train import TrainConfig, train_or_load
from maelens.train.config import RECIPE_FIELDS, recipe_options

PAPER = {"epochs": 100, "blr": 1.5e-4, "warmup_epochs": 2.0, "schedule": "linear"}


def test_ipol64_recipe_is_the_papers():
    recipe = preset_recipe("ipol64")
    assert {name: getattr(recipe, name) for name in RECIPE_FIELDS} == PAPER
    assert "IPOL sec. 4" in recipe.source and preset_recipe("tiny") is None and RECIPES["ipol64"] is recipe


def test_recipe_options_fill_what_is_not_given():
    options = recipe_options("ipol64", {"epochs": None, "blr": None, "schedule": None, "data": "x"})
    assert {name: options[name] for name in RECIPE_FIELDS} == PAPER and options["data"] == "x"
    assert all(v.startswith("preset ipol64 recipe") for v in options["settings_from"].values())
    # options win; the recipe's warm-up is shortened to a shorter run
    options = recipe_options("ipol64", {"epochs": 1, "schedule": "cosine"})
    assert (options["epochs"], options["schedule"], options["warmup_epochs"], options["blr"]) == (1, "cosine", 1.0,
                                                                                                  1.5e-4)
    assert options["settings_from"]["epochs"] == options["settings_from"]["schedule"] == "option"
    assert options["settings_from"]["warmup_epochs"].startswith("preset ipol64")
    # a preset without a recipe keeps TrainConfig's defaults
    options = recipe_options("tiny", {"epochs": None})
    assert set(options) == {"settings_from"} and set(options["settings_from"].values()) == {"default"}
    config = TrainConfig(preset="tiny", **options)
    assert (config.epochs, config.schedule, config.blr) == (10, "cosine", 1.5e-4)


@pytest.fixture()
def captured(monkeypatch, tmp_path):
    """Run ``maelens train`` up to the trainer, keeping the config it would train with."""
    seen = {}

    def fake_train(config, notify=None, on_epoch_end=None):
        seen["config"] = config
        return SimpleNamespace(summary={"train_config": config.to_dict()})

    monkeypatch.setattr(maelens.train, "train", fake_train)

    def run(*argv):
        assert main(["train", "--out", str(tmp_path / "run"), "--json", *argv]) == 0
        return seen["config"]
    return run


def test_cli_ipol64_without_options_gets_the_recipe(captured, capsys):
    config = captured("--preset", "ipol64")
    assert {name: getattr(config, name) for name in RECIPE_FIELDS} == PAPER
    doc = json.loads(capsys.readouterr().out)
    assert doc["train_config"]["settings_from"]["schedule"] == "preset ipol64 recipe (IPOL sec. 4 (Sarbout & Colom))"
    config = captured("--preset", "ipol64", "--epochs", "3", "--schedule", "cosine", "--blr", "1e-3")
    assert (config.epochs, config.schedule, config.blr, config.warmup_epochs) == (3, "cosine", 1e-3, 2.0)
    assert config.settings_from == {"epochs": "option", "schedule": "option", "blr": "option",
                                    "warmup_epochs": "preset ipol64 recipe (IPOL sec. 4 (Sarbout & Colom))"}
    config = captured("--preset", "tiny")
    assert (config.epochs, config.schedule, config.blr, config.warmup_epochs) == (10, "cosine", 1.5e-4, None)


def test_runs_stored_without_the_record_are_reused(tmp_path):
    """settings_from is a record, not a setting: a run stored before it existed (or with another
    record) is the same run."""
    rng = np.random.default_rng(0)
    npz = tmp_path / "imgs.npz"
    np.savez(npz, images=rng.integers(0, 255, (8, 32, 32, 3), dtype=np.uint8))
    config = TrainConfig(preset="tiny", data=str(npz), split="all", epochs=1, batch_size=8, warmup_epochs=0,
                         out=str(tmp_path / "run"), quiet=True, recon_images=0)
    first = train_or_load(config)
    stored = json.loads((tmp_path / "run" / "summary.json").read_text())["train_config"]
    assert stored["settings_from"] == {}
    stamp = first.checkpoint.stat().st_mtime_ns
    again = train_or_load(TrainConfig(**{**config.to_dict(), "betas": tuple(config.betas),
                                         "settings_from": {"epochs": "option"}}))
    assert again.checkpoint.stat().st_mtime_ns == stamp
    old = {k: v for k, v in stored.items() if k != "settings_from"}
    assert TrainConfig.from_dict(old).settings_from == {}
