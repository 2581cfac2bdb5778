"""Grouping of training runs into jobs from the config alone (softlabels.experiments.groups.config_groups), the one
rerun decision of a run (softlabels.experiments.runs.run_is_current) and the start-of-run plan."""

from __future__ import annotations

import pytest

from softlabels import config as cfg
from softlabels.experiments import groups as G
from softlabels.experiments import runs as R
from softlabels.train.plan import training_plan_text


@pytest.fixture(scope="module")
def paper():
    return cfg.load(None, {"scale": "paper"})


def table_runs(config):
    out = set()
    for kind in ("tables", "figures"):
        for result_set in config[kind].values():
            for row in result_set["rows"]:
                out.update(R.runs_of(config, row, result_set["all_models"], result_set.get("seeds", "main")))
    return sorted(out)


def test_identical_specs_train_once_and_aliases_follow_their_run(paper):
    groups, specs, canonical = G.config_groups(paper, table_runs(paper))
    members = [run for g in groups for run in g.members]
    assert len(members) == len(set(members)) == len(table_runs(paper)) - 15
    assert canonical[("cifar10h_sep_m51", "resnet34a", 0)] == ("cifar10h_sep", "resnet34a", 0)
    for scheme in ("cifar10s_sep_m6", "t2_clamp_sep"):
        assert canonical[(scheme, "resnet34a", 3)] == ("cifar10s_sep", "resnet34a", 3)
    aliases = {alias: c for g in groups for alias, c in g.aliases}
    assert len(aliases) == 15
    for g in groups:  # an alias is copied by the job that trains its run
        assert all(c in g.members for _, c in g.aliases)


def test_groups_share_model_protocol_and_training_set_size(paper):
    groups, specs, _ = G.config_groups(paper, table_runs(paper))
    assert len(groups) < 40
    for g in groups:
        assert 1 <= len(g.members) <= paper["protocols"][g.protocol]["group_size"]
        assert len({G.group_key(specs[r]) for r in g.members}) == 1
    n_soft = [g for g in groups if specs[g.members[0]]["scheme_spec"].get("n_soft")]
    assert n_soft and all(len({specs[r]["scheme_spec"]["n_soft"] for r in g.members}) == 1 for g in n_soft)


def test_plan_names_runs_device_and_warns_at_paper_scale_on_the_cpu(paper):
    groups, specs, _ = G.config_groups({**paper, "device": "cpu"}, table_runs(paper))
    text = training_plan_text({**paper, "device": "cpu"}, groups, specs, measure=False)
    assert f"{len(table_runs(paper)) - 15} run(s) to train in {len(groups)} group job(s)" in text
    assert "cpu" in text and "WARNING" in text and "--config scale=quick" in text


def test_plan_measures_a_step_and_estimates_time():
    smoke = cfg.load(None, {"scale": "smoke", "device": "cpu"})
    groups, specs, _ = G.config_groups(smoke, [("hard", "resnet8a", 0)])
    text = training_plan_text(smoke, groups, specs, measure=True)
    assert "measured resnet8a" in text and "estimated training time" in text and "WARNING" not in text


def test_an_alias_gets_the_shared_runs_results_under_its_own_name(tmp_path, paper):
    import json

    from softlabels.train.cli import copy_alias

    canonical, alias = tmp_path / "cifar10h_sep", tmp_path / "cifar10h_sep_m51"
    canonical.mkdir()
    spec = R.run_spec(paper, "cifar10h_sep", "resnet34a", 0)
    (canonical / "metrics.json").write_text(json.dumps({"scheme": "cifar10h_sep", "spec": spec, "cifar10h": {"ce": 1.5}}))
    (canonical / "train_log.csv").write_text("epoch,loss\n1,2.0\n")
    alias_spec = R.run_spec(paper, "cifar10h_sep_m51", "resnet34a", 0)
    assert G.spec_identity(alias_spec) == G.spec_identity(spec) and alias_spec != spec
    copy_alias(canonical, alias, alias_spec)
    metrics = json.loads((alias / "metrics.json").read_text())
    assert metrics["scheme"] == "cifar10h_sep_m51" and metrics["spec"] == alias_spec
    assert metrics["alias_of"] == str(canonical) and metrics["cifar10h"] == {"ce": 1.5}
    assert json.loads((alias / "spec.json").read_text()) == alias_spec
    assert (alias / "train_log.csv").read_text() == "epoch,loss\n1,2.0\n"


def test_groups_are_cut_to_near_equal_sizes(paper):
    """20 runs at group_size 16 become two jobs of 10 (not 16 + 4: a fused job costs about as much device
    time as its largest sibling); sizes differ by at most one and never exceed group_size."""
    assert [len(c) for c in G.near_equal_chunks(list(range(20)), 16)] == [10, 10]
    assert [len(c) for c in G.near_equal_chunks(list(range(33)), 16)] == [11, 11, 11]
    assert [len(c) for c in G.near_equal_chunks(list(range(17)), 8)] == [5, 6, 6]
    assert G.near_equal_chunks(list(range(5)), 1) == [[0], [1], [2], [3], [4]]
    assert G.near_equal_chunks([], 4) == []
    assert sum(G.near_equal_chunks(list(range(37)), 16), []) == list(range(37))
    config = cfg.deep_merge(paper, {"protocols": {"chapter3": {"group_size": 16, "seeds": [0, 1, 2, 3, 4]}}})
    runs = [(scheme, "resnet34a", seed) for scheme in ("hard", "random", "cifar10h_sep", "cifar10s_sep")
            for seed in range(5)]
    groups, specs, _ = G.config_groups(config, runs)
    sizes = sorted(len(g.members) for g in groups if g.model == "resnet34a")
    assert sizes == [10, 10], sizes


