"""The package works installed non-editable: a wheel built from a copy of the sources, installed into a fresh
virtual environment, reads the default config and the schema it carries as package data, and a copy of the
workflow plans its smoke run with it.

The fresh environment gets no pip and no dependencies of its own (reinstalling torch would take minutes): a
`.pth` file makes this interpreter's site-packages visible after the environment's own, and PYTHONPATH is
cleared, so `import softlabels` finds the installed wheel and never the editable checkout.
"""

from __future__ import annotations

import os
import re
import shutil
import site
import subprocess
import sys
import sysconfig
from importlib.util import find_spec
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.mirror]

#: What a wheel is built from, and what a user copies to run the workflow.
SOURCES = ("pyproject.toml", "README.md", "config.yaml", "workflow", "src")
WORKFLOW = ("Snakefile", "config.yaml", "workflow")
SKIP = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")


def copy_tree(names, destination: Path) -> Path:
    """Copy `names` (files or folders of the checkout) into `destination`, symbolic links kept as links."""
    for name in names:
        source, target = REPO / name, destination / name
        if source.is_dir():
            shutil.copytree(source, target, symlinks=True, ignore=SKIP)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


def run(cmd, cwd: Path, env: dict, timeout: int = 600) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(map(str, cmd))}\n{(done.stdout + done.stderr)[-4000:]}"
    return done


def build_wheel(tmp_path: Path) -> Path:
    """A wheel of a copy of the sources (no build isolation where setuptools is at hand: no download)."""
    sources = copy_tree(SOURCES, tmp_path / "sources")
    isolation = [] if find_spec("setuptools") and find_spec("wheel") else ["--use-pep517"]
    no_isolation = ["--no-build-isolation"] if not isolation else []
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", *no_isolation, *isolation, "-w", str(tmp_path / "dist"),
         str(sources)], tmp_path, dict(os.environ))  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("softlabels-*.whl")
    return wheel


def fresh_venv(tmp_path: Path, wheel: Path) -> tuple[Path, dict]:
    """A venv holding only the wheel (installed by this interpreter's pip into it), then this interpreter's
    site-packages appended through a .pth file; returns its bin folder and an environment that runs it."""
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path, dict(os.environ))
    python = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)],
        tmp_path, env)  # fmt: skip
    purelib = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path, env)
    ours = dict.fromkeys([*site.getsitepackages(), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (Path(purelib.stdout.strip()) / "host_site_packages.pth").write_text("".join(f"{p}\n" for p in ours))
    return venv / "bin", env


def planned_jobs(dry_run_output: str) -> int:
    """The `total` row of a dry run's job stats."""
    total = re.search(r"^total\s+(\d+)$", dry_run_output, flags=re.MULTILINE)
    assert total, dry_run_output[-3000:]
    return int(total.group(1))


def test_wheel_installed_non_editable_runs_the_workflow(tmp_path, data_mirror):
    wheel = build_wheel(tmp_path)
    bin_dir, env = fresh_venv(tmp_path, wheel)
    where = run([str(bin_dir / "python"), "-c", "import softlabels, softlabels.config as c; "
                 "print(softlabels.__file__); print(c.default_config_path()); print(c.schema_path())"],
                tmp_path, env).stdout.split()  # fmt: skip
    venv = bin_dir.parent.resolve()
    assert all(Path(p).resolve().is_relative_to(venv) for p in where), where  # the wheel, not the checkout
    assert all(Path(p).is_file() and not Path(p).is_symlink() for p in where[1:]), where

    workdir = copy_tree(WORKFLOW, tmp_path / "work")
    dry_run = ["-m", "snakemake", "-n", "all", "--config", "scale=smoke", f"data_mirror={data_mirror}"]
    installed = planned_jobs(run([str(bin_dir / "python"), *dry_run], workdir, env).stdout)
    checkout = planned_jobs(run([sys.executable, *dry_run], copy_tree(WORKFLOW, tmp_path / "work2"),
                                dict(os.environ)).stdout)  # fmt: skip
    assert installed == checkout and installed > 1  # the same plan as from the checkout
    # A command that reads the default config (the packaged one) and downloads through the mirror.
    fetched = run([str(bin_dir / "softlabels"), "fetch", "cifar10s_raw", "--data-mirror", str(data_mirror),
                   "--config", "resources_dir=res"], workdir, env)  # fmt: skip
    stored = workdir / "res" / "cifar-10s" / "raw_human_data.csv"
    assert stored.read_bytes() == (data_mirror / "cifar-10s" / "raw_human_data.csv").read_bytes()
    assert "sha256 verified" in fetched.stdout
