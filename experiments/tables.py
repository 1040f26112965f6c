"""The results tables of experiments/README.md and README.md, generated from the committed result files.

``python experiments/run.py tables`` rewrites every block between ``<!-- results:NAME -->`` and
``<!-- /results:NAME -->`` in those files from the ``result.json`` files (and the tables beside them)
under ``experiments/results/SCALE/``; ``--check`` only says which files differ. Each verdict is
recomputed by :func:`claims.verdict` from the stored numbers: a file written before the one rule
existed (its word is ``yes`` / ``partly`` / ``no``) is judged on the counts its committed tables hold,
and gets ``n/a (stale: re-run)`` where they do not hold what the rule needs. An experiment without a
result file is listed as "not re-run". Torch-free.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from claims import CLAIMS, STALE, UNDERTRAINED, WITHDRAWN, render, verdict

from maelens.io import write_text

__all__ = ["BLOCKS", "FILES", "OLD_WORDS", "RESULTS", "block_names", "collect", "fill", "load_results",
           "stored_metrics", "write_tables"]

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results"
#: The verdict words of the result files written before maelens.verdict.
OLD_WORDS = ("yes", "partly", "no")
#: The result folder of each scale, under RESULTS.
SCALES = {"quick": "quick", "paper-cpu": "paper-cpu"}
MARKER = re.compile(r"(<!-- results:(?P<name>[a-z0-9-]+) -->\n)(?P<body>.*?)(<!-- /results:(?P=name) -->)", re.S)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def load_results(folder: Path) -> dict[str, dict[str, Any]]:
    """``result.json`` of every experiment under ``folder``, by experiment name."""
    records = {}
    for path in sorted(folder.glob("*/result.json")):
        record = json.loads(path.read_text())
        records[record["experiment"]] = record
    return records


# ---- numbers the current rule needs, recovered from the tables of a file that predates it ----------------


def _consistency(d: Path) -> dict:
    rows = _read_csv(d / "consistency_layer0.csv")
    return {"counts": {r["mask"]: [round(float(r["consistency"]) * int(r["images"])), int(r["images"])] for r in rows}}


def _attention_layers(d: Path) -> dict:
    rows = [r for r in _read_csv(d / "attention_stats.csv") if r["part"] == "decoder"]
    first, last = rows[0], rows[-1]
    pairs = {"consistency": ("consistent_images", "images"), "locality": ("local_patches", "influenced_patches"),
             "black_fraction": ("black_patches", "non_important_patches")}
    return {"first_last": {p: [[int(r[k]), int(r[n])] for r in (first, last)] for p, (k, n) in pairs.items()}}


def _counts(table: str) -> Callable[[Path], dict]:
    return lambda d: {"correct": {r["method"]: [int(r["correct"]), int(r["n"])] for r in _read_csv(d / table)}}


def _encoder_ks(d: Path) -> dict:
    rows = _read_csv(d / "encoder_fits.csv")
    kept = {law: sum(r[f"{law}_rejected"] in ("False", "0") for r in rows) for law in ("t", "norm")}
    return {"not_rejected": {law: [k, len(rows)] for law, k in kept.items()}}


def _ranking(d: Path) -> dict:
    sse: dict[str, dict[str, float]] = {}
    for r in _read_csv(d / "ranking_per_sample.csv"):
        sse.setdefault(r["sample"], {})[r["law"]] = float(r["sse"])
    return {"t_below_norm": [sum(s["t"] < s["norm"] for s in sse.values()), len(sse)]}


#: How the numbers a verdict needs are read from the tables of a result file that predates the rule.
RECOVER: dict[str, Callable[[Path], dict]] = {
    "consistency": _consistency, "attention-layers": _attention_layers, "knn-table": _counts("table3.csv"),
    "parametric": _counts("table4.csv"), "encoder-ks": _encoder_ks, "ranking": _ranking,
}


def stored_metrics(name: str, folder: Path, record: dict[str, Any]) -> dict[str, Any]:
    """The record's metrics; for a record predating the rule, plus what its committed tables hold."""
    metrics = dict(record.get("metrics") or {})
    if name == "segmentation" and "data" not in metrics:  # the data is in the record; absent before it was a choice
        metrics["data"] = record.get("segmentation_data") or "mosaic"
    if record.get("holds") in OLD_WORDS and name in RECOVER:
        try:
            metrics.update(RECOVER[name](folder))
        except (FileNotFoundError, KeyError, ValueError):
            pass  # the tables lack it too: the verdict says stale
    return metrics


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def results_table(scale: str, root: Path = RESULTS) -> str:
    """The paper-vs-ours table of ``scale``: one row per claim, from the result files only."""
    folder = root / SCALES[scale]
    records = load_results(folder)
    lines = ["| experiment | paper | ours | verdict | result file |", "|---|---|---|---|---|"]
    for name in CLAIMS:
        record = records.get(name)
        if record is None:
            lines.append(f"| `{name}` | {_cell(CLAIMS[name].statement)} | not re-run | n/a (no result file) | |")
            continue
        v = verdict(name, stored_metrics(name, folder / name, record))
        stamp = f"{record['date']}, " if record.get("date") else ""
        ours = record["ours"] + _undertrained_note(record)
        lines.append(f"| `{name}` ({_cell(record['paper_ref'])}) | {_cell(record['paper'])} | {_cell(ours)} "
                     f"| {_cell(render(v))} | [{stamp}{record['seconds']:g} s]({SCALES[scale]}/{name}/result.json) |")
    return "\n".join(lines) + "\n"


