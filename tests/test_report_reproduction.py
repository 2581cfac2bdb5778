"""The reproduction summary: cells inside the thesis interval, distances of the others in units of it, one
reproduced-vs-thesis figure per metric, and a plain statement about approximate inputs."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

from conftest import compact_markdown as compact
from softlabels.cli import main
from softlabels.report import reproduction as R


def table_csv(path, name, cells, approximate="cifar10", scale="paper"):
    """A result table CSV with the columns the summary reads: (eval_set, row, metric, mean, ci, thesis, thesis_ci)."""
    frame = pd.DataFrame(cells, columns=["eval_set", "row", "metric", "mean", "ci", "thesis_value", "thesis_ci"])
    frame.insert(0, "table", name)
    frame["scale"] = scale
    frame["approximate_inputs"] = approximate
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def inputs(tmp_path):
    t1 = table_csv(tmp_path / "table3_1.csv", "table3_1", [
        ("cifar10h", "hard", "ce", 2.0, 0.1, 2.026, 0.18),        # d = 0.026/0.18 = 0.144: inside
        ("cifar10h", "hard", "calibration", 0.30, 0.01, 0.277, 0.01),  # d = 2.3: outside
        ("cifar10h", "hard", "fgsm", 20.0, 1.0, 15.455, 7.5),     # d = 0.606: inside
        ("cifar10h", "hard", "accuracy", 0.9, 0.01, float("nan"), float("nan")),  # no thesis value: left out
    ])  # fmt: skip
    t5 = table_csv(tmp_path / "table5_1.csv", "table5_1", [
        ("corruption", "ch5_mixup_hard", "corruption_ce", 1.5, 0.1, 1.0, 0.1),  # d = 5: outside
        ("cifar10h", "ch5_mixup_hard", "ce", 0.5, 0.1, 0.45, 0.0),     # no interval
    ], approximate="none")  # fmt: skip
    summary = tmp_path / "hmix_summary.csv"
    pd.DataFrame({"statistic": ["a", "b"], "reproduced": [1.0, 3.0], "reproduced_ci": [0.1, 0.1],
                  "thesis": [1.05, 1.0], "thesis_ci": [0.1, 1.0], "note": ["", ""]}).to_csv(summary, index=False)
    return t1, t5, summary


def test_counts_and_distances_by_hand(inputs):
    t1, t5, summary_csv = inputs
    summary, cells = R.reproduction([t1, t5], [summary_csv])
    rows = summary.set_index("table")
    assert rows.loc["table3_1", ["cells", "inside", "outside", "no_interval"]].tolist() == [3, 2, 1, 0]
    assert rows.loc["table3_1", "max_distance_outside"] == pytest.approx(0.023 / 0.01)
    assert rows.loc["table5_1", ["cells", "inside", "outside", "no_interval"]].tolist() == [2, 0, 1, 1]
    assert rows.loc["table5_1", "median_distance_outside"] == pytest.approx(5.0)
    assert rows.loc["hmix_summary", ["cells", "inside", "outside"]].tolist() == [2, 1, 1]
    assert rows.loc["hmix_summary", "max_distance_outside"] == pytest.approx(2.0)
    corruption = cells[cells["metric"] == "corruption_ce"]
    assert len(corruption) == 1 and corruption["distance"].iloc[0] == pytest.approx(5.0)
    assert math.isnan(cells[(cells.table == "table5_1") & (cells.metric == "ce")]["distance"].iloc[0])


def test_markdown_says_plainly_when_an_input_was_approximate(inputs):
    t1, t5, _ = inputs
    summary, _ = R.reproduction([t1, t5])
    md = R.reproduction_markdown(summary)
    assert "**Approximate inputs were used: cifar10 (in table3_1)" in md
    assert "2 of 4 cells with a thesis interval lie inside it" in md
    exact, _ = R.reproduction([t5])
    assert "Every recorded input was exact" in R.reproduction_markdown(exact)


def test_command_writes_summary_cells_and_one_figure_per_metric(inputs, tmp_path):
    t1, t5, summary_csv = inputs
    out = tmp_path / "out" / "reproduction.csv"
    args = ["reproduction", "--tables", str(t1), str(t5), "--summaries", str(summary_csv), "--out-csv", str(out),
            "--figures-dir", str(tmp_path / "fig")]
    assert main(args) == 0
    assert list(pd.read_csv(out)["table"]) == ["table3_1", "table5_1", "hmix_summary"]
    assert len(pd.read_csv(tmp_path / "fig" / "reproduction_cells.csv")) == 7
    assert out.with_suffix(".html").read_text().startswith("<!DOCTYPE html>")
    for metric in R.REPRODUCTION_METRICS:
        assert (tmp_path / "fig" / f"reproduction_{metric}.png").read_bytes()[:4] == b"\x89PNG"
    assert main([*args[:2], str(tmp_path / "missing.csv"), *args[4:]]) == 2


def test_markdown_in_full(inputs):
    """The whole page for the fixture's tables, written out by hand from the distances above."""
    t1, t5, summary_csv = inputs
    summary, _ = R.reproduction([t1, t5], [summary_csv])
    expected = "\n".join([
        "# How well did this run reproduce the thesis?",
        "",
        "**Approximate inputs were used: cifar10 (in table3_1). The data source marks these files as approximations "
        "of the originals, so those numbers can differ from the thesis for that reason alone.**",
        "",
        "Scale `paper`. 3 of 6 cells with a thesis interval lie inside it (50 %). Distance d = |ours − thesis| / "
        "thesis 95% half-width; inside when d ≤ 1. At scale smoke or quick the runs are far shorter than the "
        "thesis', so few cells are expected inside.",
        "",
        "| Table | Cells | Inside | Share inside | Outside | Median d outside | Max d outside | No interval | "
        "Approximate inputs |",
        "|---|---|---|---|---|---|---|---|---|",
        "| table3_1 | 3 | 2 | 0.67 | 1 | 2.30 | 2.30 | 0 | cifar10 |",
        "| table5_1 | 2 | 0 | 0.00 | 1 | 5.00 | 5.00 | 1 | none |",
        "| hmix_summary | 2 | 1 | 0.50 | 1 | 2.00 | 2.00 | 0 | see the data stage |",
        "",
    ])  # fmt: skip
    assert compact(R.reproduction_markdown(summary)) == expected


