"""Quality gates: `snakemake --lint` finds nothing in the workflow, and snakefmt leaves every Snakemake file
as it is (`snakefmt --check`; the line length is set in pyproject.toml, [tool.snakefmt])."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, missing_precondition, run_snakemake

SNAKEMAKE_FILES = [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]


def test_snakemake_lint_has_no_findings(tmp_path):
    done = run_snakemake(tmp_path, "--lint", "--config", "scale=smoke")
    output = done.stdout + done.stderr
    assert "Lints for" not in output, output
    assert done.returncode == 0, output


def test_snakefmt_check_passes():
    snakefmt = shutil.which("snakefmt", path=str(Path(sys.executable).parent))
    if snakefmt is None:
        missing_precondition("snakefmt is not installed (pip install -e '.[test]')")
    done = subprocess.run(
        [snakefmt, "--check", "--diff", *map(str, SNAKEMAKE_FILES)], cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 0, "snakefmt would reformat (run `snakefmt Snakefile workflow/rules`):\n" + (
        done.stdout + done.stderr
    )[-6000:]


def test_every_non_training_rule_declares_the_settings_it_reads():
    """Each rule outside train.smk has `settings=settings(...)` (or, for a wildcard rule, a function of the
    wildcards returning `settings(...)`) in its params (Snakemake's params rerun trigger
    then reruns it when one of those config keys is edited; tests/test_rerun_triggers.py checks the effect)."""
    import re

    missing = []
    for path in SNAKEMAKE_FILES:
        if path.name in ("train.smk", "common.smk", "Snakefile"):
            continue
        blocks = re.split(r"^\s*rule\b", path.read_text(), flags=re.MULTILINE)[1:]
        for block in blocks:
            name = re.search(r"^\s*(\w+):|name:\s*\n\s*(f?\"[^\"]+\")", block, flags=re.MULTILINE)
            if not re.search(r"settings=(lambda wildcards: )?settings\(", block):
                missing.append(f"{path.name}: {name.group(0).strip() if name else block[:40]}")
    assert not missing, "rules without a `settings` param: " + ", ".join(missing)


# --------------------------------------------------------------------------------------------------------------
# One channel: a job's command receives the settings its rule declares (--settings), and nothing else.
# --------------------------------------------------------------------------------------------------------------
def test_jobs_receive_their_declared_settings_not_the_config_files():
    for path in SNAKEMAKE_FILES:
        text = path.read_text()
        assert "--configfile" not in text and "config_args" not in text, f"{path.name} hands a job the whole config (config_args)"
        for block in text.split("\nrule ")[1:]:
            if "--settings" in block:
                assert "{params.settings:q}" in block and "run_options=run_options()" in block, block[:200]


def test_a_command_reading_an_undeclared_key_fails_naming_it():
    from softlabels import config as cfg

    config = cfg.declared_config({"labels.gamma": 0.1, "sources.glove": {"file": "g.txt"}}, {"device": "cpu"})
    assert config["labels"]["gamma"] == 0.1 and config["device"] == "cpu"
    assert config["sources"]["glove"] == {"file": "g.txt"} and list(config["sources"]) == ["glove"]
    for read in (lambda: config["labels"]["tau_stimuli"], lambda: config["labels"].get("tau_stimuli", "all"),
                 lambda: config["scale"], lambda: config["sources"]["cifar10"]):
        with pytest.raises(cfg.UndeclaredSetting, match="not declared by its workflow rule"):
            read()
    with pytest.raises(cfg.UndeclaredSetting, match="'labels.tau_stimuli'"):
        config["labels"]["tau_stimuli"]
    # below a declared key the value is a plain dict: its optional keys read as usual
    assert config["sources"]["glove"].get("url") is None


def test_the_cli_stops_on_an_undeclared_key(capsys):
    from softlabels.cli import main

    # `fetch cifar10` reads sources.cifar10; the job declares another key only
    options = '{"data_mirror": "", "resources_dir": "resources", "device": "cpu", "torch_threads": 0, "download": {}}'
    status = main(["fetch", "cifar10", "--settings", '{"labels.gamma": 0.1}', "--run-options", options])
    err = capsys.readouterr().err
    assert status == 2 and "config key 'sources'" in err and "not declared" in err, err
