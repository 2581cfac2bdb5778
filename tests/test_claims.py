"""The thesis' findings as claims (config `claims`): verdicts and seed pairing on hand-made metrics, claims refused
at config load naming their id, every claim's direction checked against thesis_values.csv, the dry-run DAG of the
claims targets at every scale, and the smoke build end to end."""

from __future__ import annotations

import copy
import math
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from conftest import compact_markdown, run_snakemake
from softlabels import config as cfg
from softlabels.cli import main
from softlabels.report import claims as C
from softlabels.report.tables import UNRECORDED
from softlabels.report.thesis import load_thesis_values, thesis_value


@pytest.fixture(scope="module")
def base():
    """The effective smoke configuration (one model, one seed) with chapter 3 set to three seeds."""
    config = cfg.load(overrides={"scale": "smoke"})
    config["protocols"]["chapter3"]["seeds"] = [0, 1, 2]
    return config


def run(scheme, seed, ce, model="resnet8a", eval_set="cifar10h"):
    return {"scheme": scheme, "model": model, "seed": seed, eval_set: {"ce": ce}}


def yaml_config():
    import yaml

    return yaml.safe_load(cfg.default_config_path().read_text())


def claim(**overrides):
    spec = {"id": "c1", "section": "3.3.2", "text": "B lowers CE.", "table": "table3_1", "row_a": "hard",
            "row_b": "cifar10h_agg", "eval_set": "cifar10h", "metric": "ce", "expect": "lower"}  # fmt: skip
    spec.update(overrides)
    return spec


def with_claims(config, *claims, targets=None):
    config = copy.deepcopy(config)
    config["claims"] = {"targets": targets or {"claims": "all"}, "list": list(claims)}
    return config


# ----------------------------------------------------------------------------------------------------------
# Verdicts and pairing
# ----------------------------------------------------------------------------------------------------------
def test_paired_mean_and_t_interval_by_hand(base):
    # A (hard) CE 2.0, 2.2, 2.1; B CE 1.8, 1.9, 2.0 -> d = A − B = 0.2, 0.3, 0.1: mean 0.2, s = 0.1,
    # half-width t_{0.975,2} · 0.1 / √3 = 4.302653 · 0.057735 = 0.248414
    runs = [run("hard", s, v) for s, v in enumerate((2.0, 2.2, 2.1))]
    runs += [run("cifar10h_agg", s, v) for s, v in enumerate((1.8, 1.9, 2.0))]
    row = C.build_claims(with_claims(base, claim()), "claims", runs).iloc[0]
    half = stats.t.ppf(0.975, 2) * 0.1 / math.sqrt(3)
    assert half == pytest.approx(0.248414, abs=1e-6)
    assert row["diff"] == pytest.approx(0.2)
    assert row["ci_low"] == pytest.approx(0.2 - half) and row["ci_high"] == pytest.approx(0.2 + half)
    assert row["n_pairs"] == 3 and bool(row["paired"]) and row["seeds"] == "0|1|2"
    assert row["a_mean"] == pytest.approx(2.1) and row["b_mean"] == pytest.approx(1.9)
    assert row["verdict"] == "same direction"  # the interval includes 0


def test_orientation_follows_expect(base):
    runs = [run("hard", s, 2.0 + s) for s in range(3)] + [run("cifar10h_agg", s, 2.5 + s) for s in range(3)]
    lower = C.build_claims(with_claims(base, claim(expect="lower")), "claims", runs).iloc[0]
    higher = C.build_claims(with_claims(base, claim(expect="higher")), "claims", runs).iloc[0]
    assert lower["diff"] == pytest.approx(-0.5) and higher["diff"] == pytest.approx(0.5)
    assert lower["verdict"] == "opposite" and higher["verdict"] == "reproduced"  # zero spread: interval = point


@pytest.mark.parametrize(("diff", "low", "high", "n", "expected"), [
    (0.5, 0.1, 0.9, 5, "reproduced"),
    (0.2, -0.1, 0.5, 5, "same direction"),
    (0.0, -0.1, 0.1, 5, "same direction"),
    (-0.2, -0.5, 0.1, 5, "other direction"),
    (-0.5, -0.9, -0.1, 5, "opposite"),
    (0.5, 0.1, 0.9, 2, "reproduced (2 seeds: too few for a reliable interval)"),
    (0.3, math.nan, math.nan, 1, "same direction (1 seed, no interval)"),
    (-0.3, math.nan, math.nan, 1, "other direction (1 seed, no interval)"),
    (math.nan, math.nan, math.nan, 0, "not run"),
])  # fmt: skip
def test_each_verdict(diff, low, high, n, expected):
    assert C.verdict(diff, low, high, n) == expected


def test_unpaired_fallback_is_welch(base):
    runs = [run("hard", s, v) for s, v in zip((0, 1, 2), (2.0, 2.4, 2.2))]
    a = {("m", 0): 2.0, ("m", 1): 2.4, ("m", 2): 2.2}
    b = {("m", 0): 1.5, ("m", 3): 1.7}  # seeds differ: Welch
    result = C.compare_cells(a, b, "lower")
    welch = stats.ttest_ind([2.0, 2.4, 2.2], [1.5, 1.7], equal_var=False)
    assert not result["paired"] and result["diff"] == pytest.approx(0.6)
    ci = welch.confidence_interval(0.95)
    assert (result["ci_low"], result["ci_high"]) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert runs  # the hand-made runs above are the same numbers as a and b


def test_missing_run_gives_not_run_and_table_outside_target_gives_not_run(base):
    runs = [run("hard", s, 2.0) for s in range(3)] + [run("cifar10h_agg", s, 1.9) for s in range(2)]
    row = C.build_claims(with_claims(base, claim()), "claims", runs).iloc[0]
    assert row["verdict"] == "not run" and row["n_pairs"] == 0
    full = runs + [run("cifar10h_agg", 2, 1.9)]
    config = with_claims(base, claim(), targets={"claims": "all", "claims_other": ["table3_2"]})
    assert C.build_claims(config, "claims_other", full).iloc[0]["verdict"] == "not run"
    assert C.build_claims(config, "claims", full).iloc[0]["verdict"] == "reproduced"


