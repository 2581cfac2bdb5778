"""How well did the run reproduce the thesis? One summary over every result table and dataset summary.

For each cell with a thesis value v_t ± c_t (the thesis' 95% interval half-width) and a reproduced value v_r,

    d = |v_r − v_t| / c_t          (the distance in units of the thesis interval; inside when d ≤ 1),

and per table: the cells compared, how many lie inside the thesis interval, and for the others the median and
largest d. Cells whose thesis value has no interval (c_t missing or 0) are counted apart ("no interval"). One
figure per metric plots reproduced against thesis values (identity line; the thesis interval as horizontal,
ours as vertical error bars). The summary also states, from the tables' provenance columns, whether any input
was an approximation of the original data.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from softlabels.arguments import UserError
from softlabels.data.io import save_figure, write_csv, write_text
from softlabels.report.html import html_page, markdown_table, markdown_to_html
from softlabels.vocabulary import FORMER_METRIC_NAMES, METRICS, metrics_on

#: Metrics with one reproduced-vs-thesis figure each (those the thesis reports: `compared` in the vocabulary).
REPRODUCTION_METRICS = {name: METRICS[name].title for name in metrics_on("*", compared=True)}
#: Columns of results/tables/reproduction.csv.
REPRODUCTION_COLUMNS = ("table", "kind", "cells", "inside", "inside_share", "outside", "median_distance_outside",
                        "max_distance_outside", "no_interval", "scale", "approximate_inputs")  # fmt: skip
#: Columns of the per-cell comparison (results/figures/reproduction_cells.csv: the plotted values).
CELL_COLUMNS = ("table", "eval_set", "row", "metric", "reproduced", "reproduced_ci", "thesis", "thesis_ci",
                "distance", "inside")  # fmt: skip


def table_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """Comparable cells of a result table CSV (softlabels.report.tables), per-label times left out (they are not
    results); a table written by an earlier release has its metric names renamed (`FORMER_METRIC_NAMES`)."""
    cells = frame[frame["thesis_value"].notna() & frame["mean"].notna()].copy()
    for (eval_set, former), name in FORMER_METRIC_NAMES.items():
        cells.loc[(cells["eval_set"] == eval_set) & (cells["metric"] == former), "metric"] = name
    return pd.DataFrame({
        "table": cells["table"], "eval_set": cells["eval_set"], "row": cells["row"], "metric": cells["metric"],
        "reproduced": cells["mean"], "reproduced_ci": cells["ci"], "thesis": cells["thesis_value"],
        "thesis_ci": cells["thesis_ci"],
    })  # fmt: skip


def summary_cells(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """Comparable statistics of a dataset summary CSV (softlabels.report.summaries)."""
    cells = frame[frame["thesis"].notna() & frame["reproduced"].notna()]
    return pd.DataFrame({
        "table": name, "eval_set": "", "row": cells["statistic"], "metric": cells["statistic"],
        "reproduced": cells["reproduced"], "reproduced_ci": cells["reproduced_ci"], "thesis": cells["thesis"],
        "thesis_ci": cells["thesis_ci"],
    })  # fmt: skip


def with_distances(cells: pd.DataFrame) -> pd.DataFrame:
    """`cells` with d = |reproduced − thesis| / thesis_ci (NaN without an interval) and inside = d ≤ 1."""
    cells = cells.copy()
    ci = cells["thesis_ci"].astype(float)
    gap = (cells["reproduced"].astype(float) - cells["thesis"].astype(float)).abs()
    cells["distance"] = np.where(ci > 0, gap / ci.where(ci > 0, 1.0), np.nan)
    cells["inside"] = cells["distance"] <= 1.0
    return cells.reset_index(drop=True)[list(CELL_COLUMNS)]


def summarise(cells: pd.DataFrame, name: str, kind: str, scale: str, approximate: str) -> dict:
    with_ci = cells[cells["distance"].notna()]
    outside = with_ci[~with_ci["inside"]]
    n = len(with_ci)
    return {
        "table": name, "kind": kind, "cells": int(len(cells)), "inside": int(with_ci["inside"].sum()),
        "inside_share": float(with_ci["inside"].mean()) if n else math.nan, "outside": int(len(outside)),
        "median_distance_outside": float(outside["distance"].median()) if len(outside) else math.nan,
        "max_distance_outside": float(outside["distance"].max()) if len(outside) else math.nan,
        "no_interval": int(len(cells) - n), "scale": scale, "approximate_inputs": approximate,
    }  # fmt: skip


def _joined(values) -> str:
    return "|".join(dict.fromkeys(str(v) for v in values if isinstance(v, str) and v)) or "unrecorded"


def reproduction(tables: Sequence[str | Path], summaries: Sequence[str | Path] = ()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-table summary, per-cell comparison) of result table CSVs and dataset summary CSVs."""
    rows, all_cells = [], []
    for path in tables:
        frame = pd.read_csv(path, keep_default_na=False, na_values=[""])
        name = str(frame["table"].iloc[0]) if len(frame) else Path(path).stem
        cells = with_distances(table_cells(frame))
        approximate = _joined(frame.get("approximate_inputs", pd.Series(dtype=str)))
        rows.append(summarise(cells, name, "table", _joined(frame["scale"]), approximate))
        all_cells.append(cells)
    for path in summaries:
        frame = pd.read_csv(path)
        name = Path(path).stem
        cells = with_distances(summary_cells(frame, name))
        rows.append(summarise(cells, name, "dataset summary", "", "see the data stage"))
        all_cells.append(cells)
    cells = pd.concat(all_cells, ignore_index=True) if all_cells else pd.DataFrame(columns=list(CELL_COLUMNS))
    return pd.DataFrame.from_records(rows, columns=list(REPRODUCTION_COLUMNS)), cells


