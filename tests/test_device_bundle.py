"""The device bundle, tested here as the device would run it (benchmarks/device/): the bundle is built from
the data mirror, then benchmarks/device/run.sh runs all four steps with the CPU as the device at a tiny size,
in a fresh virtual environment that holds only the device image's Python packages (DEVICE_IMAGE_PACKAGES,
taken from this checkout's environment) with the network cut (`unshare -rn`). Each step's output is checked.

The device image has no snakemake, jsonschema or torchattacks and no network: they must come from the
bundle's wheels, and the parsed inputs of Table 3.3 from the bundle's work/ folder."""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.slow, pytest.mark.mirror]

#: Python packages of the device image (its list of 2026-11-17, as far as this checkout's environment has them),
#: plus the CUDA libraries torch loads (nvidia-*, cuda-*). Not: snakemake, jsonschema, torchattacks.
DEVICE_IMAGE_PACKAGES = {
    "torch", "torchvision", "triton", "numpy", "pandas", "scipy", "matplotlib", "seaborn", "pyyaml", "jinja2",
    "markupsafe", "pillow", "contourpy", "cycler", "fonttools", "kiwisolver", "pyparsing", "python-dateutil",
    "six", "tzdata", "pytz", "sympy", "mpmath", "networkx", "filelock", "fsspec", "typing-extensions", "packaging",
    "pytest", "pluggy", "iniconfig", "pygments", "hypothesis", "sortedcontainers", "attrs", "certifi", "idna",
    "requests", "urllib3", "charset-normalizer", "psutil", "wrapt", "tabulate", "tqdm", "setuptools", "pip",
    "click", "h11", "anyio", "sniffio", "pathspec", "mypy-extensions", "zipp",
}
FORBIDDEN = ("snakemake", "jsonschema", "torchattacks")


def _normal(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _allowed(name: str) -> bool:
    name = _normal(name)
    return name in DEVICE_IMAGE_PACKAGES or name.startswith(("nvidia-", "cuda-"))


def image_site(dest: Path) -> Path:
    """A folder of symlinks to the files of the allowed distributions of this interpreter's site-packages
    (top-level packages, modules, .libs folders and their .dist-info), for the fresh environment's .pth."""
    site = Path(sysconfig.get_paths()["purelib"])
    dest.mkdir(parents=True, exist_ok=True)
    for dist in importlib.metadata.distributions(path=[str(site)]):
        name = dist.metadata["Name"]
        if not name or not _allowed(name):
            continue
        tops = {Path(str(f)).parts[0] for f in dist.files or () if not str(f).startswith("..")}
        for top in tops:
            if top.endswith(".pth") or top == "__pycache__" or top.startswith("__editable__"):
                continue
            source, link = site / top, dest / top
            if source.exists() and not link.exists():
                link.symlink_to(source)
    return dest


@pytest.fixture(scope="module")
def device_env(tmp_path_factory):
    """(python of a fresh venv that sees only the device image's packages, environment without the network
    helpers of this machine)."""
    root = tmp_path_factory.mktemp("device_env")
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True, capture_output=True)
    python = root / "venv" / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    (Path(purelib) / "device_image.pth").write_text(str(image_site(root / "image")) + "\n")
    env = {"PATH": f"{python.parent}:/usr/local/bin:/usr/bin:/bin", "HOME": str(root), "LANG": "C.UTF-8",
           "TMPDIR": str(root)}
    return python, env


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, data_mirror):
    """The bundle, built by build_bundle.py from the mirror, with wheels for this Python only."""
    out = tmp_path_factory.mktemp("bundle") / "bundle"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "device" / "build_bundle.py"), "--data-mirror",
                           str(data_mirror), "--out", str(out), "--python-versions", version],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def test_the_fresh_environment_is_the_device_image_and_has_no_network(device_env):
    python, env = device_env
    probe = "import importlib.util as u, sys; sys.exit(any(u.find_spec(m) for m in sys.argv[1:]))"
    assert subprocess.run([str(python), "-c", probe, *FORBIDDEN], env=env).returncode == 0
    for module in ("torch", "numpy", "pandas", "yaml", "pytest", "packaging"):
        assert subprocess.run([str(python), "-c", f"import {module}"], env=env, capture_output=True).returncode == 0
    connect = "import socket; socket.create_connection(('pypi.org', 443), timeout=5)"
    cut = subprocess.run(["unshare", "-rn", str(python), "-c", connect], env=env, capture_output=True, text=True)
    assert cut.returncode != 0 and ("Error" in cut.stderr or "error" in cut.stderr), cut.stderr


