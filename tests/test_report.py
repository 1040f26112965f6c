"""The report writer renders tables and figures to Markdown and self-contained HTML."""

import base64

import pandas as pd

from maelens.report import Report

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def test_report_markdown_and_html(tmp_path):
    (tmp_path / "fig").mkdir()
    png = tmp_path / "fig" / "a.png"
    png.write_bytes(PNG)
    rep = Report("Demo", root=tmp_path)
    rep.heading("Attention")
    rep.text("Consistency is high.")
    rep.table(pd.DataFrame({"layer": [0, 1], "consistency": [0.99, 0.5]}), caption="Layer 0 is consistent.")
    rep.figure(png, caption="A figure.")
    rep.figure(tmp_path / "missing.png", caption="Missing.")
    md_path, html_path = rep.write(tmp_path / "report.md", tmp_path / "report.html")
    md = md_path.read_text()
    assert "| layer | consistency |" in md and "| 0 | 0.99 |" in md
    assert "![A figure.](fig/a.png)" in md
    assert "missing.png was not produced" in md
    page = html_path.read_text()
    assert "data:image/png;base64," in page and "<table" in page
    assert "Consistency is high." in page
