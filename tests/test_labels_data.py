"""The labels stage on the real public data (needs the data mirror): every variety over all 6723 CIFAR-10S
responses, the released-code counts (docs/protocol.md#released-code-path), the simulator fit
(docs/protocol.md#simulator-fitted-statistics), the exports and rules."""

from __future__ import annotations

import json

import numpy as np
import pytest

from softlabels.labels import (
    PATHS,
    VARIETIES,
    cifar10h_pools,
    fit_simulator,
    response_labels,
    semantic_similarity,
)

pytestmark = pytest.mark.mirror


@pytest.fixture(scope="module")
def responses(data_mirror):
    from softlabels.data import cifar10s

    return cifar10s.parse_cifar10s(data_mirror / "cifar-10s" / "raw_human_data.csv")


@pytest.fixture(scope="module")
def similarity(data_mirror):
    return semantic_similarity(data_mirror / "glove" / "glove.6B.50d.cifar10.txt")


def test_every_variety_and_path_is_a_probability_vector_on_real_data(responses, similarity):
    assert len(responses) == 6723
    for variety in VARIETIES:
        for path in PATHS:
            labels = response_labels(responses, variety, gamma=0.1, similarity=similarity, path=path)
            assert labels.shape == (6723, 10)
            assert np.isfinite(labels).all(), (variety, path)
            assert labels.min() >= 0, (variety, path)
            np.testing.assert_allclose(labels.sum(1), 1, atol=1e-12)


def test_released_code_path_counts(responses):
    """docs/protocol.md#released-code-path: 2873 of 6723 released-path T2 labels differ from documented
    T2-Clamp and 3280 are one-hot, counting the NaN label of image 1633 as different and not one-hot. Here
    that label is one-hot."""
    documented = response_labels(responses, "t2_clamp", gamma=0.1)
    released = response_labels(responses, "t2_clamp", gamma=0.1, path="released_code")
    zero_over_zero = (
        (responses["top_class"] == responses["second_class"]) & (responses["second_prob"] == 0)
    ).to_numpy()
    assert responses.loc[zero_over_zero, "image"].tolist() == [1633]
    np.testing.assert_array_equal(released[zero_over_zero][0], np.eye(10)[1])
    differ = np.abs(documented - released).max(1) > 1e-9
    one_hot = released.max(1) == 1.0
    assert differ.sum() + zero_over_zero.sum() == 2873
    assert one_hot.sum() - zero_over_zero.sum() == 3280


def test_simulator_fit_matches_the_documented_statistics(responses, data_mirror):
    probs = np.load(data_mirror / "cifar-10h" / "cifar10h-probs.npy")
    params = fit_simulator(responses, probs, threshold=0.25, gamma=0.1)
    table = {
        "low": (766, 0.947, 0.110, (10.43, 0.847, 0.99), (0.150, 2.534, 0.584),
                [478, 153, 29, 45, 15, 15, 6, 6, 5, 14]),
        "high": (5957, 0.818, 0.204, (2.10, 0.508, 0.99), (0.212, 0.986, 0.497),
                 [1897, 1703, 731, 692, 283, 332, 64, 58, 72, 125]),
    }
    for name, (n, mean, sd, top, second, hist) in table.items():
        group = params.group(name)
        assert group.n_responses == n
        assert group.top_mean == pytest.approx(mean, abs=1e-3)
        assert group.top_sd == pytest.approx(sd, abs=1e-3)
        assert (group.top.a, group.top.b, group.top.scale) == pytest.approx(top, rel=0.02)
        assert (group.second.a, group.second.b, group.second.scale) == pytest.approx(second, rel=0.02)
        assert group.n_also_possible == hist


def test_cifar10h_pools_on_real_counts(data_mirror):
    counts = np.load(data_mirror / "cifar-10h" / "cifar10h-counts.npy")
    pools = cifar10h_pools(counts, "all", seed=0)
    assert pools.sizes.min() == 47 and pools.sizes.max() == 63
    np.testing.assert_allclose(pools.mean().labels[:, 0], counts / counts.sum(1, keepdims=True), atol=1e-6)
    smallest = int(np.argmin(counts.sum(1)))
    with pytest.raises(ValueError, match=f"image {smallest} has only 47"):
        cifar10h_pools(counts, 48, seed=0)


def run_cli(*argv) -> None:
    from softlabels.cli import main

    assert main(list(argv)) == 0


