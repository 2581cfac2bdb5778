#!/usr/bin/env bash
# The device checks of softlabels, as shipped: everything they need travels with the repository (the bundle
# that benchmarks/device/build_bundle.py builds into benchmarks/device/bundle/, named in the device call's
# `carry`). Run from the repository root:
#
#   bash benchmarks/device/run.sh [STEP ...]        steps: probe tests cost table (default: all four)
#
#   probe  nvidia-smi and the versions of python, torch, CUDA, cuDNN, snakemake, jsonschema, torchattacks
#   tests  the fused-equivalence tests on CUDA (tests/test_fused.py -k "$TESTS_K", default: the cuda variants)
#   cost   benchmarks/paper_cost.py, fp32 (groups 1, 2, 4, ...) then bf16 (group 1: fused bf16 is refused),
#          ResNet-34A at batch 32 first, then the other paper models as the time budget allows
#   table  Table 3.3 (`TABLE`) at `TABLE_SCALE` through the workflow (snakemake), stopped at TABLE_BUDGET_S;
#          its working directory ($WORK) keeps checkpoints, so a second call on a warm machine resumes
#
# Each step runs whatever happened to the others (no `set -e` across steps) and writes under $OUT:
# <step>.log, <step>.status ("rc=N seconds=S"), and its results (c_cost/, d_table/). Setup (once per
# machine): the bundle's wheels for this Python are installed with pip --no-index --no-deps --target
# $SITE, and a `softlabels` command is put on PATH; nothing is fetched from the network.
#
# Settings (environment; the defaults fit all four steps in one 10-minute device command, about 9 minutes:
# setup 0.5, probe 0.2, tests <= 1.5, cost <= 2.5 + 0.5, table <= 4.5 + 0.5; benchmarks/README.md gives the
# two-command split with larger budgets):
#   OUT=device_out  PY=python3  DEVICE=cuda  BUNDLE=benchmarks/device/bundle  SITE=.device-site  WORK=.device-work
#   TESTS_K=cuda  TESTS_TIMEOUT_S=90
#   COST_MODELS=resnet34a:32,resnet50:32,vgg11:32,preact_resnet18:128,preact_resnet34:128
#   COST_BUDGET_S=150 (fp32 gets 3/4, bf16 the rest; each run is killed 15 s past its share)  COST_STEPS=20
#   COST_MAX_GROUP=256
#   TABLE=table3_3  TABLE_SCALE=paper  TABLE_BUDGET_S=270  CORES=16
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO" || exit 2
OUT=${OUT:-device_out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
BUNDLE=${BUNDLE:-benchmarks/device/bundle}
SITE=${SITE:-$REPO/.device-site}
WORK=${WORK:-$REPO/.device-work}
TESTS_K=${TESTS_K:-cuda}
TESTS_TIMEOUT_S=${TESTS_TIMEOUT_S:-90}
COST_MODELS=${COST_MODELS:-resnet34a:32,resnet50:32,vgg11:32,preact_resnet18:128,preact_resnet34:128}
COST_BUDGET_S=${COST_BUDGET_S:-150}
COST_STEPS=${COST_STEPS:-20}
COST_MAX_GROUP=${COST_MAX_GROUP:-256}
TABLE=${TABLE:-table3_3}
TABLE_SCALE=${TABLE_SCALE:-paper}
TABLE_BUDGET_S=${TABLE_BUDGET_S:-270}
CORES=${CORES:-16}
export PYTHONUNBUFFERED=1
unset SOFTLABELS_DATA_MIRROR  # as on the device: no mirror, the bundle's parsed inputs instead

# One step: run "$@" with its output in $OUT/<name>.log, and record rc and seconds in $OUT/<name>.status.
step() {
    local name=$1
    shift
    local t0=$SECONDS
    echo "== $name: $*" >&2
    "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    echo "rc=$rc seconds=$((SECONDS - t0))" >"$OUT/$name.status"
    echo "== $name: rc=$rc in $((SECONDS - t0)) s" >&2
    return 0
}

# The bundle's wheels that this interpreter supports (one file per package), installed into $SITE.
setup() {
    if [ -f "$SITE/.installed" ]; then
        echo "already installed in $SITE"
    else
        local wheels
        wheels=$("$PY" - "$BUNDLE/wheels" <<'EOF'
import sys
from pathlib import Path

from packaging.tags import sys_tags
from packaging.utils import parse_wheel_filename

supported = {str(t) for t in sys_tags()}
chosen = {}
for path in sorted(Path(sys.argv[1]).glob("*.whl")):
    name, _, _, tags = parse_wheel_filename(path.name)
    if any(str(t) in supported for t in tags):
        chosen.setdefault(name, path)
print("\n".join(str(p) for p in chosen.values()))
EOF
        ) || return 1
        [ -n "$wheels" ] || { echo "no wheels for this Python in $BUNDLE/wheels"; return 1; }
        # shellcheck disable=SC2086
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" $wheels \
            || return 1
        touch "$SITE/.installed"
    fi
    mkdir -p "$SITE/bin"
    printf '#!/bin/sh\nexec "%s" -m softlabels "$@"\n' "$(command -v "$PY")" >"$SITE/bin/softlabels"
    chmod +x "$SITE/bin/softlabels"
    echo "python: $(command -v "$PY"); site: $SITE"
}

probe() {
    nvidia-smi || echo "(no nvidia-smi)"
    "$PY" - <<'EOF'
import importlib, platform, subprocess
print("python", platform.python_version())
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(),
      "available", torch.cuda.is_available())
if torch.cuda.is_available():
    print("device", torch.cuda.get_device_name(0), "bf16", torch.cuda.is_bf16_supported())
for name in ("numpy", "pandas", "scipy", "snakemake", "jsonschema", "torchattacks", "pytest"):
    try:
        module = importlib.import_module(name)
        print(name, getattr(module, "__version__", "?"))
    except Exception as exc:
        print(name, "MISSING", type(exc).__name__, exc)
import softlabels
print("softlabels from", softlabels.__file__)
EOF
    git -C "$REPO" log -1 --format='commit %H %s' 2>/dev/null || true
}

