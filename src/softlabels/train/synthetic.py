"""Training sets of chapters 4 and 5 and appendix C: the builders of the `chapter4` and `chapter5` protocols
of `softlabels.train.runs` (`builder(spec, data) -> RunSets`, dispatched by `runs.protocol_entry`).

Chapter 4 (thesis §4.2-4.3; docs/protocol.md#chapter-4-augmenting-set):
the 7000 split images (`splits.train`, file order; when a
scale sets `hard_image_limit`, that many evenly spaced through the class-ordered split) with their hard CIFAR-10 labels, plus, when the scheme's
`augment` is set, the 810 first-collection H-Mix stimuli (`hmix_stimuli.npz`, rebuilt as
round(λ_f·img1 + (1−λ_f)·img2)) labelled by `softlabels.labels.hmix_pools(variant=augment)`: uniform, random,
mixup (λ_f), agg (λ̄_h), sep (λ_h^m, one judgment drawn per use), agg_conf / sep_conf (confidence smoothing
with `labels.confidence_gamma`). No augmentation; plain soft cross-entropy.

Chapter 5 (thesis §5.2; docs/protocol.md#chapter-5-mixing-objectives):
mixup over the same 7000 images, trained with the scheme's
`objective` (`softlabels.train.mixing`). Endpoint labels:
- `endpoints: hard`: the CIFAR-10 labels;
- `endpoints: soft`: the expanded CIFAR-10S. The 1000 real CIFAR-10S images keep one label per response of
  the scheme's `variety` (T2-Clamp), M of them, drawn afresh per use (`aggregate: none`; `aggregate: mean`
  gives one mean label per image instead). The thesis does not say which; per-response
  pools match the de-aggregated training of chapter 3. The other 6000 images get one label each from the
  appendix-B.5 simulator, fitted on all CIFAR-10S responses and drawn with `labels.simulator_seed` (the same
  labels for every training seed).
Appendix C (`target_mix: tau`): λ_g = τ_ij(λ_f) per example pair from `fit_class_pair_taus` on the H-Mix
judgments (every response, reruns included; `labels.tau_stimuli` picks all stimuli or the first collection),
hard endpoints only.

Evaluation: the CIFAR-10H hold-out (the 3000 `splits.test` images, first `cifar10h_holdout_limit`), and for
chapter 5 the corruption CE on the same images (`softlabels.evaluate.corruption_ce`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from softlabels.data.splits import balanced_prefix
from softlabels.train.runs import EvalSet, RunData, RunSets, cifar10h_eval_set

CORRUPTION_FILE = "cifar10c_holdout_s{severity}.npz"


def _data_file(data: RunData, name: str) -> Path:
    if data.data_dir is None:
        raise ValueError(f"this protocol reads {name} from the data folder, but RunData has no data_dir")
    path = Path(data.data_dir) / name
    if not path.exists():
        raise FileNotFoundError(f"missing input {path} (built by the data stage)")
    return path


def read_judgments(data: RunData):
    import pandas as pd

    return pd.read_csv(_data_file(data, "hmix_judgments.csv"))


def read_stimuli(data: RunData) -> dict[str, np.ndarray]:
    with np.load(_data_file(data, "hmix_stimuli.npz"), allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def training_images(spec: Mapping, data: RunData) -> np.ndarray:
    """The split images of a chapter-4/5 run: `splits.train` (file order); with `hard_image_limit` (quick and
    smoke scales) a class-balanced subset of that size (`softlabels.data.splits.balanced_prefix`)."""
    return balanced_prefix(data.split_train, data.labels, spec["protocol"].get("hard_image_limit"))


def holdout_images(spec: Mapping, data: RunData) -> np.ndarray:
    """The CIFAR-10H hold-out images, class-balanced to `cifar10h_holdout_limit` when set (as chapter 3)."""
    return balanced_prefix(data.split_test, data.labels, spec["evaluation"].get("cifar10h_holdout_limit"))


# ----------------------------------------------------------------------------------------------------------
# Chapter 4
# ----------------------------------------------------------------------------------------------------------
def first_collection(stimuli: Mapping[str, np.ndarray]) -> np.ndarray:
    """Positions (in `hmix_stimuli.npz` order) of the chapter-4 augmenting set: the first-collection stimuli."""
    return np.flatnonzero(np.asarray(stimuli["first_collection"], dtype=bool))


def augmenting_set(spec: Mapping, data: RunData):
    """(images uint8 [n,32,32,3], LabelPools, stimulus names) of the scheme's `augment` labels."""
    from softlabels import labels as L

    stimuli = read_stimuli(data)
    keep = first_collection(stimuli)
    names = np.asarray(stimuli["names"])[keep]
    pools = L.hmix_pools(
        read_judgments(data),
        names,
        spec["scheme_spec"]["augment"],
        int(spec["seed"]),
        spec["labels"]["confidence_gamma"],
    )
    return np.asarray(stimuli["images"])[keep], pools, names


