"""``maelens report`` and the HTML page (issue 27): any output folder becomes a section; the demo page and a
``report`` page, opened in headless Chromium at 1280 px, never overflow sideways and show no literal backtick."""

import importlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from maelens.cli import main
from maelens.errors import ConfigError
from maelens.io import OUTPUT_MARKER, save_figure
from maelens.report import Report, html_table
from maelens.report_folders import caption_for, folder_kind, folders_report

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
#: Appended to a copy of the page: after layout, the page's scroll width and whether its text shows a backtick.
PROBE = """<script>window.addEventListener('load', () => { const d = document.createElement('pre'); d.id = 'probe';
d.textContent = JSON.stringify({scroll: document.documentElement.scrollWidth, inner: window.innerWidth,
ticks: document.body.innerText.includes('`'), images: document.images.length});
document.body.appendChild(d); });</script>"""


def wide_frame(columns=28, rows=4):
    """An attention_stats.csv-like table: a layer column, many numeric columns, a text column, a NaN."""
    data = {"layer": list(range(rows))}
    for j in range(columns - 2):
        data[f"metric_number_{j}"] = np.linspace(0, 1, rows) + j
    data["note_text"] = ["a `code` word"] * rows
    frame = pd.DataFrame(data)
    frame.loc[1, "metric_number_0"] = np.nan
    return frame


def figure_png(path):
    fig = Figure(figsize=(4, 3))
    fig.subplots().plot([0, 1], [0, 1])
    return save_figure(fig, path)


def in_browser(page: Path, tmp_path: Path) -> dict:
    """What the probe measured on ``page`` in headless Chromium with a 1280-px-wide window."""
    probed = tmp_path / f"probed-{page.name}"
    probed.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    out = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                          "--window-size=1280,900", "--dump-dom", probed.as_uri()],
                         capture_output=True, text=True, timeout=120)
    match = re.search(r'<pre id="probe">([^<]*)</pre>', out.stdout)
    assert match, f"the probe did not run: {out.stderr[-500:]}"
    return json.loads(match.group(1).replace("&quot;", '"'))


def check_page(page: Path, tmp_path: Path) -> None:
    text = page.read_text(encoding="utf-8")
    assert "`" not in re.sub(r"<[^>]+>", "", text.split("<body>", 1)[1]), "a literal backtick in the page text"
    if CHROMIUM is None:
        pytest.skip("no chromium, chromium-browser or google-chrome on PATH: the page was not opened in a browser")
    measured = in_browser(page, tmp_path)
    assert measured["inner"] == 1280
    assert measured["scroll"] <= measured["inner"], f"horizontal overflow: {measured}"
    assert not measured["ticks"] and measured["images"] > 0


def test_html_table_aligns_transposes_and_shows_missing_values():
    table = html_table(wide_frame())
    # 28 columns of 4 layers are shown as 27 rows of 4 layers
    assert table.count("<tr>") == 1 + 27 and "<th>layer 0</th>" in table
    assert "<tr><td>metric number 1</td><td class=num>1</td>" in table and "\u2013" in table and "<code>code</code>" in table
    small = html_table(pd.DataFrame({"model_name": ["a"], "value": [0.5]}))
    assert "<th>model name</th><th class=num>value</th>" in small and "<td>a</td><td class=num>0.5</td>" in small


def test_demo_page_fits_the_window(tmp_path):
    sys.path.insert(0, str(ROOT / "experiments"))
    try:
        demo = importlib.import_module("demo")
        outcome = importlib.import_module("common").Outcome
    finally:
        sys.path.remove(str(ROOT / "experiments"))
    ctx = SimpleNamespace(out=tmp_path, preset="tiny", epochs=3, pretrain_data="bundled", labelled_data="bundled")
    outcomes = [outcome("attention-layers", "Fig. 10", "consistency near 1", "0.99", "yes",
                        "Consistency stays high through `layer 3`.", tables={"attention_stats": wide_frame()},
                        figures={"layer_curves": figure_png(tmp_path / "layer_curves.png"),
                                 "influence_map_0": figure_png(tmp_path / "influence_map_0.png")}),
                outcome("knn-table", "Table 3", "64.2%", "50%", "n/a", "See `table3_columns`.",
                        tables={"table3_columns": pd.DataFrame({"model": ["MAE", "SimCLR"], "paper": [0.6, np.nan]})})]
    for o in outcomes:
        o.seconds = 1.0
    report = demo.build_report(ctx, outcomes, 60.0)
    captions = [item.caption for item in report.items if item.kind == "figure"]
    assert len(set(captions)) == len(captions), "one caption repeated under several figures"
    _, page = report.write(tmp_path / "report.md", tmp_path / "report.html")
    assert "NaN" not in page.read_text()
    check_page(page, tmp_path)


