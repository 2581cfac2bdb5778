"""Parsing of the raw human data into results/data/ and the JSON exports: unit tests on small CSV fixtures
written here, count checks on the real files (data_mirror), and one Snakemake build at smoke scale."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from softlabels.data.cifar10h import annotator_table
from softlabels.data.cifar10s import read_responses, parse_cifar10s, write_cifar10s
from softlabels.data.exports import hmix_inferences_json, responses_json
from softlabels.data.hmix import build_stimuli, mix_images, parse_judgments, parse_soft_responses
from softlabels.data.io import DataError

RAW_HEADER = ["", "trial_type", "trial_index", "time_elapsed", "subject", "condition", "rt", "view_history",
              "response", "filename", "task", "label", "img_id"]


def form(top="mostProbDeer", prob="80", second="secondProbHorse", prob2="10", impossible=("Frog", "Ship")):
    data = {"classSelect": top, "prob": prob, "classSelect2": second, "prob2": prob2}
    data.update({f"improbClassSelect{c}": "1" for c in impossible})
    return json.dumps(data, separators=(",", ":"))


def response_row(i, response, image=1128, task="spec_conf", subject="s1", label="Deer"):
    return [str(i), "survey-html-form", str(i), "1000", subject, "2", "4500.5", "", response,
            f"cifar10_train_{image}_{label}.png", task, label, f"{image}.0"]


def write_raw(path: Path, rows: list[list[str]]) -> Path:
    """A raw_human_data.csv-like file; row 1 is an instructions trial whose view_history spans three lines."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(RAW_HEADER)
        writer.writerow(["0", "instructions", "0", "10", "s1", "2", "99.0", "[{\"page\":0},\n{\"page\":1}\n]",
                         "", "", "", "", ""])
        writer.writerows(rows)
    return path


# Line numbers in the fixture: header 1, instructions record lines 2-4, then one line per response from 5.
FIRST_RESPONSE_LINE = 5


def test_cifar10s_fields_and_manual_fixes(tmp_path):
    raw = write_raw(tmp_path / "raw.csv", [
        response_row(1, form()),
        response_row(2, form(prob="8p", second="secondProbNo", prob2="")),
        response_row(3, form(prob="0", second="secondProbNo", prob2="p\\\\\\", impossible=()), image=7, label="Cat"),
        response_row(4, form(prob="70", second="secondProbCat", prob2=""), task="rerun_spec_conf"),
    ])
    table = parse_cifar10s(raw)
    assert list(table.columns) == ["image", "subject", "task", "trial", "top_class", "top_prob", "second_class",
                                   "second_prob", "impossible", "rt_ms"]
    assert table["image"].tolist() == [1128, 1128, 7, 1128]
    assert table["top_class"].tolist() == ["deer"] * 4
    assert table["top_prob"].tolist() == [80.0, 80.0, 100.0, 70.0]  # "8p" -> 80, top 0 -> 100
    assert table["second_class"].tolist() == ["horse", "", "", "cat"]
    assert table.loc[0, "second_prob"] == 10.0
    assert table["second_prob"][1:].isna().all()  # "No" (whatever its text), and an empty box
    assert table["impossible"].tolist() == ["frog|ship", "frog|ship", "", "frog|ship"]
    assert table["task"].tolist() == ["spec_conf"] * 3 + ["rerun_spec_conf"]
    assert table["trial"].tolist() == [1, 2, 3, 4]
    assert table["rt_ms"].tolist() == [4500.5] * 4


def test_cifar10s_round_trip_through_csv(tmp_path):
    raw = write_raw(tmp_path / "raw.csv", [response_row(1, form()), response_row(2, form(second="secondProbNo"))])
    out = tmp_path / "out" / "responses.csv"
    write_cifar10s(raw, out)
    back = read_responses(out)
    assert back["second_class"].tolist() == ["horse", ""]
    assert back["second_prob"].iloc[0] == 10.0 and math.isnan(back["second_prob"].iloc[1])
    assert back["impossible"].tolist() == ["frog|ship", "frog|ship"]


