"""Mistakes a new user makes get one message that points at the fix (issue 18): a misspelled config key (nearest
valid keys, no schema dump), a wrong data_mirror (refused at config load), a misspelled target (the valid
targets listed), inputs the mirror lacks or that cannot be downloaded (stopped before any job, naming
data_mirror, the file and the setting that avoids it)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from conftest import REPO, run_snakemake
from softlabels.config import with_package_defaults


def lines(done: subprocess.CompletedProcess) -> list[str]:
    return [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]


def softlabels_lines(done) -> list[str]:
    return [line for line in lines(done) if line.startswith("softlabels:")]


def test_misspelled_key_is_one_line_with_the_nearest_key(tmp_path, monkeypatch):
    monkeypatch.delenv("SOFTLABELS_DATA_MIRROR", raising=False)
    done = run_snakemake(tmp_path, "-n", "--config", "data_mirorr=/somewhere")
    assert done.returncode != 0
    assert softlabels_lines(done) == ["softlabels: invalid config: unknown key 'data_mirorr'; did you mean "
                                      "'data_mirror'?"]  # fmt: skip
    assert len(lines(done)) <= 3, "\n".join(lines(done))  # no schema, no config dump
    assert "properties" not in done.stderr


def test_misspelled_key_in_the_softlabels_command(tmp_path):
    done = subprocess.run([sys.executable, "-m", "softlabels", "make-spec", "--scheme", "hard", "--model",
                           "resnet34a", "--seed", "0", "--out", str(tmp_path / "s.json"), "--config", "scael=quick"],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip() == ("softlabels make-spec: error: invalid config: unknown key 'scael'; "
                                   "did you mean 'scale' or 'scales'?")  # fmt: skip


def test_nested_misspelled_key_names_its_path(tmp_path):
    config = tmp_path / "extra.yaml"
    config.write_text(yaml.safe_dump({"labels": {"gama": 0.2}}))
    done = run_snakemake(tmp_path, "-n", "--configfile", str(REPO / "config.yaml"), str(config))
    assert done.returncode != 0
    assert softlabels_lines(done) == ["softlabels: invalid config: unknown key 'labels.gama'; did you mean "
                                      "'gamma'?"]  # fmt: skip


@pytest.mark.parametrize("where, expected", [("missing", "is not a folder"), ("empty", "has no MANIFEST.tsv")])
def test_wrong_data_mirror_is_refused_at_config_load(tmp_path, where, expected):
    mirror = tmp_path / where
    if where == "empty":
        mirror.mkdir()
    done = run_snakemake(tmp_path / "wd", "-n", "--config", f"data_mirror={mirror}")
    assert done.returncode != 0
    (line,) = softlabels_lines(done)
    assert f"key 'data_mirror': {mirror} {expected}" in line and "Offline use: data_mirror" in line
    assert "Building DAG" not in done.stdout + done.stderr


def test_misspelled_target_lists_the_valid_targets(tmp_path, monkeypatch):
    monkeypatch.delenv("SOFTLABELS_DATA_MIRROR", raising=False)
    done = run_snakemake(tmp_path, "-n", "results/tables/table3_11.csv", "--config", "scale=smoke")
    assert done.returncode != 0
    text = done.stdout + done.stderr
    assert "softlabels: no rule makes the target 'results/tables/table3_11.csv'; did you mean " \
           "results/tables/table3_1.csv" in text  # fmt: skip
    assert "named: all, claims, claims_chapter3, sweeps" in text
    assert "results/tables/table5_2.csv" in text and "results/figures/fig3_2.png" in text
    assert "--report report.html" in text
    assert "No rule to produce" not in text
    # a rule name is a target too
    assert "claims_chapter" in run_snakemake(tmp_path, "-n", "claims_chapter", "--config", "scale=smoke").stderr


def test_no_network_names_data_mirror_before_any_job(tmp_path, monkeypatch):
    """An unresolvable source host (`.invalid` never resolves, RFC 2606) stops the run before its first job."""
    monkeypatch.delenv("SOFTLABELS_DATA_MIRROR", raising=False)
    for name in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.delenv(name, raising=False)
    sources = with_package_defaults(yaml.safe_load((REPO / "config.yaml").read_text()))["sources"]
    offline = {key: {"url": f"https://no-network.invalid/{key}"} for key in sources}
    extra = tmp_path / "offline.yaml"
    extra.write_text(yaml.safe_dump({"sources": offline}))
    done = run_snakemake(tmp_path / "wd", "--cores", "1", "results/data/splits.npz", "--configfile",
                         str(REPO / "config.yaml"), str(extra),
                         "--config", "scale=smoke", timeout=300)  # fmt: skip
    assert done.returncode != 0
    (line,) = softlabels_lines(done)
    assert "no-network.invalid cannot be resolved" in line
    assert "data_mirror=/path/to/mirror" in line and 'README section "Offline use: data_mirror"' in line
    assert not (tmp_path / "wd" / "resources").exists()
    # a dry run of the same command ends with the stop the real run makes
    dry = run_snakemake(tmp_path / "wd", "-n", "results/data/splits.npz", "--configfile", str(REPO / "config.yaml"),
                        str(extra), "--config", "scale=smoke", timeout=300)  # fmt: skip
    assert dry.returncode == 0, dry.stderr[-2000:]
    (note,) = softlabels_lines(dry)
    assert note == line.replace("softlabels: ", "softlabels: a real run would stop before any job: ", 1)


def test_failed_download_names_data_mirror(tmp_path):
    from softlabels.data.download import DownloadError, Source, fetch

    source = Source("x", "x.bin", "https://no-network.invalid/x", "sha256:" + "0" * 64)
    with pytest.raises(DownloadError) as err:
        fetch(source, tmp_path / "res", timeout_s=2, retries=1, log=lambda _: None)
    assert "could not download https://no-network.invalid/x" in str(err.value)
    assert not any((tmp_path / "res").iterdir())  # nothing half-written left behind
    assert "data_mirror" in str(err.value) and "Offline use: data_mirror" in str(err.value)


def test_mirror_without_cifar10c_stops_before_any_job(tmp_path, data_mirror):
    """At paper scale (evaluation.corruption.source: download) the corrupted hold-out needs the CIFAR-10-C tar,
    which the project's mirror does not hold: one message naming the file and the setting, no job run."""
    from softlabels.data.download import read_manifest

    assert "cifar-10-c/CIFAR-10-C.tar" not in read_manifest(data_mirror)
    done = run_snakemake(tmp_path, "--cores", "1", "results/data/cifar10c_holdout_s3.npz", "--config",
                         f"data_mirror={data_mirror}", timeout=300)  # fmt: skip
    assert done.returncode != 0
    (line,) = softlabels_lines(done)
    assert f"data_mirror {data_mirror} has no cifar-10-c/CIFAR-10-C.tar" in line
    assert "evaluation.corruption.source: download" in line and "source: generate" in line
    assert not (tmp_path / "resources").exists() and "Traceback" not in done.stderr
    # the dry run of the same command shows the same stop
    dry = run_snakemake(tmp_path, "-n", "results/data/cifar10c_holdout_s3.npz", "--config",
                        f"data_mirror={data_mirror}")  # fmt: skip
    assert dry.returncode == 0 and "fetch_cifar10c" in dry.stdout
    assert softlabels_lines(dry) == [line.replace("softlabels: ", "softlabels: a real run would stop before any job: ", 1)]
    # the fix it names works: the dry run plans the generated hold-out from the mirror
    fixed = run_snakemake(tmp_path, "-n", "results/data/cifar10c_holdout_s3.npz", "--config",
                          f"data_mirror={data_mirror}", "evaluation={corruption: {source: generate}}")  # fmt: skip
    assert fixed.returncode == 0, fixed.stderr[-2000:]
    assert "fetch_cifar10c" not in fixed.stdout and "corrupt_holdout" in fixed.stdout
    assert softlabels_lines(fixed) == []


