"""The configuration: schema validation names the key; scale presets merge; CLI and workflow agree."""

import copy
import re
from pathlib import Path

import pytest
import yaml

from softlabels import config as cfg
from softlabels.cli import main

REPO = Path(__file__).resolve().parents[1]
RAW = yaml.safe_load((REPO / "config.yaml").read_text())
#: config.yaml over what the package ships (the pinned inputs and the thesis' schemes, tables, figures)
BASE = cfg.with_package_defaults(RAW)


def resolved(**changes):
    config = copy.deepcopy(BASE)
    config.update(changes)
    return cfg.resolve(config)


def test_shipped_config_is_valid_at_every_scale():
    for scale in ("paper", "quick", "smoke"):
        effective = resolved(scale=scale)
        assert effective["scale"] == scale


def test_scale_preset_merges_over_the_base():
    paper, quick = resolved(scale="paper"), resolved(scale="quick")
    assert paper["protocols"]["chapter3"]["models"] == ["resnet34a", "resnet50", "vgg11"]
    assert paper["protocols"]["chapter3"]["epochs"] == 65
    assert quick["protocols"]["chapter3"]["models"] == ["resnet8a"]
    # keys the preset does not name keep the base value
    assert quick["protocols"]["chapter3"]["grad_clip"] == paper["protocols"]["chapter3"]["grad_clip"] == 1.0
    assert quick["protocols"]["chapter3"]["base_lr"]["resnet34a"] == 0.1


def test_unknown_top_level_key_is_named():
    with pytest.raises(cfg.ConfigError, match="unknown key 'sclae'"):
        resolved(sclae="quick")


def test_unknown_nested_key_is_named_with_its_path():
    config = copy.deepcopy(BASE)
    config["labels"]["gamma_typo"] = 0.2
    with pytest.raises(cfg.ConfigError, match=r"unknown key 'labels\.gamma_typo'"):
        cfg.resolve(config)


def test_wrong_value_is_named():
    config = copy.deepcopy(BASE)
    config["labels"]["gamma"] = 1.5
    with pytest.raises(cfg.ConfigError, match=r"key 'labels\.gamma'"):
        cfg.resolve(config)
    with pytest.raises(cfg.ConfigError, match=r"key 'scale'.*'fast' is not one of"):
        resolved(scale="fast")


def test_bad_key_inside_a_scale_preset_is_named_after_the_merge():
    config = copy.deepcopy(BASE)
    config["scales"]["quick"]["protocols"]["chapter3"]["epoch"] = 3
    config["scale"] = "quick"
    with pytest.raises(cfg.ConfigError, match=r"(?s)scales\.quick.*unknown key 'protocols\.chapter3\.epoch'"):
        cfg.resolve(config)


def test_table_row_must_name_a_defined_scheme():
    config = copy.deepcopy(BASE)
    config["tables"]["table3_1"]["rows"].append("no_such_scheme")
    with pytest.raises(cfg.ConfigError, match=r"tables\.table3_1\.rows.*no_such_scheme"):
        cfg.resolve(config)


def test_mirror_environment_variable_fills_an_empty_data_mirror(monkeypatch):
    monkeypatch.setenv(cfg.MIRROR_ENV, "/some/mirror")
    assert resolved(data_mirror="")["data_mirror"] == "/some/mirror"
    assert resolved(data_mirror="/explicit")["data_mirror"] == "/explicit"


def test_later_config_files_merge_over_earlier_ones(tmp_path):
    extra = tmp_path / "extra.yaml"
    extra.write_text("labels:\n  gamma: 0.2\n")
    effective = cfg.load([REPO / "config.yaml", extra])
    assert effective["labels"]["gamma"] == 0.2
    assert effective["labels"]["label_smoothing_beta"] == BASE["labels"]["label_smoothing_beta"]


