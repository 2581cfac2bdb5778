"""What the paper scale costs: fused training throughput per model and the device-hours of
`snakemake all --config scale=paper`, today's path (one run per job) beside the fused path (group jobs).

For each model (default: the paper's ResNet-34A, ResNet-50, VGG-11 at batch 32 and PreAct ResNet-18/34 at
batch 128) it measures the aggregate training images/s of `softlabels.train.fit_group` with groups of
1, 2, 4, 8, 16, ... members (random images, the trainer's own step: per-member objective, clipping, SGD),
until the aggregate stops growing by `--min-gain` or the device runs out of memory. A group of 1 is today's
path: one run per process, one job per device.

Estimate (printed at the end), from the paper-scale runs of config.yaml (every table and figure):
  training seconds = Σ_jobs epochs · n_train · (runs in the job) / images/s(model, best measured group size
                     not above the job's)
  evaluation seconds ≈ Σ_runs eval images / (3 · images/s(model, group of 1))
where n_train is `runs.approximate_train_size`, a forward-only evaluation image is taken as a third of a
training image, eval images are the CIFAR-10H hold-out ×2 (clean + FGSM) + the CIFAR-10S hold-out ×2 + for
chapter 5 every corruption's hold-out. Today's path trains all 375 runs, one per job; the fused path trains
each distinct spec once (aliases share) in the groups `protocols.<p>.group_size` cuts.

    python benchmarks/paper_cost.py                                   # on the GPU: the paper models
    python benchmarks/paper_cost.py --device cpu --models resnet8a:32 --max-group 4 --steps 2   # a CPU check
    python benchmarks/paper_cost.py --budget-s 240 --out DIR          # stop within 240 s; tables into DIR

bf16 is measured for a group of 1 only: the trainer refuses bf16 with a fused group (under vmap the
convolutions would run in float32; softlabels.train.trainer.resolve_precision). With `--budget-s` the
sweep skips a measurement that would end past the budget (predicted as twice the previous one), so the
results of the measurements made are always written. Without jsonschema (a bare device image) the config
is read without the schema check.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

PAPER_MODELS = "resnet34a:32,resnet50:32,vgg11:32,preact_resnet18:128,preact_resnet34:128"


def measure_model(model: str, batch: int, device, steps: int, max_group: int, min_gain: float, precision: str,
                  log=print, deadline: float = math.inf, cudnn_benchmark: bool = False,
                  on_rate=lambda rates: None) -> dict[int, float]:
    """Aggregate images/s per group size, doubling from 1 until the gain falls below `min_gain`, the memory
    runs out, `max_group` is passed, or the next measurement (predicted: twice the last one) would end after
    `deadline` (a time.perf_counter() value). bf16: a group of 1 only (fused bf16 is refused). `on_rate(rates)`
    after each measurement (the caller writes what it has, so a killed sweep keeps its results)."""
    import torch

    from softlabels.train.plan import measure_images_per_s

    rates: dict[int, float] = {}
    group, last_seconds = 1, 0.0
    if precision == "bf16":
        max_group = 1
    while group <= max_group:
        if time.perf_counter() + 2 * last_seconds > deadline:
            log(f"  {model} batch {batch}: group of {group} skipped (time budget)")
            break
        t0 = time.perf_counter()
        try:
            rate = measure_images_per_s(model, batch, group, device, steps=steps, precision=precision,
                                        cudnn_benchmark=cudnn_benchmark)
        except torch.OutOfMemoryError:
            log(f"  {model} batch {batch}: group of {group} runs out of device memory")
            break
        finally:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        rates[group] = rate
        on_rate(rates)
        base = rates[1]
        last_seconds = time.perf_counter() - t0
        log(f"  {model} batch {batch}: group of {group:3d}: {rate:10.1f} images/s aggregate "
            f"({rate / base:5.2f}x one run per process; {last_seconds:.1f} s)")
        previous = rates.get(group // 2)
        if previous is not None and rate < previous * (1 + min_gain):
            break
        group *= 2
    return rates


def rate_at(rates: dict[int, float], group: int) -> float:
    """Aggregate images/s for a job of `group` runs: the best measured group size not above it (a job's
    runs can always be trained in smaller fused chunks one after another)."""
    return max((r for s, r in rates.items() if s <= group), default=rates[min(rates)])


def evaluation_images(spec) -> int:
    evaluation = spec["evaluation"]
    holdout = evaluation.get("cifar10h_holdout_limit") or 3000
    n = 2 * holdout  # clean + FGSM (a gradient step counts about as a forward here)
    if spec["protocol_name"] == "chapter3":
        n += 2 * int(evaluation["cifar10s_holdout"]["size"])
    if spec["protocol_name"] == "chapter5":
        n += holdout * len(evaluation["corruption"]["corruptions"])
    return n


def paper_runs(config):
    from softlabels.experiments import runs as R

    out = set()
    for kind in ("tables", "figures"):
        for result_set in (config.get(kind) or {}).values():
            for row in result_set["rows"]:
                out.update(R.runs_of(config, row, result_set["all_models"], result_set.get("seeds", "main")))
    return sorted(out)


def estimate(config, rates: dict[str, dict[int, float]], log=print) -> dict:
    """Device-seconds of the paper scale, today's path and the fused path (module docstring)."""
    from softlabels.experiments import groups as G

    runs = paper_runs(config)
    groups, specs, _ = G.config_groups(config, runs)
    missing = sorted({run[1] for run in runs} - set(rates))
    if missing:
        log(f"  (no measurement for {', '.join(missing)}: their runs are left out of the estimate)")
    today_train = today_eval = fused_train = fused_eval = 0.0
    for run in runs:
        spec = specs[run]
        if run[1] not in rates:
            continue
        work = int(spec["protocol"]["epochs"]) * G.approximate_train_size(spec)
        today_train += work / rates[run[1]][1]
        today_eval += evaluation_images(spec) / (3 * rates[run[1]][1])
    for group in groups:
        if group.model not in rates or not group.members:
            continue
        spec = specs[group.members[0]]
        work = int(spec["protocol"]["epochs"]) * G.approximate_train_size(spec) * len(group.members)
        fused_train += work / rate_at(rates[group.model], len(group.members))
        fused_eval += sum(evaluation_images(specs[r]) for r in group.members) / (3 * rates[group.model][1])
    return {
        "runs_today": len(runs),
        "jobs_today": len(runs),
        "runs_fused": sum(len(g.members) for g in groups),
        "jobs_fused": len([g for g in groups if g.members]),
        "today_hours": (today_train + today_eval) / 3600,
        "fused_hours": (fused_train + fused_eval) / 3600,
        "today_train_hours": today_train / 3600,
        "fused_train_hours": fused_train / 3600,
        "eval_hours": fused_eval / 3600,
    }