def test_one_seed_gives_no_interval(base):
    config = copy.deepcopy(base)
    config["protocols"]["chapter3"]["seeds"] = [0]
    row = C.build_claims(with_claims(config, claim()), "claims", [run("hard", 0, 2.0), run("cifar10h_agg", 0, 1.5)]).iloc[0]
    assert row["verdict"] == "same direction (1 seed, no interval)"
    assert math.isnan(row["ci_low"]) and math.isnan(row["ci_high"]) and row["diff"] == pytest.approx(0.5)


def test_thesis_side_comes_from_thesis_values(base):
    thesis = load_thesis_values()
    row = C.build_claims(with_claims(base, claim()), "claims", []).iloc[0]
    a, ca = thesis_value("table3_1", "cifar10h", "hard", "ce", thesis)
    b, cb = thesis_value("table3_1", "cifar10h", "cifar10h_agg", "ce", thesis)
    assert row["thesis_a"] == a and row["thesis_b"] == b and row["thesis_diff"] == pytest.approx(a - b)
    assert row["thesis_overlap"] == ("yes" if max(a - ca, b - cb) <= min(a + ca, b + cb) else "no")
    fig = C.build_claims(with_claims(base, claim(table="fig3_6", row_a="cifar10h_n250", row_b="cifar10s_n250")),
                         "claims", []).iloc[0]  # fmt: skip
    assert math.isnan(fig["thesis_diff"]) and fig["thesis_overlap"] == "unknown"


# ----------------------------------------------------------------------------------------------------------
# Claims checked when the config loads
# ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("overrides", "message"), [
    ({"row_b": "cifar10s_sep"}, "row_b 'cifar10s_sep' is not a row of table3_1"),
    ({"metric": "accuracy"}, "metric 'accuracy'"),
    ({"eval_set": "corruption"}, "eval_set 'corruption' is not an eval set of table3_1"),
    ({"table": "table9_9"}, "table 'table9_9' is not defined"),
])  # fmt: skip
def test_a_bad_claim_is_refused_at_load_with_its_id(overrides, message):
    raw = cfg.load()
    raw["claims"]["list"].append(claim(id="my_claim", **overrides))
    with pytest.raises(cfg.ConfigError, match="claim 'my_claim'") as err:
        cfg.check_references(raw)
    assert message in str(err.value)


def test_duplicate_id_and_unknown_target_table_are_refused():
    raw = cfg.load()
    first = raw["claims"]["list"][0]
    raw["claims"]["list"].append(dict(first))
    with pytest.raises(cfg.ConfigError, match=f"claim '{first['id']}': duplicate id"):
        cfg.check_references(raw)
    raw = cfg.load()
    raw["claims"]["targets"]["claims_x"] = ["table3_9"]
    with pytest.raises(cfg.ConfigError, match="claims.targets.claims_x.*table3_9"):
        cfg.check_references(raw)


def test_the_cli_refuses_a_bad_claim_naming_it(tmp_path, capsys):
    import yaml

    raw = yaml.safe_load(cfg.default_config_path().read_text())
    raw["claims"]["list"] = [claim(id="bad_row_claim", row_a="nope")]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["claims", "claims", "--configfile", str(path), "--out-csv", str(tmp_path / "c.csv")]) != 0
    assert "bad_row_claim" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------------------
# The claims table (softlabels/report/claims.tsv, or claims.file)
# ----------------------------------------------------------------------------------------------------------
def write_claims_table(path, claims):
    lines = ["\t".join(cfg.CLAIM_COLUMNS)] + ["\t".join(c[k] for k in cfg.CLAIM_COLUMNS) for c in claims]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_thesis_claims_come_from_the_packaged_table_and_config_yaml_holds_none():
    raw = yaml_config()
    assert "list" not in raw["claims"] and raw["claims"]["file"] == ""
    loaded = cfg.load()["claims"]["list"]
    assert loaded == cfg.read_claims(cfg.thesis_claims_path())
    assert len(loaded) == len(cfg.thesis_claims_path().read_text().strip().splitlines()) - 1


def test_claims_file_replaces_the_thesis_claims_and_is_checked(tmp_path):
    table = write_claims_table(tmp_path / "mine.tsv", [claim(id="mine"), claim(id="mine2", metric="fgsm")])
    config = cfg.load(overrides={"claims": {"file": str(table)}})
    assert [c["id"] for c in config["claims"]["list"]] == ["mine", "mine2"]
    write_claims_table(table, [claim(id="mine"), claim(id="bad", row_b="nope")])
    with pytest.raises(cfg.ConfigError, match="claim 'bad': row_b 'nope'"):
        cfg.load(overrides={"claims": {"file": str(table)}})


@pytest.mark.parametrize("edit, message", [
    (lambda lines: lines.__setitem__(0, lines[0].replace("expect", "direction")), "line 1: the header"),
    (lambda lines: lines.__setitem__(2, lines[2].replace("\tlower\t", "\tsmaller\t")), "line 3 (claim 'c2'): expect 'smaller'"),
    (lambda lines: lines.__setitem__(2, lines[2].replace("\tce\t", "\t\t")), "line 3: empty field(s) metric"),
    (lambda lines: lines.__setitem__(1, lines[1] + "\textra"), "line 2: 10 tab-separated fields"),
    (lambda lines: lines.__setitem__(1, "c 1" + lines[1][2:]), "line 2: id 'c 1'"),
])  # fmt: skip
def test_a_bad_claims_table_is_refused_naming_file_and_line(tmp_path, edit, message):
    table = write_claims_table(tmp_path / "mine.tsv", [claim(id="c1"), claim(id="c2")])
    lines = table.read_text().splitlines()
    edit(lines)
    table.write_text("\n".join(lines) + "\n")
    with pytest.raises(cfg.ConfigError, match=re.escape(message)) as err:
        cfg.load(overrides={"claims": {"file": str(table)}})
    assert str(table) in str(err.value)


def test_a_missing_claims_file_names_the_key(tmp_path):
    with pytest.raises(cfg.ConfigError, match="key 'claims.file'.*nowhere.tsv"):
        cfg.load(overrides={"claims": {"file": str(tmp_path / "nowhere.tsv")}})


def test_every_claim_expect_agrees_with_the_thesis_values():
    config = cfg.load()
    thesis = load_thesis_values()
    checked = 0
    for c in config["claims"]["list"]:
        a, _ = thesis_value(c["table"], c["eval_set"], c["row_a"], c["metric"], thesis)
        b, _ = thesis_value(c["table"], c["eval_set"], c["row_b"], c["metric"], thesis)
        if math.isnan(a) or math.isnan(b):
            continue
        checked += 1
        assert (b < a) if c["expect"] == "lower" else (b > a), f"claim {c['id']}: thesis A {a}, B {b}, expect {c['expect']}"
    assert checked >= 80


