"""Analyses under torchrun (issue 28): two gloo processes on CPU give the results of one process, on 9
images (not a multiple of 2), for attention-stats, features, distfit, cka, probe-layers and token-stats;
a rank that raises ends both with one error line and no output folder. The sharding itself is tested
on its own, without processes."""

import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torchrun_helper import run_two_processes

from maelens.analysis import distfit
from maelens.analysis.distributed import shard_batches, share
from maelens.checkpoint import save_checkpoint
from maelens.cli import main
from maelens.models import create_model

NUM_IMAGES = 9
# distfit fits 9 samples in chunks of 2 (and bootstraps them), so ranks hold several chunks and the
# second replays the bootstrap draws of the first's
CHUNK_VALUES = 2 * 5 * 16 * 64  # 2 samples x 5 draws x (16 visible tokens x 64 dims of the tiny model)


def commands(ckpt: str, data: str, out: str) -> dict[str, list[str]]:
    """The commands compared, each writing into ``out``/NAME (``--quiet``: nothing on stdout)."""
    common = ["--ckpt", ckpt, "--data", data, "--split", "all", "--quiet", "--seed", "3"]
    return {
        "attention": ["attention-stats", *common, "--mask", "random", "--batch-size", "2", "--encoder",
                      "--num-maps", "2", "--out", f"{out}/attention"],
        "features": ["features", *common, "--mask", "random", "--mask-ratio", "0.5", "--pool", "tokens",
                     "--batch-size", "2", "--out", f"{out}/features.npz"],
        "distfit": ["distfit", *common, "--features", "tokens", "--mask-ratio", "0.75", "--batch-size", "2",
                    "--pvalues", "parametric-bootstrap", "--bootstrap", "5", "--rank-samples", "2",
                    "--out", f"{out}/distfit"],
        "cka": ["cka", *common, "--parts", "all", "--mask-ratio", "0.5", "--batch-size", "2", "--out", f"{out}/cka"],
        "cka_minibatch": ["cka", *common, "--estimator", "minibatch", "--batch-size", "4", "--out",
                          f"{out}/cka_minibatch"],
        "probes": ["probe-layers", *common, "--methods", "knn,linear", "--epochs", "3", "--k", "3",
                   "--batch-size", "2", "--out", f"{out}/probes"],
        "tokens": ["token-stats", *common, "--parts", "all", "--batch-size", "2", "--out", f"{out}/tokens"],
        # one image: rank 1 has no batch at all (sums it must take the shapes of from rank 0, no rows)
        "attention_one": ["attention-stats", *common, "--num-images", "1", "--encoder", "--num-maps", "1",
                          "--out", f"{out}/attention_one"],
        "features_one": ["features", *common, "--num-images", "1", "--out", f"{out}/features_one.npz"],
    }


WORKER = textwrap.dedent('''
    import contextlib, io, json, os, sys
    import torch, torch.distributed
    from maelens.analysis import attention_dataset, distfit
    from maelens.cli import main

    torch.set_num_threads(1)
    # one process group for all the commands (maelens joins it; a group it made itself, it would end)
    torch.distributed.init_process_group("gloo")
    distfit._CHUNK_VALUES = {chunk}
    out, rank = sys.argv[1], os.environ["RANK"]
    codes = {{}}
    for name, argv in {commands}.items():
        codes[name] = main(argv)

    # a rank that raises: rank 1's analysis fails in its second batch
    if rank == "1":
        calls = []
        real = attention_dataset.analyse_batch

        def failing(*args, **kwargs):
            calls.append(1)
            if len(calls) == 2:
                raise RuntimeError("injected failure")
            return real(*args, **kwargs)

        attention_dataset.analyse_batch = failing
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        codes["failing"] = main({failing})
    # a rank that cannot load its data: rank 1 is given a file that does not exist
    setup = {failing_setup}
    if rank == "1":
        setup[setup.index("--data") + 1] = os.path.join(out, "missing.npz")
    setup_err = io.StringIO()
    with contextlib.redirect_stderr(setup_err):
        codes["failing_setup"] = main(setup)
    with open(os.path.join(out, f"rank{{rank}}.json"), "w") as f:
        json.dump({{"codes": codes, "stderr": err.getvalue(), "setup_stderr": setup_err.getvalue()}}, f)
    # the group is this script's: end it as maelens ends its own (cli.launch.leave), every rank together, or a
    # rank leaving while the other still talks to gloo aborts now and then ("terminate called without an
    # active exception", exit status 1 after every command succeeded)
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
''')


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("distributed")
    torch.manual_seed(0)
    ckpt = save_checkpoint(root / "tiny.pt", create_model("tiny"))
    rng = np.random.default_rng(0)
    data = root / "images.npz"
    np.savez(data, images=rng.integers(0, 256, (NUM_IMAGES, 32, 32, 3), dtype=np.uint8),
             labels=np.arange(NUM_IMAGES) % 3)
    return {"ckpt": str(ckpt), "data": str(data), "root": root}