def approximate_keys(summary: pd.DataFrame) -> dict[str, list[str]]:
    """{approximate input key: tables computed from it}, from the tables' approximate_inputs column."""
    found: dict[str, list[str]] = {}
    for row in summary.itertuples():
        for value in str(row.approximate_inputs).split("|"):
            for key in value.split(","):
                key = key.strip()
                if key and key not in ("none", "unrecorded", "see the data stage"):
                    found.setdefault(key, []).append(row.table)
    return found


def _fmt(value, digits: int = 2) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def reproduction_markdown(summary: pd.DataFrame) -> str:
    tables = summary[summary["kind"] == "table"]
    compared = int(summary["cells"].sum() - summary["no_interval"].sum())
    inside = int(summary["inside"].sum())
    lines = ["# How well did this run reproduce the thesis?", ""]
    approx = approximate_keys(summary)
    unrecorded = [t for t, a in zip(tables["table"], tables["approximate_inputs"]) if "unrecorded" in str(a)]
    if approx:
        detail = "; ".join(f"{key} (in {', '.join(names)})" for key, names in approx.items())
        lines += [f"**Approximate inputs were used: {detail}. The data source marks these files as approximations "
                  "of the originals, so those numbers can differ from the thesis for that reason alone.**", ""]
    elif unrecorded:
        lines += [f"**Input provenance is unrecorded for {', '.join(unrecorded)}: their runs do not say whether "
                  "the inputs were exact.**", ""]
    else:
        lines += ["Every recorded input was exact (no file marked as an approximation).", ""]
    scale = _joined(tables["scale"]) if len(tables) else "unrecorded"
    lines += [f"Scale `{scale}`. {inside} of {compared} cells with a thesis interval lie inside it "
              f"({_fmt(100 * inside / compared, 0) if compared else '–'} %). Distance d = |ours − thesis| / thesis "
              "95% half-width; inside when d ≤ 1. At scale smoke or quick the runs are far shorter than the "
              "thesis', so few cells are expected inside.", ""]
    columns = {"table": "Table", "cells": "Cells", "inside": "Inside", "inside_share": "Share inside",
               "outside": "Outside", "median_distance_outside": "Median d outside",
               "max_distance_outside": "Max d outside", "no_interval": "No interval",
               "approximate_inputs": "Approximate inputs"}  # fmt: skip
    shown = summary[list(columns)].astype(object)
    for column in ("inside_share", "median_distance_outside", "max_distance_outside"):
        shown[column] = summary[column].map(_fmt)
    lines += [markdown_table(shown.rename(columns=columns)), ""]
    return "\n".join(lines)


