"""Users bring elicitation data of their own in the tidy per-response format (results/data/cifar10s_responses.csv).
Bad rows are reported with file and line; nothing is written then."""

import json

import numpy as np
import pytest

from softlabels.cli import main

HEADER = "image,subject,task,trial,top_class,top_prob,second_class,second_prob,impossible,rt_ms\n"
GOOD = "5,s1,spec_conf,1,deer,80,horse,10,frog|ship,1000\n7,s2,spec_conf,1,dog,90,,,,1000\n"


def _write(tmp_path, body):
    path = tmp_path / "mine.csv"
    path.write_text(HEADER + body)
    return path


def test_own_responses_become_soft_labels(tmp_path):
    out = tmp_path / "labels.json"
    assert main(["export-labels", "--responses", str(_write(tmp_path, GOOD)), "--out", str(out)]) == 0
    labels = json.loads(out.read_text())
    assert sorted(labels) == ["5", "7"]
    deer = np.array(labels["5"][0])
    assert deer.sum() == pytest.approx(1.0)
    assert deer[4] == pytest.approx(0.8) and deer[7] == pytest.approx(0.1)
    assert deer[6] == 0 and deer[8] == 0  # ticked impossible: no mass under T2-Clamp


@pytest.mark.parametrize(
    "bad_row, message",
    [
        ("7,s2,spec_conf,1,dear,80,,,,1000\n", "line 3: column top_class"),
        ("7,s2,spec_conf,1,dog,abc,,,,1000\n", "line 3: column top_prob"),
        ("7,s2,spec_conf,1,dog,120,,,,1000\n", "line 3: column top_prob"),
        ("7,s2,spec_conf,1,dog,90,cat,x,,1000\n", "line 3: column second_prob"),
        ("7,s2,spec_conf,1,dog,90,,,frog|shp,1000\n", "line 3: column impossible"),
    ],
)
def test_bad_row_names_file_and_line_and_writes_nothing(tmp_path, capsys, bad_row, message):
    out = tmp_path / "labels.json"
    body = GOOD.splitlines(keepends=True)[0] + bad_row
    assert main(["export-labels", "--responses", str(_write(tmp_path, body)), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "mine.csv" in err and message in err
    assert not out.exists()
