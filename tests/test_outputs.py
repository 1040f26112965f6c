"""One command, one result (issue 16): a training folder has one run at a time (a lock held for the run's
life, a dead holder's lock taken over); an analysis writes its outputs together, so Ctrl-C, a crash or a
full disk leave nothing and a re-run never mixes old and new files; defaults fit the data (warm-up,
batch size); non-finite data and extreme values are named, not blamed on the learning rate or fitted
into a wrong answer; the data cache moves with MAELENS_CACHE_DIR."""

import errno
import json
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from test_bad_input import assert_one_line, files, run  # noqa: F401 - files: the shared fixture
from torch.utils.data import Dataset, TensorDataset

import maelens.io
from maelens.analysis.distfit import fit_samples, rank_distributions
from maelens.cli import main
from maelens.data import cache_dir
from maelens.data.cache import cached_arrays
from maelens.errors import ConfigError, DataError, OutputError
from maelens.io import LOCK_NAME, OUTPUT_MARKER, folder_lock, output_folder
from maelens.train import TrainConfig, train
from maelens.train.reuse import _differences


def dead_pid():
    """The pid of a process that has exited (a Python that printed its pid and ended)."""
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)


def leftovers(folder):
    """Hidden staging, replaced or temporary entries beside or inside ``folder``'s parent."""
    return sorted(p.name for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}."))


def _train(files, out, *extra):
    return ["train", "--preset", "tiny", "--data", files["data"], "--recon-images", "0", "--device", "cpu",
            "--epochs", "1", "--quiet", "--out", out, *extra]


# ---- 1a. one training run per folder --------------------------------------------------------------

HOLDER = textwrap.dedent("""
    import sys, time
    from maelens.io import folder_lock
    with folder_lock(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(120)
""")


def test_a_second_train_into_a_locked_folder_is_refused(files, tmp_path, capsys):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        line = assert_one_line(*run(_train(files, out), capsys), str(out), f"pid {holder.pid}", "in use")
        assert line.startswith("maelens train: error:")
        assert os.listdir(out) == [LOCK_NAME], "the refused run wrote into the folder"
    finally:
        holder.kill()
        holder.wait()
    # the kernel released the dead holder's lock: the folder can be used now
    code, err = run(_train(files, out), capsys)
    assert code == 0, err
    assert (out / "checkpoint.pt").is_file() and not (out / LOCK_NAME).exists()


def test_a_stale_lock_of_a_dead_process_is_taken_over(files, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK_NAME).write_text(f"{dead_pid()}\n")
    code, err = run(_train(files, out), capsys)
    assert code == 0, err
    assert (out / "checkpoint.pt").is_file() and not (out / LOCK_NAME).exists()


def test_the_lock_is_exclusive_within_a_process_too_and_released(tmp_path):
    with folder_lock(tmp_path / "run") as lock:
        assert lock.read_text().strip() == str(os.getpid())
        with pytest.raises(OutputError, match=f"in use by another training run \\(pid {os.getpid()}\\)"):
            with folder_lock(tmp_path / "run"):
                pass
    assert not (tmp_path / "run").exists(), "a lock that wrote nothing leaves no folder"


def test_a_train_refused_at_set_up_leaves_no_folder(files, tmp_path, capsys):
    out = tmp_path / "run"
    assert_one_line(*run(_train(files, out, "--batch-size", "64"), capsys), "no full optimizer step")
    assert not out.exists()


# ---- 1b. an analysis's outputs appear together ------------------------------------------------------

def _evaluate(files, out, *extra):
    return ["evaluate", "--features", files["feats"], "--methods", "knn", "--k", "5", "--quiet", "--out", out, *extra]

def _attention(files, out, *extra):
    return ["attention-stats", "--ckpt", files["ckpt"], "--data", files["data"], "--split", "test",
            "--batch-size", "4", "--quiet", "--out", out, *extra]


def test_a_used_folder_is_refused_and_overwrite_replaces_it_whole(files, tmp_path, capsys):
    out = tmp_path / "attn"
    assert run(_attention(files, out, "--num-maps", "3"), capsys)[0] == 0
    maps = sorted(p.name for p in out.glob("influence_map_*.png"))
    assert len(maps) == 3 and (out / OUTPUT_MARKER).is_file()
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert_one_line(*run(_attention(files, out, "--num-maps", "1"), capsys), str(out), "already holds files",
                    "--overwrite")
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    code, err = run(_attention(files, out, "--num-maps", "1", "--overwrite"), capsys)
    assert code == 0, err
    assert len(list(out.glob("influence_map_*.png"))) == 1, "fewer --num-maps kept stale maps"
    assert leftovers(out) == []