def _undertrained_note(record: Mapping[str, Any]) -> str:
    """The models of a result that do not beat the mean-colour fill on held-out images (issue 25's gate), said
    after its numbers whether or not they enter the verdict: their numbers are those of an undertrained model."""
    models = (record.get("metrics") or {}).get("undertrained") or []
    return f"; undertrained (not better than the mean-colour fill): {', '.join(models)}" if models else ""


def _word(v) -> str:
    """The verdict word, with ``stale`` or ``undertrained`` said for an ``n/a`` that has those reasons."""
    if v.reason == STALE:
        return "n/a (stale: re-run)"
    if v.reason == WITHDRAWN:
        return "n/a (withdrawn)"
    return UNDERTRAINED if v.reason.startswith(UNDERTRAINED) else v.word


def verdict_summary(root: Path = RESULTS) -> str:
    """README.md's one-line-per-claim summary: the verdict word at each scale."""
    words = {}
    for scale, sub in SCALES.items():
        records = load_results(root / sub)
        words[scale] = {name: _word(verdict(name, stored_metrics(name, root / sub / name, r))) if r else "not re-run"
                        for name in CLAIMS for r in [records.get(name)]}
    lines = ["| claim | quick | paper-cpu |", "|---|---|---|"]
    lines += [f"| {_cell(claim.statement)} | {words['quick'][n]} | {words['paper-cpu'][n]} |"
              for n, claim in CLAIMS.items()]
    return "\n".join(lines) + "\n"


def segmentation_table(scale: str, root: Path = RESULTS) -> str:
    """The segmentation arms of ``scale`` from ``segmentation_comparison.csv`` and its result file."""
    folder = root / SCALES[scale] / "segmentation"
    if not (folder / "segmentation_comparison.csv").is_file():
        return "Not re-run at this scale (no result file).\n"
    record = json.loads((folder / "result.json").read_text())
    lines = ["| arm | pretraining | final eval CE | best eval CE | pixel accuracy | mIoU |", "|---|---|---|---|---|---|"]
    for r in _read_csv(folder / "segmentation_comparison.csv"):
        lines.append(f"| {r['arm']} | {r['pretraining']} | {float(r['final_eval_loss']):.4f} | "
                     f"{float(r['best_eval_loss']):.4f} | {100 * float(r['pixel_accuracy']):.1f}% | "
                     f"{100 * float(r['miou']):.1f}% |")
    lines += ["", f"{_cell(record['interpretation'])} Run time {record['seconds']:g} s "
                  f"([result.json]({SCALES[scale]}/segmentation/result.json))."]
    return "\n".join(lines) + "\n"