def test_configured_claims_cover_the_thesis_findings():
    config = cfg.load()
    claims = config["claims"]["list"]
    by_table = pd.Series([c["table"] for c in claims]).value_counts()
    for table in ("table3_1", "table3_2", "table3_3", "table3_4", "fig3_6", "table4_1", "table4_2", "table4_3",
                  "table5_1", "table5_2", "tableB_1", "tableB_2", "tableB_3", "tableC_1"):
        assert by_table.get(table, 0) > 0, f"no claim on {table}"
    for row in ("cifar10h_agg", "cifar10s_agg"):  # each soft-label scheme against hard labels, every cell
        cells = {(c["eval_set"], c["metric"]) for c in claims if c["table"] == "table3_1" and c["row_b"] == row}
        assert cells == {(e, m) for e in ("cifar10h", "cifar10s") for m in ("ce", "calibration", "fgsm")}
    for m in ("m1", "m2"):
        cells = {(c["eval_set"], c["metric"]) for c in claims if c["row_b"] == f"cifar10s_sep_{m}"}
        assert cells == {(e, m) for e in ("cifar10h", "cifar10s") for m in ("ce", "calibration", "fgsm")}
    assert {c["chapter"] for c in [{"chapter": C.chapter_of(c["section"])} for c in claims]} == {"3", "4", "5", "B", "C"}


def test_markdown_states_counts_orientation_and_banner(base):
    runs = [run("hard", s, 2.0 + 0.1 * s) for s in range(3)] + [run("cifar10h_agg", s, 1.5) for s in range(3)]
    for r in runs:
        r["provenance"] = {"precision": "fp32", "device": "cpu", "corruption_source": "generate",
                           "inputs": {"cifar10": {"origin": "mirror", "approximate": True, "note": "rebuilt"}}}
    config = with_claims(base, claim(), claim(id="c2", table="table3_2", row_a="cifar10h_sep", row_b="cifar10s_sep"))
    frame = C.build_claims(config, "claims", runs)
    md = C.claims_markdown(frame, "claims", {"cifar10": "rebuilt"})
    assert "Verdicts: reproduced 1; same direction 0; other direction 0; opposite 0; not run 1." in md
    assert "A − B where the thesis reports B lower" in md and "Approximate inputs" in md
    assert "### Chapter 3" in md and list(frame.columns) == list(C.CLAIM_COLUMNS)


# ----------------------------------------------------------------------------------------------------------
# Workflow
# ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scale", ["paper", "quick", "smoke"])
@pytest.mark.parametrize("target", ["claims", "claims_chapter3"])
def test_claims_targets_build_a_dag_at_every_scale(tmp_path, scale, target):
    done = run_snakemake(tmp_path, "-n", target, "--config", f"scale={scale}")
    assert done.returncode == 0, done.stderr[-4000:]
    assert "claims_target" in done.stdout and target in done.stdout


@pytest.mark.slow
@pytest.mark.mirror
def test_smoke_claims_build(smoke_workdir, data_mirror):
    done = run_snakemake(smoke_workdir, "--cores", "2", "claims", "--config", "scale=smoke",
                         f"data_mirror={data_mirror}", timeout=2400)  # fmt: skip
    assert done.returncode == 0, done.stderr[-6000:]
    tables = smoke_workdir / "results" / "tables"
    for ext in ("csv", "md", "html"):
        assert (tables / f"claims.{ext}").stat().st_size > 0
    assert (smoke_workdir / "results" / "figures" / "claims.png").stat().st_size > 0
    frame = pd.read_csv(tables / "claims.csv")
    assert list(frame.columns) == list(C.CLAIM_COLUMNS)
    assert list(frame["claim"]) == [c["id"] for c in cfg.load(overrides={"scale": "smoke"})["claims"]["list"]]
    assert set(frame["scale"]) == {"smoke"}
    assert frame["verdict"].str.contains("1 seed, no interval").all()  # smoke: one seed, every claim ran
    md = (tables / "claims.md").read_text()
    assert "Scale `smoke`" in md and "Approximate inputs" in md


def test_the_cli_writes_csv_md_html_and_png(tmp_path):
    """`softlabels claims` on hand-made metrics.json files of the table3_1 hard and CIFAR-10H rows (smoke: one
    seed): every configured claim gets a row; the two cells it was given get a one-seed verdict."""
    import json

    paths = []
    for scheme, ce in (("hard", 2.0), ("cifar10h_agg", 1.5)):
        path = tmp_path / f"{scheme}.json"
        path.write_text(json.dumps({"scheme": scheme, "model": "resnet8a", "seed": 0,
                                    "cifar10h": {"ce": ce, "calibration": 0.1, "fgsm": 3.0, "n": 200}}))  # fmt: skip
        paths.append(str(path))
    out = tmp_path / "out"
    code = main(["claims", "claims", "--metrics", *paths, "--out-csv", str(out / "claims.csv"),
                 "--out-png", str(out / "claims.png"), "--config", "scale=smoke"])  # fmt: skip
    assert code == 0
    frame = pd.read_csv(out / "claims.csv", keep_default_na=False)
    config = cfg.load(overrides={"scale": "smoke"})
    assert list(frame["claim"]) == [c["id"] for c in config["claims"]["list"]]
    ce = frame.set_index("claim").loc["t3_1_cifar10h_agg_ce_h"]
    assert ce["verdict"] == "same direction (1 seed, no interval)" and float(ce["diff"]) == pytest.approx(0.5)
    assert (frame["verdict"] == "not run").sum() == len(frame) - 3  # ce, calibration and fgsm on CIFAR-10H ran
    for name in ("claims.md", "claims.html", "claims.png"):
        assert (out / name).stat().st_size > 0