def close(a, b, where: str = "") -> None:
    """JSON values equal: integers, strings and booleans exactly, floats within 1e-12 relative."""
    if isinstance(a, dict):
        keys = set(a) - {"world_size"}
        assert keys == set(b) - {"world_size"}, where
        for key in keys:
            close(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            close(x, y, f"{where}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        if math.isnan(a):
            assert math.isnan(b), where
        else:
            assert b == pytest.approx(a, rel=1e-12, abs=1e-12), where
    else:
        assert a == b and type(a) is type(b), where


def test_shards_cover_every_batch_once():
    for n, batch, world in [(9, 2, 2), (9, 4, 2), (1, 4, 2), (0, 3, 2), (13, 1, 3), (10, 3, 4)]:
        shards = [shard_batches(n, batch, rank, world) for rank in range(world)]
        images = np.concatenate([s.indices for s in shards])
        assert images.tolist() == list(range(n))  # each image once, in order, none padded
        batches = [b for s in shards for b in s.batches]
        assert batches == [list(range(s, min(n, s + batch))) for s in range(0, n, batch)]
        before = 0
        for s in shards:
            # the masks replayed are those of exactly the batches before the shard
            assert s.skipped == [len(b) for b in batches[:before]]
            before += len(s.batches)
        counts = [len(s.batches) for s in shards]
        assert max(counts) - min(counts) <= 1 and (n == 0 or counts[0] >= 1)
    assert list(share(5, None)) == [0, 1, 2, 3, 4]


@pytest.mark.slow
def test_two_processes_equal_one(files, tmp_path, monkeypatch):
    multi, single = tmp_path / "multi", tmp_path / "single"
    multi.mkdir()
    failing = commands(files["ckpt"], files["data"], str(multi))["attention"][:-1] + [str(multi / "failed")]
    failing_setup = commands(files["ckpt"], files["data"], str(multi))["tokens"][:-1] + [str(multi / "failed_setup")]
    worker = WORKER.format(chunk=CHUNK_VALUES, commands=repr(commands(files["ckpt"], files["data"], str(multi))),
                           failing=repr(failing), failing_setup=repr(failing_setup))
    proc = run_two_processes(worker, tmp_path, multi, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((multi / f"rank{r}.json").read_text()) for r in (0, 1)]
    for r in ranks:
        assert {k: v for k, v in r["codes"].items() if not k.startswith("failing")} == \
            dict.fromkeys(commands("", "", ""), 0), proc.stderr[-3000:]
        assert r["codes"]["failing"] == r["codes"]["failing_setup"] == 2

    # one line for the failure, from rank 0, naming rank 1; no output folder
    assert ranks[1]["stderr"] == ""
    lines = ranks[0]["stderr"].splitlines()
    assert len(lines) == 1 and lines[0].startswith("maelens attention-stats: error: rank 1 of 2")
    assert "injected failure" in lines[0]
    assert not (multi / "failed").exists()
    # the same when a rank fails before the analysis, loading its data
    assert ranks[1]["setup_stderr"] == ""
    lines = ranks[0]["setup_stderr"].splitlines()
    assert len(lines) == 1 and lines[0].startswith("maelens token-stats: error: rank 1 of 2: ")
    assert "missing.npz" in lines[0]
    assert not (multi / "failed_setup").exists()
    assert not any(p.name.startswith(".failed") for p in multi.iterdir())

    monkeypatch.setattr(distfit, "_CHUNK_VALUES", CHUNK_VALUES)
    for name, argv in commands(files["ckpt"], files["data"], str(single)).items():
        assert main(argv) == 0, name

    for name, doc in [("attention", "attention/attention_stats.json"), ("distfit", "distfit/distfit.json"),
                      ("cka", "cka/cka.json"), ("cka_minibatch", "cka_minibatch/cka.json"),
                      ("probes", "probes/layer_probes.json"), ("tokens", "tokens/token_stats.json"),
                      ("attention_one", "attention_one/attention_stats.json")]:
        one, two = (json.loads((folder / doc).read_text()) for folder in (single, multi))
        close(one, two, name)
        if name != "distfit":
            assert two.get("world_size", two.get("settings", {}).get("world_size")) in (2, None), name
    assert json.loads((multi / "attention/attention_stats.json").read_text())["world_size"] == 2
    assert json.loads((multi / "cka/cka.json").read_text())["dropped_images"] == 0
    assert json.loads((multi / "cka_minibatch/cka.json").read_text())["dropped_images"] == 1

    # per-image outputs: identical, in dataset order
    for name, count in (("features.npz", NUM_IMAGES), ("features_one.npz", 1)):
        with np.load(single / name) as a, np.load(multi / name) as b:
            assert a["features"].shape[0] == count
            np.testing.assert_array_equal(a["features"], b["features"])
            np.testing.assert_array_equal(a["labels"], b["labels"])
            np.testing.assert_array_equal(a["ids"], b["ids"])
            assert json.loads(str(b["settings"]))["world_size"] == 2
    for csv in ("distfit/distfit.csv", "attention/attention_stats.csv", "tokens/token_stats.csv"):
        assert (single / csv).read_text().count("\n") == (multi / csv).read_text().count("\n")
    import pandas as pd

    a, b = pd.read_csv(single / "distfit/distfit.csv"), pd.read_csv(multi / "distfit/distfit.csv")
    assert a["id"].tolist() == b["id"].tolist()
    np.testing.assert_allclose(a.select_dtypes("number"), b.select_dtypes("number"), rtol=1e-12, atol=0)
    with np.load(single / "tokens/token_stats.npz") as a, np.load(multi / "tokens/token_stats.npz") as b:
        np.testing.assert_array_equal(a["hist_counts"], b["hist_counts"])
    assert sorted(p.name for p in (multi / "attention").iterdir()) == sorted(p.name for p in (single / "attention").iterdir())


def torchrun(*argv: str) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node=2 -m maelens ARGV`` with one thread per process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "maelens", *argv], env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_torchrun_entry_point(files, tmp_path):
    """The real entry: maelens joins torchrun's process group itself (the other test joins one made
    before, to run several commands in one launch)."""
    one, two = tmp_path / "one.npz", tmp_path / "two.npz"
    argv = ["features", "--ckpt", files["ckpt"], "--data", files["data"], "--split", "all", "--batch-size", "2",
            "--mask-ratio", "0.5", "--quiet"]
    assert main([*argv, "--out", str(one)]) == 0
    proc = torchrun(*argv, "--out", str(two))
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(one) as a, np.load(two) as b:
        np.testing.assert_array_equal(a["features"], b["features"])
        assert json.loads(str(b["settings"]))["world_size"] == 2