@pytest.mark.parametrize(
    "bad_response, message",
    [
        (form(prob="abc"), "prob 'abc' is not a number"),
        (form(prob2="1o"), "prob2 '1o' is not a number"),
        (form(prob="120"), "outside 0..100"),
        (form(top="mostProbUnicorn"), "unknown classSelect tag 'mostProbUnicorn'"),
        (form(second="secondProbMaybe"), "unknown classSelect2 tag"),
        (form(impossible=("Zebra",)), "unknown impossible-class tag"),
        ('{"classSelect": "mostProbDeer", "prob": ', "not valid JSON"),
    ],
)
def test_cifar10s_malformed_row_names_file_and_line(tmp_path, bad_response, message):
    raw = write_raw(tmp_path / "raw.csv", [response_row(1, form()), response_row(2, form()),
                                           response_row(3, bad_response)])
    out = tmp_path / "results" / "responses.csv"
    with pytest.raises(DataError) as err:
        write_cifar10s(raw, out)
    assert f"{raw}, line {FIRST_RESPONSE_LINE + 2}:" in str(err.value)
    assert message in str(err.value)
    assert not out.exists() and not any(out.parent.glob("*"))


def test_line_number_counts_multiline_fields_inside_responses(tmp_path):
    two_lines = form()[:-1] + ',\n"improbClassSelectCat":"1"}'  # valid JSON whose field spans two lines
    raw = write_raw(tmp_path / "raw.csv", [response_row(1, two_lines), response_row(2, form(prob="x"))])
    with pytest.raises(DataError, match=rf"line {FIRST_RESPONSE_LINE + 2}: prob 'x'"):
        parse_cifar10s(raw)
    raw = write_raw(tmp_path / "raw2.csv", [response_row(1, two_lines[:-1] + ',"comment":"1"}')])
    with pytest.raises(DataError, match=rf"line {FIRST_RESPONSE_LINE}: unexpected response key 'comment'"):
        parse_cifar10s(raw)
    good = write_raw(tmp_path / "raw3.csv", [response_row(1, two_lines)])
    assert parse_cifar10s(good)["impossible"].tolist() == ["frog|ship|cat"]


def test_cifar10s_image_index_must_match_filename(tmp_path):
    row = response_row(1, form())
    row[12] = "55.0"
    with pytest.raises(DataError, match="img_id 55 differs from the index in filename"):
        parse_cifar10s(write_raw(tmp_path / "raw.csv", [row]))


def test_cifar10s_missing_column(tmp_path):
    path = tmp_path / "raw.csv"
    path.write_text("trial_type,subject\nsurvey-html-form,s1\n")
    with pytest.raises(DataError, match="line 1: missing column"):
        parse_cifar10s(path)


# --- H-Mix --------------------------------------------------------------------------------------------------

MIX_HEADER = ["", "trial_type", "trial_index", "subject", "rt", "responses", "filename", "task", "label1",
              "label2", "mixtureCoeff", "id1", "id2"]


def mix_row(i, name, sliders, lam="0.75", c1="Cat", i1="6126", c2="Ship", i2="2713"):
    return [str(i), "multiple-slider", str(i), f"s{i}", "1200.0", sliders, name, "rate_mixture", c1, c2, lam,
            f"{i1}.0", f"{i2}.0"]


def write_csv(path: Path, header, rows) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_hmix_judgments_orientation_and_flags(tmp_path):
    a = "mixed_0.75_Cat_6126_Ship_2713.png"
    b = "mixed_0.1_Deer_3203_Ship_3821.png"
    raw = write_csv(tmp_path / "mix.csv", MIX_HEADER, [
        mix_row(1, a, '{"mixingcoeff":0,"confidence":100}'),
        mix_row(2, a, '{"mixingcoeff":1,"confidence":100}'),
        mix_row(3, b, '{"mixingcoeff":76,"confidence":71}', "0.1", "Deer", "3203", "Ship", "3821"),
        ["4", "instructions", "4", "s1", "", "", "", "", "", "", "", "", ""],
    ])
    stimuli = tmp_path / "first.txt"
    stimuli.write_text(a + "\n")
    table = parse_judgments(raw, stimuli)
    # The slider measures image 2's share: λ_h = 1 − mixingcoeff/100 (as processed_hmix_inferences.json).
    assert np.allclose(table["lambda_h"], [1.0, 0.99, 0.24])
    assert np.allclose(table["confidence"], [1.0, 1.0, 0.71])
    assert table["first_collection"].tolist() == [True, True, False]
    assert table[["class1", "image1", "class2", "image2"]].iloc[2].tolist() == ["deer", 3203, "ship", 3821]
    exported = hmix_inferences_json(table)
    assert exported[a]["Predicted Mixing Factor"] == [1.0, 0.99]
    assert exported[a]["Std Dev"] == pytest.approx(0.005)
    assert exported[a]["Re-Label Diff"] == pytest.approx(-0.245)
    assert exported[a]["Weighted Re-Label"] == pytest.approx(0.995)
    assert exported[a]["Endpoints"] == ["Cat", "Ship"] and exported[a]["Class Pair"] == "Cat_6126_Ship_2713.png"
    assert exported[b]["Weighted Re-Label Diff"] == pytest.approx(0.1 - 0.24 * 0.71)