def test_overwrite_never_replaces_a_folder_maelens_did_not_write(files, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    assert_one_line(*run(_evaluate(files, mine, "--overwrite"), capsys), str(mine), "has no .maelens-output file")
    assert os.listdir(mine) == ["thesis.tex"]


def test_an_empty_existing_folder_is_used(files, tmp_path, capsys):
    out = tmp_path / "empty"
    out.mkdir()
    code, err = run(_evaluate(files, out), capsys)
    assert code == 0, err
    assert (out / "evaluation.json").is_file() and leftovers(out) == []


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, RuntimeError])
def test_an_interrupted_analysis_leaves_no_partial_outputs(interrupt, files, tmp_path, capsys, monkeypatch):
    real = maelens.io.save_figure
    calls = []

    def fail_on_second_figure(fig, path, dpi=120):
        calls.append(path)
        if len(calls) == 2:
            raise interrupt("stopped while writing the figures")
        return real(fig, path, dpi)

    monkeypatch.setattr(maelens.io, "save_figure", fail_on_second_figure)
    out = tmp_path / "distfit"
    argv = ["distfit", "--features-file", files["feats"], "--rank-samples", "0", "--quiet", "--out", out]
    if interrupt is KeyboardInterrupt:
        code, err = run(argv, capsys)
        assert code == 130 and err.strip() == "maelens distfit: interrupted"
    else:
        with pytest.raises(RuntimeError):
            main([str(a) for a in argv])
    assert not out.exists() and leftovers(out) == []


def test_a_staging_folder_of_a_killed_command_is_removed(files, tmp_path, capsys):
    dead = dead_pid()
    out = tmp_path / "eval"
    stale = tmp_path / f".eval.{dead}.k3j9x2ab.partial"
    stale.mkdir()
    (stale / "evaluation.csv").write_text("half")
    alive = tmp_path / f".eval.{os.getpid()}.a1b2c3d4.partial"  # a running command's: not touched
    alive.mkdir()
    assert run(_evaluate(files, out), capsys)[0] == 0
    assert not stale.exists() and alive.is_dir()


def test_a_folder_replaced_by_a_killed_command_is_put_back(files, tmp_path, capsys):
    """Killed between renaming the old folder aside and the new one into place: the old results return."""
    dead = dead_pid()
    old = tmp_path / f".eval.{dead}.q1w2e3r4.old"
    old.mkdir()
    (old / "evaluation.csv").write_text("earlier results")
    (old / OUTPUT_MARKER).write_text("written by maelens evaluate")
    out = tmp_path / "eval"
    assert_one_line(*run(_evaluate(files, out), capsys), "already holds files")
    assert (out / "evaluation.csv").read_text() == "earlier results" and not old.exists()


def test_similarity_writes_its_figure_and_csv_together(files, tmp_path, capsys, monkeypatch):
    fig = tmp_path / "sim.png"

    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(maelens.io, "write_csv", fail)  # the figure is already written by then
    code, _ = run(["similarity", "--ckpt", files["ckpt"], "--data", files["data"], "--query", "0", "--top-k", "2",
                   "--quiet", "--out", fig], capsys)
    assert code == 130 and os.listdir(tmp_path) == []


# ---- 1c. a full disk ------------------------------------------------------------------------------------

