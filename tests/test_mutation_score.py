"""The mutation-score script (tests/mutation/run.py): how it counts and scores, and its list of equivalent
mutants (each names a mutant of a scored module and says why)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent / "mutation" / "run.py"


@pytest.fixture(scope="module")
def run():
    spec = importlib.util.spec_from_file_location("mutation_run", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_equivalent_mutant_has_a_module_and_a_reason(run):
    listed = run.equivalent_mutants()
    assert listed
    for name, reason in listed.items():
        assert "__mutmut_" in name and run.module_of(name), name
        assert len(reason.split()) >= 4, (name, reason)


def test_missing_reason_is_refused(run, tmp_path):
    path = tmp_path / "eq.txt"
    path.write_text("# comment\nsoftlabels.labels.tau.x_f__mutmut_1\n")
    with pytest.raises(SystemExit, match="eq.txt:2: mutant softlabels.labels.tau.x_f__mutmut_1 has no reason"):
        run.equivalent_mutants(path)


def test_score_counts_timeouts_as_killed_and_leaves_equivalents_out(run):
    results = {
        "softlabels.evaluate.metrics.x_a__mutmut_1": 1,
        "softlabels.evaluate.metrics.x_a__mutmut_2": 0,
        "softlabels.evaluate.metrics.x_a__mutmut_3": 0,
        "softlabels.evaluate.metrics.x_a__mutmut_4": 36,
        "softlabels.evaluate.metrics.x_a__mutmut_5": 33,
        "softlabels.train.trainer.x_fit__mutmut_1": 0,  # not a selected trainer function
        "softlabels.train.trainer.x_learning_rate__mutmut_1": 1,
    }
    table, survivors = run.score_table(results, ["metrics", "trainer"],
                                       {"softlabels.evaluate.metrics.x_a__mutmut_3": "why"})  # fmt: skip
    rows = {line.split()[0]: line.split()[1:] for line in table.splitlines()[1:]}
    # killed, survived, timeout, no tests, equivalent, not run, total, killed %
    assert rows["metrics"] == ["1", "1", "1", "1", "1", "0", "5", "50.0"]
    assert rows["trainer"] == ["1", "0", "0", "0", "0", "0", "1", "100.0"]
    assert rows["all"] == ["2", "1", "1", "1", "1", "0", "6", "60.0"]
    assert survivors == ["softlabels.evaluate.metrics.x_a__mutmut_2", "softlabels.evaluate.metrics.x_a__mutmut_5"]
    _, only = run.score_table(results, ["metrics"], {}, ["*x_a__mutmut_2"])
    assert only == ["softlabels.evaluate.metrics.x_a__mutmut_2"]