# ----------------------------------------------------------------------------------------------------------
# The verdict pieces at their boundaries, by hand
# ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("diff", "low", "high", "n", "expected"), [
    (0.5, 0.0, 0.9, 5, "same direction"),  # an interval touching 0 does not exclude it
    (-0.5, -0.9, 0.0, 5, "other direction"),
    (0.0, -0.1, 0.0, 5, "same direction"),
    (0.5, 0.1, 0.9, 3, "reproduced"),  # MIN_RELIABLE_PAIRS = 3 is enough
    (-0.5, -0.9, -0.1, 2, "opposite (2 seeds: too few for a reliable interval)"),
    (0.0, math.nan, math.nan, 1, "same direction (1 seed, no interval)"),
    (-0.1, math.nan, 0.5, 2, "other direction (2 seeds, no interval)"),  # either bound missing
    (0.1, 0.0, math.nan, 3, "same direction (3 seeds, no interval)"),
    (0.5, 0.1, 0.9, 0, "not run"),
    (None, 0.1, 0.9, 3, "not run"),
])  # fmt: skip
def test_verdict_boundaries(diff, low, high, n, expected):
    assert C.MIN_RELIABLE_PAIRS == 3
    assert C.verdict(diff, low, high, n) == expected


def test_paired_interval_level_and_single_value():
    # d = 0.2, 0.3, 0.1: s = 0.1; at level 0.9 the half-width is t_{0.95,2} · 0.1/√3, t_{0.95,2} = 2.919986
    mean, low, high = C.paired_interval([0.2, 0.3, 0.1], level=0.9)
    half = 2.919985580355516 * 0.1 / math.sqrt(3)
    assert mean == pytest.approx(0.2) and low == pytest.approx(0.2 - half) and high == pytest.approx(0.2 + half)
    single = C.paired_interval([1.5])
    assert single[0] == 1.5 and math.isnan(single[1]) and math.isnan(single[2])


def test_welch_interval_by_hand():
    # a = 2.0, 2.4, 2.2 (s_a²/3 = 0.04/3), b = 1.5, 1.7 (s_b²/2 = 0.01); ν = (va+vb)² / (va²/2 + vb²/1)
    va, vb = 0.04 / 3, 0.01
    dof = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 1)
    assert dof == pytest.approx(2.882353, abs=1e-6)
    half = stats.t.ppf(0.95, dof) * math.sqrt(va + vb)
    mean, low, high = C.welch_interval([2.0, 2.4, 2.2], [1.5, 1.7], "higher", level=0.9)
    assert mean == pytest.approx(-0.6) and low == pytest.approx(-0.6 - half) and high == pytest.approx(-0.6 + half)
    one = C.welch_interval([2.0], [1.0, 1.2], "lower")
    assert one[0] == pytest.approx(0.9) and math.isnan(one[1]) and math.isnan(one[2])
    assert math.isnan(C.welch_interval([1.0, 1.2], [2.0], "lower")[2])
    assert C.welch_interval([2.0, 2.0], [1.0, 1.0], "lower") == (1.0, 1.0, 1.0)  # no spread: the point


def test_compare_cells_pairs_only_identical_runs():
    a = {("m", 0): 2.0, ("m", 1): 2.4, ("m", 2): 2.2}
    unpaired = C.compare_cells(a, {("m", 0): 1.5, ("m", 3): 1.7}, "lower", level=0.9)
    assert unpaired["n_pairs"] == 2 and unpaired["paired"] is False
    va, vb = 0.04 / 3, 0.01  # Welch, as in test_welch_interval_by_hand
    half = stats.t.ppf(0.95, (va + vb) ** 2 / (va**2 / 2 + vb**2)) * math.sqrt(va + vb)
    assert unpaired["diff"] == pytest.approx(0.6) and unpaired["ci_high"] == pytest.approx(0.6 + half)
    paired = C.compare_cells(a, {("m", 2): 2.1, ("m", 0): 1.8, ("m", 1): 2.2}, "higher", level=0.9)
    # d = B − A per run: −0.2, −0.2, −0.1 -> mean −1/6, s = 0.057735
    half = 2.919985580355516 * (0.1 / math.sqrt(3)) / math.sqrt(3)
    assert paired["paired"] is True and paired["n_pairs"] == 3
    assert paired["diff"] == pytest.approx(-1 / 6) and paired["ci_low"] == pytest.approx(-1 / 6 - half)


def test_cell_values_keep_numbers_of_the_row_and_table():
    runs = [
        {"scheme": "hard", "model": "m", "seed": "1", "cifar10h": {"ce": 2}},
        {"scheme": "hard", "model": "m", "seed": 2, "cifar10h": {"ce": True}},  # a flag, not a value
        {"scheme": "hard", "model": "m", "seed": 3, "cifar10h": None},
        {"scheme": "hard", "model": "n", "seed": 0, "cifar10h": {"ce": 1.5}},
        {"scheme": "soft", "model": "m", "seed": 0, "cifar10h": {"ce": 9.0}},
        {"scheme": "hard", "model": "m", "seed": 4, "corruption": {"corruption_ce": 3.0, "ce": 7.0}},
    ]
    assert C.cell_values(runs, "hard", "cifar10h", "ce") == {("m", 1): 2.0, ("n", 0): 1.5}
    assert C.cell_values(runs, "hard", "cifar10h", "ce", wanted={("hard", "n", 0)}) == {("n", 0): 1.5}
    assert C.cell_values(runs, "hard", "corruption", "corruption_ce") == {("m", 4): 3.0}


def test_thesis_overlap_by_hand():
    thesis = pd.DataFrame({"table": ["t"] * 4, "eval_set": ["e"] * 4, "row": ["a", "b", "c", "d"],
                           "metric": ["ce"] * 4, "value": [2.0, 1.5, 1.8, float("nan")],
                           "ci": [0.2, 0.3, float("nan"), 0.1]})  # fmt: skip
    side = lambda a, b, expect="lower": C.thesis_side(
        {"table": "t", "eval_set": "e", "row_a": a, "row_b": b, "metric": "ce", "expect": expect}, thesis)
    touching = side("a", "b")  # [1.8, 2.2] and [1.2, 1.8] touch at 1.8: overlap
    assert touching == {"thesis_a": 2.0, "thesis_b": 1.5, "thesis_diff": pytest.approx(0.5), "thesis_overlap": "yes"}
    assert side("a", "b", "higher")["thesis_diff"] == pytest.approx(-0.5)
    assert side("a", "c")["thesis_overlap"] == "unknown" and side("a", "c")["thesis_diff"] == pytest.approx(0.2)
    missing = side("a", "d")
    assert math.isnan(missing["thesis_diff"]) and missing["thesis_overlap"] == "unknown"