def build_chapter4_set(spec: Mapping, data: RunData) -> RunSets:
    """Hard-labelled split images (+ the 810 mixed stimuli with the scheme's labels when `augment` is set)."""
    from softlabels import labels as L

    split = training_images(spec, data)
    images, pools = data.images[split], L.hard_pools(data.labels[split])
    indices = split
    info = {"n_hard": int(len(split)), "n_augment": 0, "augment": spec["scheme_spec"].get("augment")}
    if spec["scheme_spec"].get("augment"):
        aug_images, aug_pools, names = augmenting_set(spec, data)
        images = np.concatenate([images, aug_images])
        pools = pools.concat(aug_pools)
        # Stimuli are not CIFAR-10 images: they get indices -1 - position (negative, distinct).
        indices = np.concatenate([split, -1 - np.arange(len(names))])
        info["n_augment"] = int(len(names))
        info["judgments_per_stimulus"] = float(np.asarray(aug_pools.sizes).mean())
    info["n_train"] = int(len(indices))
    test = holdout_images(spec, data)
    return RunSets(
        train_images=images,
        train_pools=pools,
        train_indices=indices,
        eval_sets={"cifar10h": cifar10h_eval_set(spec, data, test)},
        info=info,
    )


# ----------------------------------------------------------------------------------------------------------
# Chapter 5 / appendix C
# ----------------------------------------------------------------------------------------------------------
def expanded_cifar10s_pools(spec: Mapping, data: RunData, images: np.ndarray):
    """Soft endpoint labels of `images` (in that order): CIFAR-10S responses where elicited, the simulator
    elsewhere (module docstring). Returns (pools, number of real CIFAR-10S images)."""
    from softlabels import labels as L

    scheme, lab = spec["scheme_spec"], spec["labels"]
    if data.glove_path is None:
        raise ValueError(f"scheme '{spec['scheme']}' (soft endpoints) needs the GloVe rows for the simulator")
    similarity = L.semantic_similarity(data.glove_path)
    real = np.isin(images, data.cifar10s_images())
    variety = scheme.get("variety", "t2_clamp")
    real_pools = L.cifar10s_pools(
        data.cifar10s_responses,
        images[real],
        variety,
        scheme.get("M", "all"),
        lab["annotator_subsample_seed"],
        lab["gamma"],
        similarity=similarity if "semantic" in variety else None,
        path=lab["redistribution_path"],
    )
    if scheme.get("aggregate", "none") == "mean":
        real_pools = real_pools.mean()
    params = L.fit_simulator(
        data.cifar10s_responses,
        data.cifar10h_probs,
        similarity,
        threshold=lab["simulator_entropy_threshold"],
        gamma=lab["gamma"],
    )
    simulated = L.simulate_labels(params, data.cifar10h_probs[images[~real]], similarity, lab["simulator_seed"],
                                  use_beta_scale=lab.get("simulator_use_beta_scale", False))
    pools = real_pools.concat(L.LabelPools.single(simulated))
    # Back to the order of `images`: the real ones first in `pools`, then the simulated ones.
    order = np.concatenate([np.flatnonzero(real), np.flatnonzero(~real)])
    position = np.empty(len(images), dtype=np.int64)
    position[order] = np.arange(len(images))
    return pools.take(position), int(real.sum())