def test_cli_reports_bad_config_by_key_without_output(tmp_path, capsys):
    out = tmp_path / "spec.json"
    code = main(["make-spec", "--scheme", "hard", "--model", "resnet34a", "--seed", "0", "--out", str(out),
                 "--config", "scale=fast"])
    assert code == 2
    assert "key 'scale'" in capsys.readouterr().err
    assert not out.exists()


def test_workflow_refuses_a_bad_key_before_any_job(tmp_path, snakemake_runner):
    result = snakemake_runner(tmp_path / "wd", "-n", "--config", "sclae=quick")
    assert result.returncode != 0
    assert "sclae" in result.stderr + result.stdout
    assert not (tmp_path / "wd" / "results").exists()


def test_label_defaults_follow_the_thesis_and_releases():
    labels = resolved(scale="paper")["labels"]
    assert labels["tau_stimuli"] == "first_collection"  # the 810 thesis-era stimuli
    assert labels["hmix_redistribution_path"] == "hmix_release"  # H-Mix labels as released
    assert labels["redistribution_path"] == "documented"  # CIFAR-10S as released
    assert labels["semantic_base"] == "unif"  # Tables B.2/B.3: Semantic is the counterpart of Unif
    for key, bad in (("tau_stimuli", "first"), ("hmix_redistribution_path", "release"), ("semantic_base", "none")):
        config = copy.deepcopy(BASE)
        config["labels"][key] = bad
        with pytest.raises(cfg.ConfigError, match=rf"key 'labels\.{key}'"):
            cfg.resolve(config)


def with_scheme(name, **scheme):
    config = copy.deepcopy(BASE)
    config["schemes"][name] = scheme
    return config


@pytest.mark.parametrize(
    "scheme, key",
    [
        ({"protocol": "chapter3", "labels": "hard", "objective": "mixup"}, "objective"),
        ({"protocol": "chapter3", "labels": "cifar10h", "augment": "agg"}, "augment"),
        ({"protocol": "chapter5", "labels": "hard", "endpoints": "hard", "objective": "mixup", "alpha": 1.0,
          "augment": "sep"}, "augment"),
        ({"protocol": "chapter3", "labels": "hard", "endpoints": "soft"}, "endpoints"),
        ({"protocol": "chapter4", "labels": "hard", "augment": "agg", "n_soft": 250}, "n_soft"),
        ({"protocol": "chapter5", "labels": "hard", "objective": "mixup", "alpha": 1.0, "n_soft": 250}, "n_soft"),
    ],
)
def test_scheme_key_outside_its_protocol_is_refused_by_name(scheme, key):
    with pytest.raises(cfg.ConfigError, match=rf"key 'schemes\.bad\.{key}' does not apply to protocol"):
        cfg.resolve(with_scheme("bad", **scheme))


@pytest.mark.parametrize(
    "scheme, key",
    [
        ({"protocol": "chapter3", "labels": "cifar10h", "variety": "t2_clamp"}, "variety"),
        ({"protocol": "chapter3", "labels": "hard", "M": 2}, "M"),
        ({"protocol": "chapter3", "labels": "uniform", "aggregate": "mean"}, "aggregate"),
        ({"protocol": "chapter5", "labels": "hard", "objective": "mixup", "alpha": 1.0, "kappa": 0.7}, "kappa"),
        ({"protocol": "chapter5", "labels": "hard", "objective": "entwc", "alpha": 0.2, "kappa": 0.7,
          "partners": "random"}, "partners"),
        ({"protocol": "chapter5", "labels": "hard", "alpha": 1.0}, "alpha"),
        ({"protocol": "chapter5", "labels": "hard", "objective": "mixmaxent", "alpha": 10.0, "maxent_weight": 1.0,
          "partners": "different_class", "target_mix": "tau"}, "target_mix"),
    ],
)
def test_scheme_key_its_labels_or_objective_ignore_is_refused_by_name(scheme, key):
    with pytest.raises(cfg.ConfigError, match=rf"key 'schemes\.bad\.{key}' applies only with"):
        cfg.resolve(with_scheme("bad", **scheme))


