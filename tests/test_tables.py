"""Result tables and figures from run metrics (softlabels.report.tables, softlabels.report.run_figures), on fake metrics.json files."""

from __future__ import annotations

import json
import math
import pandas as pd
import pytest

from softlabels import config as cfg
from softlabels.cli import main
from softlabels.report import run_figures as RF
from softlabels.report import tables as T

# Hand computation for values (1, 2, 4): mean 7/3; s² = (16/9 + 1/9 + 25/9) / 2 = 7/3;
# t_{0.975, 2} = 4.302652729911275; ci = t · sqrt(7/3) / sqrt(3) = t · sqrt(7) / 3.
T_975_2 = 4.302652729911275
CI_124 = T_975_2 * math.sqrt(7.0) / 3.0


def fake_run(scheme, model, seed, ce, calibration=0.2, fgsm=9.0, accuracy=0.5, scale="paper", annotators=None):
    return {
        "format": 1, "scheme": scheme, "model": model, "seed": seed, "scale": scale,
        "spec": {"protocol": {"epochs": 65, "augmentation": "once"},
                 "labels": {"gamma": 0.1, "redistribution_path": "documented"}},
        "cifar10h": {"ce": ce, "calibration": calibration, "fgsm": fgsm, "accuracy": accuracy, "n": 3000},
        "cifar10s": {"ce": ce + 1, "calibration": calibration, "fgsm": fgsm, "accuracy": accuracy, "n": 100},
        "train": {"epochs": 65, "seconds": 1.0, "images_per_s": 1.0, "annotators_per_image": annotators},
    }  # fmt: skip


@pytest.fixture(scope="module")
def config():
    return cfg.load(None, {"scale": "paper"})


def test_mean_ci_matches_hand_computation():
    mean, ci = T.mean_ci([1.0, 2.0, 4.0])
    assert mean == pytest.approx(7 / 3)
    assert ci == pytest.approx(CI_124, rel=1e-9)
    assert T.mean_ci([3.0]) == (3.0, pytest.approx(float("nan"), nan_ok=True))
    assert all(math.isnan(x) for x in T.mean_ci([]))
    # two values: t_{0.975,1} = 12.706204736; s = |a-b|/sqrt(2); ci = t·s/sqrt(2) = t·|a-b|/2
    assert T.mean_ci([1.0, 2.0])[1] == pytest.approx(12.706204736174698 * 0.5)


def test_table_aggregates_runs_per_row_and_eval_set(config):
    runs = [fake_run("hard", m, s, ce) for (m, s), ce in zip([("resnet34a", 0), ("resnet50", 0), ("vgg11", 1)], [1, 2, 4])]
    runs += [fake_run("random", "resnet34a", 0, 5.0), fake_run("hard_not_in_table", "vgg11", 0, 99.0)]
    runs[-1]["scheme"] = "uniform_x"  # a run of another scheme is ignored
    thesis = pd.DataFrame(
        [["table3_1", "cifar10h", "hard", "ce", 2.026, 0.18]], columns=["table", "eval_set", "row", "metric", "value", "ci"]
    )
    frame = T.build_table("table3_1", config, runs, thesis)
    assert list(frame.columns) == list(T.TABLE_COLUMNS)
    cell = frame[(frame.row == "hard") & (frame.eval_set == "cifar10h") & (frame.metric == "ce")].iloc[0]
    assert cell["mean"] == pytest.approx(7 / 3) and cell["ci"] == pytest.approx(CI_124)
    assert cell["n_runs"] == 3 and cell["thesis_value"] == 2.026 and cell["thesis_ci"] == 0.18
    assert cell["models"] == "resnet34a|resnet50|vgg11" and cell["seeds"] == "0|1"
    assert (cell["epochs"], cell["gamma"], cell["redistribution_path"], cell["augmentation"]) == ("65", "0.1", "documented", "once")
    s_cell = frame[(frame.row == "hard") & (frame.eval_set == "cifar10s") & (frame.metric == "ce")].iloc[0]
    assert s_cell["mean"] == pytest.approx(7 / 3 + 1) and math.isnan(s_cell["thesis_value"])
    one = frame[(frame.row == "random") & (frame.metric == "ce") & (frame.eval_set == "cifar10h")].iloc[0]
    assert one["mean"] == 5.0 and math.isnan(one["ci"]) and one["n_runs"] == 1
    missing = frame[(frame.row == "cifar10s_agg") & (frame.metric == "ce")]
    assert (missing["n_runs"] == 0).all() and missing["mean"].isna().all()
    # every row × eval set × metric, in config order
    assert len(frame) == 5 * 2 * 4
    assert list(dict.fromkeys(frame["row"])) == config["tables"]["table3_1"]["rows"]
    assert list(dict.fromkeys(frame["metric"])) == ["ce", "calibration", "fgsm", "accuracy"]
    md = T.table_markdown(frame, "table3_1")
    assert "2.333 ± 3.795" in md and "2.026 ± 0.180" in md and "| Hard labels (`hard`)" in md