def class_pair_taus(spec: Mapping, data: RunData):
    """The appendix-C class-pair logistic table fitted to the H-Mix judgments (all stimuli, or the 810 of the
    first collection when `labels.tau_stimuli` says so): the table `softlabels fit-taus` writes to
    results/labels/class_pair_taus.csv, refitted here (deterministic, about a second)."""
    from softlabels import labels as L

    judgments = read_judgments(data)
    if spec["labels"].get("tau_stimuli", "all") == "first_collection":
        judgments = judgments[judgments["first_collection"].astype(bool)]
    return L.fit_class_pair_taus(judgments)


def corruption_eval_set(spec: Mapping, data: RunData, test: np.ndarray, clean: EvalSet) -> EvalSet:
    """The corruption CE set: the corrupted hold-out images with CIFAR-10H targets (evaluated by
    `softlabels.evaluate.corruption_ce.corruption_metrics`)."""
    from softlabels.evaluate import corruption_ce

    severity = spec["evaluation"]["corruption"]["severity"]
    path = _data_file(data, CORRUPTION_FILE.format(severity=severity))
    corrupted = corruption_ce.load_corrupted_holdout(path, test, spec["evaluation"]["corruption"]["corruptions"])
    targets = clean.targets

    def evaluate(model, device="cpu"):
        return corruption_ce.corruption_metrics(model, corrupted, targets, device=device)

    return EvalSet(
        images=clean.images,
        targets=targets,
        hard_labels=clean.hard_labels,
        fgsm_targets=clean.fgsm_targets,
        bin_size=clean.bin_size,
        indices=test,
        evaluate=evaluate,
    )


def build_chapter5_set(spec: Mapping, data: RunData) -> RunSets:
    """The split images with hard or soft endpoint labels and the scheme's mixing objective."""
    from softlabels import labels as L
    from softlabels.train import mixing

    scheme = spec["scheme_spec"]
    split = training_images(spec, data)
    endpoints = scheme.get("endpoints", "hard")
    info = {"n_train": int(len(split)), "endpoints": endpoints, "objective": scheme.get("objective", "ce")}
    if endpoints == "soft":
        if scheme["labels"] != "cifar10s":
            raise ValueError(f"key 'schemes.{spec['scheme']}.labels': soft endpoints are the expanded CIFAR-10S")
        pools, n_real = expanded_cifar10s_pools(spec, data, split)
        info.update(n_cifar10s=n_real, n_simulated=int(len(split) - n_real),
                    annotators_per_image=float(np.asarray(pools.sizes).mean()))
    else:
        if scheme["labels"] != "hard":
            raise ValueError(f"key 'schemes.{spec['scheme']}.labels': hard endpoints need labels: hard")
        pools = L.hard_pools(data.labels[split])
    tau_df = None
    if scheme.get("target_mix", "linear") == "tau":
        tau_df = class_pair_taus(spec, data)
        info["tau_pairs_fitted"] = int(len(tau_df))
    objective = mixing.build_objective(scheme, spec["scheme"], int(spec["seed"]), taus=tau_df)
    test = holdout_images(spec, data)
    clean = cifar10h_eval_set(spec, data, test)
    return RunSets(
        train_images=data.images[split],
        train_pools=pools,
        train_indices=split,
        eval_sets={"cifar10h": clean, "corruption": corruption_eval_set(spec, data, test, clean)},
        info=info,
        objective=objective,
    )


#: Keys of `labels` / `evaluation` that chapter-4/5 runs depend on (copied into their spec.json).
CHAPTER4_LABEL_KEYS = ("confidence_gamma",)
CHAPTER4_EVALUATION_KEYS = ("calibration", "fgsm", "cifar10h_holdout_limit")
CHAPTER5_LABEL_KEYS = (
    "gamma",
    "redistribution_path",
    "annotator_subsample_seed",
    "simulator_entropy_threshold",
    "simulator_seed",
    "simulator_use_beta_scale",
    "tau_stimuli",
)
CHAPTER5_EVALUATION_KEYS = ("calibration", "fgsm", "cifar10h_holdout_limit", "corruption")