tests() {
    timeout "$TESTS_TIMEOUT_S" "$PY" -m pytest -q -s -p no:cacheprovider tests/test_fused.py -k "$TESTS_K" -rs \
        --junitxml="$OUT/b_tests.xml"
}

cost() {
    local fp32_budget=$((COST_BUDGET_S * 3 / 4)) rc=0
    local bf16_budget=$((COST_BUDGET_S - fp32_budget))
    timeout $((fp32_budget + 15)) "$PY" benchmarks/paper_cost.py --device "$DEVICE" --models "$COST_MODELS" \
        --steps "$COST_STEPS" --max-group "$COST_MAX_GROUP" --precision fp32 --budget-s "$fp32_budget" \
        --out "$OUT/c_cost" || rc=$?
    timeout $((bf16_budget + 15)) "$PY" benchmarks/paper_cost.py --device "$DEVICE" --models "$COST_MODELS" \
        --steps "$COST_STEPS" --precision bf16 --budget-s "$bf16_budget" --out "$OUT/c_cost" || rc=$?
    return $rc
}

# Table $TABLE at $TABLE_SCALE: the bundle's parsed inputs (results/data, GloVe rows) into $WORK, the
# download placeholders older than them, so Snakemake runs only the training, evaluation and table jobs.
table() {
    mkdir -p "$WORK"
    if [ ! -f "$WORK/.bundle" ]; then
        cp -r "$BUNDLE/work/." "$WORK/" || return 1
        # placeholders at 2000-01-01 00:00:00 UTC (the date their .verified.json stamps record), parsed inputs a day later
        find "$WORK/resources" -type f -exec touch -d @946684800 {} +
        find "$WORK/results/data" -type f -exec touch -d @946771200 {} +
        touch "$WORK/.bundle"
    fi
    local rc=0
    timeout -s TERM -k 30 "$TABLE_BUDGET_S" "$PY" -m snakemake -s "$REPO/Snakefile" -d "$WORK" \
        --configfile "$REPO/config.yaml" --config scale="$TABLE_SCALE" --cores "$CORES" \
        --rerun-triggers mtime --scheduler greedy --keep-going "results/tables/$TABLE.md" || rc=$?
    mkdir -p "$OUT/d_table"
    cp "$WORK/results/tables/$TABLE".* "$OUT/d_table/" 2>/dev/null
    (cd "$WORK" && find results/runs -name metrics.json -o -name train_log.csv -o -path '*/.groups/*.json' \
        | tar -cf - -T - 2>/dev/null) | tar -xf - -C "$OUT/d_table" 2>/dev/null
    "$PY" - "$WORK" <<'EOF' >"$OUT/d_table/progress.txt"
import csv, sys
from pathlib import Path
for log in sorted(Path(sys.argv[1], "results/runs").glob("*/*/seed*/train_log.csv")):
    rows = list(csv.DictReader(log.open()))
    last = rows[-1] if rows else {}
    done = (log.parent / "metrics.json").exists()
    print(f"{log.parent.relative_to(Path(sys.argv[1]))}: epochs {last.get('epoch', 0)}/{last.get('epochs', '?')} "
          f"{'finished' if done else 'running'}")
EOF
    return $rc
}

export PYTHONPATH="$SITE:$REPO/src${PYTHONPATH:+:$PYTHONPATH}"
export PATH="$SITE/bin:$PATH"
[ $# -gt 0 ] || set -- probe tests cost table
step setup setup
for name in "$@"; do
    case $name in
        probe) step a_probe probe ;;
        tests) step b_tests tests ;;
        cost) step c_cost cost ;;
        table) step d_table table ;;
        *) echo "unknown step $name (probe tests cost table)" >&2 ;;
    esac
done
for f in "$OUT"/*.status; do echo "$(basename "$f" .status): $(cat "$f")"; done | tee "$OUT/summary.txt"
