"""Chapter-4/5 training sets (softlabels.train.chapter4, chapter5) on a small hand-made data folder, plus one smoke
build of a chapter-5 table from the real inputs."""

from __future__ import annotations

import json
import math

import numpy as np

from softlabels.data.splits import balanced_prefix
import pandas as pd
import pytest
import torch

from softlabels import CLASSES, NUM_CLASSES
from softlabels.train import chapter4, chapter5, mixing, run_data, runs

N_IMAGES = 60


def _evaluation():
    return {
        "calibration": {"bin_size": 5, "bin_size_cifar10s": 5, "skip_last_bin": True},
        "fgsm": {"epsilon": 4 / 255, "cifar10h_target": "hard"},
        "cifar10h_holdout_limit": 8,
        "corruption": {"severity": 3, "corruptions": ["gaussian_noise", "fog"], "source": "generate", "seed": 0},
    }


def _labels():
    return {
        "gamma": 0.1,
        "redistribution_path": "documented",
        "annotator_subsample_seed": 0,
        "confidence_gamma": 0.005,
        "simulator_entropy_threshold": 0.25,
        "simulator_seed": 0,
    }


def make_spec(scheme_spec, protocol="chapter4", seed=0, limit=12):
    return {
        "scheme": "s",
        "model": "resnet8a",
        "seed": seed,
        "scale": "smoke",
        "device": "cpu",
        "scheme_spec": dict(scheme_spec, protocol=protocol),
        "protocol_name": protocol,
        "protocol": {"hard_image_limit": limit, "epochs": 1},
        "labels": _labels(),
        "evaluation": _evaluation(),
    }


STIMULI = [
    # name, lambda_f, class1, image1, class2, image2, first_collection
    ("mixed_0.25_Cat_3_Dog_4.png", 0.25, 3, 3, 5, 4, True),
    ("mixed_0.5_Airplane_5_Ship_6.png", 0.5, 0, 5, 8, 6, True),
    ("mixed_0.9_Frog_7_Horse_8.png", 0.9, 6, 7, 7, 8, False),
]
JUDGMENTS = [
    # stimulus, lambda_h, confidence
    ("mixed_0.25_Cat_3_Dog_4.png", 0.2, 1.0),
    ("mixed_0.25_Cat_3_Dog_4.png", 0.4, 0.0),
    ("mixed_0.5_Airplane_5_Ship_6.png", 0.6, 0.5),
    ("mixed_0.9_Frog_7_Horse_8.png", 0.8, 0.9),
]