def test_bf16_with_fused_groups_is_refused_before_any_job(paper):
    config = cfg.deep_merge(paper, {"protocols": {"chapter3": {"precision": "bf16", "group_size": 4}}})
    with pytest.raises(ValueError, match=r"protocols\.chapter3\.precision"):
        G.config_groups(config, [("hard", "resnet34a", s) for s in range(5)])


# --------------------------------------------------------------------------------------------------------------
# The workflow's groups come from the config alone; a group job trains only its members that are not current.
# --------------------------------------------------------------------------------------------------------------
def test_group_names_come_from_the_config_alone_and_name_their_first_member(paper):
    runs = table_runs(paper)
    groups, _, _ = G.config_groups(paper, runs)
    names = [(g.protocol, g.name) for g in groups]
    assert len(set(names)) == len(names)
    first = groups[0].members[0]
    assert groups[0].name == f"{first[1]}.{first[0]}.seed{first[2]}"
    # a setting that changes every member's spec keeps the names (the spec travels as the job's settings)
    gamma = cfg.deep_merge(paper, {"labels": {"gamma": 0.3}})
    assert [g.name for g in G.config_groups(gamma, runs)[0]] == [g.name for g in groups]

def _train_group(tmp_path, monkeypatch, inputs, runs=("hard/resnet8a/0", "uniform/resnet8a/0")):
    """Run `softlabels train-group` at smoke scale with the training itself replaced by a stub that writes
    each run's metrics.json with its run_key; returns (the runs trained, the group record)."""
    import json

    from softlabels.cli import main
    from softlabels.train import cli as train_cli

    trained = []

    def fake_train_runs(runs, data_dir, glove, threads, provenance, cudnn_benchmark=False, keys=None):
        for (spec, out_dir), key in zip(runs, keys):
            trained.append(f"{spec['scheme']}/{spec['model']}/{spec['seed']}")
            (out_dir / "metrics.json").write_text(json.dumps({"spec": spec, "run_key": key}))
        return [], []

    monkeypatch.setattr(train_cli, "train_runs", fake_train_runs)
    record = tmp_path / "record.json"
    argv = ["train-group", *[a for run in runs for a in ("--run", run)], "--runs-dir", str(tmp_path),
            "--record", str(record), "--provenance", "none", "--inputs", *map(str, inputs), "--config", "scale=smoke"]
    assert main(argv) == 0
    return trained, json.loads(record.read_text())


def test_a_group_job_trains_only_its_members_that_are_not_current(tmp_path, monkeypatch):
    from softlabels.experiments.runs import file_digest, recorded_run_key, run_is_current, run_key

    data = tmp_path / "data.npz"
    data.write_bytes(b"inputs v1")
    smoke = cfg.load(None, {"scale": "smoke"})
    # nothing on disk: both train; their metrics.json record their run_key
    trained, record = _train_group(tmp_path, monkeypatch, [data])
    assert trained == ["hard/resnet8a/0", "uniform/resnet8a/0"] and record["trained"] == trained
    key = run_key(R.run_spec(smoke, "hard", "resnet8a", 0), [file_digest(data)])
    assert recorded_run_key(tmp_path / R.run_dir("hard", "resnet8a", 0)) == key == record["run_keys"]["hard/resnet8a/0"]
    # the same group again: both are current, nothing trains
    assert _train_group(tmp_path, monkeypatch, [data])[0] == []
    # one run's files deleted: only that run trains
    (tmp_path / R.run_dir("uniform", "resnet8a", 0) / "metrics.json").unlink()
    assert _train_group(tmp_path, monkeypatch, [data])[0] == ["uniform/resnet8a/0"]
    # a new member joins (a new seed regrouped with finished runs): only it trains
    runs = ("hard/resnet8a/0", "hard/resnet8a/1", "uniform/resnet8a/0")
    assert _train_group(tmp_path, monkeypatch, [data], runs)[0] == ["hard/resnet8a/1"]
    # other input bytes: every run's key changes, all train again
    data.write_bytes(b"inputs v2")
    assert not run_is_current(tmp_path / R.run_dir("hard", "resnet8a", 0), run_key(R.run_spec(smoke, "hard", "resnet8a", 0), [file_digest(data)]))
    assert _train_group(tmp_path, monkeypatch, [data], runs)[0] == list(runs)


def test_the_run_key_leaves_out_the_device_only():
    from softlabels.experiments.runs import run_key

    smoke = cfg.load(None, {"scale": "smoke"})
    spec = R.run_spec(smoke, "hard", "resnet8a", 0)
    assert run_key({**spec, "device": "cuda"}, ["a"]) == run_key({**spec, "device": "cpu"}, ["a"])
    assert run_key(spec, ["a", "b"]) == run_key(spec, ["b", "a"]) != run_key(spec, ["a"])
    assert run_key({**spec, "seed": 1}, ["a"]) != run_key(spec, ["a"])
