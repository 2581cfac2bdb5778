"""The smoke DAG on a real SLURM cluster, through workflow/profiles/slurm and snakemake-executor-plugin-slurm.

The test installs Debian's slurmctld, slurmd, slurm-client and munge when they are missing (apt-get), starts
a single-node cluster on 127.0.0.1 with a fake GPU (tests/slurm/cluster.py), runs the smoke targets with the
slurm executor, and reads the sbatch command lines that a logging shim recorded: every job went through
sbatch, training jobs asked for the GPU (`--gpus=1`, `--cpus-per-gpu`), light jobs for one CPU. The daemons
it started are ended by PID, whatever happens. It needs root (the daemons run as root) and skips elsewhere;
with CI=true it fails there instead.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "slurm"))

from cluster import ClusterError, TestCluster, ensure_installed  # noqa: E402
from conftest import REPO, missing_precondition, run_snakemake  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.mirror]

# The smoke DAG: downloads (from the mirror), parsing, labels, five chapter-3 training runs, Table 3.1.
TARGETS = ["results/tables/table3_1.csv"]
# Rules whose jobs must ask SLURM for a GPU: the training group jobs, one rule per protocol (train_chapter3).
GPU_RULE = re.compile(r"train_chapter[345]$")
# Settings for a cluster without an accounting database and for a fast test (the profile's defaults suit
# real clusters): job status from squeue, quick first status check, no account.
TEST_OPTIONS = [
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "2",
    "--seconds-between-status-checks",
    "2",
    "--slurm-no-account",
    "--slurm-keep-successful-logs",
    "--latency-wait",
    "5",
]


def _skip_reason() -> str | None:
    if not sys.platform.startswith("linux"):
        return "the SLURM test cluster needs Linux"
    if os.geteuid() != 0:
        return "the SLURM test cluster runs munged, slurmctld and slurmd as root: run the tests as root (as CI does)"
    return None


def parse_sbatch_log(text: str) -> list[dict]:
    """One dict per logged sbatch call: `rule` (from --comment rule_<name>[_wildcards_...]), `args` (the
    options before --wrap) and `line` (the whole command line)."""
    calls = []
    for line in text.splitlines():
        if not line.strip():
            continue
        args = shlex.split(line)
        options = [a for a in args if not a.startswith("--wrap")]
        comment = options[options.index("--comment") + 1]
        rule = re.match(r"rule_(.+?)(?:_wildcards_.*)?$", comment).group(1)
        calls.append({"rule": rule, "args": options, "line": line})
    return calls


def test_parse_sbatch_log_reads_rule_and_options():
    line = (
        "sbatch --parsable --job-name x --comment rule_train_run_wildcards_hard-resnet8a-0 -t 10 --mem 800 "
        "--cpus-per-gpu=2 --gpus=1 --wrap=python\\ -m\\ snakemake\\ --target-jobs\\ \\'train_run:\\'\n"
    )
    (call,) = parse_sbatch_log(line)
    assert call["rule"] == "train_run"
    assert "--gpus=1" in call["args"] and "--cpus-per-gpu=2" in call["args"]
    assert not any(a.startswith("--wrap") for a in call["args"])


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    reason = _skip_reason()
    if reason:
        missing_precondition(reason)
    try:
        ensure_installed(log=lambda msg: print(msg, file=sys.stderr))
    except ClusterError as err:
        pytest.fail(f"could not install the SLURM packages: {err}")
    cluster = TestCluster(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
        yield cluster
    finally:
        pids = [p.pid for p in cluster.procs.values()]
        cluster.stop()
        for pid in pids:
            assert not Path(f"/proc/{pid}").exists() or _is_zombie(pid), f"daemon {pid} still running"


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except (OSError, IndexError):
        return True


def test_smoke_dag_runs_through_sbatch(slurm_cluster, data_mirror, tmp_path):
    workdir = tmp_path / "wd"
    done = run_snakemake(
        workdir,
        "--profile",
        str(REPO / "workflow" / "profiles" / "slurm"),
        *TEST_OPTIONS,
        *TARGETS,
        "--config",
        "scale=smoke",
        f"data_mirror={data_mirror}",
        env=slurm_cluster.env(),
        timeout=900,
    )
    log = slurm_cluster.sbatch_log.read_text() if slurm_cluster.sbatch_log.exists() else ""
    assert done.returncode == 0, f"{done.stderr[-6000:]}\n--- sbatch log\n{log[-3000:]}\n{slurm_cluster.logs()}"
    for target in TARGETS:
        assert (workdir / target).stat().st_size > 0, target

    calls = parse_sbatch_log(log)
    (tmp_path / "sbatch_calls.txt").write_text("\n".join(" ".join(c["args"]) for c in calls) + "\n")
    rules = {c["rule"] for c in calls}
    gpu_rules = {r for r in rules if GPU_RULE.match(r)}
    gpu_calls = [c for c in calls if c["rule"] in gpu_rules]
    assert gpu_rules == {"train_chapter3"} and len(gpu_calls) == 5, f"expected the five table-3.1 training jobs: {calls}"
    # Every job Snakemake ran remotely reported a SLURM job id, and each left its SLURM log.
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+)", done.stderr)
    assert len(submitted) == len(calls) > len(gpu_calls)
    assert len(list((workdir / "logs" / "slurm").rglob("*.log"))) == len(calls)
    for call in calls:
        args = call["args"]
        assert "--requeue" in args, call["line"]
        assert any(a == "-t" for a in args) and any(a == "--mem" for a in args), call["line"]
        if call["rule"] in gpu_rules:
            assert "--gpus=1" in args, call["line"]
            assert any(a.startswith("--cpus-per-gpu=") for a in args), call["line"]
        else:
            assert not any(a.startswith("--gpus") for a in args), call["line"]
            assert "--cpus-per-task=1" in args and "--ntasks=1" in args, call["line"]
    print("\n".join(" ".join(c["args"]) for c in calls))
