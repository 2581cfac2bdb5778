"""The chapter-4/5 quick protocol's pieces and the sweeps' selected values (docs/protocol.md#quick-scale,
docs/protocol.md#selected-values-in-the-runs-new-in-this-release): a class-balanced subset that holds given
images first, the augmenting set cut to N image pairs per class pair, label smoothing on all images, the label
keys each scheme's spec holds, the validation split of the images no run trains on, and the markers of selected
settings in run specs, resolved from the sweeps' selection files."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from softlabels import config as cfg
from softlabels.cli import main
from softlabels.data.splits import balanced_prefix
from softlabels.experiments import runs, sweeps
from softlabels.experiments import selections as SEL
from softlabels.train import chapter3, run_data


# ----------------------------------------------------------------------------------------------------------
# Subsets and the augmenting set
# ----------------------------------------------------------------------------------------------------------
def test_balanced_prefix_takes_the_given_images_first_and_keeps_file_order():
    indices = np.arange(20)
    labels = np.arange(20) % 2  # even: class 0, odd: class 1
    assert balanced_prefix(indices, labels, 6).tolist() == [0, 1, 2, 3, 4, 5]
    # 18 and 7 come first in their classes; the rest of each class fills up in file order
    assert balanced_prefix(indices, labels, 6, first=[18, 7]).tolist() == [0, 1, 2, 3, 7, 18]
    # more given images than places: the first of them in file order
    assert balanced_prefix(indices, labels, 4, first=[18, 16, 14]).tolist() == [1, 3, 14, 16]
    # nothing to choose: all of them, whatever `first` says
    assert balanced_prefix(indices, labels, None, first=[5]).tolist() == list(range(20))


def _stimuli():
    """Two class pairs, (0, 1) with three image pairs and (2, 3) with two, each pair mixed at two λ_f (one pair in
    both orientations), plus one stimulus outside the first collection."""
    rows = [  # class1, image1, class2, image2, first_collection
        (0, 10, 1, 11, True), (1, 11, 0, 10, True),
        (0, 30, 1, 31, True), (0, 30, 1, 31, True),
        (0, 20, 1, 21, True), (0, 20, 1, 21, True),
        (2, 50, 3, 51, True), (3, 41, 2, 40, True),
        (2, 50, 3, 51, True), (2, 60, 3, 61, False),
    ]
    c1, i1, c2, i2, first = map(np.array, zip(*rows))
    return {"class1": c1, "image1": i1, "class2": c2, "image2": i2, "first_collection": first}


def test_augmenting_positions_keep_the_first_image_pairs_of_each_class_pair():
    stimuli = _stimuli()
    assert run_data.augmenting_positions(stimuli).tolist() == list(range(9))
    # pairs ordered by (smaller, larger) CIFAR-10 index: (10, 11) before (20, 21) before (30, 31); (40, 41) first
    assert run_data.augmenting_positions(stimuli, 1).tolist() == [0, 1, 7]
    assert run_data.augmenting_positions(stimuli, 2).tolist() == [0, 1, 4, 5, 6, 7, 8]
    assert run_data.augmenting_endpoints(stimuli, 1).tolist() == [10, 11, 40, 41]


def test_split_images_hold_the_endpoints_of_the_kept_stimuli():
    labels = np.arange(100) % 10
    stimuli = {"class1": np.array([3]), "image1": np.array([93]), "class2": np.array([5]),
               "image2": np.array([95]), "first_collection": np.array([True])}
    data = SimpleNamespace(split_train=np.arange(100), labels=labels, hmix_stimuli=lambda: stimuli)
    plain = run_data.split_images({"protocol": {"hard_image_limit": 20}}, data)
    assert 93 not in plain and 95 not in plain and len(plain) == 20
    held = run_data.split_images({"protocol": {"hard_image_limit": 20, "augmenting_pairs": 1}}, data)
    assert len(held) == 20 and {93, 95} <= set(held.tolist())
    assert np.bincount(labels[held]).tolist() == [2] * 10
    assert 13 not in held and 15 not in held  # each endpoint took its class's second place


# ----------------------------------------------------------------------------------------------------------
# Label smoothing and the label keys of a spec
# ----------------------------------------------------------------------------------------------------------
def _spec(scheme_labels, scope):
    return {"scheme_spec": {"labels": scheme_labels},
            "labels": {"label_smoothing_beta": 0.1, "label_smoothing_normalised": True,
                       "label_smoothing_scope": scope}}


def test_label_smoothing_relabels_the_hard_images_too_unless_scoped_to_the_soft_ones():
    data = SimpleNamespace(labels=np.array([2, 7]))
    smoothed = chapter3.hard_image_pools(_spec("label_smoothing", "all"), data, np.array([0, 1]))
    assert np.allclose(smoothed.labels[0, 0], [0.01] * 2 + [0.91] + [0.01] * 7)
    assert np.allclose(smoothed.labels[1, 0, 7], 0.91)
    hard = chapter3.hard_image_pools(_spec("label_smoothing", "soft_images"), data, np.array([0, 1]))
    assert np.array_equal(hard.labels[:, 0], np.eye(10)[[2, 7]])
    other = chapter3.hard_image_pools({"scheme_spec": {"labels": "uniform"}, "labels": {}}, data, np.array([0]))
    assert np.array_equal(other.labels[0, 0], np.eye(10)[2])


def test_a_spec_holds_the_label_keys_its_scheme_reads():
    config = cfg.load(None, {"scale": "paper"})
    keys = lambda scheme: set(runs.run_spec(config, scheme, config["single_model"][
        config["schemes"][scheme]["protocol"]], 0)["labels"])
    base = {"gamma", "redistribution_path", "annotator_subsample_seed"}
    assert keys("hard") == keys("cifar10s_sep") == base
    assert keys("label_smoothing") == base | {"label_smoothing_beta", "label_smoothing_normalised",
                                              "label_smoothing_scope"}
    assert keys("t2_semantic_sep") == base | {"semantic_base"}
    assert keys("ch4_agg") == set() and keys("ch4_sep_conf") == {"confidence_gamma"}
    assert keys("ch5_mixup_hard") == set() and keys("chC_tau") == {"tau_stimuli"}
    assert "tau_stimuli" not in keys("ch5_mixup_soft") and {"gamma", "simulator_seed"} <= keys("ch5_mixup_soft")


def test_augmenting_pairs_belong_to_chapters_4_and_5():
    with pytest.raises(cfg.ConfigError, match="protocols.chapter3.augmenting_pairs' does not apply"):
        cfg.load(None, {"scale": "paper", "protocols": {"chapter3": {"augmenting_pairs": 2}}})


# ----------------------------------------------------------------------------------------------------------
# Selected values
# ----------------------------------------------------------------------------------------------------------
def _quick():
    return cfg.load(None, {"scale": "quick"})


def test_selected_settings_are_marked_in_exactly_the_runs_that_read_them():
    config = _quick()
    mme = runs.run_spec(config, "ch5_mixmaxent_soft", "resnet8a", 1)
    assert mme["scheme_spec"]["alpha"] == {"selected_by": "mixmaxent_alpha", "values": [5.0, 10.0, 20.0],
                                          "criterion": "accuracy"}
    assert SEL.spec_sweeps(mme) == ["gamma", "mixmaxent_alpha"]  # soft endpoints read γ
    assert SEL.spec_sweeps(runs.run_spec(config, "ch5_mixmaxent_hard", "resnet8a", 0)) == ["mixmaxent_alpha"]
    assert SEL.spec_sweeps(runs.run_spec(config, "chC_tau_entwc", "resnet8a", 0)) == ["entwc_alpha", "entwc_kappa"]
    assert SEL.spec_sweeps(runs.run_spec(config, "ch5_mixup_hard", "resnet8a", 0)) == []
    assert SEL.spec_sweeps(runs.run_spec(config, "ch4_sep_conf", "resnet8a", 0)) == []
    assert SEL.spec_sweeps(runs.run_spec(config, "hard", "resnet8a", 0)) == ["gamma", "lr_resnet8a"]
    assert SEL.spec_sweeps(runs.run_spec(config, "label_smoothing", "resnet8a", 0)) == [
        "gamma", "label_smoothing_beta", "lr_resnet8a"]
    # without sweeps.apply (paper), and for the sweep points themselves: the configured values
    paper = cfg.load(None, {"scale": "paper"})
    assert runs.run_spec(paper, "ch5_mixmaxent_hard", "preact_resnet34", 0)["scheme_spec"]["alpha"] == 10.0
    point = sweeps.point_spec(config, "entwc_kappa", "0.5", 0)
    assert point["scheme_spec"]["kappa"] == 0.5 and point["scheme_spec"]["alpha"] == 0.2
    assert point["protocol"]["base_lr"] == {"resnet8a": 0.1} and not SEL.markers(point)


def test_spec_paths_of_dotted_keys():
    spec = {"scheme": "s", "protocol_name": "chapter3", "labels": {"gamma": 0.1}, "evaluation": {"fgsm": {"epsilon": 1}},
            "protocol": {"base_lr": {"resnet8a": 0.1}}, "scheme_spec": {"alpha": 1.0}}
    assert SEL.spec_path(spec, "labels.gamma") == ("labels", "gamma")
    assert SEL.spec_path(spec, "evaluation.fgsm.epsilon") == ("evaluation", "fgsm", "epsilon")
    assert SEL.spec_path(spec, "protocols.chapter3.base_lr.resnet8a") == ("protocol", "base_lr", "resnet8a")
    assert SEL.spec_path(spec, "protocols.chapter3.base_lr.vgg11") is None  # another model's rate
    assert SEL.spec_path(spec, "protocols.chapter4.base_lr.resnet8a") is None  # another protocol
    assert SEL.spec_path(spec, "schemes.s.alpha") == ("scheme_spec", "alpha")
    assert SEL.spec_path(spec, "schemes.t.alpha") is None and SEL.spec_path(spec, "labels.tau_stimuli") is None


def test_resolving_puts_the_selected_value_in_place_and_names_its_sweep(tmp_path):
    config = _quick()
    spec = runs.run_spec(config, "ch5_entwc_soft", "resnet8a", 2)
    records = {"entwc_alpha": {"sweep": "entwc_alpha", "value": 1.0, "values": [0.1, 0.2, 1.0]},
               "entwc_kappa": {"sweep": "entwc_kappa", "value": 0.9, "values": [0.5, 0.7, 0.9]},
               "gamma": {"sweep": "gamma", "value": 0.3, "values": [0.0, 0.1, 0.3]}}
    done = SEL.resolve_selected(spec, records)
    assert done["scheme_spec"]["alpha"] == 1.0 and done["scheme_spec"]["kappa"] == 0.9
    assert done["labels"]["gamma"] == 0.3 and not SEL.markers(done)
    assert done["selected"] == {"scheme_spec.alpha": {"sweep": "entwc_alpha", "value": 1.0},
                                "scheme_spec.kappa": {"sweep": "entwc_kappa", "value": 0.9},
                                "labels.gamma": {"sweep": "gamma", "value": 0.3}}
    assert SEL.markers(spec)  # the spec given is left as it was
    with pytest.raises(ValueError, match="comes from sweep 'gamma', whose selection was not given"):
        SEL.resolve_selected(spec, {k: v for k, v in records.items() if k != "gamma"})
    stale = {**records, "gamma": {**records["gamma"], "values": [0.0, 0.1]}}
    with pytest.raises(ValueError, match="sweep 'gamma': the selection was made over"):
        SEL.resolve_selected(spec, stale)
    path = tmp_path / "selected.json"
    path.write_text(json.dumps({"sweep": "gamma"}))
    with pytest.raises(ValueError, match="lacks sweep, value or values"):
        SEL.read_selection(path)
    with pytest.raises(ValueError, match="is missing"):
        SEL.read_selection(tmp_path / "none.json")


def test_two_sweeps_may_not_select_one_key():
    extra = {"sweeps": {"grids": {"gamma2": {"scheme": "hard", "model": None, "key": "labels.gamma",
                                             "values": [0.0, 0.1]}}}}
    with pytest.raises(cfg.ConfigError, match="labels.gamma is selected by sweep 'gamma' too"):
        cfg.load(None, {"scale": "quick", **extra})
    cfg.load(None, {"scale": "paper", **extra})  # without apply, two sweeps of one key are fine
    bad = {"sweeps": {"grids": {"gamma": {"apply_to": ["labels.gamma", "labels.no_such_key"]}}}}
    with pytest.raises(cfg.ConfigError, match="labels.no_such_key is not set"):
        cfg.load(None, {"scale": "quick", **bad})


# ----------------------------------------------------------------------------------------------------------
# The validation split of the images no run trains on
# ----------------------------------------------------------------------------------------------------------
def _split_data(tmp_path):
    labels = np.arange(200) % 10
    responses = pd.DataFrame({"image": [0, 1, 2, 3, 3]})
    stimuli = {"class1": np.array([2]), "image1": np.array([192]), "class2": np.array([5]),
               "image2": np.array([195]), "first_collection": np.array([True])}
    return SimpleNamespace(split_train=np.arange(140), labels=labels, images=np.zeros((200, 32, 32, 3), np.uint8),
                           cifar10s_images=lambda: np.array([0, 1, 2, 3]), hmix_stimuli=lambda: stimuli)


def test_unused_split_leaves_out_every_trained_and_cifar10s_image(tmp_path):
    data = _split_data(tmp_path)
    data.split_train = np.arange(200)
    protocols = {"chapter3": {"hard_image_limit": 20}, "chapter4": {"hard_image_limit": 30, "augmenting_pairs": 1},
                 "chapter5": {"hard_image_limit": 10, "augmenting_pairs": None}}
    used = run_data.trained_split_images(data, protocols, own_images=[150])
    assert {0, 1, 2, 3, 150, 192, 195} <= set(used.tolist())
    assert set(range(4, 24)) <= set(used.tolist())  # chapter 3's 20 hard images after the 4 CIFAR-10S ones
    split = run_data.unused_split_validation(data, protocols, {"limit": 50})
    assert len(split["indices"]) == 50 and not set(split["indices"].tolist()) & set(used.tolist())
    assert np.bincount(split["labels"]).tolist() == [5] * 10
    with pytest.raises(ValueError, match="key 'sweeps.validation.limit': 190 validation images asked for"):
        run_data.unused_split_validation(data, protocols, {"limit": 190})


def test_validation_split_command_at_quick_holds_2000_unused_images(tmp_path):
    """The command on a hand-made data folder: the split file says its source, and a run asking for the other
    source refuses it."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    rng = np.random.default_rng(0)
    labels = np.arange(10000) % 10
    np.savez(data_dir / "cifar10_test.npz", images=rng.integers(0, 256, (10000, 32, 32, 3), dtype=np.uint8), labels=labels)
    np.savez(data_dir / "splits.npz", train=np.arange(7000), test=np.arange(7000, 10000))
    np.savez(data_dir / "cifar10h.npz", counts=np.ones((10000, 10), int), probs=np.full((10000, 10), 0.1))
    pd.DataFrame({"image": np.arange(0, 1000), "subject": "a", "task": "spec_conf", "trial": 0, "top_class": "cat",
                  "top_prob": 90, "second_class": "", "second_prob": np.nan, "impossible": "", "rt_ms": 1}).to_csv(
        data_dir / "cifar10s_responses.csv", index=False)
    np.savez(data_dir / "hmix_stimuli.npz", class1=np.array([0]), image1=np.array([6990]), class2=np.array([1]),
             image2=np.array([6991]), first_collection=np.array([True]))
    out = data_dir / "validation.npz"
    assert main(["validation-split", "--data-dir", str(data_dir), "--out", str(out), "--config", "scale=quick"]) == 0
    with np.load(out) as f:
        assert str(f["source"]) == "unused_split" and len(f["labels"]) == 2000
        assert f["indices"].min() >= 1000 and not {6990, 6991} & set(f["indices"].tolist())
    eval_set = run_data.validation_eval_set({"source": "unused_split"}, data_dir)
    assert len(eval_set.hard_labels) == 2000
    with pytest.raises(ValueError, match="holds the unused_split validation split"):
        run_data.validation_eval_set({"source": "cifar10_train"}, data_dir)