def test_markdown_names_unrecorded_provenance_and_empty_comparisons(tmp_path):
    """A table without a provenance record is named; with no interval anywhere the share is a dash."""
    a = table_csv(tmp_path / "a.csv", "table4_1", [("cifar10h", "x", "ce", 1.0, 0.1, 1.0, 0.0)], approximate="",
                  scale="smoke")  # fmt: skip
    b = table_csv(tmp_path / "b.csv", "table4_2", [("cifar10h", "x", "ce", 1.0, 0.1, 1.0, 0.0)], approximate="none",
                  scale="quick")  # fmt: skip
    summary, _ = R.reproduction([a, b])
    assert summary["approximate_inputs"].tolist() == ["unrecorded", "none"]
    assert math.isnan(summary["inside_share"].iloc[0]) and math.isnan(summary["median_distance_outside"].iloc[0])
    md = compact(R.reproduction_markdown(summary)).split("\n")
    assert md[2] == ("**Input provenance is unrecorded for table4_1: their runs do not say whether the inputs were "
                     "exact.**")  # fmt: skip
    assert md[4].startswith("Scale `smoke|quick`. 0 of 0 cells with a thesis interval lie inside it (– %).")
    assert md[8] == "| table4_1 | 1 | 0 |  | 0 |  |  | 1 | unrecorded |"
    assert R.approximate_keys(pd.DataFrame({"table": ["t", "u"], "approximate_inputs": [
        "cifar10h, glove|none", " glove ,unrecorded"]})) == {"cifar10h": ["t"], "glove": ["t", "u"]}  # fmt: skip