def test_export_commands_rebuild_the_released_layouts(tmp_path, data_mirror, responses, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no results/data here: the commands parse the raw files themselves
    common = ["--data-mirror", str(data_mirror), "--config", f"resources_dir={tmp_path / 'resources'}"]
    run_cli("export-labels", "--variety", "t2_clamp", "--gamma", "0.1", "--out", "c10s.json", *common)
    exported = json.loads((tmp_path / "c10s.json").read_text())
    assert len(exported) == 1000 and sum(map(len, exported.values())) == 6723
    expected = response_labels(responses, "t2_clamp", gamma=0.1)
    first = responses.index[responses["image"] == 1633]
    np.testing.assert_allclose(exported["1633"], expected[first])

    run_cli("export-hmix-soft-labels", "--out", "hmix.json", *common)
    hmix = json.loads((tmp_path / "hmix.json").read_text())
    assert len(hmix) == 100
    assert all(2 <= len(v) <= 4 and all(abs(sum(x) - 1) < 1e-9 for x in v) for v in hmix.values())

    for stimulus, expected in RELEASED_HMIX.items():
        assert sorted(map(tuple, np.round(hmix[stimulus], 9))) == sorted(map(tuple, np.round(expected, 9))), stimulus

    run_cli("fit-taus", "--out", "taus.csv", *common)
    import pandas as pd

    from softlabels.data.hmix import parse_judgments

    judgments = parse_judgments(data_mirror / "hill-mixup" / "hmix_infer_mixing_factor.csv",
                                data_mirror / "hill-mixup" / "first_collection_stimuli.txt")
    taus = pd.read_csv(tmp_path / "taus.csv")
    assert len(taus) == 45 and (taus["class_i"] < taus["class_j"]).all()
    assert np.isfinite(taus[["k", "x0", "rmse"]].to_numpy()).all()
    first = judgments[judgments["first_collection"]]
    assert first["stimulus"].nunique() == 810
    assert taus["n"].sum() == len(first) < len(judgments)  # default labels.tau_stimuli: first_collection

    from softlabels.config import default_config_path

    (tmp_path / "all.yaml").write_text("labels:\n  tau_stimuli: all\n")
    run_cli("fit-taus", "--out", "taus_all.csv", "--configfile", str(default_config_path()),
            "--configfile", "all.yaml", *common)
    assert pd.read_csv(tmp_path / "taus_all.csv")["n"].sum() == len(judgments)


#: Entries of the released hmix_individ_soft_labels.json (cambridge-mlg/hill-mixup, h_mix/): a response at
#: exactly 100 %, one above 100 % and ones below; the export must give the same labels (as multisets).
RELEASED_HMIX = {
    "mixed_0.25_Ship_8717_Truck_8922.png": [
        [0.045454545454545456, 0.045454545454545456, 0, 0, 0, 0, 0, 0, 0, 0.9090909090909091],
        [0, 0.22727272727272727, 0, 0, 0, 0, 0, 0, 0.09090909090909091, 0.6818181818181818],
    ],
    "mixed_0.25_Horse_4183_Truck_394.png": [
        [0, 0.428571429, 0, 0, 0, 0, 0, 0, 0, 0.571428571],
        [0.046296296, 0.046296296, 0, 0, 0, 0, 0, 0, 0.046296296, 0.861111111],
        [0.05, 0.2, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.4],
    ],
}


def test_bad_gamma_is_a_clean_error(tmp_path, data_mirror, capsys):
    from softlabels.cli import main

    assert main(["export-labels", "--gamma", "2", "--out", str(tmp_path / "x.json"),
                 "--data-mirror", str(data_mirror)]) == 2
    assert "--gamma" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


@pytest.mark.slow
def test_snakemake_builds_the_label_targets(smoke_workdir, data_mirror, snakemake_runner):
    targets = [
        "results/exports/cifar10s_t2clamp_redist10.json",
        "results/exports/hmix_individ_soft_labels.json",
        "results/labels/simulator.json",
        "results/labels/class_pair_taus.csv",
    ]
    result = snakemake_runner(smoke_workdir, "--cores", "2", *targets, "--config", "scale=smoke",
                              f"data_mirror={data_mirror}")
    assert result.returncode == 0, result.stderr[-3000:]
    simulator = json.loads((smoke_workdir / targets[2]).read_text())
    assert simulator["low"]["n_responses"] == 766
    exported = json.loads((smoke_workdir / targets[0]).read_text())
    assert sum(map(len, exported.values())) == 6723
