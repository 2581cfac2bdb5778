"""The conda environment the rules name must pin the same dependencies as the package."""

import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]


def _pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    return {r.name.lower(): str(r.specifier) for r in reqs}


def _env_requirements(path: Path) -> dict[str, str]:
    env = yaml.safe_load(path.read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    reqs = [Requirement(r) for r in pip]
    return {r.name.lower(): str(r.specifier) for r in reqs}


def test_conda_env_matches_pyproject():
    assert _env_requirements(REPO / "envs" / "softlabels.yaml") == _pyproject_requirements()


def test_torch_pins_are_exact():
    reqs = _pyproject_requirements()
    assert reqs["torch"] == "==2.14.1"
    assert reqs["torchvision"] == "==0.29.1"


def test_every_rule_names_an_existing_env():
    """Each `conda:` directive in the rule files points at a file under envs/."""
    rules = REPO / "workflow" / "rules"
    for smk in rules.glob("*.smk"):
        lines = smk.read_text().splitlines()
        for i, line in enumerate(lines):
            if line.strip() == "conda:":
                target = lines[i + 1].strip().strip('"').strip("'")
                assert (rules / target).resolve().exists(), f"{smk.name}:{i + 2} names missing env {target}"