def test_table3_4_elicitation_time(config):
    runs = [fake_run(s, "resnet34a", 0, 1.0) for s in config["tables"]["table3_4"]["rows"]]
    thesis = pd.DataFrame([["table3_4", "", "t2_clamp_sep", "time_s", 32.0, float("nan")]],
                          columns=["table", "eval_set", "row", "metric", "value", "ci"])  # fmt: skip
    frame = T.build_table("table3_4", config, runs, thesis)
    times = frame.drop_duplicates("row").set_index("row")["time_per_label_s"].to_dict()
    assert times == pytest.approx({"t1_unif_sep": 12.8, "t1_clamp_sep": 19.2, "t2_unif_sep": 25.6, "t2_clamp_sep": 32.0})
    assert frame.drop_duplicates("row").set_index("row").loc["t2_clamp_sep", "thesis_time_s"] == 32.0
    assert "Time/label (s)" in T.table_markdown(frame)
    assert T.time_per_label(config["schemes"]["cifar10h_sep"], config["annotation_time"]) == 2.5


def test_row_labels(config):
    assert T.row_label(config["schemes"]["cifar10s_agg"]) == "CIFAR-10S (T2, Clamp) [agg, M=6]"
    assert T.row_label(config["schemes"]["cifar10h_n250"]) == "CIFAR-10H [sep, M=all, N'=250]"
    assert T.row_label(config["schemes"]["hard"]) == "Hard labels"


def test_figure_data_and_plot(config, tmp_path):
    runs = []
    for row in config["figures"]["fig3_5"]["rows"]:
        for seed, ce in enumerate([1.0, 2.0, 4.0]):
            runs.append(fake_run(row, "resnet34a", seed, ce, annotators=51.2 if row.endswith("m51") else None))
    frame = RF.run_figure_data("fig3_5", config, runs)
    point = frame[(frame.row == "cifar10s_sep_m3") & (frame.metric == "ce") & (frame.eval_set == "cifar10h")].iloc[0]
    assert point["cost_s"] == pytest.approx(3 * 32.0) and point["source"] == "cifar10s"
    assert point["mean"] == pytest.approx(7 / 3) and point["ci"] == pytest.approx(CI_124)
    all_h = frame[(frame.row == "cifar10h_sep_m51")].iloc[0]
    assert all_h["M"] == pytest.approx(51.2) and all_h["cost_s"] == pytest.approx(51.2 * 2.5)
    RF.plot_run_figure("fig3_5", frame, tmp_path / "f.png", tmp_path / "f.pdf")
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG" and (tmp_path / "f.pdf").read_bytes()[:4] == b"%PDF"


