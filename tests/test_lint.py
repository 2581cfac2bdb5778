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
    """Each rule outside train.smk has `settings=settings(...)` in its params (Snakemake's params rerun trigger
    then reruns it when one of those config keys is edited; tests/test_rerun_triggers.py checks the effect)."""
    import re

    missing = []
    for path in SNAKEMAKE_FILES:
        if path.name in ("train.smk", "common.smk", "Snakefile"):
            continue
        blocks = re.split(r"^\s*rule\b", path.read_text(), flags=re.MULTILINE)[1:]
        for block in blocks:
            name = re.search(r"^\s*(\w+):|name:\s*\n\s*(f?\"[^\"]+\")", block, flags=re.MULTILINE)
            if "settings=settings(" not in block:
                missing.append(f"{path.name}: {name.group(0).strip() if name else block[:40]}")
    assert not missing, "rules without a `settings` param: " + ", ".join(missing)
