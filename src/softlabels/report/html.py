"""Self-contained HTML renderings of the result tables, for the Snakemake report (which shows HTML items
inline, but offers CSV and Markdown only as downloads)."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pandas as pd

STYLE = """
body { font-family: system-ui, sans-serif; font-size: 14px; margin: 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f0f0f0; }
code { background: #f4f4f4; padding: 0 3px; }
"""


def _inline(text: str) -> str:
    """Escape, then render **bold** and `code` spans."""
    out = html.escape(text)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", out)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def markdown_to_html(text: str) -> str:
    """HTML body of the restricted Markdown that `table_markdown` and `collect-tables` write: `#`/`##`
    headings, paragraphs with bold and code spans, and pipe tables (header row, separator row, rows)."""
    body, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("|"):
            block = []
            while i < len(lines) and lines[i].startswith("|"):
                block.append(lines[i])
                i += 1
            rows = [r for r in block if not re.fullmatch(r"\|?(\s*:?-+:?\s*\|)+\s*:?-*:?\s*", r)]
            head, *rest = rows
            body.append("<table><thead><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in _cells(head)) + "</tr></thead>")
            body.append("<tbody>" + "".join(
                "<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in _cells(r)) + "</tr>" for r in rest
            ) + "</tbody></table>")  # fmt: skip
            continue
        heading = re.match(r"(#{1,3}) (.*)", line)
        if heading:
            level = len(heading.group(1))
            body.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif line.strip():
            body.append(f"<p>{_inline(line)}</p>")
        i += 1
    return "\n".join(body)


def html_page(title: str, body: str) -> str:
    return (
        f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


def csv_to_html_page(path: str | Path, title: str) -> str:
    """A CSV file as an HTML table page (empty cells shown empty)."""
    frame = pd.read_csv(path, keep_default_na=False)
    return html_page(title, f"<h2>{html.escape(title)}</h2>\n" + frame.to_html(index=False, border=0, escape=True))