def test_paper_scale_on_a_cpu_stops_before_any_job(tmp_path, data_mirror):
    """device=cpu at the paper scale: the plan's estimate and the alternatives, then a stop, unless
    allow_paper_on_cpu=true (schema-checked)."""
    done = run_snakemake(tmp_path, "--cores", "1", "results/tables/table3_1.csv", "--config",
                         f"data_mirror={data_mirror}", "device=cpu", "plan_measure_step=false", timeout=600)  # fmt: skip
    assert done.returncode != 0
    (line,) = softlabels_lines(done)
    assert line.startswith("softlabels: stopped before any job: this is the paper scale on a CPU")
    for hint in ("--config scale=quick", "SLURM", "--config allow_paper_on_cpu=true"):
        assert hint in line
    assert not (tmp_path / "resources").exists()
    # the dry run shows the stop (without the measured estimate), and allow_paper_on_cpu=true lifts it
    dry = run_snakemake(tmp_path, "-n", "results/tables/table3_1.csv", "--config", f"data_mirror={data_mirror}",
                        "device=cpu")  # fmt: skip
    assert dry.returncode == 0, dry.stderr[-2000:]
    (note,) = softlabels_lines(dry)
    assert note.startswith("softlabels: a real run would stop before any job: this is the paper scale on a CPU")
    assert "--config allow_paper_on_cpu=true" in note
    allowed = run_snakemake(tmp_path, "-n", "results/tables/table3_1.csv", "--config", f"data_mirror={data_mirror}",
                            "device=cpu", "allow_paper_on_cpu=true")  # fmt: skip
    assert allowed.returncode == 0 and softlabels_lines(allowed) == []
    bad = run_snakemake(tmp_path, "-n", "--config", "allow_paper_on_cpu=maybe")
    assert bad.returncode != 0 and "allow_paper_on_cpu" in softlabels_lines(bad)[0]
