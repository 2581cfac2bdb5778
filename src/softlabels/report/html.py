"""Markdown and self-contained HTML renderings of the result tables, for the Snakemake report (which shows HTML
items inline, but offers CSV and Markdown only as downloads). Tables are pandas frames written by
`to_markdown`; a document's HTML is its Markdown rendered by markdown-it-py, so both always agree."""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd
from markdown_it import MarkdownIt

STYLE = """
body { font-family: system-ui, sans-serif; font-size: 14px; margin: 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f0f0f0; }
code { background: #f4f4f4; padding: 0 3px; }
"""


def markdown_table(frame: pd.DataFrame) -> str:
    """A pipe table of `frame` (no index) through pandas' `to_markdown` (tabulate); cells are written as given
    (no number parsing), with `|` escaped so a cell never splits."""
    cells = frame.astype(str).apply(lambda column: column.str.replace("|", r"\|", regex=False))
    return cells.to_markdown(index=False, disable_numparse=True)


def markdown_to_html(text: str) -> str:
    """HTML body of a Markdown document (headings, paragraphs with bold and code spans, pipe tables), by
    markdown-it-py (CommonMark with the GFM table rule); raw HTML in the text is escaped, not passed on."""
    return MarkdownIt("commonmark", {"html": False}).enable("table").render(text)


def html_page(title: str, body: str) -> str:
    return (
        f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


def csv_to_html_page(path: str | Path, title: str) -> str:
    """A CSV file as an HTML table page (empty cells shown empty)."""
    frame = pd.read_csv(path, keep_default_na=False)
    return html_page(title, f"<h2>{html.escape(title)}</h2>\n" + frame.to_html(index=False, border=0, escape=True))
