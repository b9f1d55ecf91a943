"""HTML pages (plain, self-contained apart from the PNGs they show beside them)."""
from __future__ import annotations

import html
from pathlib import Path

from hwsearch.io import write_text


def html_page(title: str, text_table: str, images: list[Path], notes: list[str], out: Path) -> Path:
    body = "".join(f'<p><img src="{html.escape(p.name)}" alt="{html.escape(p.stem)}"></p>' for p in images)
    notes_html = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    write_text(out, f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
               f"<body><h1>{html.escape(title)}</h1><pre>{html.escape(text_table)}</pre><ul>{notes_html}</ul>"
               f"{body}</body></html>\n")
    return out
