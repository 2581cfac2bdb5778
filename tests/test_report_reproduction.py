"""The reproduction summary: cells inside the thesis interval, distances of the others in units of it, one
reproduced-vs-thesis figure per metric, and a plain statement about approximate inputs."""

from __future__ import annotations

import math

import pandas as pd
import pytest

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
        ("corruption", "ch5_mixup_hard", "mean", 1.5, 0.1, 1.0, 0.1),  # d = 5: outside
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