def test_verdict_counts_ignore_caveats():
    frame = pd.DataFrame({"verdict": ["reproduced (2 seeds: too few for a reliable interval)", "reproduced",
                                      "opposite", "not run", "same direction (1 seed, no interval)"]})  # fmt: skip
    assert C.verdict_counts(frame) == {"reproduced": 2, "same direction": 1, "other direction": 0, "opposite": 1,
                                       "not run": 1}  # fmt: skip


def test_two_pairs_have_an_interval_and_welch_uses_both_sample_sizes():
    # d = 0.1, 0.3: mean 0.2, s = √0.02, half = t_{0.975,1} · s/√2 = 12.706205 · 0.1
    mean, low, high = C.paired_interval([0.1, 0.3])
    assert mean == pytest.approx(0.2) and high == pytest.approx(0.2 + 12.706204736174707 * 0.1)
    # a = 2.0, 2.4 (va = 0.08/2), b = 1.0, 1.3, 1.9 (vb = 0.21/3): ν = (va+vb)² / (va²/1 + vb²/2)
    va, vb = 0.08 / 2, 0.21 / 3
    half = stats.t.ppf(0.975, (va + vb) ** 2 / (va**2 / 1 + vb**2 / 2)) * math.sqrt(va + vb)
    mean, low, high = C.welch_interval([2.0, 2.4], [1.0, 1.3, 1.9], "lower")
    assert mean == pytest.approx(0.8) and high == pytest.approx(0.8 + half)


def test_thesis_overlap_when_b_is_above_a():
    thesis = pd.DataFrame({"table": ["t"] * 2, "eval_set": ["e"] * 2, "row": ["a", "b"], "metric": ["ce"] * 2,
                           "value": [1.0, 1.2], "ci": [0.3, 0.2]})  # fmt: skip
    side = C.thesis_side({"table": "t", "eval_set": "e", "row_a": "a", "row_b": "b", "metric": "ce",
                          "expect": "lower"}, thesis)  # fmt: skip
    assert side["thesis_overlap"] == "yes"  # [0.7, 1.3] and [1.0, 1.4]
    far = thesis.assign(value=[1.0, 1.6])
    side = C.thesis_side({"table": "t", "eval_set": "e", "row_a": "a", "row_b": "b", "metric": "ce",
                          "expect": "lower"}, far)  # fmt: skip
    assert side["thesis_overlap"] == "no"  # [0.7, 1.3] and [1.4, 1.8]


def test_setting_keys_of_the_claims_rule_name_every_table_and_protocol_it_reads():
    """The claims rule's rerun trigger (and the keys its command may read): the claims block, each target's
    tables or figures, every protocol's models and seeds, single_model and the CI level."""
    from softlabels.report.claims import claim_setting_keys, claims_setting_keys

    config = {
        "claims": {"list": [{"table": "table3_1"}, {"table": "fig4_1"}, {"table": "table3_1"}],
                   "targets": {"claims": "all", "claims_chapter3": ["table3_1"]}},
        "tables": {"table3_1": {}},
        "figures": {"fig4_1": {}},
        "protocols": {"chapter3": {}, "chapter4": {}},
    }
    per_protocol = ["protocols.chapter3.models", "protocols.chapter4.models", "protocols.chapter3.seeds",
                    "protocols.chapter4.seeds", "protocols.chapter3.seeds_extra", "protocols.chapter4.seeds_extra"]
    tail = [*per_protocol, "single_model", "summaries.ci_level"]
    assert claim_setting_keys(config, "claims") == [
        "claims.list", "claims.targets.claims", "tables.table3_1", "figures.fig4_1", *tail]
    assert claim_setting_keys(config, "claims_chapter3") == [
        "claims.list", "claims.targets.claims_chapter3", "tables.table3_1", *tail]
    assert claims_setting_keys(config) == ["claims", "tables.table3_1", "figures.fig4_1", *tail]
    assert claims_setting_keys({"protocols": {}}) == ["claims"]