def test_table_command_writes_csv_and_md(config, tmp_path, capsys):
    paths = []
    for i, (scheme, model, seed) in enumerate(
        (r, "resnet8a", 0) for r in config["tables"]["table3_2"]["rows"]
    ):  # fmt: skip
        path = tmp_path / f"m{i}.json"
        path.write_text(json.dumps(fake_run(scheme, model, seed, 1.5, scale="smoke")))
        paths.append(str(path))
    out = tmp_path / "t" / "table3_2.csv"
    args = ["table", "table3_2", "--metrics", *paths, "--out-csv", str(out), "--config", "scale=smoke"]
    assert main(args) == 0
    frame = pd.read_csv(out)
    assert set(frame["row"]) == {"cifar10h_sep", "cifar10s_sep"} and (frame["scale"] == "smoke").all()
    assert (frame["n_runs"] == 1).all()
    cell = frame[(frame.row == "cifar10s_sep") & (frame.eval_set == "cifar10h") & (frame.metric == "ce")].iloc[0]
    assert cell["thesis_value"] == pytest.approx(1.281)
    assert out.with_suffix(".md").read_text().startswith("## table3_2")
    assert main(["table", "table9_9", *args[2:]]) == 2
    assert "table9_9" in capsys.readouterr().err


def test_run_figure_command_writes_png_pdf_csv(config, tmp_path):
    paths = []
    for row in config["figures"]["fig3_6"]["rows"]:
        for seed, ce in enumerate([1.0, 2.0]):
            path = tmp_path / f"{row}_{seed}.json"
            path.write_text(json.dumps(fake_run(row, "resnet8a", seed, ce, scale="smoke")))
            paths.append(str(path))
    out = tmp_path / "fig" / "fig3_6.png"
    assert main(["run-figure", "fig3_6", "--metrics", *paths, "--out", str(out), "--config", "scale=smoke"]) == 0
    assert out.exists() and out.with_suffix(".pdf").exists()
    frame = pd.read_csv(out.with_suffix(".csv"))
    assert set(frame["n_soft"]) == {250, 500, 750, 900} and set(frame["eval_set"]) == {"cifar10h"}
    assert (frame["n_runs"] == 2).all() and frame.loc[frame.metric == "ce", "mean"].eq(1.5).all()


def manifest_inputs(mirror) -> dict:
    """A run's `provenance.inputs` as the data stage records it, from a mirror's MANIFEST.tsv."""
    frame = pd.read_csv(mirror / "MANIFEST.tsv", sep="\t")
    keys = {"cifar-10/cifar-10-python.tar.gz": "cifar10", "cifar-10h/cifar10h-counts.npy": "cifar10h_counts"}
    return {
        keys[row.path]: {"file": row.path, "origin": f"mirror {mirror}", "official_url": row.official_url,
                         "sha256": row.sha256, "approximate": str(row.note).startswith("APPROXIMATION"),
                         "note": row.note}
        for row in frame.itertuples() if row.path in keys
    }  # fmt: skip


def with_provenance(run, inputs, device="cuda", precision="bf16", source="download"):
    run = dict(run)
    run["train"] = {**run["train"], "device": device, "precision": precision}
    run["provenance"] = {"precision": precision, "device": device, "corruption_source": source, "inputs": inputs}
    return run


def test_table_records_precision_device_source_and_approximate_inputs(config, data_mirror):
    inputs = manifest_inputs(data_mirror)
    assert inputs["cifar10"]["approximate"] and not inputs["cifar10h_counts"]["approximate"]
    rows = config["tables"]["table3_2"]["rows"]
    runs = [with_provenance(fake_run(r, "resnet34a", 0, 1.5), inputs) for r in rows]
    frame = T.build_table("table3_2", config, runs)
    assert set(frame["precision"]) == {"bf16"} and set(frame["device"]) == {"cuda"}
    assert set(frame["corruption_source"]) == {"download"}
    assert set(frame["approximate_inputs"]) == {"cifar10"}
    assert "cifar10 (mirror" in frame["inputs"].iloc[0] and "APPROXIMATION" in frame["inputs"].iloc[0]
    md = T.table_markdown(frame, "table3_2", notes=T.approximate_notes(runs))
    assert "training precision `bf16`; device `cuda`" in md
    assert "**Approximate inputs:" in md and "cifar10: APPROXIMATION: test batch only" in md


