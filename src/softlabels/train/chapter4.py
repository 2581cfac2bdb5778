"""The chapter-4 training set (thesis §4.2-4.3; docs/protocol.md#chapter-4-augmenting-set): the builder of the
`chapter4` protocol.

The 7000 split images (`splits.train`, file order; when a scale sets `hard_image_limit`, a class-balanced
subset of that size, `softlabels.train.run_data.split_images`) with their hard CIFAR-10 labels, plus, when the
scheme's `augment` is set, the 810 first-collection H-Mix stimuli (`hmix_stimuli.npz`, rebuilt as
round(λ_f·img1 + (1−λ_f)·img2); with `augmenting_pairs`, the stimuli of that many image pairs per class pair,
whose endpoint images the hard subset then holds, `softlabels.train.run_data.augmenting_positions`) labelled by `softlabels.labels.hmix_pools(variant=augment)`: uniform, random,
mixup (λ_f), agg (λ̄_h), sep (λ_h^m, one judgment drawn per use), agg_conf / sep_conf (confidence smoothing
with `labels.confidence_gamma`). No augmentation; plain soft cross-entropy. Evaluation: the CIFAR-10H hold-out.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from softlabels import labels as L
from softlabels.train.run_data import (
    RunData,
    RunSets,
    augmenting_positions,
    cifar10h_eval_set,
    cifar10h_holdout_images,
    split_images,
)


def augmenting_set(spec: Mapping, data: RunData):
    """(images uint8 [n,32,32,3], LabelPools, stimulus names) of the scheme's `augment` labels."""
    stimuli = data.hmix_stimuli()
    keep = augmenting_positions(stimuli, spec["protocol"].get("augmenting_pairs"))
    names = np.asarray(stimuli["names"])[keep]
    augment = spec["scheme_spec"]["augment"]
    smoothing = {"conf_gamma": spec["labels"]["confidence_gamma"]} if augment.endswith("_conf") else {}
    pools = L.hmix_pools(data.hmix_judgments(), names, augment, int(spec["seed"]), **smoothing)
    return np.asarray(stimuli["images"])[keep], pools, names


def build_chapter4_set(spec: Mapping, data: RunData) -> RunSets:
    """Hard-labelled split images (+ the 810 mixed stimuli with the scheme's labels when `augment` is set)."""
    split = split_images(spec, data)
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
    test = cifar10h_holdout_images(spec, data)
    return RunSets(
        train_images=images,
        train_pools=pools,
        train_indices=indices,
        eval_sets={"cifar10h": cifar10h_eval_set(spec, data, test)},
        info=info,
    )
