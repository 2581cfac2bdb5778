"""Shared fixtures. Tests that need the real public inputs use `data_mirror`, which reads the same setting
as the pipeline (SOFTLABELS_DATA_MIRROR, which CI sets) and skips with a reason elsewhere;
in CI (CI=true) a missing mirror fails those tests instead. Every test using `data_mirror` is marked `mirror`,
so `pytest -m "not slow and not mirror"` runs the fast unit tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def compact_markdown(markdown: str) -> str:
    """Markdown with the table rows' padding removed and separator rows as |---|: the page's content, not how
    the table writer aligns its columns."""
    lines = []
    for line in markdown.split("\n"):
        if line.startswith("|"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if all(re.fullmatch(r":?-+:?", cell) for cell in cells):
                cells = ["---"] * len(cells)
                line = "|" + "|".join(cells) + "|"
            else:
                line = "| " + " | ".join(cells) + " |"
        lines.append(line)
    return "\n".join(lines)

def _mirror_path() -> Path | None:
    value = os.environ.get("SOFTLABELS_DATA_MIRROR", "")
    if not value:
        import yaml

        value = (yaml.safe_load((REPO / "config.yaml").read_text()) or {}).get("data_mirror", "")
    return Path(value).resolve() if value else None


def in_ci() -> bool:
    """CI=true (or 1, yes): a CI run, where a missing precondition is a broken setup."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def missing_precondition(reason: str):
    """Skip a test whose precondition (the mirror, root, snakefmt, Chromium) is missing, or fail it when
    CI=true, so that a CI run cannot pass by skipping."""
    if in_ci():
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "data_mirror" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.mirror)


@pytest.fixture(scope="session")
def data_mirror() -> Path:
    """The offline mirror of the public inputs (a folder with MANIFEST.tsv); skips when not configured, fails
    when CI=true."""
    path = _mirror_path()
    if path is None:
        missing_precondition("needs the real inputs: set SOFTLABELS_DATA_MIRROR (or data_mirror in config.yaml)")
    if not (path / "MANIFEST.tsv").exists():
        missing_precondition(f"data_mirror {path} has no MANIFEST.tsv")
    return path


def run_snakemake(
    workdir: Path, *args: str, timeout: int = 900, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run this checkout's workflow with `workdir` as its working directory (results/ and resources/ land
    there), using the interpreter that runs the tests (`env`: the environment, default this process's)."""
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(REPO / "Snakefile"),
        "-d",
        str(workdir),
        "--configfile",
        str(REPO / "config.yaml"),
        *args,
    ]
    env = dict(os.environ if env is None else env)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    done = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        done.stderr += failed_job_logs(workdir, done.stdout + done.stderr)
    return done


def failed_job_logs(workdir: Path, output: str, tail: int = 2500) -> str:
    """The end of each log file Snakemake names for a failed job ("log: X (check log file(s) for error
    details)"), so that a failing test shows the job's own error, not only Snakemake's summary."""
    parts = []
    for names in re.findall(r"log: (.+?) \(check log file", output):
        for name in names.split(", "):
            path = workdir / name.strip()
            text = path.read_text(errors="replace") if path.is_file() else "<no such file>"
            parts.append(f"\n--- failed job's log {name.strip()} (last {tail} characters) ---\n{text[-tail:]}")
    return "".join(dict.fromkeys(parts))


@pytest.fixture
def snakemake_runner():
    return run_snakemake


@pytest.fixture(scope="session")
def smoke_workdir(tmp_path_factory, data_mirror) -> Path:
    """A working directory shared by the tests that build smoke-scale targets from the mirror."""
    return tmp_path_factory.mktemp("smoke")