@pytest.fixture
def data(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(N_IMAGES, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(N_IMAGES) % NUM_CLASSES
    counts = rng.integers(0, 5, size=(N_IMAGES, NUM_CLASSES))
    counts[np.arange(N_IMAGES), labels] += 20
    split_train = rng.permutation(N_IMAGES)[:40]
    split_test = np.setdiff1d(np.arange(N_IMAGES), split_train)
    cifar10s_images = balanced_prefix(split_train, labels, 12)[[0, 4, 7]]  # inside the 12 of hard_image_limit
    counts[cifar10s_images[0]] = 0  # one low-entropy CIFAR-10S image, so the simulator has both groups
    counts[cifar10s_images[0], labels[cifar10s_images[0]]] = 30
    probs = counts / counts.sum(1, keepdims=True)
    rows = []
    for image in cifar10s_images:
        for trial in range(3):
            rows.append(
                {
                    "image": int(image),
                    "subject": f"s{trial}",
                    "task": "spec_conf",
                    "trial": trial,
                    "top_class": CLASSES[labels[image]],
                    "top_prob": 60.0 + 10 * trial,
                    "second_class": CLASSES[(labels[image] + 1) % NUM_CLASSES],
                    "second_prob": 20.0,
                    "impossible": "",
                    "rt_ms": 1000.0,
                }
            )
    responses = pd.DataFrame(rows)
    stimulus_images = np.stack([np.full((32, 32, 3), 10 * (k + 1), np.uint8) for k in range(len(STIMULI))])
    np.savez(
        tmp_path / "hmix_stimuli.npz",
        names=np.array([s[0] for s in STIMULI]),
        images=stimulus_images,
        lambda_f=np.array([s[1] for s in STIMULI]),
        class1=np.array([s[2] for s in STIMULI]),
        image1=np.array([s[3] for s in STIMULI]),
        class2=np.array([s[4] for s in STIMULI]),
        image2=np.array([s[5] for s in STIMULI]),
        first_collection=np.array([s[6] for s in STIMULI]),
    )
    pd.DataFrame(JUDGMENTS, columns=["stimulus", "lambda_h", "confidence"]).to_csv(tmp_path / "hmix_judgments.csv", index=False)
    return run_data.RunData(
        images=images,
        labels=labels.astype(np.int64),
        split_train=split_train.astype(np.int64),
        split_test=split_test.astype(np.int64),
        cifar10h_counts=counts,
        cifar10h_probs=probs,
        cifar10s_responses=responses,
        glove_path=None,
        data_dir=tmp_path,
    )


def test_protocols_dispatch_to_their_builders():
    assert runs.training_set_builder("chapter4") is chapter4.build_chapter4_set
    assert runs.training_set_builder("chapter5") is chapter5.build_chapter5_set


# --------------------------------------------------------------------------------------------------------
# Chapter 4
# --------------------------------------------------------------------------------------------------------
def test_image_limit_keeps_every_class_of_a_class_sorted_split(data):
    spec = make_spec({"labels": "hard", "augment": None})
    spec["protocol"]["hard_image_limit"] = 20
    picked = run_data.split_images(spec, data)
    assert len(picked) == 20 and len(np.unique(picked)) == 20
    counts = np.bincount(data.labels[picked], minlength=10)
    present = np.bincount(data.labels[data.split_train], minlength=10) > 0
    assert counts[present].min() >= 1, "a class of the split vanished from the subset"


def test_chapter4_without_augmenting_set_is_the_hard_split(data):
    sets = chapter4.build_chapter4_set(make_spec({"labels": "hard", "augment": None}), data)
    picked = balanced_prefix(data.split_train, data.labels, 12)
    assert np.array_equal(sets.train_indices, picked)
    assert np.array_equal(sets.train_images, data.images[picked])
    assert np.array_equal(sets.train_pools.labels[:, 0].argmax(1), data.labels[picked])
    assert sets.objective is None
    assert list(sets.eval_sets) == ["cifar10h"]
    h = sets.eval_sets["cifar10h"]
    assert np.array_equal(h.indices, balanced_prefix(data.split_test, data.labels, 8))
    assert np.allclose(h.targets, data.cifar10h_probs[balanced_prefix(data.split_test, data.labels, 8)])
    assert np.array_equal(h.fgsm_targets.argmax(1), data.labels[balanced_prefix(data.split_test, data.labels, 8)])


def test_chapter4_sep_appends_first_collection_stimuli_with_one_label_per_judgment(data):
    sets = chapter4.build_chapter4_set(make_spec({"labels": "hard", "augment": "sep"}), data)
    assert len(sets.train_images) == 12 + 2  # the third stimulus is not in the first collection
    assert sets.info["n_augment"] == 2
    assert np.all(sets.train_images[12] == 10) and np.all(sets.train_images[13] == 20)
    aug = sets.train_pools.take(np.array([12, 13]))
    assert aug.sizes.tolist() == [2, 1]
    cat, dog, airplane, ship = 3, 5, 0, 8
    assert aug.labels[0, 0, cat] == pytest.approx(0.2) and aug.labels[0, 0, dog] == pytest.approx(0.8)
    assert aug.labels[0, 1, cat] == pytest.approx(0.4) and aug.labels[0, 1, dog] == pytest.approx(0.6)
    assert aug.labels[1, 0, airplane] == pytest.approx(0.6) and aug.labels[1, 0, ship] == pytest.approx(0.4)
    assert (sets.train_indices[12:] < 0).all()


def test_chapter4_agg_conf_uses_mean_judgment_and_confidence(data):
    sets = chapter4.build_chapter4_set(make_spec({"labels": "hard", "augment": "agg_conf"}), data)
    label = sets.train_pools.take(np.array([12])).labels[0, 0]
    s = 0.005**0.5  # mean confidence 0.5
    expected = np.full(NUM_CLASSES, s / NUM_CLASSES)
    expected[3] += (1 - s) * 0.3  # mean λ_h = 0.3 on the first endpoint (cat)
    expected[5] += (1 - s) * 0.7
    assert np.allclose(label, expected, atol=1e-6)


# --------------------------------------------------------------------------------------------------------
# Chapter 5
# --------------------------------------------------------------------------------------------------------
def _write_corruptions(data, severity=3):
    """A fake corrupted hold-out in the corruption stage's layout: one uint8 array per corruption + `indices`
    (here in reversed hold-out order, so the rows must be looked up by index)."""
    rng = np.random.default_rng(1)
    order = data.split_test[::-1]
    arrays = {name: rng.integers(0, 256, size=(len(order), 32, 32, 3), dtype=np.uint8) for name in ("gaussian_noise", "fog")}
    np.savez(data.data_dir / f"cifar10c_holdout_s{severity}.npz", indices=order, extra_corruption=arrays["fog"], **arrays)
    return arrays


@pytest.mark.parametrize(
    "scheme, cls",
    [
        ({"objective": "mixup", "alpha": 1.0}, mixing.Mixup),
        ({"objective": "mixmaxent", "alpha": 10.0, "maxent_weight": 1.0, "partners": "different_class"}, mixing.MixMaxEnt),
        ({"objective": "entwc", "alpha": 0.2, "kappa": 0.7, "detach_weight": False}, mixing.EntWC),
    ],
)
def test_chapter5_hard_endpoints(data, scheme, cls):
    _write_corruptions(data)
    spec = make_spec(dict(scheme, labels="hard", endpoints="hard"), protocol="chapter5")
    sets = chapter5.build_chapter5_set(spec, data)
    assert isinstance(sets.objective, cls)
    assert np.array_equal(sets.train_indices, run_data.split_images(spec, data))
    assert (sets.train_pools.sizes == 1).all()
    assert set(sets.eval_sets) == {"cifar10h", "corruption"}


def test_corruption_metrics_hand_value(data):
    arrays = _write_corruptions(data)
    spec = make_spec({"labels": "hard", "endpoints": "hard", "objective": "mixup", "alpha": 1.0}, protocol="chapter5")
    sets = chapter5.build_chapter5_set(spec, data)

    class Constant(torch.nn.Module):
        """Logits log(1, 2, ..., 10) whatever the input: p_k = (k+1)/55."""

        def forward(self, x):
            return torch.log(torch.arange(1, NUM_CLASSES + 1, dtype=torch.float32)).expand(x.shape[0], -1)

    result = sets.eval_sets["corruption"].evaluate(Constant(), "cpu")
    targets = data.cifar10h_probs[balanced_prefix(data.split_test, data.labels, 8)]
    p = np.arange(1, NUM_CLASSES + 1) / 55.0
    expected = float(np.mean(-(targets * np.log(p)).sum(1)))
    assert set(result["per_corruption"]) == set(arrays)
    for value in result["per_corruption"].values():
        assert value == pytest.approx(expected, rel=1e-5)
    assert result["corruption_ce"] == pytest.approx(expected, rel=1e-5)
    assert result["n"] == 8


def _brightness_cross_entropy(images_u8: np.ndarray, targets: np.ndarray) -> float:
    """By hand (NumPy, float64): x = (u/255 − mean_c)/std_c, m = mean of x over pixels and channels, logits
    z_k = k·m, CE = −(1/n) Σ_i Σ_k y_ik log softmax(z_i)_k."""
    mean = np.array([0.4914, 0.4822, 0.4465]).reshape(1, 1, 1, 3)
    std = np.array([0.2023, 0.1994, 0.2010]).reshape(1, 1, 1, 3)
    m = ((images_u8 / 255.0 - mean) / std).mean(axis=(1, 2, 3))
    z = m[:, None] * np.arange(NUM_CLASSES)[None, :]
    log_p = z - z.max(axis=1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(axis=1, keepdims=True))
    return float(-(targets * log_p).sum(axis=1).mean())


def test_corruption_metrics_average_over_corruptions(data):
    """A model whose logits depend on the image mean: each corruption is evaluated on its own images (the
    per-corruption CEs differ from each other and from the clean CE; gaussian noise's CE is recomputed by hand
    from the rows of the file, looked up by index), and `mean` is their mean."""
    arrays = _write_corruptions(data)
    spec = make_spec({"labels": "hard", "endpoints": "hard", "objective": "mixup", "alpha": 1.0}, protocol="chapter5")
    sets = chapter5.build_chapter5_set(spec, data)

    class Brightness(torch.nn.Module):
        def forward(self, x):
            m = x.mean(dim=(1, 2, 3))
            return torch.stack([m * k for k in range(NUM_CLASSES)], dim=1)

    corruption = sets.eval_sets["corruption"]
    result = corruption.evaluate(Brightness(), "cpu")
    per = result["per_corruption"]
    assert set(per) == {"gaussian_noise", "fog"} and result["n"] == len(corruption.indices) == 8
    targets = np.asarray(corruption.targets, dtype=np.float64)
    row_of = {int(i): r for r, i in enumerate(data.split_test[::-1])}  # the file's rows are in reversed order
    rows = [row_of[int(i)] for i in corruption.indices]
    noise = _brightness_cross_entropy(arrays["gaussian_noise"][rows], targets)
    fog = _brightness_cross_entropy(arrays["fog"][rows], targets)
    clean = _brightness_cross_entropy(np.asarray(corruption.images), targets)
    assert per["gaussian_noise"] == pytest.approx(noise, rel=1e-5)
    assert per["fog"] == pytest.approx(fog, rel=1e-5)
    assert len({round(noise, 4), round(fog, 4), round(clean, 4)}) == 3, (noise, fog, clean)
    assert result["corruption_ce"] == pytest.approx((noise + fog) / 2, rel=1e-5)


def test_chapter5_soft_endpoints_mix_real_and_simulated_labels(data, tmp_path):
    from softlabels import labels as L

    glove = tmp_path / "glove.txt"
    vecs = np.random.default_rng(2).normal(size=(NUM_CLASSES, 50))
    glove.write_text("".join(f"{c} " + " ".join(f"{v:.5f}" for v in row) + "\n" for c, row in zip(CLASSES, vecs)))
    data.glove_path = glove
    _write_corruptions(data)
    spec = make_spec(
        {"labels": "cifar10s", "variety": "t2_clamp", "aggregate": "none", "M": 2, "endpoints": "soft",
         "objective": "mixup", "alpha": 1.0},
        protocol="chapter5",
    )
    sets = chapter5.build_chapter5_set(spec, data)
    split = run_data.split_images(spec, data)
    real = np.isin(split, data.cifar10s_images())
    assert real.sum() == 3 and sets.info["n_cifar10s"] == 3 and sets.info["n_simulated"] == 9
    assert (sets.train_pools.sizes[real] == 2).all() and (sets.train_pools.sizes[~real] == 1).all()
    direct = L.cifar10s_pools(data.cifar10s_responses, split[real], "t2_clamp", 2, 0, 0.1)
    assert np.allclose(sets.train_pools.take(np.flatnonzero(real)).labels, direct.labels)
    simulated = sets.train_pools.labels[~real, 0]
    assert np.allclose(simulated.sum(1), 1.0, atol=1e-5)
    again = chapter5.build_chapter5_set(dict(spec, seed=1), data)  # simulator draws do not follow the run seed
    assert np.allclose(again.train_pools.labels[~real, 0], simulated)


def test_chapter5_soft_endpoints_require_cifar10s_labels(data):
    spec = make_spec({"labels": "hard", "endpoints": "soft", "objective": "mixup", "alpha": 1.0}, protocol="chapter5")
    with pytest.raises(ValueError, match="labels"):
        chapter5.build_chapter5_set(spec, data)


# --------------------------------------------------------------------------------------------------------
# Smoke build through Snakemake (real inputs from the mirror)
# --------------------------------------------------------------------------------------------------------
SMOKE_TABLES = {
    "table4_2": ["ch4_mixup", "ch4_agg", "ch4_sep"],
    "tableC_1": ["ch5_mixup_hard", "chC_tau", "ch5_entwc_hard", "chC_tau_entwc"],
}


@pytest.mark.mirror
@pytest.mark.slow
def test_chapter4_and_appendix_c_tables_smoke_build(smoke_workdir, data_mirror, snakemake_runner):
    targets = [f"results/tables/{t}.csv" for t in SMOKE_TABLES]
    config = ["--config", "scale=smoke", f"data_mirror={data_mirror}"]
    done = snakemake_runner(smoke_workdir, "--cores", "2", *targets, *config)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    for table, rows in SMOKE_TABLES.items():
        frame = pd.read_csv(smoke_workdir / f"results/tables/{table}.csv")
        assert list(dict.fromkeys(frame["row"])) == rows
        core = frame[(frame["eval_set"] == "cifar10h") & frame["metric"].isin(["ce", "calibration", "fgsm"])]
        assert len(core) == len(rows) * 3
        assert core["mean"].map(math.isfinite).all() and (core["n_runs"] == 1).all()
        assert core["thesis_value"].notna().all()

    corruptions = 15
    for row in SMOKE_TABLES["tableC_1"]:
        metrics = json.loads((smoke_workdir / f"results/runs/{row}/resnet8a/seed0/metrics.json").read_text())
        block = metrics["corruption"]
        assert len(block["per_corruption"]) == corruptions and block["n"] == 200
        assert block["corruption_ce"] == pytest.approx(np.mean(list(block["per_corruption"].values())))
        assert metrics["train"]["n_train"] == 200 and metrics["train"]["endpoints"] == "hard"
    tau_run = json.loads((smoke_workdir / "results/runs/chC_tau/resnet8a/seed0/metrics.json").read_text())
    assert tau_run["train"]["tau_pairs_fitted"] == 45
    sep_run = json.loads((smoke_workdir / "results/runs/ch4_sep/resnet8a/seed0/metrics.json").read_text())
    # smoke: the endpoints of 1 image pair per class pair, 45 pairs × 3 mixing coefficients
    assert sep_run["train"]["n_augment"] == 135 and sep_run["train"]["n_train"] == 200 + 135
