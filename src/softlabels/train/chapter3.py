"""The chapter-3 training set (thesis §3.3; docs/protocol.md#cifar-10s-hold-out and
docs/protocol.md#training-chapter-3): the builder of the `chapter3` protocol.

- images: the CIFAR-10 *test* images at `splits.train` (7000, file order);
- CIFAR-10S hold-out: `evaluation.cifar10s_holdout.size` (100) of the 1000 CIFAR-10S images, drawn as the
  released code does (`random.seed(s); random.sample(list(set(images)), size)`) with s = the training seed
  when `resample_per_seed`, else `split_seed`;
- training: the other 900 CIFAR-10S images with the scheme's labels + the 6000 remaining split images with
  their hard CIFAR-10 label (a class-balanced `hard_image_limit` of them when set, see `softlabels.data.splits.balanced_prefix`)
  = 6900 images. With `n_soft: N'`
  only N' of the 900 soft images are used (a seeded permutation's first N', so smaller sets nest in larger
  ones) and no hard images (figure 3.6);
- evaluation: CIFAR-10H hold-out (`softlabels.train.run_data.cifar10h_eval_set`); CIFAR-10S hold-out = the
  held-out images with the mean T2-Clamp label over at most `max_responses` responses.

Annotator subsets (M) are fixed per image by (`labels.annotator_subsample_seed`, image index) (see
`softlabels.labels.pools`), so an image's subset does not depend on which images were held out.
"""

from __future__ import annotations

import random
from typing import Mapping

import numpy as np

from softlabels import labels as L
from softlabels.data.splits import balanced_prefix
from softlabels.train.run_data import (
    EvalSet,
    RunData,
    RunSets,
    cifar10_test_eval_set,
    cifar10h_eval_set,
    cifar10h_holdout_images,
)


def cifar10s_holdout(cifar10s_images: np.ndarray, size: int, seed: int) -> np.ndarray:
    """The held-out CIFAR-10S images, drawn as cambridge-mlg/cifar-10s does: Python `random.seed(seed)`, then
    `random.sample(list(set(images)), size)`; returned in sample order."""
    pool = list(set(int(i) for i in cifar10s_images))
    if size >= len(pool):
        raise ValueError(f"evaluation.cifar10s_holdout.size = {size} leaves no CIFAR-10S image to train on")
    rng = random.Random(seed)
    return np.asarray(rng.sample(pool, size), dtype=np.int64)


def holdout_seed(evaluation: Mapping, seed: int) -> int:
    block = evaluation["cifar10s_holdout"]
    return int(seed) if block["resample_per_seed"] else int(block["split_seed"])


def chapter3_split(spec: Mapping, data: RunData) -> dict[str, np.ndarray]:
    """Image indices of a chapter-3 run: `soft` (CIFAR-10S training images, split order), `hard` (the other
    split images, split order, balanced_prefix of hard_image_limit), `holdout` (CIFAR-10S hold-out), `test`
    (CIFAR-10H hold-out, balanced_prefix of cifar10h_holdout_limit)."""
    scheme, protocol, evaluation = spec["scheme_spec"], spec["protocol"], spec["evaluation"]
    s_images = data.cifar10s_images()
    outside = np.setdiff1d(s_images, data.split_train)
    if len(outside):
        raise ValueError(f"CIFAR-10S images outside splits.train: {outside[:5].tolist()}")
    holdout = cifar10s_holdout(s_images, evaluation["cifar10s_holdout"]["size"], holdout_seed(evaluation, spec["seed"]))
    train = data.split_train[~np.isin(data.split_train, holdout)]
    is_soft = np.isin(train, s_images)
    soft, hard = train[is_soft], train[~is_soft]
    hard = balanced_prefix(hard, data.labels, protocol.get("hard_image_limit"))
    n_soft = scheme.get("n_soft")
    if n_soft is not None:
        if n_soft > len(soft):
            raise ValueError(
                f"key 'schemes.{spec['scheme']}.n_soft': {n_soft} > the {len(soft)} soft-labelled training images"
            )
        order = np.random.default_rng(int(spec["seed"])).permutation(len(soft))
        soft = soft[np.sort(order[:n_soft])]
        hard = hard[:0]
    test = cifar10h_holdout_images(spec, data)
    return {"soft": soft, "hard": hard, "holdout": holdout, "test": test}


def _pool_sizes(pools) -> np.ndarray:
    return np.asarray(pools.sizes)


def smoothed_label_pools(spec: Mapping, labels: np.ndarray):
    """Label smoothing of hard labels: (1-β)·y + β/K with β = `labels.label_smoothing_beta` (appendix B.2)."""
    lab = spec["labels"]
    return L.label_smoothing_pools(labels, lab["label_smoothing_beta"], normalised=lab["label_smoothing_normalised"])


def cifar10h_source_pools(spec: Mapping, data: RunData, images: np.ndarray):
    """Per-annotator one-hots of M CIFAR-10H annotators per image (`schemes.<s>.M`, subsampled with
    `labels.annotator_subsample_seed`)."""
    M, lab = spec["scheme_spec"].get("M", "all"), spec["labels"]
    return L.cifar10h_pools(data.cifar10h_counts[images], M, lab["annotator_subsample_seed"], image_ids=images)