@pytest.mark.parametrize(
    "row, message",
    [
        (mix_row(1, "mixed_0.75_Cat_6126_Ship_2713.png", '{"mixingcoeff":150,"confidence":1}'), "slider"),
        (mix_row(1, "mixed_0.75_Cat_6126_Ship_2713.png", '{"confidence":1}'), "no 'mixingcoeff'"),
        (mix_row(1, "mixed_0.75_Cat_6126_Ship_2713.png", "{bad"), "not valid JSON"),
        (mix_row(1, "mixed_0.75_Cat_6126_Ship_2713.png", '{"mixingcoeff":1,"confidence":1}', lam="0.5"),
         "mixtureCoeff '0.5' disagrees"),
        (mix_row(1, "mixed_0.75_Cat_6126_Unicorn_2713.png", '{"mixingcoeff":1,"confidence":1}'), "unknown class"),
    ],
)
def test_hmix_malformed_row(tmp_path, row, message):
    raw = write_csv(tmp_path / "mix.csv", MIX_HEADER, [row])
    stimuli = tmp_path / "first.txt"
    stimuli.write_text("")
    with pytest.raises(DataError) as err:
        parse_judgments(raw, stimuli)
    assert f"{raw}, line 2:" in str(err.value) and message in str(err.value)


def test_hmix_soft_responses(tmp_path):
    header = ["", "trial_type", "trial_index", "subject", "rt", "response", "filename", "task", "label1", "label2",
              "mixtureCoeff", "id1", "id2"]
    raw = write_csv(tmp_path / "soft.csv", header, [
        ["0", "survey-html-form", "6", "s1", "7869.0", form(top="mostProbAirplane", prob="60",
                                                            second="secondProbFrog", prob2="20"),
         "mixed_0.75_Airplane_3497_Ship_8913.png", "spec_conf", "Airplane", "Ship", "0.75", "3497.0", "8913.0"],
        ["1", "preload", "7", "s1", "", "", "", "", "", "", "", "", ""],
    ])
    table = parse_soft_responses(raw)
    assert table.iloc[0][["stimulus", "lambda_f", "class1", "image1", "class2", "image2", "top_class", "top_prob",
                          "second_class", "second_prob", "impossible"]].tolist() == [
        "mixed_0.75_Airplane_3497_Ship_8913.png", 0.75, "airplane", 3497, "ship", 8913, "airplane", 60.0, "frog",
        20.0, "frog|ship"]


def test_mix_images_rounds_halves_up():
    images = np.zeros((3, 32, 32, 3), np.uint8)
    images[1] = 3
    images[2] = 255
    out = mix_images(images, [1, 1, 2], [0, 2, 0], [0.5, 0.25, 0.9])
    assert out.dtype == np.uint8
    assert out[0, 0, 0, 0] == 2  # 1.5 -> 2
    assert out[1, 0, 0, 0] == round(0.25 * 3 + 0.75 * 255)  # 192
    assert out[2, 0, 0, 0] == 230  # 229.5 -> 230


def test_stimuli_endpoint_classes_checked():
    judgments = pd.DataFrame({"stimulus": ["mixed_0.5_Cat_0_Dog_1.png"], "lambda_f": [0.5], "class1": ["cat"],
                              "image1": [0], "class2": ["dog"], "image2": [1], "first_collection": [True]})
    soft = judgments.drop(columns="first_collection").iloc[:0]
    images = np.zeros((2, 32, 32, 3), np.uint8)
    arrays = build_stimuli(judgments, soft, images, np.array([3, 5]))
    assert arrays["class1"].tolist() == [3] and arrays["first_collection"].tolist() == [True]
    with pytest.raises(DataError, match="endpoint classes disagree"):
        build_stimuli(judgments, soft, images, np.array([3, 4]))


