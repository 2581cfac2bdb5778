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


# ----------------------------------------------------------------------------------------------------------
# What each labels command reads and reports: the file it names in its log, its output and its summary line
# ----------------------------------------------------------------------------------------------------------
def judgments_table() -> pd.DataFrame:
    """Judgments of two class pairs. (cat, dog): three of the first collection at λ_h = λ_f + 0.1, two later
    ones at λ_h = λ_f − 0.3; (airplane, ship): two of the first collection at λ_h = λ_f."""
    rows = [("cat", "dog", lf, lf + 0.1, True) for lf in (0.2, 0.5, 0.8)]
    rows += [("cat", "dog", lf, lf - 0.3, False) for lf in (0.4, 0.6)]
    rows += [("airplane", "ship", lf, lf, True) for lf in (0.3, 0.7)]
    return pd.DataFrame(
        {
            "stimulus": [f"s{n}" for n in range(len(rows))],
            "lambda_f": [r[2] for r in rows],
            "class1": [r[0] for r in rows],
            "image1": range(len(rows)),
            "class2": [r[1] for r in rows],
            "image2": range(100, 100 + len(rows)),
            "first_collection": [r[4] for r in rows],
            "subject": ["p"] * len(rows),
            "trial": range(len(rows)),
            "lambda_h": [r[3] for r in rows],
            "confidence": [3] * len(rows),
            "rt_ms": [1000.0] * len(rows),
        }
    )