def cifar10s_source_pools(spec: Mapping, data: RunData, images: np.ndarray):
    """One label per CIFAR-10S response of the scheme's variety, M per image; the semantic varieties read the
    GloVe rows."""
    scheme, lab = spec["scheme_spec"], spec["labels"]
    variety = scheme.get("variety", "t2_clamp")
    similarity = None
    if "semantic" in variety:
        if data.glove_path is None:
            raise ValueError(f"scheme '{spec['scheme']}' (variety {variety}) needs the GloVe rows (--glove)")
        similarity = L.semantic_similarity(data.glove_path)
    return L.cifar10s_pools(
        data.cifar10s_responses,
        images,
        variety,
        scheme.get("M", "all"),
        lab["annotator_subsample_seed"],
        lab["gamma"],
        similarity=similarity,
        path=lab["redistribution_path"],
        **({"semantic_base": lab["semantic_base"]} if similarity is not None else {}),
    )


#: The label pools of each label source of `softlabels.vocabulary.LABEL_SOURCES`: (spec, data, soft-labelled
#: image indices) -> pools. Random labels are seeded by the run seed.
SOURCE_POOLS = {
    "hard": lambda spec, data, images: L.hard_pools(data.labels[images]),
    "random": lambda spec, data, images: L.random_pools(len(images), int(spec["seed"])),
    "uniform": lambda spec, data, images: L.uniform_pools(len(images)),
    "label_smoothing": lambda spec, data, images: smoothed_label_pools(spec, data.labels[images]),
    "cifar10h": cifar10h_source_pools,
    "cifar10s": cifar10s_source_pools,
}  # fmt: skip


def soft_label_pools(spec: Mapping, data: RunData, images: np.ndarray):
    """Label pools of the soft-labelled images under the scheme (thesis §3.2-3.3, appendix B.2/B.4): those of its
    label source (`SOURCE_POOLS`); `aggregate: mean` replaces each pool by its mean. Returns (pools, annotators
    per image before aggregation).
    """
    scheme = spec["scheme_spec"]
    kind = scheme["labels"]
    if kind not in SOURCE_POOLS:
        raise ValueError(f"key 'schemes.{spec['scheme']}.labels': unknown label source '{kind}'")
    pools = SOURCE_POOLS[kind](spec, data, images)
    annotators = float(_pool_sizes(pools).mean()) if len(images) else 0.0
    if scheme.get("aggregate", "none") == "mean":
        pools = pools.mean()
    return pools, annotators


def hard_image_pools(spec: Mapping, data: RunData, images: np.ndarray):
    """Labels of the images without soft labels: their hard CIFAR-10 label, label-smoothed as well when the
    scheme is label smoothing with `labels.label_smoothing_scope: all` (appendix B.2: "applied to all N
    examples"; `soft_images`, the released code, leaves them hard)."""
    lab = spec["labels"]
    if spec["scheme_spec"]["labels"] == "label_smoothing" and lab["label_smoothing_scope"] == "all":
        return smoothed_label_pools(spec, data.labels[images])
    return L.hard_pools(data.labels[images])


def cifar10s_eval_targets(spec: Mapping, data: RunData, images: np.ndarray) -> np.ndarray:
    """CIFAR-10S hold-out labels: the mean T2-Clamp label over at most `max_responses` responses (the fixed
    subset of `labels.annotator_subsample_seed`)."""
    lab, block = spec["labels"], spec["evaluation"]["cifar10s_holdout"]
    pools = L.cifar10s_pools(
        data.cifar10s_responses,
        images,
        "t2_clamp",
        block["max_responses"],
        lab["annotator_subsample_seed"],
        lab["gamma"],
        path=lab["redistribution_path"],
    ).mean()
    return np.asarray(pools.labels[:, 0], dtype=np.float64)


def chapter3_eval_sets(spec: Mapping, data: RunData, split: Mapping[str, np.ndarray]) -> dict[str, EvalSet]:
    """CIFAR-10H hold-out and the per-seed CIFAR-10S hold-out (T2-Clamp mean labels, small calibration bins)."""
    holdout = split["holdout"]
    s_targets = cifar10s_eval_targets(spec, data, holdout)
    bin_size = spec["evaluation"]["calibration"]["bin_size_cifar10s"]
    return {
        "cifar10h": cifar10h_eval_set(spec, data, split["test"]),
        "cifar10s": cifar10_test_eval_set(data, holdout, s_targets, s_targets, bin_size),
    }


def build_chapter3_set(spec: Mapping, data: RunData) -> RunSets:
    """Chapter-3 run: soft-labelled CIFAR-10S training images + hard-labelled rest, two evaluation sets."""
    split = chapter3_split(spec, data)
    soft_pools, annotators = soft_label_pools(spec, data, split["soft"])
    pools = soft_pools.concat(hard_image_pools(spec, data, split["hard"])) if len(split["hard"]) else soft_pools
    indices = np.concatenate([split["soft"], split["hard"]])
    info = {
        "n_train": int(len(indices)),
        "n_soft": int(len(split["soft"])),
        "n_hard": int(len(split["hard"])),
        "annotators_per_image": annotators,
        "cifar10s_holdout_seed": holdout_seed(spec["evaluation"], spec["seed"]),
        "cifar10s_holdout": sorted(int(i) for i in split["holdout"]),
    }
    return RunSets(
        train_images=data.images[indices],
        train_pools=pools,
        train_indices=indices,
        eval_sets=chapter3_eval_sets(spec, data, split),
        info=info,
    )