def test_annotator_table_expands_class_by_class():
    counts = np.zeros((2, 10), np.int64)
    counts[0, [0, 2]] = [2, 1]
    counts[1, 9] = 2
    table = annotator_table(counts)
    assert table.values.tolist() == [[0, 0, 0], [0, 1, 0], [0, 2, 2], [1, 0, 9], [1, 1, 9]]


def test_responses_json_layout():
    table = pd.DataFrame({"image": [7, 3, 7], "subject": ["a", "b", "c"], "task": ["spec_conf"] * 3,
                          "trial": [1, 2, 3], "top_class": ["deer", "cat", "ship"], "top_prob": [80.0, 100.0, 60.0],
                          "second_class": ["horse", "", "truck"], "second_prob": [10.0, np.nan, np.nan],
                          "impossible": ["frog|ship", "", ""], "rt_ms": [1.0, 2.0, 3.0]})
    data = responses_json(table)
    assert list(data) == ["3", "7"]
    assert data["7"][0] == {"Most Probable Class": "Deer", "Most Probable Class Prob": 80.0,
                            "Second Most Probable Class": "Horse", "Second Most Probable Class Prob": 10.0,
                            "Impossible Class(es)": ["Frog", "Ship"]}
    assert data["3"][0]["Second Most Probable Class"] == "No"
    assert data["3"][0]["Second Most Probable Class Prob"] is None
    assert data["7"][1]["Second Most Probable Class"] == "Truck"  # chosen, but no probability given
    assert data["7"][1]["Second Most Probable Class Prob"] is None
    json.dumps(data)


# --- the real files (data_mirror) ---------------------------------------------------------------------------


def test_real_cifar10s_counts(data_mirror):
    table = parse_cifar10s(data_mirror / "cifar-10s/raw_human_data.csv")
    assert len(table) == 6723
    assert table["subject"].nunique() == 248
    assert table["image"].nunique() == 1000
    assert table.groupby("image").size().value_counts().to_dict() == {6: 459, 7: 391, 8: 124, 9: 21, 10: 4, 11: 1}
    assert (table["task"] == "rerun_spec_conf").sum() == 498
    assert table["top_prob"].between(1, 100).all()
    # docs/protocol.md#cifar-10s-responses: 10 responses chose a second class without a probability;
    # 153 repeat the top class.
    assert ((table["second_class"] != "") & table["second_prob"].isna()).sum() == 10
    assert (table["second_class"] == table["top_class"]).sum() == 153
    assert (table["impossible"].str.count(r"\|") == 9).sum() == 5


def test_real_hmix_counts(data_mirror):
    judgments = parse_judgments(data_mirror / "hill-mixup/hmix_infer_mixing_factor.csv",
                                data_mirror / "hill-mixup/first_collection_stimuli.txt")
    first = judgments[judgments["first_collection"]]
    assert first["stimulus"].nunique() == 810 and len(first) == 1974
    assert first.groupby("stimulus").size().value_counts().to_dict() == {2: 539, 3: 197, 4: 65, 5: 9}
    assert judgments["stimulus"].nunique() == 2070
    coefficients = first.drop_duplicates("stimulus")["lambda_f"].value_counts().to_dict()
    assert coefficients == {0.5: 270, 0.1: 139, 0.25: 131, 0.75: 142, 0.9: 128}
    assert np.corrcoef(judgments["lambda_f"], judgments["lambda_h"])[0, 1] > 0.7
    # Values of the released processed_hmix_inferences.json (cambridge-mlg/hill-mixup, h_mix/).
    exported = hmix_inferences_json(judgments)
    assert exported["mixed_0.5_Deer_3375_Ship_6112.png"]["Predicted Mixing Factor"] == [0.08999999999999997, 0.0]
    assert exported["mixed_0.5_Deer_3375_Ship_6112.png"]["Weighted Re-Label Diff"] == 0.4712
    assert exported["mixed_0.1_Deer_3203_Ship_3821.png"]["Std Dev"] == 0.10392304845413264

    soft = parse_soft_responses(data_mirror / "hill-mixup/hmix_categorical_soft_labels.csv")
    per_stimulus = soft.groupby("stimulus").size()
    assert len(per_stimulus) == 100 and per_stimulus.between(2, 4).all()
    assert soft.drop_duplicates("stimulus")["lambda_f"].value_counts().to_dict() == {0.5: 48, 0.25: 29, 0.75: 23}
    assert set(soft["stimulus"]) <= set(first["stimulus"])