def test_a_claim_reads_exactly_the_runs_of_its_table_with_the_configured_level(base):
    """table3_1 (all_models): both chapter-3 models × seeds 0-2; runs of other seeds or models are ignored. The
    table has no `seeds` key, so its main seeds are used. summaries.ci_level 0.9: t_{0.95, ν} instead of
    t_{0.975, ν}. The provenance joins the devices of the cells' runs only (A on cuda, B on cpu), in order."""
    config = copy.deepcopy(base)
    config["protocols"]["chapter3"]["models"] = ["resnet8a", "resnet8b"]
    config["tables"]["table3_1"] = {k: v for k, v in config["tables"]["table3_1"].items() if k != "seeds"}
    config["summaries"]["ci_level"] = 0.9
    a_values = {("resnet8a", 0): 2.0, ("resnet8a", 1): 2.2, ("resnet8a", 2): 2.1,
                ("resnet8b", 0): 2.4, ("resnet8b", 1): 2.3, ("resnet8b", 2): 2.5}  # fmt: skip
    d = [0.2, 0.3, 0.1, 0.4, 0.2, 0.3]  # A − B per (model, seed)
    runs = []
    for (model, seed), value in a_values.items():
        runs.append({**run("hard", seed, value, model), "train": {"device": "cuda", "precision": "fp32"}})
        b = value - d[len(runs) // 2]
        runs.append({**run("cifar10h_agg", seed, b, model), "train": {"device": "cpu", "precision": "fp32"}})
    ignored = [{**run(s, seed, 9.0, model), "train": {"device": "mps", "precision": "bf16"}}
               for s in ("hard", "cifar10h_agg") for model, seed in (("resnet8a", 5), ("resnet34a", 0))]
    row = C.build_claims(with_claims(config, claim()), "claims", runs + ignored).iloc[0]
    mean, s = float(np.mean(d)), float(np.std(d, ddof=1))
    half = stats.t.ppf(0.95, 5) * s / math.sqrt(6)
    assert row["n_pairs"] == 6 and bool(row["paired"]) and row["seeds"] == "0|1|2"
    assert row["diff"] == pytest.approx(mean) and row["a_mean"] == pytest.approx(np.mean(list(a_values.values())))
    assert (row["ci_low"], row["ci_high"]) == (pytest.approx(mean - half), pytest.approx(mean + half))
    assert row["device"] == "cuda|cpu" and row["precision"] == "fp32"  # A's runs, then B's
    # one run missing: not run, with every number empty (NaN) and no seeds
    missing = C.build_claims(with_claims(config, claim()), "claims", runs[1:]).iloc[0]
    assert missing["verdict"] == "not run" and missing["seeds"] == "" and missing["n_pairs"] == 0
    assert not bool(missing["paired"])
    assert all(math.isnan(missing[k]) for k in ("a_mean", "b_mean", "diff", "ci_low", "ci_high"))


def test_a_claim_on_a_figure_with_extra_seeds(base):
    """fig3_6 takes `seeds: extra` (protocols.chapter3.seeds_extra) and the single model."""
    config = copy.deepcopy(base)
    config["protocols"]["chapter3"]["seeds_extra"] = [0, 1, 2, 3]
    model = config["single_model"]["chapter3"]
    runs = [run("cifar10h_n250", s, 2.0 + 0.1 * s, model) for s in range(4)]
    runs += [run("cifar10h_n900", s, 1.5 + 0.1 * s, model) for s in range(4)]
    row = C.build_claims(with_claims(config, claim(table="fig3_6", row_a="cifar10h_n250", row_b="cifar10h_n900")),
                         "claims", runs).iloc[0]
    assert row["seeds"] == "0|1|2|3" and row["n_pairs"] == 4 and row["diff"] == pytest.approx(0.5)
    assert row["verdict"] == "reproduced"


def test_claims_page_by_hand():
    """Three claims, a chapter-4 one first: the page keeps the chapters in claim order, names unknown chapters,
    eval sets and metrics as they are, writes every number with three decimals, an interval only where there is
    one, '(unpaired)' for Welch, and the provenance of the claims that ran (the corruption source only where a
    table reports corruption CE, so not here)."""
    nan = math.nan
    common = {"scale": "quick", "inputs": "cifar10 (mirror)", "approximate_inputs": "none"}
    rows = [
        {"claim": "c4", "section": "4.4", "chapter": "4", "text": "Mixup helps.", "table": "table4_1",
         "row_a": "ch4_noaug", "row_b": "ch4_mixup", "eval_set": "cifar10h", "metric": "ce", "expect": "lower",
         "thesis_a": 1.2, "thesis_b": 1.0, "thesis_diff": 0.2, "thesis_overlap": "no", "a_mean": 1.3,
         "b_mean": 1.1, "diff": 0.2, "ci_low": 0.05, "ci_high": 0.35, "seeds": "0|1|2", "n_pairs": 3,
         "paired": True, "verdict": "reproduced", "precision": "fp32", "device": "cpu", **common},
        {"claim": "c3", "section": "3.3", "chapter": "3", "text": "Soft beats hard.", "table": "table3_1",
         "row_a": "hard", "row_b": "cifar10h_agg", "eval_set": "corruption", "metric": "fgsm", "expect": "higher",
         "thesis_a": nan, "thesis_b": nan, "thesis_diff": nan, "thesis_overlap": "unknown", "a_mean": 2.0,
         "b_mean": 2.5, "diff": 0.5, "ci_low": -0.1, "ci_high": 1.1, "seeds": "0|1", "n_pairs": 2, "paired": False,
         "verdict": "same direction (2 seeds: too few for a reliable interval)", "precision": "bf16",
         "device": "cuda", **common},
        {"claim": "c9", "section": "X.1", "chapter": "X", "text": "Other.", "table": "tableX", "row_a": "a",
         "row_b": "b", "eval_set": "oddset", "metric": "oddmetric", "expect": "lower", "thesis_a": nan,
         "thesis_b": nan, "thesis_diff": nan, "thesis_overlap": "unknown", "a_mean": nan, "b_mean": nan, "diff": nan,
         "ci_low": nan, "ci_high": nan, "seeds": "", "n_pairs": 0, "paired": False, "verdict": "not run",
         "precision": "none run", "device": "none run", **common},
    ]
    frame = pd.DataFrame(rows)[list(C.CLAIM_COLUMNS)]
    header = ["Claim", "Section", "Finding", "Cells (A → B)", "Thesis A / B", "Thesis diff", "Thesis CIs overlap",
              "Diff (95% CI)", "Pairs", "Verdict"]

    def table(*rows):
        return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
                *("| " + " | ".join(row) + " |" for row in rows)]

    assert compact_markdown(C.claims_markdown(frame, "claims")) == "\n".join([
        "## Claims of the thesis: target `claims`", "",
        "Scale `quick`; 3 claims. Verdicts: reproduced 1; same direction 1; other direction 0; opposite 0; not run 1.",
        "",
        "Orientation: `diff` and `thesis_diff` are positive in the thesis' direction: A − B where the thesis reports "
        "B lower than A, B − A where it reports B higher. Reproduced: mean of the per-(model, seed) differences with "
        "its 95% t-interval (Welch's unpaired interval where the cells' runs differ). Verdicts: reproduced (interval "
        "above 0), same direction (mean ≥ 0, interval includes 0), other direction (mean < 0, interval includes 0), "
        "opposite (interval below 0), not run (table not in this target, or runs missing).",
        "",
        "Runs: training precision `fp32|bf16`; device `cpu|cuda`. Inputs: cifar10 (mirror).", "",
        "### Verdicts by the thesis' own intervals", "",
        "A claim is *strong* when the thesis' 95% intervals of its two cells do not overlap, *weak* when they do: a "
        "weak claim is one the thesis itself could not separate from noise.", "",
        "| Claims | Part | n | reproduced | same direction | other direction | opposite | not run |",
        "|---|---|---|---|---|---|---|---|",
        "| strong | Chapter 4 | 1 | 1 | 0 | 0 | 0 | 0 |",
        "| strong | all | 1 | 1 | 0 | 0 | 0 | 0 |",
        "| no intervals | Chapter 3 | 1 | 0 | 1 | 0 | 0 | 0 |",
        "| no intervals | X | 1 | 0 | 0 | 0 | 0 | 1 |",
        "| no intervals | all | 2 | 0 | 1 | 0 | 0 | 1 |", "",
        "### Strong claims: the thesis' intervals do not overlap", "",
        "1 claim. Verdicts: reproduced 1; same direction 0; other direction 0; opposite 0; not run 0.", "",
        "#### Chapter 4", "",
        *table(["`c4`", "4.4", "Mixup helps.", "table4_1: `ch4_noaug` → `ch4_mixup`, CIFAR-10H hold-out, CE, B lower",
                "1.200 / 1.000", "0.200", "no", "0.200 [0.050, 0.350]", "3", "reproduced"]),
        "", "### Claims without thesis intervals", "",
        "2 claims. Verdicts: reproduced 0; same direction 1; other direction 0; opposite 0; not run 1.", "",
        "#### Chapter 3", "",
        *table(["`c3`", "3.3", "Soft beats hard.", "table3_1: `hard` → `cifar10h_agg`, CIFAR-10-C, FGSM loss, B higher",
                "", "", "unknown", "0.500 [-0.100, 1.100]", "2 (unpaired)",
                "same direction (2 seeds: too few for a reliable interval)"]),
        "", "#### X", "",
        *table(["`c9`", "X.1", "Other.", "tableX: `a` → `b`, oddset, oddmetric, B lower", "", "", "unknown", "", "",
                "not run"]),
        "",
    ])