def test_figure_plots_reproduced_against_thesis(inputs, monkeypatch, tmp_path):
    """The CE figure: one error-bar series per table at (thesis, reproduced) with both intervals, the identity
    line over the values ± 5 % of their range, and the count of cells inside in the title."""
    t1, t5, _ = inputs
    _, cells = R.reproduction([t1, t5])
    saved = {}
    monkeypatch.setattr(R, "save_figure", lambda fig, path: saved.update(fig=fig, path=path))
    monkeypatch.setattr("matplotlib.pyplot.close", lambda fig: None)
    R.plot_metric(cells, "ce", tmp_path / "ce.png")
    fig = saved["fig"]
    (ax,) = fig.axes
    assert saved["path"] == tmp_path / "ce.png" and tuple(fig.get_size_inches()) == (5.2, 4.8)
    assert ax.get_title() == "CE: 1 of 1 cells inside the thesis interval"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("thesis CE (± 95% CI)", "reproduced CE (± 95% CI)")
    first, second = ax.containers
    assert first.get_label() == "table3_1" and second.get_label() == "table5_1"
    line = first.lines[0]
    assert (list(line.get_xdata()), list(line.get_ydata())) == ([2.026], [2.0])
    assert line.get_marker() == "o" and line.get_markersize() == 4 and line.get_color() == "C0"
    assert second.lines[0].get_color() == "C1"
    x_bar, y_bar = (np.asarray(c.get_segments()[0]) for c in first.lines[2])
    np.testing.assert_allclose(x_bar, [[2.026 - 0.18, 2.0], [2.026 + 0.18, 2.0]])
    np.testing.assert_allclose(y_bar, [[2.026, 1.9], [2.026, 2.1]])
    assert first.lines[1][0].get_markersize() == 4  # caps: capsize 2 (a cap marker is 2·capsize wide)
    identity = [l for l in ax.lines if l.get_label() == "ours = thesis"]
    assert len(identity) == 1 and identity[0].get_linestyle() == "--" and identity[0].get_color() == "gray"
    pad = 0.05 * (2.026 - 0.45)
    np.testing.assert_allclose(identity[0].get_xdata(), [0.45 - pad, 2.026 + pad])
    np.testing.assert_allclose(identity[0].get_ydata(), [0.45 - pad, 2.026 + pad])
    legend = ax.get_legend()
    assert legend is not None and legend._ncols == 2 and legend.get_texts()[0].get_fontsize() == 6
    R.plot_metric(cells[cells["metric"] != "corruption_ce"], "corruption_ce", tmp_path / "none.png")
    empty = saved["fig"].axes[0]
    assert empty.get_legend() is None and [t.get_text() for t in empty.texts] == ["no cell with a thesis value"]
    assert empty.get_title() == "Corruption CE: 0 of 0 cells inside the thesis interval"
    np.testing.assert_allclose(empty.lines[0].get_xdata(), [-0.05, 1.05])  # no values: the unit square


def test_command_outputs_in_full(inputs, tmp_path, capsys):
    """The summary CSV to 6 significant digits, the .md page, the .html page titled Reproduction with the
    rendered table, the same page on stdout, and a missing input named."""
    t1, t5, summary_csv = inputs
    out = tmp_path / "reproduction.csv"
    fig = tmp_path / "fig"
    assert main(["reproduction", "--tables", str(t1), str(t5), "--summaries", str(summary_csv), "--out-csv", str(out),
                 "--figures-dir", str(fig)]) == 0  # fmt: skip
    lines = out.read_text().splitlines()
    assert lines[0] == ",".join(R.REPRODUCTION_COLUMNS)
    assert lines[1] == "table3_1,table,3,2,0.666667,1,2.3,2.3,0,paper,cifar10"
    cells = (fig / "reproduction_cells.csv").read_text().splitlines()
    assert cells[1] == "table3_1,cifar10h,hard,ce,2,0.1,2.026,0.18,0.144444,True"
    summary, _ = R.reproduction([t1, t5], [summary_csv])
    markdown = R.reproduction_markdown(summary)
    assert out.with_suffix(".md").read_text() == markdown
    page = out.with_suffix(".html").read_text()
    assert "<title>Reproduction</title>" in page and re.search(r"<td[^>]*>table3_1</td>", page)
    assert capsys.readouterr().out == markdown + "\n"
    assert main(["reproduction", "--tables", str(tmp_path / "gone.csv"), "--out-csv", str(out), "--figures-dir",
                 str(fig)]) == 2  # fmt: skip
    assert f"missing input file(s): {tmp_path / 'gone.csv'}" in capsys.readouterr().err


