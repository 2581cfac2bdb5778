"""thesis_values.csv: the one hand-typed file of thesis numbers parses, is complete and is read correctly."""

from __future__ import annotations

import math

import pytest

from softlabels import config as cfg
from softlabels.report.thesis import (
    COLUMNS,
    load_thesis_values,
    thesis_statistics,
    thesis_value,
    thesis_values_path,
)

BASE_METRICS = ("ce", "calibration", "fgsm")
#: (table, eval set) pairs our outputs show although the thesis prints no column for them: Table C.1 has no
#: Corruption CE column (our tableC_1 reports it with an empty thesis cell).
NOT_IN_THESIS = {("tableC_1", "corruption")}

#: The thesis' result tables as our outputs name them (rows = scheme names), chapters 3-5 and appendices B-C.
#: Checked even before every table is declared in config.yaml.
EXPECTED_TABLES = {
    "table3_1": (["hard", "random", "uniform", "cifar10h_agg", "cifar10s_agg"], ["cifar10h", "cifar10s"]),
    "table3_2": (["cifar10h_sep", "cifar10s_sep"], ["cifar10h", "cifar10s"]),
    "table3_3": (["cifar10h_sep_m2", "cifar10s_sep_m2", "cifar10h_sep_m1", "cifar10s_sep_m1"], ["cifar10h", "cifar10s"]),
    "table3_4": (["t1_unif_sep", "t1_clamp_sep", "t2_unif_sep", "t2_clamp_sep"], ["cifar10h", "cifar10s"]),
    "tableB_1": (["label_smoothing", "cifar10h_sep", "cifar10s_sep"], ["cifar10h", "cifar10s"]),
    "tableB_2": (["t1_unif_sep", "t1_semantic_sep"], ["cifar10h", "cifar10s"]),
    "tableB_3": (["t2_unif_sep", "t2_semantic_sep"], ["cifar10h", "cifar10s"]),
    "table4_1": (["ch4_noaug", "ch4_uniform", "ch4_random", "ch4_mixup", "ch4_agg"], ["cifar10h"]),
    "table4_2": (["ch4_mixup", "ch4_agg", "ch4_sep"], ["cifar10h"]),
    "table4_3": (["ch4_mixup", "ch4_agg", "ch4_sep", "ch4_agg_conf", "ch4_sep_conf"], ["cifar10h"]),
    "table5_1": (["ch5_mixup_hard", "ch5_mixmaxent_hard", "ch5_entwc_hard"], ["cifar10h", "corruption"]),
    "table5_2": (
        ["ch5_mixup_hard", "ch5_mixup_soft", "ch5_mixmaxent_hard", "ch5_mixmaxent_soft", "ch5_entwc_hard",
         "ch5_entwc_soft"],
        ["cifar10h", "corruption"],
    ),
    "tableC_1": (["ch5_mixup_hard", "chC_tau", "ch5_entwc_hard", "chC_tau_entwc"], ["cifar10h"]),
}


@pytest.fixture(scope="module")
def values():
    return load_thesis_values()


def _missing(values, table, rows, eval_sets):
    missing = []
    for row in rows:
        for eval_set in eval_sets:
            metrics = ("corruption_ce",) if eval_set == "corruption" else BASE_METRICS
            for metric in metrics:
                value, _ = thesis_value(table, eval_set, row, metric, values)
                if math.isnan(value):
                    missing.append((table, eval_set, row, metric))
    return missing


def test_file_parses_with_numeric_values(values):
    assert tuple(values.columns) == COLUMNS
    assert values["value"].notna().all()
    assert (values["ci"].dropna() >= 0).all()
    assert set(values["eval_set"]) <= {"cifar10h", "cifar10s", "corruption", ""}
    header = thesis_values_path().read_text(encoding="utf-8").splitlines()[0]
    assert header.startswith("#") and "ONLY hand-typed" in header


def test_every_expected_table_is_complete(values):
    missing = [m for t, (rows, sets) in EXPECTED_TABLES.items() for m in _missing(values, t, rows, sets)]
    assert missing == []


def test_every_configured_table_is_complete(values):
    tables = cfg.load(None, {"scale": "smoke"})["tables"]
    missing = [
        m
        for t, spec in tables.items()
        for m in _missing(values, t, spec["rows"], [e for e in spec["eval_sets"] if (t, e) not in NOT_IN_THESIS])
    ]
    assert missing == []


def test_rows_are_configured_schemes(values):
    schemes = set(cfg.load(None, {"scale": "smoke"})["schemes"])
    rows = set(values.loc[values["table"].isin(list(EXPECTED_TABLES)), "row"])
    assert rows - schemes == set()


def test_garbled_cells_are_repaired(values):
    # "8.406 ±1 .75" in tables 3.2 and B.1; "2.01±0.0'3" in table 4.2; table 3.4 prints CE, FGSM, Calibration.
    assert thesis_value("table3_2", "cifar10h", "cifar10s_sep", "fgsm", values) == (8.406, 1.75)
    assert thesis_value("tableB_1", "cifar10h", "cifar10s_sep", "fgsm", values) == (8.406, 1.75)
    assert thesis_value("table4_2", "cifar10h", "ch4_sep", "ce", values) == (2.01, 0.03)
    assert thesis_value("table3_4", "cifar10h", "t2_clamp_sep", "fgsm", values) == (8.482, 3.95)
    assert thesis_value("table3_4", "cifar10h", "t2_clamp_sep", "calibration", values) == (0.183, 0.03)
    assert thesis_value("table3_4", "", "t1_clamp_sep", "time_s", values)[0] == 19.2


def test_corruption_lookup_and_missing_cell(values):
    assert thesis_value("table5_2", "corruption", "ch5_mixmaxent_soft", "corruption_ce", values) == (1.252, 0.02)
    assert all(math.isnan(x) for x in thesis_value("table3_1", "cifar10h", "nonexistent", "ce", values))


def test_summary_statistics_are_present(values):
    s = thesis_statistics("cifar10s_summary", values)
    assert s["participants"][0] == 248 and s["low_entropy_images"][0] == 114
    assert s["cifar10h_share_mass_at_most_two_classes"][0] == pytest.approx(0.772)
    h = thesis_statistics("hmix_summary", values)
    assert h["ch5_pearson_r_endpoint_mass_lambda"][0] == 0.52
    assert h["ch5_non_endpoint_mass"] == (0.383, 0.006)


def test_malformed_file_is_reported_with_its_line(tmp_path):
    bad = tmp_path / "values.csv"
    bad.write_text("# comment\n" + ",".join(COLUMNS) + "\ntable3_1,cifar10h,hard,ce,2.0,0.1,ok\n"
                   "table3_1,cifar10h,hard,fgsm,abc,,typo\n")
    with pytest.raises(ValueError, match=r"values\.csv:4: value 'abc'"):
        load_thesis_values(bad)
    dup = tmp_path / "dup.csv"
    dup.write_text(",".join(COLUMNS) + "\nt,cifar10h,r,ce,1,,\nt,cifar10h,r,ce,2,,\n")
    with pytest.raises(ValueError, match="duplicate"):
        load_thesis_values(dup)