def test_forest_plot_draws_each_claim_where_it_belongs(monkeypatch, tmp_path):
    """The figure's content, read back from its axes: one panel per metric (in CE, Calibration, FGSM order), a
    grey line at 0, a light line between chapters, per claim that ran its interval (black line, where there is
    one) and mean (black dot), the thesis difference (red diamond) wherever the thesis gives one, the claims
    labelled top to bottom by chapter and id."""
    import matplotlib

    matplotlib.use("Agg")
    captured = {}
    monkeypatch.setattr(C, "save_figure", lambda fig, png: captured.update(fig=fig, png=png))
    nan = math.nan
    frame = pd.DataFrame([
        {"claim": "c1", "chapter": "3", "metric": "ce", "verdict": "reproduced", "diff": 0.2, "ci_low": 0.1,
         "ci_high": 0.3, "thesis_diff": 0.25},
        {"claim": "c2", "chapter": "3", "metric": "fgsm", "verdict": "other direction (1 seed, no interval)",
         "diff": -0.1, "ci_low": nan, "ci_high": nan, "thesis_diff": nan},
        {"claim": "c3", "chapter": "4", "metric": "ce", "verdict": "not run", "diff": nan, "ci_low": nan,
         "ci_high": nan, "thesis_diff": 0.4},
    ])
    C.plot_claims(frame, tmp_path / "forest.png")
    fig = captured["fig"]
    assert captured["png"] == tmp_path / "forest.png"
    assert tuple(fig.get_size_inches()) == pytest.approx((4 * 2 + 4, 0.22 * 3 + 1.5))
    ce, fgsm = fig.axes
    assert ce.get_title() == "CE (positive = thesis' direction)"
    assert fgsm.get_title() == "FGSM loss (positive = thesis' direction)"
    assert ce.title.get_fontsize() == 8

    def drawn(ax):
        return [(list(np.asarray(line.get_xdata(), float)), list(np.asarray(line.get_ydata(), float)),
                 line.get_marker(), line.get_color(), line.get_linewidth() if line.get_marker() in ("None", None)
                 else line.get_markersize()) for line in ax.lines]

    frame_lines = [([0.0, 0.0], [0.0, 1.0], "None", "grey", 0.8), ([0.0, 1.0], [0.5, 0.5], "None", "lightgrey", 0.8)]
    assert drawn(ce) == frame_lines + [([0.1, 0.3], [2.0, 2.0], "None", "black", 1.0),
                                       ([0.2], [2.0], "o", "black", 3.0), ([0.25], [2.0], "D", "tab:red", 3.0),
                                       ([0.4], [0.0], "D", "tab:red", 3.0)]
    legend_entries = [([], [], "o", "black", 6.0), ([], [], "D", "tab:red", 6.0)]
    assert drawn(fgsm) == frame_lines + [([-0.1], [1.0], "o", "black", 3.0)] + legend_entries
    assert [t.get_text() for t in fgsm.get_legend().get_texts()] == ["reproduced (95% CI)", "thesis"]
    assert ce.get_legend() is None
    labels = [t.get_text() for t in ce.get_yticklabels()]
    assert labels == ["Chapter 3 · c1", "Chapter 3 · c2", "Chapter 4 · c3"]  # at y = 2, 1, 0: top to bottom
    assert list(ce.get_yticks()) == [2, 1, 0] and ce.get_ylim() == (-1.0, 3.0)
    assert all(t.get_fontsize() == 6 for t in ce.get_yticklabels())


def test_forest_plot_of_claims_without_a_known_metric_has_one_ce_panel(monkeypatch, tmp_path):
    captured = {}
    monkeypatch.setattr(C, "save_figure", lambda fig, png: captured.update(fig=fig))
    frame = pd.DataFrame([{"claim": "c1", "chapter": "3", "metric": "accuracy", "verdict": "not run",
                           "diff": math.nan, "ci_low": math.nan, "ci_high": math.nan, "thesis_diff": math.nan}])
    C.plot_claims(frame, tmp_path / "f.png")
    (ax,) = captured["fig"].axes
    assert ax.get_title() == "CE (positive = thesis' direction)" and len(ax.lines) == 3  # the 0 line + legend


def test_claims_without_runs_say_none_run_and_the_scale(base):
    """No run at all: every claim is `not run`, its provenance fields say `none run`, its scale is the config's;
    without a `summaries` block the interval level is 95 %."""
    frame = C.build_claims(with_claims(base, claim(), claim(id="c2")), "claims", [])
    assert list(frame.columns) == list(C.CLAIM_COLUMNS)
    for column in ("precision", "device", "inputs", "approximate_inputs"):
        assert frame[column].tolist() == ["none run", "none run"]
    assert frame["scale"].tolist() == ["smoke", "smoke"] and frame["verdict"].tolist() == ["not run"] * 2
    runs = [run("hard", s, v) for s, v in enumerate((2.0, 2.2, 2.1))]
    runs += [run("cifar10h_agg", s, v) for s, v in enumerate((1.8, 1.9, 2.0))]
    config = with_claims(base, claim())
    del config["summaries"]
    row = C.build_claims(config, "claims", runs).iloc[0]
    half = stats.t.ppf(0.975, 2) * 0.1 / math.sqrt(3)
    assert row["ci_high"] == pytest.approx(0.2 + half)
    assert row["device"] == UNRECORDED and row["inputs"] == UNRECORDED  # the runs record no provenance