def test_chapter5_labels_must_match_the_endpoints():
    soft_from_hard = {"protocol": "chapter5", "labels": "hard", "endpoints": "soft", "objective": "mixup", "alpha": 1.0}
    with pytest.raises(cfg.ConfigError, match=r"key 'schemes\.bad\.labels': soft endpoints need labels: cifar10s"):
        cfg.resolve(with_scheme("bad", **soft_from_hard))


def test_strict_scheme_check_runs_in_the_cli_and_writes_nothing(tmp_path, capsys):
    config = with_scheme("bad", protocol="chapter3", labels="hard", objective="mixup")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "taus.csv"
    (tmp_path / "j.csv").write_text("stimulus\n")  # exists, so the config is what stops the command
    status = main(["fit-taus", "--judgments", str(tmp_path / "j.csv"), "--out", str(out), "--configfile", str(path)])
    assert status == 2
    assert "schemes.bad.objective" in capsys.readouterr().err
    assert not out.exists()


def test_settings_of_and_select_name_only_the_declared_keys():
    config = resolved(scale="smoke")
    keys = ("labels.gamma", "summaries.low_entropy_max", "labels.not_a_key")
    assert cfg.settings_of(config, keys) == {"labels.gamma": 0.1, "summaries.low_entropy_max": 0.1,
                                             "labels.not_a_key": None}  # fmt: skip
    sub = cfg.select(config, keys)
    assert sub == {"labels": {"gamma": 0.1}, "summaries": {"low_entropy_max": 0.1}}
    with pytest.raises(KeyError):
        sub["labels"]["redistribution_path"]  # an undeclared read fails instead of passing unnoticed
    with pytest.raises(cfg.ConfigError, match="key 'labels.nope'"):
        cfg.setting(config, "labels.nope")


def test_config_yaml_holds_settings_and_the_package_ships_the_rest():
    """config.yaml carries no checksum, no claim and no thesis scheme/table/figure: the pinned inputs, the claims
    table and the experiment catalogue ship in the package and are merged under it."""
    text = (REPO / "config.yaml").read_text()
    assert not re.search(r"(sha256|md5):[0-9a-f]{32}", text)
    assert not {"sources", "schemes", "tables", "figures"} & set(RAW) and "list" not in RAW["claims"]
    config = cfg.load()
    assert config["sources"]["cifar10"]["checksum"].startswith("md5:")
    assert config["evaluation"]["corruption"]["cifar10c"]["checksum"].startswith("sha256:")
    assert {"hard", "ch5_mixup_hard", "chC_tau"} <= set(config["schemes"]) and "table3_1" in config["tables"]


def test_a_users_scheme_and_table_merge_with_the_catalogue():
    overlay = {"schemes": {"my_hard": {"protocol": "chapter3", "labels": "hard"}},
               "tables": {"table9_1": {"rows": ["hard", "my_hard"], "eval_sets": ["cifar10h"], "all_models": False}},
               "sources": {"glove": {"url": "https://example.org/glove.zip"}}}
    config = cfg.load(overrides=overlay)
    assert config["schemes"]["my_hard"] == {"protocol": "chapter3", "labels": "hard"} and "cifar10h_agg" in config["schemes"]
    assert config["tables"]["table9_1"]["rows"] == ["hard", "my_hard"] and "table3_1" in config["tables"]
    assert config["sources"]["glove"]["url"] == "https://example.org/glove.zip"
    assert config["sources"]["glove"]["checksum"].startswith("sha256:")  # the rest of the pinned entry stays
    with pytest.raises(cfg.ConfigError, match="table9_2"):
        cfg.load(overrides={"tables": {"table9_2": {"rows": ["nope"], "eval_sets": ["cifar10h"], "all_models": False}}})