def test_bundle_is_small_and_complete(bundle):
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["total_bytes"] < 60 * 2**20
    files = manifest["files"]
    assert any(f.startswith("wheels/snakemake-") for f in files) and any(f.startswith("wheels/jsonschema-") for f in files)
    assert any(f.startswith("wheels/torchattacks-") for f in files)
    for name in ("cifar10_test.npz", "splits.npz", "cifar10h.npz", "cifar10s_responses.csv", "provenance.json"):
        assert files[f"work/results/data/{name}"]["bytes"] > 0
    glove = [f for f in files if f.startswith("work/resources/glove/") and not f.endswith(".origin.json")]
    assert glove and all(files[f]["bytes"] > 0 for f in glove)
    assert files["work/resources/cifar-10/cifar-10-python.tar.gz"]["bytes"] == 0  # a placeholder


def test_run_sh_runs_every_step_on_the_cpu_offline(bundle, device_env, tmp_path):
    python, env = device_env
    out = tmp_path / "out"
    env = {**env, "OUT": str(out), "PY": str(python), "DEVICE": "cpu", "BUNDLE": str(bundle),
           "SITE": str(tmp_path / "site"), "WORK": str(tmp_path / "work"),
           "TESTS_K": "first_step_of_each_member and cpu", "TESTS_TIMEOUT_S": "300",
           "COST_MODELS": "resnet8a:16", "COST_STEPS": "1", "COST_MAX_GROUP": "2", "COST_BUDGET_S": "80",
           "TABLE_SCALE": "smoke", "TABLE_BUDGET_S": "400", "CORES": "2"}
    done = subprocess.run(["unshare", "-rn", "bash", str(REPO / "benchmarks" / "device" / "run.sh")], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=1200)
    logs = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(out.glob("*.log")))
    assert done.returncode == 0, done.stderr + logs
    status = {p.stem: p.read_text().split()[0] for p in out.glob("*.status")}
    assert status == {"setup": "rc=0", "a_probe": "rc=0", "b_tests": "rc=0", "c_cost": "rc=0", "d_table": "rc=0"}, logs
    # (a) versions: the bundle's snakemake, jsonschema and torchattacks are importable offline
    probe = (out / "a_probe.log").read_text()
    assert "snakemake 9." in probe and "jsonschema 4." in probe and "torchattacks 3." in probe, probe
    assert "available False" in probe and "(no nvidia-smi)" in probe or "NVIDIA-SMI" in probe
    # (b) the fused-equivalence tests ran and passed
    suite = ET.parse(out / "b_tests.xml").getroot().iter("testsuite").__next__()
    assert int(suite.get("tests")) >= 1 and int(suite.get("failures")) == 0 and int(suite.get("errors")) == 0
    # (c) paper_cost tables: fp32 groups 1 and 2, bf16 group 1
    fp32 = (out / "c_cost" / "paper_cost_fp32.md").read_text()
    assert "| resnet8a | 16 | 1 |" in fp32 and "| resnet8a | 16 | 2 |" in fp32, fp32
    bf16 = json.loads((out / "c_cost" / "paper_cost_bf16.json").read_text())
    assert list(bf16["rates"]["resnet8a"]) == ["1"]
    assert json.loads((out / "c_cost" / "paper_cost_fp32.json").read_text())["estimate"]["jobs_fused"] > 0
    # (d) Table 3.3 through the workflow: its four rows, one run each, from the bundle's parsed inputs
    table = (out / "d_table" / "table3_3.md").read_text()
    for row in ("cifar10h_sep_m2", "cifar10s_sep_m2", "cifar10h_sep_m1", "cifar10s_sep_m1"):
        line = next(line for line in table.splitlines() if f"(`{row}`)" in line)
        assert line.rstrip(" |").endswith("1"), line
    metrics = list((out / "d_table" / "results" / "runs").glob("*/*/seed*/metrics.json"))
    assert len(metrics) == 4 and all("cifar10h" in json.loads(m.read_text()) for m in metrics)
    assert "finished" in (out / "d_table" / "progress.txt").read_text()
    table_log = (out / "d_table.log").read_text()
    ran = [line.split("rule ", 1)[1] for line in table_log.splitlines() if line.strip().startswith(("rule ", "localrule "))]
    assert ran and all(r.startswith("train_") or r == "table:" for r in ran), ran  # no data rule, nothing fetched
    assert "no longer has" not in table_log, table_log[-3000:]  # the placeholders pass the start-up check
