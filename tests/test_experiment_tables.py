"""The results tables of README.md and experiments/README.md (experiments/tables.py): generated from the
committed result files, and every number inside them found in those files."""

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))

import tables  # noqa: E402

NUMBER = re.compile(r"(?<![\w.])-?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?")


def _walk(value, out: list[float]) -> None:
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        out.append(float(value))
    elif isinstance(value, dict):
        for v in value.values():
            _walk(v, out)
    elif isinstance(value, list):
        for v in value:
            _walk(v, out)
    elif isinstance(value, str):
        for token in NUMBER.findall(value):
            try:
                out.append(float(token.replace(",", "")))
            except ValueError:
                pass


def _result_numbers(root: Path) -> tuple[str, list[float]]:
    """The text of every committed result file (JSON and CSV) and every number in them."""
    texts, values = [], []
    for path in sorted(root.rglob("*")):
        if path.suffix == ".json":
            text = path.read_text()
            texts.append(text)
            _walk(json.loads(text), values)
        elif path.suffix == ".csv":
            text = path.read_text()
            texts.append(text)
            for cell in re.split(r"[,\n]", text):
                try:
                    values.append(float(cell))
                except ValueError:
                    _walk(cell, values)
    return "\n".join(texts), values


def supported(token: str, text: str, values: list[float]) -> bool:
    """Whether ``token`` as printed is a number of the result files: verbatim, or a value of them rounded to
    the printed digits (as a fraction, a percentage or a minute count), or its 4 significant digits."""
    if token in text:
        return True
    shown = float(token.replace(",", ""))
    decimals = len(token.split(".")[1]) if "." in token and "e" not in token else 0
    tol = 0.5 * 10 ** -decimals + 1e-12
    v = np.asarray(values, dtype=float)
    if any(np.any(np.abs(scaled - shown) <= tol) for scaled in (v, 100 * v, v / 60)):
        return True
    # 4 significant digits (the verdict intervals): within half a unit of the 4th digit
    digits = 10.0 ** (np.floor(np.log10(abs(shown))) - 3) if shown else 1e-12
    return bool(np.any(np.abs(v - shown) <= 0.5 * digits + 1e-15))


def _verdict_bounds(root: Path) -> list[float]:
    """The interval bounds of the verdicts the one rule computes from the result files (the verdict column)."""
    from claims import verdict

    bounds = []
    for sub in tables.SCALES.values():
        for name, record in tables.load_results(root / sub).items():
            v = verdict(name, tables.stored_metrics(name, root / sub / name, record))
            if v.interval is not None:
                bounds += [v.interval.low, v.interval.high]
    return bounds


@pytest.fixture(scope="module")
def corpus():
    text, values = _result_numbers(tables.RESULTS)
    return text, values + _verdict_bounds(tables.RESULTS)


def _blocks(text: str) -> dict[str, str]:
    return {m.group("name"): m.group("body") for m in tables.MARKER.finditer(text)}


def test_committed_tables_are_what_the_result_files_generate():
    assert tables.write_tables(check=True) == [], "run: python experiments/run.py tables"


@pytest.mark.parametrize("rel", tables.FILES)
def test_every_number_in_the_tables_is_in_a_result_file(rel, corpus):
    text, values = corpus
    blocks = _blocks((tables.ROOT / rel).read_text())
    assert blocks, f"{rel} has no results block"
    missing = [(name, token) for name, body in blocks.items() for token in NUMBER.findall(body)
               if not supported(token, text, values)]
    assert missing == []


def test_the_number_check_catches_a_typed_number():
    # a controlled corpus: the real one grows with every result file, and some value of it may round to any
    # sentinel typed here (the real tables are checked number by number by the test above)
    text, values = '{"accuracy": 0.5, "loss": 0.2, "seconds": 111.2}', [0.5, 0.2, 111.2, 0.0219]
    assert not supported("0.12345", text, values)
    assert not supported("43", text, values)                    # the "beats a mean fill by 43%"
    assert supported("111.2", text, values) and supported("2.19", text, values)
    assert not supported("1.724", "", [1.7233648002147675])   # the mis-rounded 1.7234
    assert supported("1.7234", "", [1.7233648002147675])
    assert supported("44.3", "", [0.4426])                      # a share printed as a percentage


def test_fill_replaces_only_marked_blocks_and_refuses_unknown_ones():
    text = "a\n<!-- results:x -->\nold\n<!-- /results:x -->\nb\n"
    assert tables.fill(text, {"x": "new\n"}) == "a\n<!-- results:x -->\nnew\n<!-- /results:x -->\nb\n"
    with pytest.raises(ValueError, match="unknown results block"):
        tables.fill(text, {})