def plot_metric(cells: pd.DataFrame, metric: str, path: str | Path) -> None:
    """Reproduced (y) against thesis (x) values of one metric, identity line, both intervals as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 4.8))
    points = cells[cells["metric"] == metric]
    markers = "osD^v<>PX*"  # with the 10 default colours: a distinct (colour, marker) per table
    for k, (table, group) in enumerate(points.groupby("table", sort=True)):
        ax.errorbar(group["thesis"], group["reproduced"], xerr=group["thesis_ci"].fillna(0.0),
                    yerr=group["reproduced_ci"].fillna(0.0), fmt=markers[(k // 10) % len(markers)], capsize=2,
                    markersize=4, color=f"C{k % 10}", label=table)
    values = pd.concat([points["thesis"], points["reproduced"]]).astype(float)
    low, high = (float(values.min()), float(values.max())) if len(values) else (0.0, 1.0)
    pad = 0.05 * (high - low or 1.0)
    ax.plot([low - pad, high + pad], [low - pad, high + pad], color="gray", linestyle="--", label="ours = thesis")
    title = REPRODUCTION_METRICS.get(metric, metric)
    inside = int(points["inside"].sum())
    ax.set(xlabel=f"thesis {title} (± 95% CI)", ylabel=f"reproduced {title} (± 95% CI)",
           title=f"{title}: {inside} of {int(points['distance'].notna().sum())} cells inside the thesis interval")
    if len(points):
        ax.legend(fontsize=6, ncol=2)
    else:
        ax.text(0.5, 0.5, "no cell with a thesis value", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def run_reproduction(args: argparse.Namespace) -> int:
    missing = [p for p in [*args.tables, *args.summaries] if not Path(p).exists()]
    if missing:
        raise UserError(f"missing input file(s): {', '.join(missing)}")
    summary, cells = reproduction(args.tables, args.summaries)
    markdown = reproduction_markdown(summary)
    out_csv = Path(args.out_csv)
    write_csv(out_csv, summary, float_format="%.6g")
    write_csv(Path(args.figures_dir) / "reproduction_cells.csv", cells, float_format="%.6g")
    write_text(out_csv.with_suffix(".md"), markdown)
    write_text(out_csv.with_suffix(".html"), html_page("Reproduction", markdown_to_html(markdown)))
    for metric in REPRODUCTION_METRICS:
        plot_metric(cells, metric, Path(args.figures_dir) / f"reproduction_{metric}.png")
    print(markdown)
    return 0


def register_reproduction(sub) -> None:
    p = sub.add_parser("reproduction", help="how many reproduced values lie inside the thesis' intervals",
                       description="Summarise every result table and dataset summary against the thesis: cells "
                       "inside the thesis interval, distances of the others, one plot per metric.")  # fmt: skip
    p.add_argument("--tables", nargs="*", default=[], help="result table CSVs (results/tables/<table>.csv)")
    p.add_argument("--summaries", nargs="*", default=[], help="dataset summary CSVs (cifar10s_summary.csv, ...)")
    p.add_argument("--out-csv", required=True, help="summary CSV; .md and .html are written beside it")
    p.add_argument("--figures-dir", required=True, help="folder of reproduction_<metric>.png and reproduction_cells.csv")
    p.set_defaults(func=run_reproduction)