def training_log(scale: str, model: str, root: Path = RESULTS) -> str:
    """One sentence on a committed pretraining log: epochs, steps, time, final loss, images/s per epoch."""
    folder = root / SCALES[scale] / "models" / model
    summary = json.loads((folder / "summary.json").read_text())
    epochs = [r for r in _read_csv(folder / "log.csv") if r["kind"] == "epoch"]
    speed = sorted(float(r["images_per_s"]) for r in epochs)
    return (f"`{model}`: {summary['epochs_completed']} epochs of {summary['steps_per_epoch']} steps of "
            f"{summary['effective_batch_size']} images ({summary['images']} training images), "
            f"{summary['time_s'] / 60:.1f} min, final training loss {summary['final_loss']:.4f}; images/s per epoch "
            f"from {speed[0]:.1f} to {speed[-1]:.1f} (median {speed[len(speed) // 2]:.1f}) "
            f"([log.csv]({SCALES[scale]}/models/{model}/log.csv)).\n")


#: Every generated block by name.
BLOCKS: dict[str, Callable[[], str]] = {
    "quick": lambda: results_table("quick"),
    "paper-cpu": lambda: results_table("paper-cpu"),
    "segmentation-quick": lambda: segmentation_table("quick"),
    "segmentation-paper-cpu": lambda: segmentation_table("paper-cpu"),
    "paper-cpu-training": lambda: training_log("paper-cpu", "ipol64-random-pixel-e100"),
    "verdicts": verdict_summary,
}
#: The files whose blocks are generated (paths relative to the repository root).
FILES = ("experiments/README.md", "README.md")


def collect(src: Path, dst: Path) -> list[Path]:
    """Copy a run folder's result files into ``dst`` (e.g. ``experiments/results/quick``): every experiment's
    ``result.json`` with the CSV and PNG files beside it, and each model's ``log.csv``, ``summary.json`` and
    last reconstruction figure; no checkpoint, no fine-tuning run folder, no ``summary.*`` (a run of some
    experiments lists only those; the tables read the result files). An experiment copied replaces its folder
    in ``dst``: result files of an earlier run that this run did not write (renamed tables and figures) are
    removed, so no stale file sits beside a new ``result.json``. Returns the files written."""
    import shutil

    files = [p for p in src.glob("*/*") if p.parent.name != "models" and p.suffix in (".json", ".csv", ".png")
             and (p.parent / "result.json").is_file()]
    new = {path.relative_to(src) for path in files}
    for experiment in {path.parent.name for path in files}:
        for old in (dst / experiment).glob("*"):
            if old.suffix in (".json", ".csv", ".png") and old.relative_to(dst) not in new:
                old.unlink()
    for model in src.glob("models/*"):
        files += [model / n for n in ("log.csv", "summary.json") if (model / n).is_file()]
        files += sorted(model.glob("recon_epoch_*.png"))[-1:]
    written = []
    for path in files:
        target = dst / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        written.append(target)
    return written


def block_names(text: str) -> list[str]:
    return [m.group("name") for m in MARKER.finditer(text)]


def fill(text: str, blocks: dict[str, str]) -> str:
    """``text`` with the body of every marked block replaced by ``blocks[name]``."""
    unknown = [n for n in block_names(text) if n not in blocks]
    if unknown:
        raise ValueError(f"unknown results block(s) {', '.join(unknown)}; known: {', '.join(blocks)}")
    return MARKER.sub(lambda m: m.group(1) + blocks[m.group("name")] + m.group(4), text)


def write_tables(root: Path = ROOT, *, check: bool = False) -> list[Path]:
    """Regenerate the blocks of :data:`FILES` under ``root``; returns the files whose text changed (with
    ``check``, the files that would change, none written)."""
    cache: dict[str, str] = {}
    changed = []
    for rel in FILES:
        path = root / rel
        text = path.read_text()
        for name in block_names(text):
            if name not in cache and name in BLOCKS:
                cache[name] = BLOCKS[name]()
        new = fill(text, cache)
        if new != text:
            changed.append(path)
            if not check:
                write_text(path, new)
    return changed