def output_folders(tmp_path):
    attn = tmp_path / "attn"
    attn.mkdir()
    (attn / OUTPUT_MARKER).write_text("written by maelens attention-stats\n")
    wide_frame().to_csv(attn / "attention_stats.csv", index=False)
    (attn / "attention_stats.json").write_text(json.dumps({"mask": "grid", "mask_ratio": 0.75, "layers": []}))
    figure_png(attn / "layer_curves.png")
    figure_png(attn / "influence_map_000.png")
    run = tmp_path / "run"
    run.mkdir()
    records = [{"kind": "start", "epoch": 0, "step": 0}] + [
        {"kind": "step", "epoch": s // 3, "step": s, "loss": 1 / s, "lr": 1e-4 * s} for s in range(1, 7)] + [
        {"kind": "epoch", "epoch": e, "step": 3 * e + 3, "loss": 0.5 / (e + 1), "lr": 1e-4} for e in range(2)]
    (run / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    pd.DataFrame(records[1:]).to_csv(run / "log.csv", index=False)
    (run / "summary.json").write_text(json.dumps({"status": "completed", "epochs_completed": 2}))
    for epoch in range(3):
        figure_png(run / f"recon_epoch_{epoch:03d}.png")
    return attn, run


def test_report_command_renders_any_folder(tmp_path, capsys):
    attn, run = output_folders(tmp_path)
    assert folder_kind(attn).kind == "attention-stats" and folder_kind(run).kind == "train"
    report = folders_report([run, attn])
    figures = [item.payload for item in report.items if item.kind == "figure"]
    # a run without loss.png gets its curves drawn; of the reconstructions only the first and the last
    assert [item.kind for item in report.items].count("image") == 1
    assert [p.name for p in figures if p.name.startswith("recon")] == ["recon_epoch_000.png", "recon_epoch_002.png"]
    page = tmp_path / "page.html"
    assert main(["report", str(run), str(attn), "--out", str(page), "--quiet"]) == 0
    check_page(page, tmp_path)


def test_report_refuses_a_folder_no_maelens_command_wrote(tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    with pytest.raises(ConfigError, match="not a maelens output folder"):
        folder_kind(tmp_path / "mine")
    assert main(["report", str(tmp_path / "mine"), "--out", str(tmp_path / "p.html")]) == 2
    assert "maelens report: error:" in capsys.readouterr().err and not (tmp_path / "p.html").exists()


def test_every_figure_a_command_writes_has_its_own_caption():
    names = ["loss.png", "recon_epoch_003.png", "layer_curves.png", "positional_bias.png", "head_metrics.png",
             "influence_map_001.png", "pvalues_ecdf.png", "df_hist.png", "ranking.png", "map_tsne-knn.png", "cka.png",
             "rollout_000.png", "layer_probes.png", "token_stats.png", "curves.png", "predictions.png"]
    captions = [caption_for(n, "any") for n in names]
    assert len(set(captions)) == len(captions) and all(c.endswith(".") for c in captions)
    assert "epoch 3 " in captions[1] and caption_for("knn_accuracy.png", "compare").startswith("knn accuracy")


def test_markdown_still_links_and_says_where_drawn_figures_are(tmp_path):
    report = Report("t", root=tmp_path)
    report.image(b"\x89PNG", "run/loss.png", "curves")
    assert "(figure run/loss.png: embedded in the HTML page)" in report.to_markdown()