def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_during_an_analysis_names_the_file(files, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(pd.DataFrame, "to_csv", _disk_full)
    out = tmp_path / "eval"
    assert_one_line(*run(_evaluate(files, out), capsys),
                    f"no space left on device while writing {out / 'evaluation.csv'}")
    assert not out.exists() and leftovers(out) == []


def test_a_full_disk_while_saving_features(files, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(np, "savez_compressed", _disk_full)
    out = tmp_path / "f.npz"
    assert_one_line(*run(["features", "--ckpt", files["ckpt"], "--data", files["data"], "--quiet", "--out", out],
                         capsys),
                    f"no space left on device while writing {out}")
    assert os.listdir(tmp_path) == []


def test_a_full_disk_outside_the_writers_is_one_line(files, tmp_path, capsys, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "log.jsonl"))

    monkeypatch.setattr(maelens.io, "output_folder", full)
    assert_one_line(*run(_evaluate(files, tmp_path / "e"), capsys), "no space left on device while writing",
                    "log.jsonl")


def test_torch_zip_writer_failure_on_a_full_device(tmp_path, monkeypatch):
    """torch reports ENOSPC as "unexpected pos ..." without an errno: the free space decides."""
    monkeypatch.setattr(maelens.io, "_out_of_space", lambda folder: True)
    with pytest.raises(OutputError, match="no space left on device while writing .*model.pt"):
        with maelens.io.atomic_path(tmp_path / "model.pt"):
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")
    assert os.listdir(tmp_path) == []
    monkeypatch.setattr(maelens.io, "_out_of_space", lambda folder: False)
    with pytest.raises(RuntimeError, match="unexpected pos"):
        with maelens.io.atomic_path(tmp_path / "model.pt"):
            raise RuntimeError("unexpected pos 704 vs 598")


def test_output_folder_names_the_final_path_not_the_staging_one(tmp_path, monkeypatch):
    monkeypatch.setattr(pd.DataFrame, "to_csv", _disk_full)
    with pytest.raises(OutputError) as info:
        with output_folder(tmp_path / "out") as staging:
            maelens.io.write_csv(staging / "table.csv", pd.DataFrame({"a": [1]}))
    assert str(info.value) == f"no space left on device while writing {tmp_path / 'out' / 'table.csv'}"
    assert os.listdir(tmp_path) == []


# ---- 2. defaults that compose in the library -----------------------------------------------------------

def test_default_warmup_fits_a_short_run_and_an_explicit_one_is_checked():
    assert TrainConfig(preset="tiny", epochs=1).effective_warmup_epochs == 1.0
    assert TrainConfig(epochs=10).effective_warmup_epochs == 2.0
    assert TrainConfig(epochs=10, warmup_epochs=0).effective_warmup_epochs == 0.0
    with pytest.raises(ConfigError, match="warmup_epochs must be in"):
        TrainConfig(epochs=1, warmup_epochs=2.0)
    config = TrainConfig(epochs=1)
    assert TrainConfig.from_dict(config.to_dict()) == config


def test_runs_stored_with_the_old_explicit_defaults_are_still_reused():
    old = {**TrainConfig(epochs=3, warmup_epochs=2.0, batch_size=64).to_dict()}  # how earlier versions stored them
    assert _differences(old, TrainConfig(epochs=3)) == []
    clipped = TrainConfig(epochs=1, warmup_epochs=1.0, batch_size=64).to_dict()  # the CLI's clip before issue 16
    assert _differences(clipped, TrainConfig(epochs=1)) == []
    assert _differences(TrainConfig(epochs=3).to_dict(), TrainConfig(epochs=3, warmup_epochs=1.0)) == ["warmup_epochs"]
    assert _differences(old, TrainConfig(epochs=3, batch_size=32)) == ["batch_size"]
    before_issue_16 = {k: v for k, v in old.items() if k not in ("precision",)}
    assert _differences(before_issue_16, TrainConfig(epochs=3)) == []


def test_default_batch_is_lowered_to_a_small_data_set_and_said(files, tmp_path, capsys):
    code, err = run(["train", "--preset", "tiny", "--data", files["data"], "--recon-images", "0", "--device", "cpu",
                     "--epochs", "1", "--out", tmp_path / "run"], capsys)
    assert code == 0, err
    notes = [line for line in err.splitlines() if "note:" in line]
    assert notes == ["maelens train: note: warm-up shortened to 1 epoch(s): the default 2 is longer than --epochs 1 "
                     "(set --warmup-epochs to choose)",
                     "maelens train: note: batch size lowered to 16: the default 64 is more than the 16 training "
                     "images (set --batch-size to choose)"]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["batch_size"] == 16 and summary["warmup_epochs"] == 1.0 and len(summary["notes"]) == 2
    assert summary["train_config"]["batch_size"] is None  # the default is recorded as the default


def test_library_train_with_every_default_on_a_small_data_set(tmp_path):
    images = torch.randn(12, 3, 32, 32)
    result = train(TrainConfig(preset="tiny", epochs=1, out=str(tmp_path / "run"), recon_images=0, quiet=True,
                               device="cpu"), dataset=TensorDataset(images))
    assert result.summary["batch_size"] == 12 and result.summary["steps_per_epoch"] == 1


# ---- 3. answers that mislead ------------------------------------------------------------------------------

def test_non_finite_training_data_is_named_not_blamed_on_the_learning_rate(tmp_path, capsys):
    images = np.random.default_rng(0).normal(size=(20, 3, 32, 32)).astype(np.float32)
    images[[2, 5, 7]] = np.inf
    data = tmp_path / "bad.npz"
    np.savez(data, images=images)
    out = tmp_path / "run"
    line = assert_one_line(*run(["train", "--preset", "tiny", "--data", data, "--split", "all", "--epochs", "1",
                                 "--device", "cpu", "--recon-images", "0", "--out", out], capsys),
                           str(data), "3 of 20 images", "NaN or infinite", "image 2")
    assert "lr" not in line and not out.exists()
    np.savez(data, images=np.full((20, 3, 32, 32), np.inf, np.float32))
    assert_one_line(*run(["train", "--preset", "tiny", "--data", data, "--split", "all", "--device", "cpu",
                          "--out", out], capsys), "20 of 20 images")


class _Streamed(Dataset):
    """Images computed on access (no in-memory array to check up front): image 3 is all NaN."""

    def __len__(self):
        return 16

    def __getitem__(self, i):
        image = torch.randn(3, 32, 32, generator=torch.Generator().manual_seed(i))
        return image.fill_(float("nan")) if i == 3 else image


def test_non_finite_images_found_when_the_loss_fails(tmp_path):
    config = TrainConfig(preset="tiny", epochs=1, batch_size=16, warmup_epochs=0, out=str(tmp_path / "run"),
                         recon_images=0, quiet=True, device="cpu")
    with pytest.raises(DataError, match="1 of 16 images with NaN or infinite values \\(first: image 3\\)"):
        train(config, dataset=_Streamed())
    with pytest.raises(DataError, match="2 of 8 images"):
        images = torch.randn(8, 3, 32, 32)
        images[[1, 4], 0, 0, 0] = float("nan")
        train(config, dataset=TensorDataset(images))


def test_distfit_of_values_near_1e300_matches_the_unscaled_answer():
    x = np.random.default_rng(0).normal(size=(20, 500))
    reference = fit_samples(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warnings
        big = fit_samples(x * 1e300)
        tiny = fit_samples(x * 1e-300)
        ranking = rank_distributions(x[:2] * 1e300, ("t", "norm", "cauchy"), bins=30)
    for result, factor in ((big, 1e300), (tiny, 1e-300)):
        for law in ("norm", "t"):
            assert (result.rejected(law) == reference.rejected(law)).all()
            # the t fit's stopping rule depends on the log-likelihood's magnitude: agreement to 1e-5
            np.testing.assert_allclose(result.fits[law].pvalue, reference.fits[law].pvalue, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(result.fits[law].params["scale"], reference.fits[law].params["scale"] * factor,
                                       rtol=1e-6)
    assert big.summary()["laws"]["norm"]["not_rejected"] == 20  # it was 0 before: overflowing variances
    assert ranking.example_scale != 1.0 and np.isfinite(ranking.per_sample["sse"]).all()
    assert ranking.table["law"].iloc[-1] == "cauchy"  # Gaussian samples: the heavy-tailed law ranks last


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_distfit_cli_on_values_near_1e300(suffix, tmp_path, capsys):
    x = np.random.default_rng(0).normal(size=(12, 200)) * 1e300
    path = tmp_path / f"big{suffix}"
    if suffix == ".npy":
        np.save(path, x)
    else:  # FeatureSet files hold float32: these values must not become inf on the way
        np.savez(path, features=x)
    out = tmp_path / "fit"
    code, err = run(["distfit", "--features-file", path, "--rank-samples", "2", "--quiet", "--out", out], capsys)
    assert code == 0 and "Warning" not in err, err
    frame = pd.read_csv(out / "distfit.csv")
    assert frame["norm_rejected"].sum() == 0 and np.isfinite(frame["norm_scale"]).all()
    assert frame["norm_scale"].median() > 1e299


# ---- 4. where it writes -------------------------------------------------------------------------------------

def test_the_cache_folder_moves_with_maelens_cache_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("MAELENS_CACHE", raising=False)
    monkeypatch.setenv("MAELENS_CACHE_DIR", str(tmp_path / "cache"))
    assert cache_dir() == tmp_path / "cache"
    arrays, path = cached_arrays("test-set", {"v": 1}, lambda: {"x": np.arange(3)})
    assert path.parent == tmp_path / "cache" and path.is_file()
    monkeypatch.setenv("MAELENS_CACHE", str(tmp_path / "older-name"))
    assert cache_dir() == tmp_path / "cache"  # the new name wins
    monkeypatch.delenv("MAELENS_CACHE_DIR")
    assert cache_dir() == tmp_path / "older-name"
    monkeypatch.delenv("MAELENS_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "maelens"
