"""A small report writer: headings, sentences, tables and figures, rendered to Markdown (figures
linked) and to a self-contained HTML page (figures embedded), both written atomically.

The HTML page fits a 1280 px window (issue 27): `code` in text and captions becomes ``<code>`` (never a
literal backtick), a table wider than :data:`WIDE_COLUMNS` columns with few rows is shown transposed (one
row per column) and any table scrolls inside its own box rather than widening the page; text columns
are left-aligned and numbers right-aligned; headers are shown with spaces for underscores (the CSV keeps
its names); missing values are shown as an en dash.
"""

from __future__ import annotations

import base64
import html
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .io import write_text

#: Tables with more columns than this (and at most :data:`WIDE_ROWS` rows) are shown transposed.
WIDE_COLUMNS = 10
WIDE_ROWS = 8
#: The HTML page's style: a readable column, tables in scrolling boxes, images never wider than the page.
STYLE = ("body{font-family:sans-serif;max-width:64em;margin:2em auto;padding:0 1em;line-height:1.45}"
         "h1,h2,h3{line-height:1.2}code{font-family:monospace;background:#f2f2f2;padding:0 .2em;border-radius:3px}"
         ".table{overflow-x:auto;max-width:100%}table{border-collapse:collapse;font-size:.9em}"
         "td,th{padding:.2em .6em;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}"
         "th{border-bottom:2px solid #999}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}"
         "figure{margin:1em 0}img{max-width:100%;height:auto}"
         "figcaption{font-style:italic;color:#444;margin:.3em 0 1.2em}")
_CODE = re.compile(r"`([^`]+)`")


@dataclass
class _Item:
    kind: str
    payload: Any
    caption: str = ""


@dataclass
class Report:
    """Ordered report content; ``root`` is the folder the Markdown file's links are relative to."""

    title: str
    root: Path
    items: list[_Item] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> None:
        self.items.append(_Item("heading", (level, text)))

    def text(self, text: str) -> None:
        self.items.append(_Item("text", text))

    def table(self, frame: Any, caption: str = "", floatfmt: str = ".4g") -> None:
        """A pandas DataFrame shown as a table, with one sentence of interpretation as caption."""
        self.items.append(_Item("table", (frame, floatfmt), caption))

    def figure(self, path: str | Path, caption: str = "") -> None:
        """A PNG produced by the run; skipped with a note if the file is missing."""
        self.items.append(_Item("figure", Path(path), caption))

    def image(self, png: bytes, name: str, caption: str = "") -> None:
        """A PNG drawn for the page itself (``name`` is said in the Markdown, which cannot embed it)."""
        self.items.append(_Item("image", (png, name), caption))

    # ---- rendering -------------------------------------------------------------------------
    def to_markdown(self) -> str:
        lines = [f"# {self.title}", ""]
        for item in self.items:
            if item.kind == "heading":
                level, text = item.payload
                lines += ["#" * level + " " + text, ""]
            elif item.kind == "text":
                lines += [item.payload, ""]
            elif item.kind == "table":
                frame, fmt = item.payload
                lines += [_markdown_table(frame, fmt), ""]
                if item.caption:
                    lines += [f"*{item.caption}*", ""]
            elif item.kind == "image":
                lines += [f"(figure {item.payload[1]}: embedded in the HTML page)", ""]
                if item.caption:
                    lines += [f"*{item.caption}*", ""]
            elif item.kind == "figure":
                rel = _relative(item.payload, self.root)
                if item.payload.is_file():
                    lines += [f"![{item.caption}]({rel})", ""]
                else:
                    lines += [f"(figure {rel} was not produced)", ""]
                if item.caption:
                    lines += [f"*{item.caption}*", ""]
        return "\n".join(lines).rstrip() + "\n"

    def to_html(self) -> str:
        body = [f"<h1>{_inline(self.title)}</h1>"]
        for item in self.items:
            caption = f"<figcaption>{_inline(item.caption)}</figcaption>" if item.caption else ""
            if item.kind == "heading":
                level, text = item.payload
                body.append(f"<h{level}>{_inline(text)}</h{level}>")
            elif item.kind == "text":
                body.append(f"<p>{_inline(item.payload)}</p>")
            elif item.kind == "table":
                frame, fmt = item.payload
                body.append(f"<figure><div class='table'>{html_table(frame, fmt)}</div>{caption}</figure>")
            elif item.kind in ("figure", "image"):
                if item.kind == "image" or item.payload.is_file():
                    png = item.payload[0] if item.kind == "image" else item.payload.read_bytes()
                    data = base64.b64encode(png).decode("ascii")
                    img = f'<img alt="{_plain(item.caption)}" src="data:image/png;base64,{data}">'
                else:
                    img = f"<p>(figure {html.escape(str(item.payload))} was not produced)</p>"
                body.append(f"<figure>{img}{caption}</figure>")
        return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
                f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
                f"<title>{_plain(self.title)}</title>"
                f"<style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")

    def write(self, markdown_path: str | Path, html_path: str | Path | None = None) -> tuple[Path, Path | None]:
        """Write the Markdown file (and the HTML file when a path is given), atomically."""
        md = write_text(markdown_path, self.to_markdown())
        page = write_text(html_path, self.to_html()) if html_path is not None else None
        return md, page


