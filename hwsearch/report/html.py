"""HTML pages that stand alone: images inline as ``data:`` PNGs, no scripts, no network, so a page
opens from file:// and can be mailed or attached as one file."""
from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hwsearch.io import write_text

STYLE = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:1.5em auto;padding:0 1em;color:#222}"
         "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
         "th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}"
         "pre{background:#f6f6f6;padding:.6em;overflow-x:auto;white-space:pre-wrap}img{max-width:100%}"
         "h2{margin-top:1.6em;border-bottom:1px solid #ddd}.note{color:#555;font-size:.9em}")


def escape(value: Any) -> str:
    return html.escape(str(value))


def png_img(png: bytes, alt: str) -> str:
    """An ``<img>`` carrying the PNG itself."""
    data = base64.b64encode(png).decode("ascii")
    return f'<p><img src="data:image/png;base64,{data}" alt="{escape(alt)}"></p>'


def table_html(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def note(text: str) -> str:
    return f'<p class="note">{escape(text)}</p>'


def link(href: str, text: str) -> str:
    """A relative link (pages link only to pages beside or below them)."""
    return f'<a href="{escape(href)}">{escape(text)}</a>'


def write_page(out: Path, title: str, sections: Sequence[tuple[str, str]]) -> Path:
    """``sections``: (heading, HTML body) in order; written atomically."""
    body = "".join(f"<h2>{escape(heading)}</h2>{content}" for heading, content in sections)
    write_text(out, f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
                    f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>{body}</body></html>\n")
    return out


def html_page(title: str, text_table: str, images: list[Path], notes: list[str], out: Path,
              links: Sequence[tuple[str, str]] = ()) -> Path:
    """A page of a text table, notes, PNG files (inlined) and relative links ``(href, text)``."""
    sections = [("summary", f"<pre>{escape(text_table)}</pre>" + "".join(note(n) for n in notes))]
    sections += [(p.stem, png_img(p.read_bytes(), p.stem)) for p in images]
    if links:
        sections.append(("schedules", "<ul>" + "".join(f"<li>{link(h, t)}</li>" for h, t in links) + "</ul>"))
    return write_page(out, title, sections)