def test_only_complete_cells_are_compared(tmp_path):
    """A table cell needs both values; a summary statistic needs both values and has no eval set. A table
    written by an earlier release names corruption CE `mean` on eval set corruption: only that cell is renamed
    `corruption_ce`."""
    t = table_csv(tmp_path / "t.csv", "table5_1", [
        ("corruption", "r", "mean", 1.0, 0.1, 1.0, 0.1),
        ("corruption", "r", "gaussian_noise", 1.0, 0.1, 1.0, 0.1),
        ("cifar10h", "r", "mean", 1.0, 0.1, 1.0, 0.1),
        ("cifar10h", "r", "ce", float("nan"), 0.1, 1.0, 0.1),
    ])  # fmt: skip
    s = tmp_path / "s.csv"
    pd.DataFrame({"statistic": ["a", "b", "c"], "reproduced": [1.0, float("nan"), 2.0], "reproduced_ci": [0.1] * 3,
                  "thesis": [1.0, 1.0, float("nan")], "thesis_ci": [0.1] * 3}).to_csv(s, index=False)  # fmt: skip
    _, cells = R.reproduction([t], [s])
    assert cells["metric"].tolist() == ["corruption_ce", "gaussian_noise", "mean", "a"]
    assert cells["eval_set"].tolist() == ["corruption", "corruption", "cifar10h", ""]


def test_command_help_and_defaults(tmp_path, capsys):
    """`softlabels reproduction --help` describes every option; --tables and --summaries default to none, the
    two outputs are required."""
    with pytest.raises(SystemExit) as stop:
        main(["reproduction", "--help"])
    assert stop.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for phrase in ("Summarise every result table and dataset summary against the thesis: cells inside the thesis "
                   "interval, distances of the others, one plot per metric.",
                   "--tables [TABLES ...] result table CSVs (results/tables/<table>.csv)",
                   "--summaries [SUMMARIES ...] dataset summary CSVs (cifar10s_summary.csv, ...)",
                   "--out-csv OUT_CSV summary CSV; .md and .html are written beside it",
                   "--figures-dir FIGURES_DIR folder of reproduction_<metric>.png and reproduction_cells.csv"):
        assert phrase in text, phrase
    assert main(["reproduction", "--out-csv", str(tmp_path / "r.csv"), "--figures-dir", str(tmp_path)]) == 0
    assert (tmp_path / "r.csv").read_text().splitlines() == [",".join(R.REPRODUCTION_COLUMNS)]
    assert "Scale `unrecorded`. 0 of 0 cells" in capsys.readouterr().out
    for missing in ("--out-csv", "--figures-dir"):
        args = ["reproduction", "--out-csv", "x.csv", "--figures-dir", "f"]
        del args[args.index(missing):args.index(missing) + 2]
        with pytest.raises(SystemExit):
            main(args)
        assert f"the following arguments are required: {missing}" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--help"])
    top = " ".join(capsys.readouterr().out.split()) + " "
    assert " reproduction how many reproduced values lie inside the thesis' intervals " in top


def test_summary_rows_of_dataset_summaries_and_odd_tables(inputs, tmp_path):
    """A dataset summary is its own row (kind, no scale, provenance from the data stage); an empty table CSV is
    named by its file; a table without a provenance column is `unrecorded`; cells are renumbered 0..n−1."""
    t1, _, summary_csv = inputs
    empty = tmp_path / "table4_9.csv"
    pd.DataFrame(columns=["table", "eval_set", "row", "metric", "mean", "ci", "thesis_value", "thesis_ci",
                          "scale"]).to_csv(empty, index=False)  # fmt: skip
    bare = table_csv(tmp_path / "bare.csv", "table4_1", [("cifar10h", "x", "ce", 1.0, 0.1, 1.1, 0.2)])
    pd.read_csv(bare).drop(columns=["approximate_inputs"]).to_csv(bare, index=False)
    summary, cells = R.reproduction([t1, empty, bare], [summary_csv])
    rows = summary.set_index("table")
    assert rows.loc["hmix_summary", ["kind", "scale", "approximate_inputs"]].tolist() == [
        "dataset summary", "", "see the data stage"]  # fmt: skip
    assert rows.loc["table4_9", ["kind", "cells"]].tolist() == ["table", 0]
    assert rows.loc["table4_1", "approximate_inputs"] == "unrecorded"
    assert set(cells[cells["eval_set"] == ""]["table"]) == {"hmix_summary"}
    assert list(cells.index) == list(range(len(cells)))


