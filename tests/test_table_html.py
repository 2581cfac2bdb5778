"""The HTML renderings that carry the result tables into the Snakemake report."""

import re

import pandas as pd

from softlabels.cli import main
from softlabels.report.html import markdown_table, markdown_to_html


def rows_of(html: str) -> list[list[str]]:
    """The cell texts of every table row of `html`, header row included."""
    return [re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, flags=re.S)
            for row in re.findall(r"<tr>(.*?)</tr>", html, flags=re.S)]

MARKDOWN = """## table3_1

Scale `quick`; seeds 0|1. Cells: mean ± 95% CI.

**CIFAR-10H hold-out** (table table3_1)

| Labels | CE | CE (thesis) | runs |
|---|---|---|---|
| Hard labels (`hard`) | 1.613 ± 0.136 | 2.026 ± 0.180 | 2 |
| <script>x</script> | 1 | 2 | 1 |
"""


def test_markdown_tables_become_html_tables():
    out = markdown_to_html(MARKDOWN)
    assert "<h2>table3_1</h2>" in out
    assert "<strong>CIFAR-10H hold-out</strong>" in out
    assert rows_of(out) == [  # header + two rows; the separator row is not a data row
        ["Labels", "CE", "CE (thesis)", "runs"],
        ["Hard labels (<code>hard</code>)", "1.613 ± 0.136", "2.026 ± 0.180", "2"],
        ["&lt;script&gt;x&lt;/script&gt;", "1", "2", "1"],
    ]
    assert "---" not in out
    assert "<script>" not in out and "&lt;script&gt;" in out  # cell text is escaped
    assert "seeds 0|1" in out  # a pipe inside a paragraph stays text


def test_pandas_markdown_table_round_trips_to_html():
    """A frame written by `markdown_table` (pandas to_markdown) renders to the same cells, as written: a pipe in
    a cell stays inside it, number-like text keeps its digits."""
    frame = pd.DataFrame({"Labels": ["Hard labels (`hard`)", "seeds 0|1"], "CE": ["1.610 ± 0.136", "2.0"],
                          "runs": ["2", "1 (diverged: resnet34a seed 0)"]})  # fmt: skip
    text = markdown_table(frame)
    assert text.splitlines()[0].startswith("| Labels") and "seeds 0\\|1" in text
    assert rows_of(markdown_to_html(text)) == [
        ["Labels", "CE", "runs"],
        ["Hard labels (<code>hard</code>)", "1.610 ± 0.136", "2"],
        ["seeds 0|1", "2.0", "1 (diverged: resnet34a seed 0)"],
    ]


def test_csv_html_command(tmp_path):
    csv = tmp_path / "summary.csv"
    csv.write_text("statistic,reproduced,thesis\nparticipants,248,248\nshare,0.7715,\n")
    out = tmp_path / "summary.html"
    assert main(["csv-html", str(csv), "--out", str(out)]) == 0
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<td>participants</td>" in page and "<td>0.7715</td>" in page