def test_stale_files_are_rejudged_from_their_tables(tmp_path):
    """A file written before the rule (word ``yes``) with the counts in its table gets the rule's word; one
    whose tables lack them says stale; a missing experiment says not re-run."""
    knn = tmp_path / "quick" / "knn-table"
    knn.mkdir(parents=True)
    (knn / "result.json").write_text(json.dumps({
        "experiment": "knn-table", "paper_ref": "Table 3", "paper": "PCA 84.7%", "ours": "PCA 52.5%", "holds": "yes",
        "metrics": {"accuracy": {"pca-knn": 0.525}}, "seconds": 7.0}))
    (knn / "table3.csv").write_text("method,accuracy,n,correct\npca-knn,0.525,1000,525\ntsne-knn,0.5,1000,500\n")
    sim = tmp_path / "quick" / "similarity"
    sim.mkdir()
    (sim / "result.json").write_text(json.dumps({
        "experiment": "similarity", "paper_ref": "Fig. 11", "paper": "q", "ours": "38.0%", "holds": "yes",
        "metrics": {"precision_unmasked": 0.38}, "seconds": 1.0}))
    table = tables.results_table("quick", root=tmp_path)
    rows = {line.split("|")[1].strip(): line for line in table.splitlines()[2:]}
    assert "| tie (newcombe" in rows["`knn-table` (Table 3)"]   # 52.5% vs 50.0% of 1,000: intervals overlap
    assert "n/a (stale: re-run)" in rows["`similarity` (Fig. 11)"]
    assert "not re-run" in rows["`reconstruction`"]


def test_collect_copies_result_files_without_checkpoints(tmp_path):
    run = tmp_path / "run"
    (run / "knn-table").mkdir(parents=True)
    (run / "knn-table" / "result.json").write_text("{}")
    (run / "knn-table" / "table3.csv").write_text("a\n")
    (run / "segmentation" / "runs" / "scratch").mkdir(parents=True)
    (run / "segmentation" / "result.json").write_text("{}")
    (run / "segmentation" / "runs" / "scratch" / "checkpoint.pt").write_text("x")
    model = run / "models" / "tiny-random-pixel-e30"
    model.mkdir(parents=True)
    for name in ("log.csv", "summary.json", "checkpoint.pt", "recon_epoch_000.png", "recon_epoch_029.png"):
        (model / name).write_text("x")
    written = tables.collect(run, tmp_path / "out")
    assert sorted(str(p.relative_to(tmp_path / "out")) for p in written) == [
        "knn-table/result.json", "knn-table/table3.csv", "models/tiny-random-pixel-e30/log.csv",
        "models/tiny-random-pixel-e30/recon_epoch_029.png", "models/tiny-random-pixel-e30/summary.json",
        "segmentation/result.json"]


def test_collect_removes_an_experiments_files_the_new_run_did_not_write(tmp_path):
    run, out = tmp_path / "run", tmp_path / "out"
    (run / "synthetic-ks").mkdir(parents=True)
    (run / "synthetic-ks" / "result.json").write_text("{}")
    (run / "synthetic-ks" / "fits_asymptotic.csv").write_text("a\n")
    (out / "synthetic-ks").mkdir(parents=True)
    (out / "synthetic-ks" / "fits.csv").write_text("old\n")         # renamed since: stale
    (out / "synthetic-ks" / "notes.txt").write_text("kept\n")        # not a result file
    (out / "knn-table").mkdir(parents=True)
    (out / "knn-table" / "result.json").write_text("{}")             # another experiment: untouched
    tables.collect(run, out)
    assert sorted(p.name for p in (out / "synthetic-ks").iterdir()) == ["fits_asymptotic.csv", "notes.txt",
                                                                         "result.json"]
    assert (out / "knn-table" / "result.json").is_file()


def test_undertrained_models_are_named_after_the_numbers_whether_or_not_they_enter_the_verdict():
    record = {"ours": "kNN 54.2%", "metrics": {"undertrained": ["block seed 0", "block seed 2"]}}
    assert tables._undertrained_note(record) == ("; undertrained (not better than the mean-colour fill): "
                                                 "block seed 0, block seed 2")
    assert tables._undertrained_note({"ours": "x", "metrics": {"undertrained": []}}) == ""
    assert tables._undertrained_note({"ours": "x"}) == ""
