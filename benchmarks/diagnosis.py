"""The quick-scale diagnosis experiments of docs/results/quick/diagnosis.md (E1, E2, E4), rerunnable.

Each experiment trains (scheme, seed) runs of the quick preset under one or more arms (config overlays merged over
`scales.quick`, with `sweeps.apply: false` so that every run uses the configured value of each hyperparameter),
evaluates them as the pipeline does (`softlabels.train.cli.evaluate_sets`) and adds two figures the tables do not
show: the mean confidence (max softmax probability) on the CIFAR-10H hold-out and the training loss of the last
epoch. It prints, per arm, the oriented difference of each compared pair of schemes (positive = the thesis'
direction) with a paired 95 % t-interval over the seeds, and writes every run's figures to `<out>/<experiment>.csv`.

    python benchmarks/diagnosis.py E1 --data-dir WORK/results/data --glove WORK/resources/glove/glove.6B.50d.cifar10.txt

`--data-dir` is the `results/data` of a quick build (the data stage of `snakemake ... --config scale=quick`);
`--selections WORKDIR` takes the hyperparameters the sweeps of that build selected (E4 uses the recorded run's).
Runs are cached under `--cache` by the digest of their spec, so an interrupted experiment resumes. Run it alone
on the machine when its seconds matter; its metrics do not depend on the load.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

from softlabels import config as cfg
from softlabels.numerics import mean_ci

#: E1 and E2 ran under the first draft of the quick protocol (docs/results/quick/diagnosis.md): chapter 3 on
#: 2000 hard images, chapters 4-5 for 50 epochs; their arms pin it, so that they repeat what was recorded.
DRAFT_CHAPTER3 = {"hard_image_limit": 2000}
Q1_CHAPTER4 = {"hard_image_limit": 2340, "augmenting_pairs": 2, "batch_size": 32, "epochs": 50,
               "lr_milestones": [25, 37]}

#: experiment -> (arms {name: overlay of scales.quick}, schemes, seeds, compared pairs (a, b, metric, expect)).
EXPERIMENTS = {
    "E1": (
        {"soft_images": {"labels": {"label_smoothing_scope": "soft_images"},
                         "protocols": {"chapter3": DRAFT_CHAPTER3}},
         "all": {"labels": {"label_smoothing_scope": "all"}, "protocols": {"chapter3": DRAFT_CHAPTER3}}},
        ["label_smoothing", "cifar10s_sep"], [0, 1, 2],
        [("label_smoothing", "cifar10s_sep", m, e) for m, e in
         (("ce", "lower"), ("calibration", "higher"), ("fgsm", "higher"))],
    ),
    "E2": (
        {"share_10": {"protocols": {"chapter4": Q1_CHAPTER4}},
         "share_26": {"protocols": {"chapter4": {**Q1_CHAPTER4, "augmenting_pairs": 6}}}},
        ["ch4_uniform", "ch4_mixup"], [0, 1, 2],
        [("ch4_uniform", "ch4_mixup", m, "lower") for m in ("ce", "calibration", "fgsm")],
    ),
    "E4": (
        {model: {"protocols": {p: {"models": [model], "base_lr": {model: 0.1}} for p in ("chapter4", "chapter5")},
                 "single_model": {"chapter4": model, "chapter5": model}} for model in ("resnet8a", "resnet20a")},
        ["ch4_uniform", "ch4_mixup", "ch5_mixup_hard", "ch5_mixmaxent_hard"], [0, 1, 2],
        [("ch4_uniform", "ch4_mixup", m, "lower") for m in ("ce", "calibration", "fgsm")]
        + [("ch5_mixup_hard", "ch5_mixmaxent_hard", m, "lower") for m in ("ce", "calibration", "fgsm")],
    ),
}


def arm_config(overlay: dict, selections: list[dict] = ()) -> dict:
    """The quick configuration with `overlay` merged over its preset and the sweeps' selections not applied:
    each setting is the configured value, or the value of a given selection record (`selected.json` of a
    recorded run) for the keys it applies to."""
    overlay = cfg.deep_merge(overlay, {"sweeps": {"apply": False}})
    for record in selections:
        for key in record["apply_to"]:
            cfg.set_dotted(overlay, key, record["value"])
    return cfg.load(None, {"scale": "quick", "scales": {"quick": overlay}})


def run_one(config: dict, scheme: str, seed: int, data, cache: Path, threads: int) -> dict:
    """Train and evaluate one run (cached by its spec digest): the pipeline's metrics on the CIFAR-10H hold-out,
    its mean confidence, the last epoch's training loss and the seconds it trained."""
    import torch

    from softlabels.evaluate.metrics import model_logits
    from softlabels.train.cli import evaluate_sets
    from softlabels.train.runs import build_run_sets
    from softlabels.experiments.runs import run_spec, spec_digest
    from softlabels.train.trainer import Member, fit_group

    model = config["single_model"][config["schemes"][scheme]["protocol"]]
    spec = {**run_spec(config, scheme, model, seed), "device": "cpu"}
    folder = cache / spec_digest(spec)[:16]
    if (folder / "result.json").exists():
        return json.loads((folder / "result.json").read_text())
    torch.set_num_threads(threads)
    sets = build_run_sets(spec, data)
    t0 = time.perf_counter()
    [trained] = fit_group([Member(sets.train_images, sets.train_pools, seed, sets.objective, None, scheme)],
                          spec["protocol"], model, "cpu", log=lambda *_: None)
    seconds = time.perf_counter() - t0
    metrics = evaluate_sets(trained, sets, spec, "cpu")["cifar10h"]
    holdout = sets.eval_sets["cifar10h"]
    with torch.no_grad():
        probs = torch.softmax(model_logits(trained, holdout.images, "cpu").double(), 1).numpy()
    result = {"scheme": scheme, "model": model, "seed": seed, "n_train": len(sets.train_indices),
              "seconds": round(seconds, 1), "final_loss": trained.training_summary["history"][-1]["loss"],
              "confidence": float(probs.max(axis=1).mean()),
              **{k: metrics[k] for k in ("ce", "calibration", "fgsm", "accuracy")}}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spec.json").write_text(json.dumps(spec, indent=1))
    (folder / "result.json").write_text(json.dumps(result))
    return result


