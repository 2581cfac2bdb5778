"""softlabels.vocabulary is the one place the project's names are defined: the schema's enumerations, the
catalogue's figures, the metrics each evaluation computes and the thesis values are held against it here."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from conftest import REPO

from softlabels import config as softlabels_config
from softlabels import vocabulary as V
from softlabels.report import thesis
from softlabels.report.tables import read_metrics


@pytest.fixture(scope="module")
def schema():
    return yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())


def test_the_schemas_enumerations_are_the_vocabulary(schema):
    scheme = schema["$defs"]["scheme"]["properties"]
    assert scheme["labels"]["enum"] == list(V.LABEL_SOURCES)
    assert scheme["objective"]["enum"] == list(V.OBJECTIVES)
    augment = {tuple(option.get("enum", [None])) for option in scheme["augment"]["oneOf"]}
    assert augment == {(None,), tuple(k for k in V.AUGMENTS if k is not None)}
    assert schema["$defs"]["result_set"]["properties"]["eval_sets"]["items"]["enum"] == list(V.EVAL_SETS)
    claim = schema["properties"]["claims"]["properties"]["list"]["items"]["properties"]
    assert claim["metric"]["enum"] == list(V.metrics_on("*", compared=True))


def test_every_key_the_vocabulary_ties_to_a_source_or_objective_is_a_scheme_key(schema):
    scheme_keys = set(schema["$defs"]["scheme"]["properties"])
    tied = {k for s in V.LABEL_SOURCES.values() for k in s.keys} | {k for o in V.OBJECTIVES.values() for k in o.keys}
    assert tied and tied <= scheme_keys
    assert V.keys_only_for("kappa") == ("objective", "ce", ("entwc",))
    assert V.keys_only_for("M") == ("labels", None, ("cifar10h", "cifar10s"))
    assert V.keys_only_for("n_soft") is None


def test_a_scheme_key_of_another_objective_is_refused_with_the_vocabularys_list():
    with pytest.raises(softlabels_config.ConfigError, match=r"'schemes.s.kappa' applies only with objective: entwc"):
        softlabels_config.check_scheme_keys("s", {"protocol": "chapter5", "labels": "hard", "objective": "mixup",
                                                  "kappa": 0.5})  # fmt: skip


def test_the_catalogues_figures_are_the_run_figures():
    catalogue = yaml.safe_load(softlabels_config.catalogue_path().read_text())
    assert set(catalogue["figures"]) == set(V.RUN_FIGURES)


def test_each_metric_has_one_name_and_the_claim_metrics_follow_from_it():
    thesis_metrics = ["ce", "calibration", "fgsm", "accuracy", "corruption_ce"]  # a metric of one's own may join
    assert [m for m in V.METRICS if m in thesis_metrics] == thesis_metrics
    assert V.metrics_on("corruption") == ("corruption_ce",)
    assert V.metrics_on("cifar10s", compared=True) == ("ce", "calibration", "fgsm")
    assert V.metrics_on("*", plotted=True) == ("ce", "calibration", "fgsm")
    assert V.metric_title("corruption_ce") == "Corruption CE" and V.metric_title("brier") == "brier"


def test_the_evaluations_compute_exactly_the_vocabularys_metrics():
    """evaluate_model returns the metrics of the clean sets, corruption_metrics those of the corruption set."""
    import torch

    from softlabels.evaluate.corruption_ce import corruption_metrics
    from softlabels.evaluate.metrics import evaluate_model

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    targets = rng.dirichlet(np.ones(10), 40).astype(np.float32)
    evaluation = {"calibration": {"skip_last_bin": True}, "fgsm": {"epsilon": 4 / 255}}
    clean = evaluate_model(model, images, targets, evaluation, bin_size=10)
    for eval_set in ("cifar10h", "cifar10s"):
        assert set(clean) - {"n"} == set(V.metrics_on(eval_set))
    corrupted = corruption_metrics(model, {"frost": images, "fog": images}, targets)
    assert set(corrupted) - {"n", "per_corruption"} == set(V.metrics_on("corruption"))


def test_thesis_values_name_only_vocabulary_pairs(tmp_path):
    values = thesis.load_thesis_values()
    cells = values[values["eval_set"] != ""]
    assert all(e in V.METRICS[m].eval_sets for e, m in zip(cells["eval_set"], cells["metric"]))
    bad = tmp_path / "values.csv"
    bad.write_text("# one comment line\ntable,eval_set,row,metric,value,ci,note\n"
                   "table5_1,corruption,r,corruption_ce,1.0,0.1,\ntable5_1,cifar10h,r,corruption_ce,1.0,0.1,\n")
    with pytest.raises(ValueError, match=r"values.csv:4: metric 'corruption_ce' is not measured on eval set 'cifar10h'"):
        thesis.load_thesis_values(bad)


def test_a_run_built_before_the_rename_keeps_its_corruption_ce(tmp_path):
    """metrics.json written before corruption CE had one name store it as `corruption.mean`."""
    old = tmp_path / "metrics.json"
    old.write_text(json.dumps({"scheme": "s", "model": "m", "seed": 0,
                               "corruption": {"mean": 1.25, "per_corruption": {"fog": 1.25}, "n": 10}}))
    (run,) = read_metrics([old])
    assert run["corruption"] == {"corruption_ce": 1.25, "per_corruption": {"fog": 1.25}, "n": 10}


def test_a_preset_alias_is_not_shared_after_loading(tmp_path):
    """config.yaml's quick preset writes chapter 5 as an alias of chapter 4 (`*quick_mixing`): an override of one
    changes only that one, through softlabels' loader and through Snakemake's own config merge, and the loaded
    config shares no block between protocols (`config.unshared`)."""
    from snakemake.common.configfile import load_configfile
    from snakemake.utils import update_config

    override = {"scales": {"quick": {"protocols": {"chapter4": {"epochs": 3, "base_lr": {"resnet8a": 0.05}}}}}}
    mine = tmp_path / "mine.yaml"
    mine.write_text(yaml.safe_dump(override))
    loaded = softlabels_config.load([REPO / "config.yaml", mine], {"scale": "quick"}, schema=False)
    assert loaded["protocols"]["chapter4"]["epochs"] == 3 and loaded["protocols"]["chapter5"]["epochs"] == 40
    assert loaded["protocols"]["chapter3"]["base_lr"]["resnet8a"] == 0.1
    # no block is shared, so an in-place edit stays where it is made
    plain = softlabels_config.load([REPO / "config.yaml"], {"scale": "quick"}, schema=False)
    presets = plain["scales"]["quick"]["protocols"]
    assert presets["chapter5"] is not presets["chapter4"] and presets["chapter5"]["models"] is not presets["chapter4"]["models"]
    presets["chapter4"]["lr_milestones"].append(35)
    assert presets["chapter5"]["lr_milestones"] == [20, 30]
    snakemake_config = {}
    update_config(snakemake_config, load_configfile(str(REPO / "config.yaml")))
    update_config(snakemake_config, override)
    protocols = snakemake_config["scales"]["quick"]["protocols"]
    assert protocols["chapter4"]["epochs"] == 3 and protocols["chapter5"]["epochs"] == 40
    assert protocols["chapter5"]["base_lr"]["resnet8a"] == 0.1 and protocols["chapter3"]["base_lr"]["resnet8a"] == 0.1


def test_every_label_source_has_a_builder():
    from softlabels.train.chapter3 import SOURCE_POOLS

    assert list(SOURCE_POOLS) == list(V.LABEL_SOURCES)
