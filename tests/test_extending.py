"""docs/extending.md works as written: recipes 1 and 2 (a scheme and a table of one's own, then a claim on it),
followed in an empty working directory at smoke scale from the mirror."""

from __future__ import annotations

import re

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
