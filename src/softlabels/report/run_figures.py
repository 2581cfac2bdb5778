"""Figures drawn from training runs: thesis figures 3.5, 3.6 and B.3 (config `figures:`). Each panel is one
metric on one evaluation set; a point is the mean over a row's runs with its 95% t-interval (as a table cell,
`softlabels.report.tables`), against the figure's x: annotation cost M · t_per (3.5), annotators per image M (B.3)
or soft-labelled training images N' (3.6). The per-label time t_per is `annotation_time.cifar10h_s` or
`annotation_time.cifar10s_s`. Figures drawn from the human data alone are in `softlabels.report.data_figures`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from softlabels.arguments import UserError, add_config_arguments, config_from_args
from softlabels.data.io import save_figure, write_text
from softlabels.numerics import mean_ci
from softlabels.report.tables import long_metrics, metrics_paths, read_metrics
from softlabels.vocabulary import EVAL_SETS, RUN_FIGURES, metric_title, metrics_on

#: The metrics plotted, one column of panels each.
FIGURE_METRICS = metrics_on("*", plotted=True)


def run_figure_data(name: str, config: Mapping, runs: Sequence[Mapping]) -> pd.DataFrame:
    """Per (eval set, scheme, metric): mean, ci, n_runs, source (cifar10h | cifar10s), M, cost_s, n_soft."""
    fig = config["figures"][name]
    annotation_time = config["annotation_time"]
    data = long_metrics([r for r in runs if r["scheme"] in fig["rows"]], fig["eval_sets"])
    out = []
    for row in fig["rows"]:
        scheme = config["schemes"][row]
        row_runs = [r for r in runs if r["scheme"] == row]
        M = scheme.get("M", "all")
        if M == "all":
            recorded = [r.get("train", {}).get("annotators_per_image") for r in row_runs]
            recorded = [v for v in recorded if v is not None]
            M = float(np.mean(recorded)) if recorded else float("nan")
        t_per = annotation_time["cifar10h_s"] if scheme["labels"] == "cifar10h" else annotation_time["cifar10s_s"]
        for eval_set in fig["eval_sets"]:
            for metric in FIGURE_METRICS:
                cell = data[(data["eval_set"] == eval_set) & (data["scheme"] == row) & (data["metric"] == metric)]
                mean, ci = mean_ci(cell["value"].tolist())
                out.append(
                    {"figure": name, "eval_set": eval_set, "row": row, "source": scheme["labels"], "metric": metric,
                     "mean": mean, "ci": ci, "n_runs": int(len(cell)), "M": float(M), "cost_s": float(M) * t_per,
                     "n_soft": float(scheme.get("n_soft", np.nan))}
                )  # fmt: skip
    return pd.DataFrame.from_records(out)


def plot_run_figure(name: str, frame: pd.DataFrame, png: str | Path, pdf: str | Path) -> None:
    """Rows = evaluation sets, columns = CE / calibration / FGSM; x = the figure's axis; bars = 95% CI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    x, x_title = RUN_FIGURES[name]
    sns.set_theme(style="whitegrid", context="paper")
    palette = {"cifar10h": "tab:red", "cifar10s": "tab:blue"}
    titles = {"cifar10h": "CIFAR-10H labels", "cifar10s": "CIFAR-10S labels (T2 Clamp)"}
    eval_sets = list(dict.fromkeys(frame["eval_set"]))
    fig, axes = plt.subplots(len(eval_sets), len(FIGURE_METRICS), figsize=(4 * len(FIGURE_METRICS), 3.2 * len(eval_sets)), squeeze=False)
    for i, eval_set in enumerate(eval_sets):
        for j, metric in enumerate(FIGURE_METRICS):
            ax = axes[i][j]
            cells = frame[(frame["eval_set"] == eval_set) & (frame["metric"] == metric)]
            for source, points in cells.groupby("source", sort=False):
                points = points.sort_values(x)
                ax.errorbar(
                    points[x], points["mean"], yerr=points["ci"].fillna(0.0), fmt="o-", capsize=3,
                    color=palette.get(source), label=titles.get(source, source),
                )  # fmt: skip
            if x in ("cost_s", "M"):
                ax.set_xscale("log")
            ax.set_xlabel(x_title)
            ax.set_ylabel(metric_title(metric))
            ax.set_title(f"{metric_title(metric)} on {EVAL_SETS.get(eval_set, eval_set)}")
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="upper center", ncol=len(handles), frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    for path in (png, pdf):
        save_figure(fig, path)
    plt.close(fig)


def _cmd_figure(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    if args.name not in RUN_FIGURES or args.name not in config.get("figures", {}):
        raise UserError(f"figure '{args.name}' is not one of {', '.join(sorted(RUN_FIGURES))} defined under 'figures'")
    try:
        runs = read_metrics(metrics_paths(args))
    except ValueError as exc:
        raise UserError(str(exc)) from None
    frame = run_figure_data(args.name, config, runs)
    out_png = Path(args.out or f"results/figures/{args.name}.png")
    plot_run_figure(args.name, frame, out_png, out_png.with_suffix(".pdf"))
    write_text(out_png.with_suffix(".csv"), frame.to_csv(index=False))
    return 0


def register_run_figures(sub) -> None:
    """The `run-figure` subcommand (called by softlabels.report.cli.register)."""
    p = sub.add_parser("run-figure", help="plot a figure from training runs (thesis figs 3.5, 3.6, B.3)",
                       description="Plot figure 3.5, 3.6 or B.3 from run metrics: PNG, and PDF + CSV of the "
                       "plotted values beside it.")  # fmt: skip
    p.add_argument("name", choices=sorted(RUN_FIGURES))
    p.add_argument("--metrics", nargs="+", required=True, help="metrics.json files of the runs")
    p.add_argument("--out", default=None, help="output .png (default results/figures/<name>.png)")
    add_config_arguments(p)
    p.set_defaults(func=_cmd_figure)