def test_real_cifar10_splits_and_cifar10h(data_mirror, tmp_path):
    from softlabels.data.cifar10 import read_test_batch, write_splits
    from softlabels.data.cifar10h import read_cifar10h

    images, labels = read_test_batch(data_mirror / "cifar-10/cifar-10-python.tar.gz")
    assert images.shape == (10000, 32, 32, 3) and images.dtype == np.uint8 and labels.dtype == np.int64
    assert np.bincount(labels).tolist() == [1000] * 10
    write_splits(data_mirror / "cifar-10s/train_indices.npy", data_mirror / "cifar-10s/test_indices.npy",
                 tmp_path / "splits.npz")
    with np.load(tmp_path / "splits.npz") as splits:
        train, test = splits["train"], splits["test"]
    assert train.shape == (7000,) and test.shape == (3000,) and train.dtype == np.int64
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(10000))
    assert np.bincount(labels[train]).tolist() == [700] * 10
    responses = parse_cifar10s(data_mirror / "cifar-10s/raw_human_data.csv")
    assert set(responses["image"]) <= set(train.tolist())
    counts, probs = read_cifar10h(data_mirror / "cifar-10h/cifar10h-counts.npy",
                                  data_mirror / "cifar-10h/cifar10h-probs.npy")
    assert counts.sum(axis=1).min() == 47 and counts.sum(axis=1).max() == 63
    assert len(annotator_table(counts)) == counts.sum()


def test_real_stimuli_rebuilt_in_pixel_space(data_mirror):
    from softlabels.data.cifar10 import read_test_batch

    images, labels = read_test_batch(data_mirror / "cifar-10/cifar-10-python.tar.gz")
    judgments = parse_judgments(data_mirror / "hill-mixup/hmix_infer_mixing_factor.csv",
                                data_mirror / "hill-mixup/first_collection_stimuli.txt")
    soft = parse_soft_responses(data_mirror / "hill-mixup/hmix_categorical_soft_labels.csv")
    arrays = build_stimuli(judgments, soft, images, labels)
    assert arrays["images"].shape == (2070, 32, 32, 3) and arrays["first_collection"].sum() == 810
    k = int(np.flatnonzero(arrays["names"] == "mixed_0.75_Cat_6126_Ship_2713.png")[0])
    expected = np.floor(0.75 * images[6126].astype(float) + 0.25 * images[2713].astype(float) + 0.5)
    assert np.array_equal(arrays["images"][k], expected.astype(np.uint8))


def test_exports_work_offline_from_a_cache(data_mirror, tmp_path, monkeypatch):
    """Without results/data, the export commands fetch and parse into resources_dir/parsed/ first."""
    from softlabels.cli import main

    monkeypatch.chdir(tmp_path)
    common = ["--data-mirror", str(data_mirror), "--config", "resources_dir=res"]
    assert main(["export-responses", "--out", "r.json", *common]) == 0
    assert main(["export-hmix", "--out", "h.json", *common]) == 0
    responses = json.loads((tmp_path / "r.json").read_text())
    assert len(responses) == 1000 and sum(map(len, responses.values())) == 6723
    assert (tmp_path / "res/parsed/cifar10s_responses.csv").exists()
    inferences = json.loads((tmp_path / "h.json").read_text())
    assert len(inferences) == 2070
    assert inferences["mixed_0.75_Cat_6126_Ship_2713.png"]["Predicted Mixing Factor"] == [1.0, 0.99]
    assert not (tmp_path / "results").exists()


def test_snakemake_builds_responses_from_mirror(data_mirror, smoke_workdir, snakemake_runner):
    target = "results/data/cifar10s_responses.csv"
    result = snakemake_runner(smoke_workdir, "--cores", "2", target, "--config", "scale=smoke",
                              f"data_mirror={data_mirror}")
    assert result.returncode == 0, result.stderr[-3000:]
    table = read_responses(smoke_workdir / target)
    assert len(table) == 6723 and table["image"].nunique() == 1000
    assert "sha256 verified" in (smoke_workdir / "logs/data/fetch/cifar-10s/raw_human_data.csv.log").read_text()
