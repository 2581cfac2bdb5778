"""Build the device bundle that benchmarks/device/run.sh needs, into benchmarks/device/bundle/ (git-ignored;
the device call names it in `carry`):

  wheels/        the packages of benchmarks/device/requirements.txt that the device image lacks, for each
                 Python of --python-versions (3.12: the device's python3; 3.11: this checkout's tests), from
                 `pip download --no-deps` (a package with no wheel is built here from its sdist: pure
                 Python). PuLP's wheel is repacked without its bundled CBC solver binaries (16 MB): run.sh
                 runs Snakemake with `--scheduler greedy`, which never calls a solver.
  work/results/data/   the parsed inputs of the chapter-3 runs (Table 3.3) and the data stage's provenance
                 record, built here from the data mirror by the workflow's own data rules;
  work/resources/      the GloVe rows the runs read, the download records (*.origin.json), and empty
                 placeholders for the raw downloads (run.sh dates them before the parsed files, so Snakemake
                 reruns no data rule and fetches nothing), with the start-up check's record
                 (.verified.json, softlabels.data.verify) naming each placeholder, at the date run.sh gives
                 it, with the digest the official file has: so the check keeps them (it would delete them
                 as corrupted). They are never read: their parsed forms are in results/data;
  manifest.json  every file with its size and sha256, the total, and what it was built from.

    python benchmarks/device/build_bundle.py --data-mirror PATH [--out DIR] [--python-versions 3.12,3.11]

The bundle must stay under --max-mib (default 60) so that it travels with the repository (64 MiB a call).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "src"))
DEFAULT_OUT = REPO / "benchmarks" / "device" / "bundle"
REQUIREMENTS = REPO / "benchmarks" / "device" / "requirements.txt"
#: What the chapter-3 runs read (workflow/rules/train.smk, TRAIN_DATA["chapter3"]) and the provenance record.
DATA_TARGETS = ("results/data/cifar10_test.npz", "results/data/splits.npz", "results/data/cifar10h.npz",
                "results/data/cifar10s_responses.csv", "results/data/provenance.json")
#: Resources the runs read themselves (not through a data rule): kept whole, the others become placeholders.
KEPT_RESOURCES = ("glove/",)
#: The modification time run.sh gives the placeholders (2000-01-01 00:00:00 UTC), recorded in .verified.json.
PLACEHOLDER_EPOCH_S = 946684800
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "linux_x86_64")


def requirements(path: Path = REQUIREMENTS) -> list[str]:
    """The pinned `name==version` lines of requirements.txt (comments and blank lines dropped)."""
    lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def download_wheels(reqs: list[str], versions: list[str], dest: Path, pip: list[str]) -> None:
    """`pip download --no-deps --only-binary=:all:` of each requirement for each Python version (manylinux
    x86_64); a requirement without a wheel is built from its sdist with `pip wheel --no-deps`."""
    dest.mkdir(parents=True, exist_ok=True)
    for req in reqs:
        for version in versions:
            cmd = [*pip, "download", "-q", "--no-deps", "--only-binary=:all:", "--implementation", "cp",
                   "--python-version", version, *(f"--platform={p}" for p in PLATFORMS), "-d", str(dest), req]
            if subprocess.run(cmd, capture_output=True, text=True).returncode == 0:
                continue
            built = subprocess.run([*pip, "wheel", "-q", "--no-deps", "-w", str(dest), req], capture_output=True, text=True)
            if built.returncode != 0:
                raise SystemExit(f"no wheel for {req} (Python {version}):\n{built.stderr[-2000:]}")
            break  # a wheel built from the sdist here is pure Python: one serves every version


def strip_pulp(dest: Path) -> None:
    """Repack PuLP's wheel without `pulp/solverdir/` (the CBC binaries), its RECORD rewritten to match."""
    for wheel in dest.glob("pulp-*.whl"):
        tmp = wheel.with_suffix(".tmp")
        with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
            for item in src.infolist():
                if item.filename.startswith("pulp/solverdir/"):
                    continue
                data = src.read(item.filename)
                if item.filename.endswith(".dist-info/RECORD"):
                    lines = [line for line in data.decode().splitlines() if not line.startswith("pulp/solverdir/")]
                    data = ("\n".join(lines) + "\n").encode()
                dst.writestr(item, data)
        tmp.replace(wheel)


