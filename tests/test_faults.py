"""Fault tolerance of the workflow at smoke scale, on the real inputs (mirror):

- a training job killed mid-run resumes from its checkpoint and ends with the metrics of an uninterrupted run;
- a download corrupted on disk after it was fetched is detected at the next start and fetched again;
- a run stopped by SIGTERM leaves no output that the next run takes for complete;
- two Snakemake runs in one working directory never write the same file (the second is refused by the lock),
  and within one run no two jobs share an output or a log file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, run_snakemake

pytestmark = [pytest.mark.slow, pytest.mark.mirror]

DATA_TARGETS = [
    "results/data/cifar10_test.npz",
    "results/data/splits.npz",
    "results/data/cifar10h.npz",
    "results/data/cifar10s_responses.csv",
]
RUN = "results/runs/{scheme}/resnet8a/seed0"
# The output of the group job that trains that run (smoke: group_size 1; workflow/rules/train.smk).
GROUP_RECORD = "results/runs/.groups/chapter3/resnet8a.{scheme}.seed0.json"


def smoke_args(mirror: Path, *targets: str) -> list[str]:
    """Targets first: `--config` takes every word after it."""
    return ["--cores", "2", *targets, "--config", "scale=smoke", f"data_mirror={mirror}"]


# Chapter-3 smoke runs long enough (many epochs) to be interrupted or overlapped reliably.
LONG_RUNS = "scales:\n  smoke:\n    protocols:\n      chapter3: {epochs: 30, lr_milestones: [29, 30]}\n"


def snakemake_cmd(workdir: Path, *args: str) -> list[str]:
    """Snakemake on this checkout with config.yaml and, merged over it, `workdir/long_runs.yaml`."""
    (workdir / "long_runs.yaml").write_text(LONG_RUNS)
    return [
        sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
        "--configfile", str(REPO / "config.yaml"), str(workdir / "long_runs.yaml"), *args,
    ]  # fmt: skip


def run_long(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """Like conftest.run_snakemake, with the long-runs config (same spec as `start_snakemake`)."""
    env = dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    return subprocess.run(snakemake_cmd(workdir, *args), cwd=workdir, env=env, capture_output=True, text=True)


def start_snakemake(workdir: Path, *args: str) -> subprocess.Popen:
    env = dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    out = open(workdir / f"snakemake-{time.monotonic_ns()}.out", "w+")
    proc = subprocess.Popen(
        snakemake_cmd(workdir, *args), cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    proc.output_file = out
    return proc


def output_of(proc: subprocess.Popen) -> str:
    proc.output_file.seek(0)
    return proc.output_file.read()


def wait_for(predicate, proc: subprocess.Popen, what: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            pytest.fail(f"process ended ({proc.returncode}) before {what}:\n{output_of(proc)[-4000:]}")
        time.sleep(0.1)
    proc.kill()
    pytest.fail(f"timed out waiting for {what}")


def ok(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]
    return done.stdout + done.stderr


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def manifest_sha256(mirror: Path, rel: str) -> str:
    for line in (mirror / "MANIFEST.tsv").read_text().splitlines()[1:]:
        fields = line.split("\t")
        if fields[0] == rel:
            return fields[2]
    raise KeyError(rel)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, data_mirror) -> Path:
    """A smoke working directory whose downloads and parsed data are in place."""
    wd = tmp_path_factory.mktemp("faults")
    ok(run_snakemake(wd, *smoke_args(data_mirror, *DATA_TARGETS)))
    return wd


def test_corrupted_download_is_detected_and_fetched_again(workdir, data_mirror):
    rel = "cifar-10s/raw_human_data.csv"
    stored = workdir / "resources" / rel
    parsed = workdir / "results/data/cifar10s_responses.csv"
    good_digest = sha256(stored)
    assert good_digest == manifest_sha256(data_mirror, rel)
    parsed_before = parsed.read_bytes()
    # Flip bytes in the middle, same size, newer mtime: nothing Snakemake itself would notice.
    data = bytearray(stored.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(b ^ 0xFF for b in data[middle : middle + 16])
    stored.write_bytes(bytes(data))
    assert sha256(stored) != good_digest

    # The downloads are final targets (`rule all`); here the download and the table parsed from it.
    targets = smoke_args(data_mirror, f"resources/{rel}", "results/data/cifar10s_responses.csv")
    out = ok(run_snakemake(workdir, *targets))
    assert f"resources/{rel} no longer has its sha256" in out and "fetched again" in out, out[-4000:]
    assert re.search(r"rule fetch:\n(?:.*\n)*?\s+wildcards: source_file=cifar-10s/raw_human_data.csv", out), out[-4000:]
    assert sha256(stored) == good_digest
    assert parsed.read_bytes() == parsed_before
    # The next start finds everything verified and has nothing to do.
    again = ok(run_snakemake(workdir, *targets))
    assert "fetched again" not in again
    assert "Nothing to be done" in again


def _resume_spec(workdir: Path, data_mirror: Path, epochs: int) -> Path:
    made = subprocess.run(
        [sys.executable, "-m", "softlabels", "make-spec", "--scheme", "hard", "--model", "resnet8a", "--seed", "0",
         "--config", "scale=smoke", f"data_mirror={data_mirror}"],
        cwd=workdir, capture_output=True, text=True,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    spec = json.loads(made.stdout)
    spec["protocol"]["epochs"] = epochs
    spec["protocol"]["lr_milestones"] = [epochs - 1, epochs]
    path = workdir / "resume_spec.json"
    path.write_text(json.dumps(spec))
    return path


def _train(workdir: Path, spec: Path, out_dir: Path) -> subprocess.Popen:
    log = open(out_dir.with_suffix(".log"), "a+")
    return subprocess.Popen(
        [sys.executable, "-m", "softlabels", "train", "--spec", str(spec), "--out-dir", str(out_dir),
         "--data-dir", "results/data", "--threads", "1", "--provenance", "none"],
        cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip


def _evaluation(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k not in ("train", "spec")}


def test_killed_training_resumes_with_the_same_metrics(workdir, data_mirror):
    spec = _resume_spec(workdir, data_mirror, epochs=4)
    straight, resumed = workdir / "straight", workdir / "resumed"
    assert _train(workdir, spec, straight).wait(timeout=600) == 0, straight.with_suffix(".log").read_text()

    first = _train(workdir, spec, resumed)
    wait_for(lambda: (resumed / "checkpoint.pt").exists(), first, "the first epoch checkpoint")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=60)
    assert not (resumed / "metrics.json").exists(), "the run ended before it could be killed"

    assert _train(workdir, spec, resumed).wait(timeout=600) == 0, resumed.with_suffix(".log").read_text()
    log = resumed.with_suffix(".log").read_text()
    completed = re.search(r"resumed from .*completed_epochs=(\d+) of (\d+)", log)
    assert completed and 0 < int(completed.group(1)) < int(completed.group(2)), log[-3000:]
    a = json.loads((straight / "metrics.json").read_text())
    b = json.loads((resumed / "metrics.json").read_text())
    assert _evaluation(b) == _evaluation(a)


def _training_started(workdir: Path, scheme: str) -> bool:
    """A group job's log (logs/train_groups/*.log) shows the run's training set: its training has started."""
    return any(f"{scheme}/resnet8a/seed0 training set" in log.read_text()
               for log in (workdir / "logs/train_groups").glob("**/*.log"))


def test_sigterm_leaves_no_output_taken_for_complete(workdir, data_mirror):
    run = RUN.format(scheme="hard")
    metrics = workdir / run / "metrics.json"
    record = GROUP_RECORD.format(scheme="hard")
    proc = start_snakemake(workdir, *smoke_args(data_mirror, record))
    wait_for(lambda: _training_started(workdir, "hard"), proc, "the training job to start")
    # SIGTERM to the whole process group (as `kill -TERM -PGID`, `timeout`, a service manager or a cluster
    # preemption do): the training process dies mid-run. (SIGTERM to Snakemake alone lets running jobs finish.)
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=120)
    assert proc.returncode != 0, output_of(proc)[-3000:]
    assert not metrics.exists(), "a run stopped by SIGTERM left metrics.json"
    # The next run sees the job as not done, and reruns it to a complete, valid output.
    plan = ok(run_long(workdir, "-n", *smoke_args(data_mirror, record)))
    assert "rule train_chapter3:" in plan
    ok(run_long(workdir, "--rerun-incomplete", *smoke_args(data_mirror, record)))
    assert json.loads(metrics.read_text())["scheme"] == "hard"
    # Finished now: no job of the next run trains it again (its group job's record is up to date).
    plan = ok(run_long(workdir, "-n", "-p", *smoke_args(data_mirror, "results/tables/table3_1.csv")))
    assert "--run hard/resnet8a/0 " not in plan and "--run uniform/resnet8a/0 " in plan


def test_second_run_in_the_same_workdir_is_refused(workdir, data_mirror):
    run = RUN.format(scheme="uniform")
    record = GROUP_RECORD.format(scheme="uniform")
    first = start_snakemake(workdir, *smoke_args(data_mirror, record))
    wait_for(lambda: _training_started(workdir, "uniform"), first, "the training job")
    # Plain: the running job's outputs are marked incomplete, so the second run stops before doing anything.
    second = run_long(workdir, *smoke_args(data_mirror, record))
    assert second.returncode != 0
    assert "IncompleteFilesException" in second.stderr or "cannot be locked" in second.stderr, second.stderr[-3000:]
    # With --rerun-incomplete (the default profile's setting) it would rerun that job: the lock refuses it.
    third = run_long(workdir, "--rerun-incomplete", *smoke_args(data_mirror, record))
    assert third.returncode != 0
    assert "cannot be locked" in third.stderr, third.stderr[-3000:]
    assert first.wait(timeout=600) == 0, output_of(first)[-4000:]
    assert json.loads((workdir / run / "metrics.json").read_text())["scheme"] == "uniform"


def test_no_two_jobs_share_an_output_or_log(workdir, data_mirror):
    plan = ok(run_snakemake(workdir, "-n", "--forceall", *smoke_args(data_mirror, "results/tables/table3_1.csv")))
    written: dict[str, str] = {}
    job = None
    for line in plan.splitlines():
        header = re.match(r"^(?:local)?rule (\w+):$", line.strip())
        if header:
            job = f"{header.group(1)}@{len(written)}"
            continue
        field = re.match(r"^\s+(output|log): (.+)$", line)
        if field and job:
            for path in field.group(2).split(", "):
                assert path not in written, f"{path} written by {written[path]} and {job}"
                written[path] = job
    assert any(p.startswith("results/runs/.groups/") for p in written) and any(p.endswith(".log") for p in written)