def test_markdown_branches_in_full(tmp_path):
    """Two approximate keys over two tables, and the exact-inputs page; 1 of 3 inside is 33 %."""
    a = table_csv(tmp_path / "a.csv", "table3_1", [("cifar10h", "x", "ce", 1.0, 0.1, 1.0, 0.1),
                                                   ("cifar10h", "y", "ce", 5.0, 0.1, 1.0, 0.1)],
                  approximate="cifar10h,glove")  # fmt: skip
    b = table_csv(tmp_path / "b.csv", "table3_2", [("cifar10h", "x", "ce", 5.0, 0.1, 1.0, 0.1)],
                  approximate="glove")  # fmt: skip
    md = R.reproduction_markdown(R.reproduction([a, b])[0]).split("\n")
    assert md[2] == ("**Approximate inputs were used: cifar10h (in table3_1); glove (in table3_1, table3_2). The data "
                     "source marks these files as approximations of the originals, so those numbers can differ from "
                     "the thesis for that reason alone.**")  # fmt: skip
    assert md[4].startswith("Scale `paper`. 1 of 3 cells with a thesis interval lie inside it (33 %).")
    exact = R.reproduction_markdown(R.reproduction([table_csv(tmp_path / "c.csv", "table3_3", [
        ("cifar10h", "x", "ce", 1.0, 0.1, 1.0, 0.1)], approximate="none")])[0]).split("\n")  # fmt: skip
    assert exact[:4] == ["# How well did this run reproduce the thesis?", "",
                         "Every recorded input was exact (no file marked as an approximation).", ""]  # fmt: skip
    unrecorded = R.reproduction_markdown(R.reproduction([table_csv(tmp_path / "d.csv", "table3_4", [
        ("cifar10h", "x", "ce", 1.0, 0.1, 1.0, 0.1)], approximate="")])[0]).split("\n")  # fmt: skip
    assert unrecorded[3] == ""


def test_figure_of_an_unnamed_metric_and_the_empty_figure(inputs, monkeypatch, tmp_path):
    t1, _, _ = inputs
    _, cells = R.reproduction([t1])
    saved = {}
    monkeypatch.setattr(R, "save_figure", lambda fig, path: saved.update(fig=fig))
    monkeypatch.setattr("matplotlib.pyplot.close", lambda fig: None)
    cells.loc[cells["metric"] == "fgsm", "thesis_ci"] = float("nan")  # a missing interval is drawn as none
    R.plot_metric(cells, "fgsm", tmp_path / "f.png")
    ax = saved["fig"].axes[0]
    np.testing.assert_allclose(np.asarray(ax.containers[0].lines[2][0].get_segments()[0]), [[15.455, 20.0]] * 2)
    cells["metric"] = cells["metric"].replace({"ce": "accuracy"})
    R.plot_metric(cells, "accuracy", tmp_path / "a.png")
    assert saved["fig"].axes[0].get_title().startswith("accuracy: 1 of 1 cells")
    R.plot_metric(cells.iloc[0:0], "ce", tmp_path / "e.png")
    empty = saved["fig"].axes[0]
    (text,) = empty.texts
    assert text.get_position() == (0.5, 0.5) and text.get_transform() == empty.transAxes
    assert (text.get_ha(), text.get_va()) == ("center", "center")


def test_missing_inputs_are_all_named(tmp_path, capsys):
    gone = [str(tmp_path / "a.csv"), str(tmp_path / "b.csv")]
    assert main(["reproduction", "--tables", *gone, "--out-csv", str(tmp_path / "r.csv"), "--figures-dir",
                 str(tmp_path)]) == 2  # fmt: skip
    assert f"missing input file(s): {gone[0]}, {gone[1]}" in capsys.readouterr().err


def test_a_cell_exactly_one_interval_away_is_inside(tmp_path):
    t = table_csv(tmp_path / "t.csv", "table3_1", [("cifar10h", "x", "ce", 1.5, 0.1, 1.0, 0.5)])  # d = 0.5/0.5
    _, cells = R.reproduction([t])
    assert cells["distance"].tolist() == [1.0] and cells["inside"].tolist() == [True]
