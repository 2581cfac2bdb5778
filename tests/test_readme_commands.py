"""Every command of the README's fenced bash blocks works as written (issue 18), so the README cannot drift.

Each command is run in README order in one working directory, with the mirror for `/path/to/mirror` and `DIR`:
Snakemake commands as dry runs (`-n`), except the report block, which is built for real at the smoke scale
(`scale=quick` -> `scale=smoke`) and then reported; `softlabels` commands for real. Only the commands in SKIP
are not run, each with its reason (network, GPU, a cluster, a server, this test suite itself, your own file).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = [pytest.mark.slow]

#: Command prefixes not run, and why.
SKIP = {
    "python3 -m venv .venv": "creates the venv the tests already run in",
    ".venv/bin/pip install": "installs from PyPI: needs the network",
    "sh tests/browser/install-chromium.sh": "installs Debian packages as root: needs the network",
    ".venv/bin/python -m pytest": "runs this test suite itself",
    "softlabels elicit serve": "a server: runs until stopped (tests/test_elicit*.py serve studies)",
    "softlabels elicit check study.yaml": "the README's example study file (tests/test_elicit.py checks it)",
    "softlabels elicit links study.yaml": "the README's example study file (tests/test_elicit.py makes links)",
    "softlabels elicit export study.yaml": "needs a study with answers (tests/test_elicit_pipeline.py)",
    "softlabels export-labels --responses mine.csv": "your own responses file (tests/test_own_annotations.py)",
    "softlabels train --spec": "trains ResNet-34A: minutes per epoch on a CPU, a GPU job",
    "softlabels train-group --run cifar10s_sep/resnet34a": "trains ResNet-34A at paper scale: a GPU job",
}
#: Snakemake commands that only work on a cluster: dry-run only where the SLURM executor plugin is installed.
CLUSTER = "workflow/profiles/slurm"


def readme_commands() -> list[tuple[int, str]]:
    """(line number, command) of every fenced bash block, comments dropped, `\\` continuations and `&&` chains
    split into their commands."""
    commands, block, start = [], None, 0
    for number, line in enumerate((REPO / "README.md").read_text().splitlines(), 1):
        if block is None:
            if line.strip() == "```bash":
                block, start = [], number
            continue
        if line.strip() == "```":
            text = "\n".join(block).replace("\\\n", " ")
            for offset, command in enumerate(text.splitlines()):
                command = re.sub(r"(^|\s+)#.*$", "", command).strip()
                for part in command.split(" && "):
                    if part.strip():
                        commands.append((start + 1 + offset, part.strip()))
            block = None
            continue
        block.append(line)
    return commands


def skip_reason(command: str) -> str | None:
    return next((why for prefix, why in SKIP.items() if command.startswith(prefix)), None)


def run(command: str, workdir: Path, mirror: Path, real: bool) -> subprocess.CompletedProcess:
    command = command.replace("/path/to/mirror", str(mirror)).replace(" DIR", f" {mirror}")
    if real:
        command = command.replace("scale=quick", "scale=smoke")
    env = {k: v for k, v in os.environ.items() if k != "SOFTLABELS_DATA_MIRROR"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    words = shlex.split(command)
    while words and re.match(r"^[A-Z_]+=", words[0]):
        key, value = words.pop(0).split("=", 1)
        env[key] = value
    if words[0] in ("snakemake", ".venv/bin/snakemake"):
        rest = [str(REPO / w) if w.startswith("workflow/profiles/") else w for w in words[1:]]
        dry = [] if real else ["-n"]
        argv = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
                "--configfile", str(REPO / "config.yaml"), *dry, *rest]  # fmt: skip
        return subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True, timeout=1800)
    return subprocess.run(["bash", "-c", command], cwd=workdir, env=env, capture_output=True, text=True,
                          timeout=900)


def test_the_skip_list_names_only_readme_commands():
    commands = [c for _, c in readme_commands()]
    unused = [prefix for prefix in SKIP if not any(c.startswith(prefix) for c in commands)]
    assert not unused, f"SKIP entries matching no README command: {unused}"
    assert any(c.split()[0].endswith("snakemake") for c in commands)


def test_every_readme_command_runs(tmp_path, data_mirror):
    workdir = tmp_path / "newcomer"
    workdir.mkdir()
    # the README's own responses file (made by `softlabels elicit export`, which needs a study with answers)
    (workdir / "mine.csv").write_text("image,subject,task,trial,top_class,top_prob,second_class,second_prob,"
                                      "impossible,rt_ms\n")  # fmt: skip
    commands = readme_commands()
    lines = {n for n, _ in commands}
    reports = [(n, c) for n, c in commands if "--report" in c]
    # the build command just above a report command is built for real (at smoke); the reports run last
    builds = {n - 1 for n, _ in reports if n - 1 in lines}
    failures, ran = [], 0
    for number, command in [(n, c) for n, c in commands if "--report" not in c] + reports:
        if skip_reason(command):
            continue
        if CLUSTER in command:
            try:
                import snakemake_executor_plugin_slurm  # noqa: F401
            except ImportError:
                continue
        real = number in builds or "--report" in command
        done = run(command, workdir, data_mirror, real)
        ran += 1
        if done.returncode != 0:
            failures.append(f"README line {number}: {command}\n{(done.stdout + done.stderr)[-1500:]}")
    assert not failures, "\n\n".join(failures)
    assert ran >= 20
    assert (workdir / "results" / "report.html").stat().st_size > 100_000