def compare(frame: pd.DataFrame, pairs) -> pd.DataFrame:
    """Per arm and pair: the oriented difference (A − B when the thesis reports B lower, B − A when higher),
    paired over seeds, with its 95 % t-interval."""
    rows = []
    for arm, block in frame.groupby("arm", sort=False):
        by = block.set_index(["scheme", "seed"])
        for a, b, metric, expect in pairs:
            seeds = sorted(set(block.loc[block["scheme"] == a, "seed"]) & set(block.loc[block["scheme"] == b, "seed"]))
            if not seeds:  # a pair outside --scheme / --seed
                continue
            d = [(by.loc[(a, s), metric] - by.loc[(b, s), metric]) * (1 if expect == "lower" else -1) for s in seeds]
            mean, half = mean_ci(d, 0.95)
            rows.append({"arm": arm, "A": a, "B": b, "metric": metric, "expect": f"B {expect}",
                         "A_mean": by.loc[a, metric].mean(), "B_mean": by.loc[b, metric].mean(),
                         "diff": mean, "ci_low": mean - half, "ci_high": mean + half, "seeds": len(d)})
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("experiment", choices=sorted(EXPERIMENTS))
    p.add_argument("--data-dir", required=True, help="results/data of a quick build")
    p.add_argument("--glove", default=None, help="the GloVe rows (resources/glove/glove.6B.50d.cifar10.txt)")
    p.add_argument("--cache", default="benchmarks/out/diagnosis", help="run cache (default: benchmarks/out/diagnosis)")
    p.add_argument("--out", default="benchmarks/out", help="where <experiment>.csv goes (default: benchmarks/out)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run (default 1)")
    p.add_argument("--arm", action="append", default=None, help="run only this arm (repeat); default: all")
    p.add_argument("--scheme", action="append", default=None, help="run only this scheme (repeat); default: all")
    p.add_argument("--seed", action="append", type=int, default=None, help="run only this seed (repeat); default: all")
    p.add_argument("--selections", default=None, metavar="WORKDIR",
                   help="use the values the sweeps of this quick build selected (WORKDIR/results/sweeps/*/selected.json)")
    args = p.parse_args(argv)
    from softlabels.train.run_data import RunData

    arms, schemes, seeds, pairs = EXPERIMENTS[args.experiment]
    records = []
    if args.selections:
        files = sorted(Path(args.selections).glob("results/sweeps/*/selected.json"))
        if not files:
            p.error(f"--selections {args.selections}: no results/sweeps/*/selected.json there (a quick build "
                    "whose sweeps ran)")
        records = [json.loads(f.read_text()) for f in files]
    data = RunData.from_dir(args.data_dir, args.glove)
    rows = []
    for arm, overlay in arms.items():
        if args.arm and arm not in args.arm:
            continue
        config = arm_config(overlay, records)
        for seed in [s for s in seeds if not args.seed or s in args.seed]:
            for scheme in [s for s in schemes if not args.scheme or s in args.scheme]:
                result = run_one(config, scheme, seed, data, Path(args.cache), args.threads)
                rows.append({"arm": arm, **result})
                print(json.dumps(rows[-1]), flush=True)
    frame = pd.DataFrame(rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / f"{args.experiment}.csv", index=False)
    summary = frame.groupby(["arm", "scheme"], sort=False)[["ce", "calibration", "fgsm", "accuracy", "confidence"]]
    print(summary.mean().round(4).to_string())
    print(compare(frame, pairs).round(4).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
