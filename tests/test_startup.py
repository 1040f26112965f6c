"""Start-up stays light (issue 15): building the parser, ``--help`` of every command and ``distfit
--features-file`` import neither torch, timm nor torchvision; checked in fresh interpreters, since this
test process has imported torch already (conftest). The parser's choices come from the library's own
torch-free modules (``maelens.choices``, the presets, the run configurations), so they are the library's."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from maelens.cli import COMMAND_MODULES, build_parser

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "timm", "torchvision")


def _fresh_python(code: str, *args: str) -> dict:
    """Run ``code`` in a new interpreter on this checkout; it prints one JSON object last."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300,
                          env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


_HELP_EVERY_COMMAND = """
import argparse, contextlib, io, json, sys
import maelens
from maelens.cli import build_parser, main
parser = build_parser()
commands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)][0].choices
codes = {}
with contextlib.redirect_stdout(io.StringIO()) as out:
    codes["--help"] = main(["--help"])
    for name in commands:
        codes[name] = main([name, "--help"])
print(json.dumps({"codes": codes, "help_chars": len(out.getvalue()),
                  "heavy": sorted(m for m in ("torch", "timm", "torchvision") if m in sys.modules)}))
"""


def test_help_of_every_command_imports_no_torch():
    result = _fresh_python(_HELP_EVERY_COMMAND)
    assert result["heavy"] == []
    assert set(result["codes"].values()) == {0}
    # every sub-command's parser was built and printed (``train``, ``segment``, ...: more than 10 commands)
    assert len(result["codes"]) > 10 and result["help_chars"] > 5000


_DISTFIT_FEATURES_FILE = """
import json, sys
from maelens.cli import main
code = main(["distfit", "--features-file", sys.argv[1], "--out", sys.argv[2], "--quiet"])
print(json.dumps({"code": code, "heavy": sorted(m for m in ("torch", "timm", "torchvision") if m in sys.modules)}))
"""


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_distfit_on_a_features_file_imports_no_torch(tmp_path, suffix):
    features = np.random.default_rng(0).standard_t(4.0, (6, 60))
    path = tmp_path / f"features{suffix}"
    if suffix == ".npy":
        np.save(path, features)
    else:
        np.savez(path, features=features.astype(np.float32), labels=np.zeros(6, np.int64),
                 ids=np.arange(6).astype(str))
    result = _fresh_python(_DISTFIT_FEATURES_FILE, str(path), str(tmp_path / "out"))
    assert result == {"code": 0, "heavy": []}
    summary = json.loads((tmp_path / "out" / "distfit.json").read_text())
    assert summary["num_samples"] == 6 and summary["values_per_sample"] == 60


def test_import_maelens_is_light_and_lazy_names_resolve():
    result = _fresh_python("import json, sys, maelens; "
                           "print(json.dumps(sorted(m for m in ('torch', 'timm', 'torchvision') if m in sys.modules)))")
    assert result == []
    import maelens
    from maelens.models import MaskedAutoencoderViT, ModelConfig, create_model

    assert maelens.create_model is create_model
    assert maelens.MaskedAutoencoderViT is MaskedAutoencoderViT and maelens.ModelConfig is ModelConfig
    with pytest.raises(AttributeError):
        maelens.no_such_name  # noqa: B018


_CONFIG_MODULES = """
import json, sys
import maelens.choices, maelens.models.presets, maelens.models.simclr_config
import maelens.train.config, maelens.train.resume, maelens.segmentation.config
print(json.dumps({"heavy": sorted(m for m in ("torch", "timm", "torchvision") if m in sys.modules)}))
"""


def test_choices_presets_and_run_configurations_import_no_torch():
    # what the parser reads its choices and defaults from, and a configuration built and checked without torch
    assert _fresh_python(_CONFIG_MODULES) == {"heavy": []}


def test_the_library_checks_against_the_lists_the_parser_offers():
    import maelens.choices as choices
    from maelens.analysis import cka, evaluate, features, layer_outputs
    from maelens.data import dataset
    from maelens.models import masking
    from maelens.segmentation import decoders

    assert masking.MASKINGS is choices.MASKINGS and decoders.DECODERS is choices.DECODERS
    assert dataset.SPLITS is choices.SPLITS and features.FEATURE_POOLS is choices.FEATURE_POOLS
    assert layer_outputs.LAYER_POOLS is choices.LAYER_POOLS and cka.CKA_ESTIMATORS is choices.CKA_ESTIMATORS
    assert evaluate.EVALUATION_METHODS is choices.EVALUATION_METHODS


def test_every_command_module_registers():
    # The COMMAND_MODULES mechanism: each module's register() adds at least one sub-command.
    parser = build_parser()
    text = parser.format_help()
    for module in COMMAND_MODULES:
        assert hasattr(importlib.import_module(f"maelens.cli.{module}"), "register")
    assert "distfit" in text and "train" in text


_EVALUATE_FEATURES = """
import json, sys
from maelens.cli import main
code = main(["evaluate", "--features", sys.argv[1], "--methods", "knn,pca-knn,tsne-knn", "--out", sys.argv[2],
             "--quiet"])
print(json.dumps({"code": code, "heavy": sorted(m for m in ("torch", "timm", "torchvision") if m in sys.modules)}))
"""


def test_evaluate_on_a_features_file_imports_no_torch(tmp_path):
    """Table 3's methods (kNN, PCA + kNN, PCA + t-SNE + kNN) run on numpy, sklearn and openTSNE alone."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)
    features = rng.normal(size=(60, 8)).astype(np.float32) + labels[:, None]
    path = tmp_path / "features.npz"
    np.savez(path, features=features, labels=labels.astype(np.int64), ids=np.arange(60).astype(str))
    result = _fresh_python(_EVALUATE_FEATURES, str(path), str(tmp_path / "out"))
    assert result == {"code": 0, "heavy": []}
    assert (tmp_path / "out" / "evaluation.csv").is_file()
