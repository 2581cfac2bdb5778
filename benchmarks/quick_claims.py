"""Build a claims target from a fresh working directory, time it, and check the verdicts into the repository.

    python benchmarks/quick_claims.py --data-mirror /path/to/mirror                 # claims_chapter3, quick
    python benchmarks/quick_claims.py --data-mirror /path/to/mirror --target claims --out docs/results/quick
    python benchmarks/quick_claims.py --data-mirror /path/to/mirror --target all --out docs/results/quick/all

Runs `snakemake --cores N <target> --config scale=<scale> data_mirror=<mirror>` with this checkout's Snakefile
and config.yaml in a new, empty working directory (so nothing built earlier is reused), then copies
`results/tables/<claims>.{md,csv}` (the claims table the target builds: `<target>` itself, `claims` for `all`)
to `<out>/claims.{md,csv}` (with the mirror's absolute path written as
`<mirror>`, as in the recorded command: the provenance still names each input file and its approximation
flag) and writes `<out>/run.json`: the command, the commit, the wall time, the cores, the CPU model, the start
time and the training plan the run printed at its start. Run it alone on the machine: the wall
time is the figure it records. Stops (and writes nothing under `--out`) when the build fails or the
working tree has uncommitted changes to tracked files (the commit would not say what ran).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True).stdout.strip()


def copy_results(workdir: Path, target: str, mirror: Path, out: Path) -> None:
    """results/tables/<target>.{md,csv} of `workdir` to `out`/claims.{md,csv}, the mirror path as `<mirror>`."""
    for ext in ("md", "csv"):
        text = (workdir / "results" / "tables" / f"{target}.{ext}").read_text()
        (out / f"claims.{ext}").write_text(text.replace(str(mirror), "<mirror>"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-mirror", required=True, help="offline mirror folder (holds MANIFEST.tsv)")
    p.add_argument("--target", default="claims_chapter3")
    p.add_argument("--scale", default="quick")
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--workdir", help="fresh working directory (default: a new temporary folder)")
    p.add_argument("--out", default=str(REPO / "docs" / "results" / "quick"))
    p.add_argument("--allow-dirty", action="store_true", help="record a run of uncommitted changes")
    p.add_argument("--claims", default=None,
                   help="the claims table to copy (default: the target, or `claims` when the target is `all`)")
    args = p.parse_args(argv)
    claims = args.claims or ("claims" if args.target == "all" else args.target)

    mirror = Path(args.data_mirror).resolve()
    if not (mirror / "MANIFEST.tsv").is_file():
        p.error(f"--data-mirror {mirror}: no MANIFEST.tsv there")
    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    commit = git("rev-parse", "HEAD")  # what runs: taken now, since commits made during the run are not in it
    if dirty and not args.allow_dirty:
        p.error("the working tree has uncommitted changes to tracked files; commit them first (or --allow-dirty)")
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix=f"{args.target}-{args.scale}-")).resolve()
    if workdir.exists() and any(workdir.iterdir()):
        p.error(f"--workdir {workdir} is not empty: the run must start from nothing")
    workdir.mkdir(parents=True, exist_ok=True)
    snakemake = Path(sys.executable).parent / "snakemake"
    cmd = [str(snakemake), "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--configfile", str(REPO / "config.yaml"),
           "--cores", str(args.cores), args.target, "--config", f"scale={args.scale}", f"data_mirror={mirror}"]
    env = dict(os.environ, PATH=str(snakemake.parent) + os.pathsep + os.environ.get("PATH", ""))
    started = dt.datetime.now(dt.timezone.utc)
    t0 = time.perf_counter()
    log_path = workdir / "quick_claims.log"
    with open(log_path, "w") as log:
        result = subprocess.run(cmd, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t0
    if result.returncode != 0:
        print(f"snakemake failed (exit {result.returncode}) after {wall:.0f} s; see {log_path}", file=sys.stderr)
        return 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    copy_results(workdir, claims, mirror, out)
    plan = [line.strip() for line in log_path.read_text().splitlines()
            if line.startswith(("training plan:", "  estimated time:"))]
    record = {
        "command": f"snakemake --cores {args.cores} {args.target} --config scale={args.scale} data_mirror=<mirror>",
        "target": args.target,
        "scale": args.scale,
        "commit": commit,
        "uncommitted_changes": dirty,
        "wall_s": round(wall, 1),
        "cores": args.cores,
        "nproc": os.cpu_count(),
        "cpu": cpu_model(),
        "started": started.isoformat(timespec="seconds"),
        "plan": plan,
        "workdir": "fresh (empty) working directory",
        "mirror_path": "written as <mirror> in claims.md and claims.csv",
    }
    (out / "run.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
