"""The labels and data commands never read other data than the user named (a named path must exist; the
command stops naming it and writes nothing), and the H-Mix export takes its path from the config."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from softlabels import CLASSES
from softlabels.cli import main

RESPONSES = pd.DataFrame(
    {
        "image": [0, 0, 1],
        "subject": ["a", "b", "a"],
        "task": ["spec_conf"] * 3,
        "trial": [1, 2, 3],
        "top_class": ["cat", "dog", "truck"],
        "top_prob": [80.0, 100.0, 75.0],
        "second_class": ["dog", "", "automobile"],
        "second_prob": [10.0, np.nan, 25.0],
        "impossible": ["frog|ship", "", "|".join(c for c in CLASSES if c not in ("truck", "automobile", "ship"))],
        "rt_ms": [1000.0, 2000.0, 3000.0],
    }
)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """An empty working directory whose configured downloads cannot be reached (an empty mirror), so any
    fallback to other data would show up as a different error."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty_mirror").mkdir()
    responses = RESPONSES.copy()
    responses.to_csv(tmp_path / "responses.csv", index=False)
    soft = RESPONSES.drop(columns="image").assign(stimulus="mixed_0.5_Cat_1_Dog_2.png")
    soft.to_csv(tmp_path / "soft.csv", index=False)
    return tmp_path


def common(tmp_path) -> list[str]:
    return ["--data-mirror", str(tmp_path / "empty_mirror"), "--config", f"resources_dir={tmp_path / 'resources'}"]


def refuses(capsys, tmp_path, argv, missing, out):
    code = main([*argv, *common(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert str(missing) in err and "not found" in err
    assert not (tmp_path / out).exists()
    assert not (tmp_path / "resources").exists()  # nothing fetched in place of the named file


LABEL_CASES = {
    "export-labels --responses": (["export-labels", "--out", "o.json", "--responses", "{missing}"], "o.json"),
    "export-labels --glove": (["export-labels", "--variety", "t2_semantic", "--out", "o.json",
                               "--responses", "responses.csv", "--glove", "{missing}"], "o.json"),
    "export-hmix-soft-labels --responses": (["export-hmix-soft-labels", "--out", "o.json",
                                             "--responses", "{missing}"], "o.json"),
    "fit-simulator --responses": (["fit-simulator", "--out", "o.json", "--responses", "{missing}"], "o.json"),
    "fit-simulator --cifar10h": (["fit-simulator", "--out", "o.json", "--responses", "responses.csv",
                                  "--cifar10h", "{missing}"], "o.json"),
    "fit-taus --judgments": (["fit-taus", "--out", "o.csv", "--judgments", "{missing}"], "o.csv"),
}
DATA_CASES = {
    "parse-cifar10 --archive": (["parse-cifar10", "--archive", "{missing}", "--out", "o.npz"], "o.npz"),
    "parse-splits --train": (["parse-splits", "--train", "{missing}", "--out", "o.npz"], "o.npz"),
    "parse-splits --test": (["parse-splits", "--test", "{missing}", "--out", "o.npz"], "o.npz"),
    "parse-cifar10h --counts": (["parse-cifar10h", "--counts", "{missing}", "--out", "o.npz",
                                 "--annotators", "a.csv"], "o.npz"),
    "parse-cifar10h --probs": (["parse-cifar10h", "--probs", "{missing}", "--out", "o.npz",
                                "--annotators", "a.csv"], "o.npz"),
    "parse-cifar10s --raw": (["parse-cifar10s", "--raw", "{missing}", "--out", "o.csv"], "o.csv"),
    "parse-hmix-judgments --raw": (["parse-hmix-judgments", "--raw", "{missing}", "--out", "o.csv"], "o.csv"),
    "parse-hmix-judgments --stimulus-list": (["parse-hmix-judgments", "--stimulus-list", "{missing}",
                                              "--out", "o.csv"], "o.csv"),
    "parse-hmix-soft --raw": (["parse-hmix-soft", "--raw", "{missing}", "--out", "o.csv"], "o.csv"),
    "parse-hmix-stimuli --judgments": (["parse-hmix-stimuli", "--judgments", "{missing}", "--out", "o.npz"],
                                       "o.npz"),
    "export-responses --responses": (["export-responses", "--responses", "{missing}", "--out", "o.json"], "o.json"),
    "export-hmix --judgments": (["export-hmix", "--judgments", "{missing}", "--out", "o.json"], "o.json"),
}


@pytest.mark.parametrize("case", sorted({**LABEL_CASES, **DATA_CASES}))
def test_a_named_input_that_does_not_exist_stops_the_command(case, workdir, capsys):
    argv, out = {**LABEL_CASES, **DATA_CASES}[case]
    missing = workdir / "typo" / "input.csv"
    refuses(capsys, workdir, [a.replace("{missing}", str(missing)) for a in argv], missing, out)


def test_export_labels_reads_the_named_table(workdir, capsys):
    assert main(["export-labels", "--responses", "responses.csv", "--out", "o.json", *common(workdir)]) == 0
    data = json.loads((workdir / "o.json").read_text())
    assert sorted(data) == ["0", "1"] and len(data["0"]) == 2


def test_hmix_export_path_comes_from_labels_hmix_redistribution_path(workdir, capsys):
    argv = ["export-hmix-soft-labels", "--responses", "soft.csv", *common(workdir)]
    assert main([*argv, "--out", "release.json"]) == 0
    truck = CLASSES.index("truck")
    release = json.loads((workdir / "release.json").read_text())["mixed_0.5_Cat_1_Dog_2.png"][2]
    assert release[truck] == pytest.approx(0.75 / 1.1)  # truck 75, automobile 25, ship free: / (1 + γ)
    (workdir / "documented.yaml").write_text("labels:\n  hmix_redistribution_path: documented\n")
    from softlabels.config import default_config_path

    assert main([*argv, "--out", "documented.json", "--configfile", str(default_config_path()),
                 "--configfile", "documented.yaml"]) == 0
    documented = json.loads((workdir / "documented.json").read_text())["mixed_0.5_Cat_1_Dog_2.png"][2]
    assert documented[truck] == pytest.approx(0.75 * 0.9)