def test_fit_taus_keeps_the_first_collection_by_default(workdir, capsys):
    """labels.tau_stimuli: first_collection fits on the 3 + 2 judgments of the first collection; `all` adds the
    2 later (cat, dog) ones. rmse_linear is the RMS of λ_f − λ_h, by hand: 0.1, 0, and √((3·0.1² + 2·0.3²)/5)."""
    judgments_table().to_csv(workdir / "judgments.csv", index=False)
    argv = ["fit-taus", "--judgments", "judgments.csv", *common(workdir)]
    assert main([*argv, "--out", "first.csv"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "first.csv: 2 class pairs from 5 judgments (labels.tau_stimuli = first_collection)"
    first = pd.read_csv(workdir / "first.csv")
    assert first[["name_i", "name_j", "class_i", "class_j", "n"]].values.tolist() == [
        ["airplane", "ship", 0, 8, 2], ["cat", "dog", 3, 5, 3]]
    assert first["rmse_linear"].tolist() == pytest.approx([0.0, 0.1], abs=1e-12)
    cat_dog = next(line for line in out[1:] if line.split()[2:4] == ["cat", "dog"])
    assert cat_dog.split()[-1] == "0.100"  # the printed table: three decimals

    (workdir / "all.yaml").write_text("labels:\n  tau_stimuli: all\n")
    from softlabels.config import default_config_path

    assert main([*argv, "--out", "all.csv", "--configfile", str(default_config_path()), "--configfile",
                 "all.yaml"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == (
        "all.csv: 2 class pairs from 7 judgments (labels.tau_stimuli = all)")
    every = pd.read_csv(workdir / "all.csv")
    assert every["n"].tolist() == [2, 5]
    assert every["rmse_linear"].tolist() == pytest.approx([0.0, np.sqrt((3 * 0.01 + 2 * 0.09) / 5)], abs=1e-12)


def test_labels_commands_read_the_parsed_table_in_results_data_and_say_so(workdir, capsys):
    """Without --judgments the parsed results/data/hmix_judgments.csv is read (and named), not the download."""
    (workdir / "results" / "data").mkdir(parents=True)
    judgments_table().to_csv(workdir / "results" / "data" / "hmix_judgments.csv", index=False)
    assert main(["fit-taus", "--out", "t.csv", *common(workdir)]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "reading results/data/hmix_judgments.csv"
    assert pd.read_csv(workdir / "t.csv")["n"].tolist() == [2, 3]
    assert not (workdir / "resources").exists()


def simulator_inputs(workdir) -> None:
    """Four responses, two on a one-hot CIFAR-10H image (entropy 0: low group), two on a uniform one (ln 10:
    high group), and the probs as results/data/cifar10h.npz."""
    responses = pd.concat([RESPONSES, RESPONSES.iloc[[2]].assign(subject="b", trial=4)], ignore_index=True)
    responses.to_csv(workdir / "four.csv", index=False)
    probs = np.zeros((3, 10))
    probs[0, 3] = 1.0
    probs[1] = 0.1
    (workdir / "results" / "data").mkdir(parents=True)
    np.savez(workdir / "results" / "data" / "cifar10h.npz", probs=probs)


def test_fit_simulator_reads_results_data_cifar10h_and_the_configured_threshold(workdir, capsys):
    simulator_inputs(workdir)
    assert main(["fit-simulator", "--responses", "four.csv", "--out", "sim.json", *common(workdir)]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "reading results/data/cifar10h.npz"
    params = json.loads((workdir / "sim.json").read_text())
    assert (params["threshold"], params["gamma"]) == (0.25, 0.1)  # labels.simulator_entropy_threshold, labels.gamma
    assert (params["low"]["n_responses"], params["high"]["n_responses"]) == (2, 2)
    # the low group's top entries, T2-Clamp by hand: cat 80 + dog 10 keeps cat at 0.8 (A = 0.9 < 1); dog 100
    # (A = 1) is damped by 1 − γ to 0.9
    assert params["low"]["top_mean"] == pytest.approx((0.8 + 0.9) / 2, abs=1e-12)


def test_a_named_cifar10h_file_without_probs_is_refused_naming_it(workdir, capsys):
    simulator_inputs(workdir)
    np.savez(workdir / "counts_only.npz", counts=np.zeros((3, 10)))
    (workdir / "text.npz").write_text("not an archive")
    for name in ("counts_only.npz", "text.npz"):
        code = main(["fit-simulator", "--responses", "four.csv", "--cifar10h", name, "--out", "sim.json",
                     *common(workdir)])
        err = capsys.readouterr().err
        assert code == 2 and f"{name}: not an npz file with 'probs'" in err
        assert not (workdir / "sim.json").exists()


def test_semantic_labels_read_the_named_glove_rows(workdir, capsys):
    """A named GloVe file is read and named in the log; with every class orthogonal except automobile ~ truck,
    the T2-Semantic label of image 1 (truck 75, automobile 25) puts the remainder by that similarity."""
    rows = []
    for n, name in enumerate(CLASSES):
        vector = np.eye(10)[n]
        if name == "automobile":
            vector = np.eye(10)[CLASSES.index("truck")] + 0.01 * np.eye(10)[n]
        rows.append(" ".join([name, *map(str, vector)]))
    (workdir / "glove.txt").write_text("\n".join(rows) + "\n")
    argv = ["export-labels", "--variety", "t2_semantic", "--responses", "responses.csv", "--glove", "glove.txt",
            "--out", "o.json", *common(workdir)]
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "GloVe rows: glove.txt"
    assert out[-1] == "o.json: 3 responses over 2 images (t2_semantic, gamma 0.1, documented path)"
    assert not (workdir / "resources").exists()


def test_every_named_path_is_checked_before_any_is_read(workdir, capsys):
    """A named responses table that is malformed and a named CIFAR-10H file that is missing: the error names the
    missing file (all named paths are checked first), whichever option it came from."""
    (workdir / "broken.csv").write_text("not,a,responses,table\n")
    for option in ("--cifar10h", "--glove"):
        command = ["fit-simulator"] if option == "--cifar10h" else ["export-labels", "--variety", "t2_semantic"]
        code = main([*command, "--responses", "broken.csv", option, "absent.file", "--out", "o.json",
                     *common(workdir)])
        err = capsys.readouterr().err
        assert code == 2 and "absent.file: file not found (named on the command line)" in err, err
    (workdir / "j.csv").write_text("not,a,judgments,table\n")
    # and a named file that exists but is malformed is reported as such
    assert main(["fit-taus", "--judgments", "j.csv", "--out", "t.csv", *common(workdir)]) == 2
    assert "j.csv: missing column(s)" in capsys.readouterr().err


def test_without_parsed_tables_the_configured_raw_downloads_are_parsed(workdir, capsys, monkeypatch):
    """No path named and nothing under results/data: each loader fetches its configured downloads (by their
    config keys) and parses them with the data stage's parser; the log names the files."""
    from softlabels.config import load
    from softlabels.labels import cli

    fetched, parsed = [], []
    def fetch(key, config):  # the configured download: needs the config (here its resources_dir)
        fetched.append(key)
        return f"{config['resources_dir']}/{key}.bin"

    monkeypatch.setattr(cli, "fetch_from_config", fetch)

    def parser(name):
        return lambda *raws: parsed.append((name, raws)) or name

    monkeypatch.setattr(cli.cifar10s, "parse_cifar10s", parser("cifar10s"))
    monkeypatch.setattr(cli.hmix, "parse_soft_responses", parser("hmix_soft"))
    monkeypatch.setattr(cli.hmix, "parse_judgments", parser("judgments"))
    monkeypatch.setattr(cli.cifar10h, "read_cifar10h", lambda c, p: parsed.append(("cifar10h", (c, p))) or (0, "probs"))
    config = load()
    cases = [
        (cli.load_cifar10s_responses, "cifar10s_responses.csv", ["cifar10s_raw"], "cifar10s"),
        (cli.load_hmix_soft, "hmix_soft_responses.csv", ["hmix_soft"], "hmix_soft"),
        (cli.load_hmix_judgments, "hmix_judgments.csv", ["hmix_mixing", "hmix_stimuli"], "judgments"),
        (cli.load_cifar10h_probs, "cifar10h.npz", ["cifar10h_counts", "cifar10h_probs"], "probs"),
    ]
    for load_table, default, keys, result in cases:
        fetched.clear()
        parsed.clear()
        assert load_table(None, config) == result
        assert fetched == keys
        assert parsed[0][1] == tuple(f"resources/{k}.bin" for k in keys)
        assert capsys.readouterr().out == (f"results/data/{default} not found: parsing the raw download(s) "
                                           f"{', '.join(f'resources/{k}.bin' for k in keys)}\n")


def test_parsed_tables_under_results_data_are_read_by_their_key_column(workdir, capsys):
    from softlabels.config import load
    from softlabels.labels import cli

    (workdir / "results" / "data").mkdir(parents=True)
    RESPONSES.to_csv(workdir / "results" / "data" / "cifar10s_responses.csv", index=False)
    RESPONSES.rename(columns={"image": "stimulus"}).assign(stimulus="mixed_0.5_Cat_1_Dog_2.png").to_csv(
        workdir / "results" / "data" / "hmix_soft_responses.csv", index=False)
    config = load()
    table = cli.load_cifar10s_responses(None, config)
    assert table["image"].tolist() == [0, 0, 1]
    assert cli.load_hmix_soft(None, config)["stimulus"].nunique() == 1
    assert capsys.readouterr().out.splitlines() == ["reading results/data/cifar10s_responses.csv",
                                                    "reading results/data/hmix_soft_responses.csv"]
    with pytest.raises(cli.DataError, match="gone.csv: file not found"):
        cli._input("gone.csv", config, "x.csv", None, None)


def test_gamma_on_the_command_line_overrides_the_config_and_is_checked(workdir, capsys):
    """truck 75 + automobile 25 (A = 1), T2-Clamp, documented path: the stated classes are damped by 1 − γ and
    γ goes to the one free class, ship. --gamma 0.3 beats labels.gamma (0.1); 0 and 1 are allowed."""
    argv = ["export-labels", "--responses", "responses.csv", *common(workdir)]
    truck, auto, ship = (CLASSES.index(c) for c in ("truck", "automobile", "ship"))
    for gamma in (0.3, 0.0, 1.0):
        assert main([*argv, "--gamma", str(gamma), "--out", "g.json"]) == 0
        label = json.loads((workdir / "g.json").read_text())["1"][0]
        assert [label[truck], label[auto], label[ship]] == pytest.approx(
            [0.75 * (1 - gamma), 0.25 * (1 - gamma), gamma], abs=1e-9)
        assert capsys.readouterr().out.splitlines()[-1] == (
            f"g.json: 3 responses over 2 images (t2_clamp, gamma {gamma}, documented path)")
    assert main([*argv, "--gamma", "1.5", "--out", "bad.json"]) == 2
    assert "--gamma must lie in [0, 1], got 1.5" in capsys.readouterr().err
    assert not (workdir / "bad.json").exists()


def test_hmix_export_reports_what_it_wrote(workdir, capsys):
    assert main(["export-hmix-soft-labels", "--responses", "soft.csv", "--out", "h.json", *common(workdir)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "h.json: 3 responses over 1 stimuli (t2_clamp, gamma 0.1, hmix_release path)")


def test_semantic_labels_without_glove_fetch_the_configured_rows(workdir, capsys, monkeypatch):
    """No --glove: the GloVe rows are the configured download (config key `glove`), fetched with the config."""
    from softlabels.labels import cli

    (workdir / "glove.txt").write_text("".join(f"{c} {' '.join(map(str, np.eye(10)[n]))}\n"
                                               for n, c in enumerate(CLASSES)))
    fetched = []

    def fetch(key, config):
        fetched.append((key, config["resources_dir"]))
        return workdir / "glove.txt"

    monkeypatch.setattr(cli, "fetch_from_config", fetch)
    assert main(["export-labels", "--variety", "t1_semantic", "--responses", "responses.csv", "--out", "o.json",
                 *common(workdir)]) == 0
    assert fetched == [("glove", str(workdir / "resources"))]
    assert capsys.readouterr().out.splitlines()[0] == f"GloVe rows: {workdir / 'glove.txt'}"


def test_labels_outputs_are_compact_json_and_the_fit_is_printed(workdir, capsys):
    """The exports are written compactly (one line, as the released files); fit-simulator prints the fitted
    parameters (indented by one space) and takes its threshold and γ from the config."""
    simulator_inputs(workdir)
    (workdir / "labels.yaml").write_text("labels:\n  simulator_entropy_threshold: 0.5\n  gamma: 0.2\n")
    from softlabels.config import default_config_path

    configs = ["--configfile", str(default_config_path()), "--configfile", "labels.yaml"]
    assert main(["fit-simulator", "--responses", "four.csv", "--out", "sim.json", *common(workdir), *configs]) == 0
    out = capsys.readouterr().out.splitlines()
    params = json.loads((workdir / "sim.json").read_text())
    assert (params["threshold"], params["gamma"]) == (0.5, 0.2)
    assert json.loads("\n".join(out[1:])) == params and out[2].startswith(' "')
    assert (workdir / "sim.json").read_text().count("\n") == 1
    for command in (["export-labels", "--responses", "responses.csv"], ["export-hmix-soft-labels", "--responses", "soft.csv"]):
        assert main([*command, "--out", "e.json", *common(workdir)]) == 0
        assert (workdir / "e.json").read_text().count("\n") == 1
    capsys.readouterr()


def test_labels_commands_report_bad_label_inputs(workdir, capsys):
    bad = RESPONSES.assign(top_class=["cat", "kitten", "truck"])
    bad.to_csv(workdir / "bad.csv", index=False)
    bad.drop(columns="image").assign(stimulus="mixed_0.5_Cat_1_Dog_2.png").to_csv(workdir / "bad_soft.csv", index=False)
    for command in (["export-labels", "--responses", "bad.csv"], ["export-hmix-soft-labels", "--responses", "bad_soft.csv"]):
        assert main([*command, "--out", "e.json", *common(workdir)]) == 2
        assert f"{command[-1]}, line 3: column top_class: unknown or empty class name 'kitten'" in capsys.readouterr().err
        assert not (workdir / "e.json").exists()
    from softlabels.config import load
    from softlabels.labels import cli

    with pytest.raises(cli.DataError, match="^absent.txt: file not found \\(named on the command line\\)$"):
        cli.load_similarity("absent.txt", load())
