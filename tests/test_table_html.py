"""The HTML renderings that carry the result tables into the Snakemake report."""

from softlabels.cli import main
from softlabels.report.html import markdown_to_html

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
    assert "<th>CE (thesis)</th>" in out
    assert "<td>Hard labels (<code>hard</code>)</td><td>1.613 ± 0.136</td><td>2.026 ± 0.180</td><td>2</td>" in out
    assert "---" not in out  # the separator row is not a data row
    assert out.count("<tr>") == 3  # header + two rows
    assert "<script>" not in out and "&lt;script&gt;" in out  # cell text is escaped
    assert "seeds 0|1" in out  # a pipe inside a paragraph stays text


def test_csv_html_command(tmp_path):
    csv = tmp_path / "summary.csv"
    csv.write_text("statistic,reproduced,thesis\nparticipants,248,248\nshare,0.7715,\n")
    out = tmp_path / "summary.html"
    assert main(["csv-html", str(csv), "--out", str(out)]) == 0
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<td>participants</td>" in page and "<td>0.7715</td>" in page