def build_data(mirror: Path, dest: Path, python: str) -> None:
    """Run the workflow's data rules on the mirror in a scratch directory and copy the parsed inputs, the GloVe
    rows, the download records and empty placeholders of the raw downloads into `dest` (work/)."""
    with tempfile.TemporaryDirectory(prefix="softlabels-bundle-") as tmp:
        cmd = [python, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", tmp, "--configfile",
               str(REPO / "config.yaml"), "--config", f"data_mirror={mirror}", "--cores", "2", *DATA_TARGETS]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"the data rules failed:\n{(done.stdout + done.stderr)[-4000:]}")
        work = Path(tmp)
        for path in sorted((work / "results" / "data").rglob("*")):
            if path.is_file():
                target = dest / path.relative_to(work)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
        for path in sorted((work / "resources").rglob("*")):
            if not path.is_file():
                continue
            rel = path.relative_to(work / "resources").as_posix()
            target = dest / "resources" / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if rel.endswith(".origin.json") or rel.startswith(KEPT_RESOURCES):
                shutil.copy2(path, target)
            else:
                target.write_bytes(b"")  # placeholder: never read (its parsed form is in results/data)
    verified_placeholders(dest / "resources")


def verified_placeholders(resources: Path) -> None:
    """resources/.verified.json: for each empty placeholder of a source, the stamp the start-up check
    (`softlabels.data.verify`) keeps a file by: [size 0, mtime PLACEHOLDER_EPOCH_S in ns, "algo:digest"] with
    the digest it expects without a mirror (the pinned `sources.<key>.checksum`)."""
    from softlabels import config as cfg
    from softlabels.data.download import DownloadError, Source, expected_digest
    from softlabels.data.verify import STAMP_FILE

    config = cfg.load(None, {"data_mirror": ""})
    stamps = {}
    for key in config["sources"]:
        source = Source.from_config(config, key)
        path = resources / source.file
        if not path.is_file() or path.stat().st_size:
            continue
        try:
            algo, digest = expected_digest(source, None)
        except DownloadError:
            continue
        stamps[source.file] = [0, PLACEHOLDER_EPOCH_S * 10**9, f"{algo}:{digest}"]
    (resources / STAMP_FILE).write_text(json.dumps(stamps, indent=1, sort_keys=True))


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(out: Path, mirror: Path, versions: list[str]) -> dict:
    files = {p.relative_to(out).as_posix(): {"bytes": p.stat().st_size, "sha256": sha256(p)}
             for p in sorted(out.rglob("*")) if p.is_file() and p.name != "manifest.json"}
    manifest = {"built_from": {"data_mirror": str(mirror), "python_versions": versions,
                               "requirements": "benchmarks/device/requirements.txt"},
                "total_bytes": sum(f["bytes"] for f in files.values()), "files": files}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-mirror", required=True, help="the offline data mirror (layout of data_mirror)")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help=f"bundle folder (default {DEFAULT_OUT.relative_to(REPO)})")
    parser.add_argument("--python-versions", default="3.12,3.11", help="Pythons to fetch compiled wheels for")
    parser.add_argument("--max-mib", type=float, default=60.0, help="largest bundle allowed (MiB)")
    parser.add_argument("--skip-wheels", action="store_true", help="keep the wheels already in --out")
    args = parser.parse_args(argv)

    out, mirror = Path(args.out).resolve(), Path(args.data_mirror).resolve()
    versions = [v.strip() for v in args.python_versions.split(",") if v.strip()]
    if not (mirror / "MANIFEST.tsv").exists():
        raise SystemExit(f"--data-mirror {mirror}: no MANIFEST.tsv (not a data mirror)")
    if out.exists():
        for name in ("work", "manifest.json") if args.skip_wheels else ("work", "wheels", "manifest.json"):
            path = out / name
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    if not args.skip_wheels:
        download_wheels(requirements(), versions, out / "wheels", [sys.executable, "-m", "pip"])
        strip_pulp(out / "wheels")
    build_data(mirror, out / "work", sys.executable)
    manifest = write_manifest(out, mirror, versions)
    mib = manifest["total_bytes"] / 2**20
    print(f"bundle {out}: {len(manifest['files'])} files, {mib:.1f} MiB")
    if mib > args.max_mib:
        print(f"bundle is {mib:.1f} MiB, over --max-mib {args.max_mib}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