def _inline(text: str) -> str:
    """``text`` escaped for HTML, with `code` spans as ``<code>``."""
    return _CODE.sub(lambda m: f"<code>{m.group(1)}</code>", html.escape(str(text)))


def _plain(text: str) -> str:
    """``text`` escaped for an HTML attribute or title, `code` marks dropped."""
    return html.escape(_CODE.sub(r"\1", str(text)))


def _missing(value: Any) -> bool:
    """None, NaN or pandas' NA: shown as an en dash."""
    import pandas as pd

    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _display_frame(frame: Any) -> Any:
    """``frame`` as shown: transposed when it is wide and short (one row per column: a 28-column table of a
    few layers fits the page), headers with spaces for underscores."""
    import pandas as pd

    if len(frame.columns) > WIDE_COLUMNS and len(frame) <= WIDE_ROWS:
        # the leading columns that name the rows (part, layer ...): the fewest whose values are distinct
        keys = next((list(frame.columns[:n]) for n in range(1, 4)
                     if not frame.duplicated(subset=list(frame.columns[:n])).any()), [])
        heads = [" ".join(f"{k} {v}" for k, v in zip(keys, row)) if keys else f"row {i}"
                 for i, row in enumerate(frame[keys].itertuples(index=False) if keys else range(len(frame)))]
        rest = frame.drop(columns=keys)
        shown = pd.DataFrame([[str(c).replace("_", " ")] + list(rest[c]) for c in rest.columns],
                             columns=[""] + [h.replace("_", " ") for h in heads])
        return shown.rename(columns=lambda c: str(c).replace("_", " "))
    return frame.rename(columns=lambda c: str(c).replace("_", " "))


def html_table(frame: Any, fmt: str = ".4g") -> str:
    """An HTML table of a DataFrame: numbers right-aligned (class ``num``), text left-aligned, missing values
    as an en dash, headers with spaces for underscores; wide short tables transposed."""
    import numbers

    shown = _display_frame(frame)

    def cell(value: Any) -> tuple[str, bool]:
        if isinstance(value, (list, tuple)):
            return ", ".join(cell(v)[0] for v in value), False
        if _missing(value):
            return "\u2013", True
        if isinstance(value, bool):
            return str(value), False
        if isinstance(value, numbers.Integral):
            return str(value), True
        if isinstance(value, numbers.Real):
            return format(float(value), fmt), True
        return _inline(str(value)), False

    rows = [[cell(v) for v in row] for row in shown.itertuples(index=False)]
    numeric = [bool(rows) and all(r[j][1] for r in rows) for j in range(len(shown.columns))]
    head = "".join(f"<th{' class=num' if numeric[j] else ''}>{_inline(str(c))}</th>"
                   for j, c in enumerate(shown.columns))
    body = "".join("<tr>" + "".join(f"<td{' class=num' if r[j][1] else ''}>{r[j][0]}</td>" for j in range(len(r)))
                   + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def _markdown_table(frame: Any, fmt: str) -> str:
    def cell(v: Any) -> str:
        if _missing(v):
            return "\u2013"
        if isinstance(v, float):
            return format(v, fmt)
        return str(v).replace("|", "\\|")

    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])

__all__ = ["Report", "STYLE", "WIDE_COLUMNS", "WIDE_ROWS", "html_table"]