def test_table_without_provenance_says_unrecorded_and_never_guesses(config):
    rows = config["tables"]["table5_1"]["rows"]
    runs = [fake_run(r, "preact_resnet34", 0, 1.5) for r in rows]  # train block without device or precision
    frame = T.build_table("table5_1", config, runs)
    for column in ("precision", "device", "corruption_source", "inputs", "approximate_inputs"):
        assert set(frame[column]) == {T.UNRECORDED}, column
    md = T.table_markdown(frame, "table5_1")
    assert "corruption source `unrecorded`" in md and "Input provenance unrecorded" in md
    # exact inputs from the official URLs: no warning
    exact = {"cifar10h_counts": {"file": "x", "origin": "official", "official_url": "https://x", "sha256": "0",
                                 "approximate": False, "note": "exact"}}  # fmt: skip
    frame = T.build_table("table5_1", config, [with_provenance(r, exact, source="generate") for r in runs])
    assert set(frame["approximate_inputs"]) == {"none"} and set(frame["corruption_source"]) == {"generate"}
    md = T.table_markdown(frame, "table5_1")
    assert "Approximate inputs" not in md and "unrecorded" not in md and "corruption source `generate`" in md


def test_one_run_without_provenance_makes_the_row_unrecorded(config):
    rows = config["tables"]["table3_2"]["rows"]
    exact = {"cifar10": {"origin": "official", "approximate": False}}
    runs = [with_provenance(fake_run(rows[0], "resnet34a", 0, 1.0), exact), fake_run(rows[0], "resnet34a", 1, 2.0)]
    frame = T.build_table("table3_2", config, runs)
    row = frame[frame.row == rows[0]]
    assert set(row["device"]) == {T.UNRECORDED} and set(row["approximate_inputs"]) == {T.UNRECORDED}


def test_a_diverged_run_is_shown_as_diverged_instead_of_stopping_the_table(config, tmp_path):
    """A diverged member's metrics.json (softlabels.train.cli.diverged_metrics: `diverged: true`, the epoch,
    no metric values) leaves its row's other runs in the cell and names the diverged run; a row whose only
    run diverged shows 'diverged'."""
    from softlabels.train.cli import diverged_metrics

    spec = {"scheme": "random", "model": "resnet34a", "seed": 0, "scale": "paper", "protocol_name": "chapter3",
            "protocol": {"epochs": 65, "augmentation": "once"}, "labels": {"gamma": 0.1}, "evaluation": {}}
    diverged = diverged_metrics(spec, FloatingPointError("loss became nan in epoch 12"), "cpu", "fp32", None)
    diverged["diverged_epoch"] = 12
    assert diverged["diverged"] is True and not {"cifar10h", "cifar10s", "corruption"} & set(diverged)
    bad_hard = {**diverged, "scheme": "hard", "seed": 2}
    runs = [fake_run("hard", "resnet34a", 0, 1.0), fake_run("hard", "resnet34a", 1, 2.0), bad_hard, diverged]
    for i, run in enumerate(runs):  # through the files, as the table command reads them
        (tmp_path / f"{i}.json").write_text(json.dumps(run))
    runs = T.read_metrics(sorted(tmp_path.glob("*.json")))
    frame = T.build_table("table3_1", config, runs)
    hard = frame[(frame.row == "hard") & (frame.eval_set == "cifar10h") & (frame.metric == "ce")].iloc[0]
    assert hard["mean"] == pytest.approx(1.5) and hard["n_runs"] == 2
    assert hard["diverged"] == "resnet34a seed 2 (epoch 12)"
    random_row = frame[(frame.row == "random") & (frame.metric == "ce")]
    assert (random_row["n_runs"] == 0).all() and (random_row["diverged"] == "resnet34a seed 0 (epoch 12)").all()
    md = T.table_markdown(frame, "table3_1")
    random_line = next(line for line in md.splitlines() if "(`random`)" in line)
    cells = [cell.strip() for cell in random_line.strip().strip("|").split("|")]
    assert "diverged" in cells and "0 (diverged: resnet34a seed 0 (epoch 12))" in cells
    hard_line = next(line for line in md.splitlines() if "(`hard`)" in line)
    assert "1.500" in hard_line and "2 (diverged: resnet34a seed 2 (epoch 12))" in hard_line
