"""The chapter-5 training set and its mixing objective (thesis §5.2; docs/protocol.md#chapter-5-mixing-objectives;
appendix C): the builder of the `chapter5` protocol.

Mixup over the split images of chapter 4 (`softlabels.train.run_data.split_images`), trained with the scheme's
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

Evaluation: the CIFAR-10H hold-out and the corruption CE on the same images
(`softlabels.evaluate.corruption_ce`). The mixing objectives and the corruption CE need torch, which is
imported when a set is built, so that specs and plans are made without it.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from softlabels import labels as L
from softlabels.train.run_data import (
    EvalSet,
    RunData,
    RunSets,
    cifar10h_eval_set,
    cifar10h_holdout_images,
    split_images,
)

CORRUPTION_FILE = "cifar10c_holdout_s{severity}.npz"


def expanded_cifar10s_pools(spec: Mapping, data: RunData, images: np.ndarray):
    """Soft endpoint labels of `images` (in that order): CIFAR-10S responses where elicited, the simulator
    elsewhere (module docstring). Returns (pools, number of real CIFAR-10S images)."""
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
    judgments = data.hmix_judgments()
    if spec["labels"].get("tau_stimuli", "all") == "first_collection":
        judgments = judgments[judgments["first_collection"].astype(bool)]
    return L.fit_class_pair_taus(judgments)


def corruption_eval_set(spec: Mapping, data: RunData, test: np.ndarray, clean: EvalSet) -> EvalSet:
    """The corruption CE set: the corrupted hold-out images with CIFAR-10H targets (evaluated by
    `softlabels.evaluate.corruption_ce.corruption_metrics`)."""
    from softlabels.evaluate import corruption_ce

    severity = spec["evaluation"]["corruption"]["severity"]
    path = data.file(CORRUPTION_FILE.format(severity=severity))
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
    from softlabels.train import mixing

    scheme = spec["scheme_spec"]
    split = split_images(spec, data)
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
    test = cifar10h_holdout_images(spec, data)
    clean = cifar10h_eval_set(spec, data, test)
    return RunSets(
        train_images=data.images[split],
        train_pools=pools,
        train_indices=split,
        eval_sets={"cifar10h": clean, "corruption": corruption_eval_set(spec, data, test, clean)},
        info=info,
        objective=objective,
    )
