"""A small report writer: headings, sentences, tables and figures, rendered to Markdown (figures
linked) and to a self-contained HTML page (figures embedded), both written atomically."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .io import write_text


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
        body = [f"<h1>{html.escape(self.title)}</h1>"]
        for item in self.items:
            if item.kind == "heading":
                level, text = item.payload
                body.append(f"<h{level}>{html.escape(text)}</h{level}>")
            elif item.kind == "text":
                body.append(f"<p>{html.escape(item.payload)}</p>")
            elif item.kind == "table":
                frame, fmt = item.payload
                table = frame.to_html(index=False, float_format=lambda v, fmt=fmt: format(v, fmt), border=0)
                body.append(f"<figure>{table}<figcaption>{html.escape(item.caption)}</figcaption></figure>")
            elif item.kind == "figure":
                if item.payload.is_file():
                    data = base64.b64encode(item.payload.read_bytes()).decode("ascii")
                    img = f'<img alt="{html.escape(item.caption)}" src="data:image/png;base64,{data}">'
                else:
                    img = f"<p>(figure {html.escape(str(item.payload))} was not produced)</p>"
                body.append(f"<figure>{img}<figcaption>{html.escape(item.caption)}</figcaption></figure>")
        style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.45}"
                 "table{border-collapse:collapse}td,th{padding:.2em .6em;border-bottom:1px solid #ddd;text-align:right}"
                 "img{max-width:100%}figcaption{font-style:italic;color:#444;margin:.3em 0 1.2em}")
        return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>"
                f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")

    def write(self, markdown_path: str | Path, html_path: str | Path | None = None) -> tuple[Path, Path | None]:
        """Write the Markdown file (and the HTML file when a path is given), atomically."""
        md = write_text(markdown_path, self.to_markdown())
        page = write_text(html_path, self.to_html()) if html_path is not None else None
        return md, page


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def _markdown_table(frame: Any, fmt: str) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return format(v, fmt)
        return str(v).replace("|", "\\|")

    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])

__all__ = ["Report"]