def test_the_cli_names_unknown_targets_and_bad_metrics_and_writes_where_told(tmp_path, capsys):
    import json

    code = main(["claims", "claims_x", "--config", "scale=smoke"])
    assert code == 2
    assert ("claims target 'claims_x' is not defined under 'claims.targets' (known: claims, claims_chapter3)"
            in capsys.readouterr().err)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["claims", "claims", "--metrics", str(bad), "--out-csv", str(tmp_path / "c.csv"),
                 "--config", "scale=smoke"]) == 2
    assert "bad.json" in capsys.readouterr().err and not (tmp_path / "c.csv").exists()
    good = tmp_path / "hard.json"
    good.write_text(json.dumps({"scheme": "hard", "model": "resnet8a", "seed": 0, "cifar10h": {"ce": 2.0}}))
    out = {k: tmp_path / f"o.{k}" for k in ("csv", "md", "html", "png")}
    assert main(["claims", "claims_chapter3", "--metrics", str(good), "--out-csv", str(out["csv"]), "--out-md",
                 str(out["md"]), "--out-html", str(out["html"]), "--out-png", str(out["png"]),
                 "--config", "scale=smoke"]) == 0
    assert out["md"].read_text().startswith("## Claims of the thesis: target `claims_chapter3`\n")
    html = out["html"].read_text()
    assert "<h2>Claims of the thesis: target <code>claims_chapter3</code></h2>" in html and "<table>" in html
    assert all(path.stat().st_size > 0 for path in out.values())


def test_claims_use_the_given_thesis_values_and_unpaired_seeds_union(base):
    """A thesis table passed in is the one used (here with hand-set values); Welch cells list every seed of
    either cell; a claim that did not run, beside one that did, has no seeds and is not paired."""
    thesis = load_thesis_values()
    mask = (thesis["table"] == "table3_1") & (thesis["eval_set"] == "cifar10h") & (thesis["metric"] == "ce")
    thesis.loc[mask & (thesis["row"] == "hard"), ["value", "ci"]] = [3.0, 0.1]
    thesis.loc[mask & (thesis["row"] == "cifar10h_agg"), ["value", "ci"]] = [2.0, 0.1]
    config = copy.deepcopy(base)
    config["protocols"]["chapter3"]["seeds"] = [0, 1, 2, 3]
    runs = [run("hard", s, 2.0 + 0.1 * s) for s in (0, 1, 2, 3)] + [run("cifar10h_agg", s, 1.5) for s in (0, 1, 2, 3)]
    both = with_claims(config, claim(), claim(id="c2", table="table3_2", row_a="cifar10h_sep", row_b="cifar10s_sep"))
    frame = C.build_claims(both, "claims", runs, thesis=thesis).set_index("claim")
    assert (frame.loc["c1", "thesis_a"], frame.loc["c1", "thesis_b"]) == (3.0, 2.0)
    assert frame.loc["c1", "thesis_diff"] == pytest.approx(1.0) and frame.loc["c1", "thesis_overlap"] == "no"
    assert frame.loc["c2", "seeds"] == "" and bool(frame.loc["c2", "paired"]) is False
    # cells of different protocols (B moved to chapter 4, seeds 0 and 5): Welch, and the seeds of both cells
    config = copy.deepcopy(base)
    config["schemes"]["cifar10h_agg"]["protocol"] = "chapter4"
    for name, seeds in (("chapter3", [0, 1, 2]), ("chapter4", [0, 5])):
        config["protocols"][name]["seeds"], config["protocols"][name]["models"] = seeds, ["resnet8a"]
    runs = [run("hard", s, 2.0 + 0.1 * s) for s in (0, 1, 2)] + [run("cifar10h_agg", s, 1.5) for s in (0, 5)]
    row = C.build_claims(with_claims(config, claim()), "claims", runs, thesis=thesis).iloc[0]
    assert bool(row["paired"]) is False and row["seeds"] == "0|1|2|5" and row["n_pairs"] == 2


def test_forest_plot_shares_the_claim_axis_and_separates_chapters_from_the_first_row(monkeypatch, tmp_path):
    captured = {}
    monkeypatch.setattr(C, "save_figure", lambda fig, png: captured.update(fig=fig))
    nan = math.nan
    frame = pd.DataFrame([
        {"claim": "a", "chapter": "Z", "metric": "ce", "verdict": "not run", "diff": nan, "ci_low": nan,
         "ci_high": nan, "thesis_diff": nan},
        {"claim": "b", "chapter": "4", "metric": "fgsm", "verdict": "reproduced", "diff": 0.3, "ci_low": 0.1,
         "ci_high": 0.5, "thesis_diff": nan},
    ])
    C.plot_claims(frame, tmp_path / "f.png")
    ce, fgsm = captured["fig"].axes
    assert [t.get_text() for t in ce.get_yticklabels()] == ["Z · a", "Chapter 4 · b"]
    assert fgsm.get_ylim() == (-1.0, 2.0)  # the claim axis is shared by the panels
    separators = [line for line in ce.lines if line.get_color() == "lightgrey"]
    assert [list(line.get_ydata()) for line in separators] == [[0.5, 0.5]]  # between row 0 (y 1) and row 1 (y 0)
    assert all(g.get_alpha() == 0.3 for g in ce.get_xgridlines()) and ce.get_xgridlines()[0].get_visible()
    assert not ce.get_ygridlines()[0].get_visible()
    assert all(t.get_fontsize() == 7 for t in fgsm.get_legend().get_texts())


def test_claims_page_names_the_note_of_an_approximate_input(base):
    runs = [run("hard", s, 2.0 + 0.1 * s) for s in range(3)] + [run("cifar10h_agg", s, 1.5) for s in range(3)]
    for r in runs:
        r["provenance"] = {"precision": "fp32", "device": "cpu", "corruption_source": "generate",
                           "inputs": {"cifar10h": {"origin": "mirror", "approximate": True}}}
    frame = C.build_claims(with_claims(base, claim()), "claims", runs)
    md = C.claims_markdown(frame, "claims", {"cifar10h": "rebuilt from the counts"})
    assert "(cifar10h: rebuilt from the counts)" in md


def test_a_claim_reads_only_the_group_of_its_table():
    """A claims job whose target has tables only receives no `figures` block; looking up a table's block must
    not touch it (a claims table of one's own without figure claims failed so)."""
    config = cfg.declared_config({"tables.table9_1": {"rows": ["hard"], "eval_sets": ["cifar10h"], "all_models": False}})
    assert C.result_set(config, "table9_1")["rows"] == ["hard"]
    with pytest.raises(cfg.ConfigError, match="'figures'"):
        C.result_set(config, "fig3_6")