def rates_markdown(rates: dict[str, dict[int, float]], batches: dict[str, int], device_name: str, precision: str,
                   steps: int) -> str:
    """The measurements as a markdown table: model, batch, group size, aggregate images/s, × a group of 1."""
    lines = [f"Fused training throughput on {device_name}, precision {precision}, {steps} timed steps per measurement "
             "(benchmarks/paper_cost.py).", "",
             "| model | batch | group | images/s (aggregate) | × group of 1 |", "|---|---|---|---|---|"]
    for model, r in rates.items():
        for group, rate in sorted(r.items()):
            lines.append(f"| {model} | {batches[model]} | {group} | {rate:.1f} | {rate / r[1]:.2f} |")
    return "\n".join(lines) + "\n"


def load_config(scale: str):
    """config.yaml at `scale`; without the schema check where jsonschema is not installed."""
    import importlib.util

    from softlabels import config as cfg

    return cfg.load(None, {"scale": scale}, schema=importlib.util.find_spec("jsonschema") is not None)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto (cuda when present), cuda or cpu")
    parser.add_argument("--models", default=PAPER_MODELS, help=f"MODEL:BATCH list (default {PAPER_MODELS})")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per measurement (one epoch)")
    parser.add_argument("--max-group", type=int, default=256, help="largest group size tried")
    parser.add_argument("--min-gain", type=float, default=0.05, help="stop doubling below this relative gain")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "auto"])
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    parser.add_argument("--scale", default="paper", help="scale whose runs are estimated (default: paper)")
    parser.add_argument("--budget-s", type=float, default=0.0, help="wall-clock budget of the sweep (0 = none)")
    parser.add_argument("--cudnn-benchmark", action="store_true", help="torch.backends.cudnn.benchmark while training")
    parser.add_argument("--out", default="", help="folder for paper_cost_<precision>.md / .json (default: none)")
    args = parser.parse_args(argv)

    import json

    import torch

    from softlabels.train.trainer import resolve_device

    start = time.perf_counter()
    deadline = start + args.budget_s if args.budget_s > 0 else math.inf
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {name}; precision {args.precision}; {args.steps} timed steps per measurement"
          + (f"; cudnn.benchmark on" if args.cudnn_benchmark else ""), flush=True)
    rates: dict[str, dict[int, float]] = {}
    batches: dict[str, int] = {}
    stem = f"paper_cost_{args.precision}" + ("_cudnn_benchmark" if args.cudnn_benchmark else "")

    def save(result=None):
        """paper_cost_<precision>.md / .json under --out with what is measured so far (and the estimate)."""
        if not args.out:
            return
        from softlabels.data.io import write_text

        out = Path(args.out)
        write_text(out / f"{stem}.md", rates_markdown(rates, batches, name, args.precision, args.steps))
        write_text(out / f"{stem}.json", json.dumps({
            "device": name, "precision": args.precision, "steps": args.steps, "cudnn_benchmark": args.cudnn_benchmark,
            "rates": {m: {str(g): v for g, v in r.items()} for m, r in rates.items()}, "batches": batches,
            "estimate": result, "seconds": round(time.perf_counter() - start, 1)}, indent=1) + "\n")

    for item in args.models.split(","):
        model, batch = item.split(":")
        if time.perf_counter() >= deadline:
            print(f"  {model}: skipped (time budget)")
            continue

        def on_rate(measured, model=model, batch=int(batch)):
            rates[model], batches[model] = dict(measured), batch
            save()

        measure_model(model, int(batch), device, args.steps, args.max_group, args.min_gain, args.precision,
                      deadline=deadline, cudnn_benchmark=args.cudnn_benchmark, on_rate=on_rate)
    print("\nbest aggregate throughput (group size: images/s, x one run per process):")
    for model, r in rates.items():
        best = max(r, key=r.get)
        print(f"  {model}: group of {best}: {r[best]:.1f} images/s ({r[best] / r[1]:.2f}x)")
    result = None
    try:
        result = estimate(load_config(args.scale), rates) if rates else None
    except Exception as exc:  # the measurements are written whatever happens to the estimate
        print(f"\n(no estimate: {type(exc).__name__}: {exc})")
    if result:
        print(f"\n{args.scale} scale (snakemake all --config scale={args.scale}), {name}:")
        print(f"  today: {result['runs_today']} runs in {result['jobs_today']} jobs: "
              f"{result['today_hours']:.2f} device-hours ({result['today_train_hours']:.2f} training)")
        print(f"  fused: {result['runs_fused']} runs in {result['jobs_fused']} group jobs: "
              f"{result['fused_hours']:.2f} device-hours ({result['fused_train_hours']:.2f} training, "
              f"{result['eval_hours']:.2f} evaluation)")
    save(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
