"""docs/extending.md works as written: recipes 1 and 2 (a scheme and a table of one's own, then a claim on it),
followed in an empty working directory at smoke scale from the mirror; recipe 3's preset of one's own; recipe 4
(a metric) followed in a copy of the project."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import REPO

pytestmark = [pytest.mark.slow]


def recipe_yaml(text: str, file_name: str) -> dict:
    """The YAML block of docs/extending.md that starts with `# <file_name>`."""
    for block in re.findall(r"```yaml\n(.*?)```", text, flags=re.S):
        if block.startswith(f"# {file_name}"):
            return yaml.safe_load(block)
    raise AssertionError(f"docs/extending.md has no yaml block starting '# {file_name}'")


def test_a_scheme_table_and_claim_of_ones_own_build_as_the_guide_says(tmp_path, data_mirror, snakemake_runner):
    guide = (REPO / "docs/extending.md").read_text()
    scheme_and_table = recipe_yaml(guide, "mine.yaml\n")
    claims = recipe_yaml(guide, "mine.yaml (continued)")
    work = tmp_path / "work"
    work.mkdir()
    mine = work / "mine.yaml"
    mine.write_text(yaml.safe_dump({**scheme_and_table, **claims}))
    (work / claims["claims"]["file"]).write_text(
        "id\tsection\ttable\trow_a\trow_b\teval_set\tmetric\texpect\ttext\n"
        "mine_m8_ce\t3\ttable9_1\thard\tcifar10h_agg_m8\tcifar10h\tce\tlower\t"
        "Training on the mean of 8 CIFAR-10H annotators lowers CE compared with hard labels.\n")
    config = ["--configfile", str(REPO / "config.yaml"), str(mine), "--config", "scale=smoke",
              f"data_mirror={data_mirror}"]
    done = snakemake_runner(work, "--cores", "2", "results/tables/table9_1.csv", "claims_mine", *config)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]

    table = pd.read_csv(work / "results/tables/table9_1.csv")
    assert set(table["row"]) == {"hard", "cifar10h_agg", "cifar10h_agg_m8"}
    assert table["mean"].notna().all() and table["thesis_value"].isna().all()  # no thesis value for table9_1
    verdicts = pd.read_csv(work / "results/tables/claims_mine.csv")
    assert list(verdicts["claim"]) == ["mine_m8_ce"]
    assert verdicts["verdict"].iloc[0].split(" (")[0] in ("reproduced", "same direction", "other direction", "opposite")
    assert (work / "results/figures/claims_mine.png").stat().st_size > 0


def test_a_scale_preset_of_ones_own_loads_as_the_guide_says(tmp_path):
    from softlabels import config as softlabels_config

    tiny = recipe_yaml((REPO / "docs/extending.md").read_text(), "tiny.yaml\n")
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny))
    effective = softlabels_config.load([REPO / "config.yaml", path])
    chapter3 = effective["protocols"]["chapter3"]
    assert effective["scale"] == "tiny" and chapter3["epochs"] == 10 and chapter3["seeds"] == [0, 1]
    assert effective["protocols"]["chapter4"]["epochs"] == softlabels_config.load()["protocols"]["chapter4"]["epochs"]
    with pytest.raises(softlabels_config.ConfigError, match=r"key 'scale': 'tinier' is not one of the presets"):
        softlabels_config.load([REPO / "config.yaml", path], {"scale": "tinier"})


def code_blocks(text: str) -> dict[str, list[str]]:
    """The python blocks of docs/extending.md that start `# <file>: <where>`: {file: the lines to add}."""
    blocks = {}
    for block in re.findall(r"```python\n(.*?)```", text, flags=re.S):
        first, *lines = block.rstrip("\n").split("\n")
        blocks[first[2:].split(":")[0]] = lines
    return blocks


def test_a_metric_added_as_the_guide_says_reaches_a_smoke_table(tmp_path, data_mirror):
    """Recipe 4 in a copy of the project: the guide's two lines, each below the `"accuracy"` line of METRICS and
    of evaluate_model's dict,
    and a table of one row built from an empty working directory with the copy's package first on the path."""
    blocks = code_blocks((REPO / "docs/extending.md").read_text())
    assert set(blocks) == {"src/softlabels/vocabulary.py", "src/softlabels/evaluate/metrics.py"}
    copy = tmp_path / "project"
    for part in ("src", "workflow", "envs"):
        shutil.copytree(REPO / part, copy / part, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(REPO / name, copy / name)
    where = {"src/softlabels/vocabulary.py": "METRICS = {", "src/softlabels/evaluate/metrics.py": "def evaluate_model("}
    for name, lines in blocks.items():
        source = (copy / name).read_text().split("\n")
        start = next(i for i, line in enumerate(source) if line.startswith(where[name]))
        at = next(i for i in range(start, len(source)) if source[i].lstrip().startswith('"accuracy":'))
        (copy / name).write_text("\n".join(source[: at + 1] + lines + source[at + 1 :]))
    (copy / "mine.yaml").write_text("tables:\n  table9_2: {rows: [hard], eval_sets: [cifar10h], all_models: false}\n")
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(copy / "src"), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(copy / "Snakefile"), "-d", str(work), "--cores", "2",
         "results/tables/table9_2.csv", "--configfile", str(copy / "config.yaml"), str(copy / "mine.yaml"),
         "--config", "scale=smoke", f"data_mirror={data_mirror}"],
        cwd=work, env=env, capture_output=True, text=True, timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    table = pd.read_csv(work / "results/tables/table9_2.csv")
    brier = table[table["metric"] == "brier"]
    assert len(brier) == 1 and 0 <= brier["mean"].iloc[0] <= 2
    assert list(table["metric"]) == ["ce", "calibration", "fgsm", "accuracy", "brier"]  # the vocabulary's order
    assert "| Brier score" in (work / "results/tables/table9_2.md").read_text()  # its title
