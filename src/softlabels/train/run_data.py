"""What a training run reads and what its builder hands the trainer.

`RunData` holds the parsed inputs (the agreed files under `results/data/`); a protocol's builder
(`softlabels.train.chapter3`, `chapter4`, `chapter5`) turns a run spec and a `RunData` into `RunSets`: the
training images with their label pools and the evaluation sets (`EvalSet`). The evaluation sets that several
protocols share live here too:
- the CIFAR-10H hold-out: the 3000 `splits.test` images (a class-balanced `cifar10h_holdout_limit` of them when
  set, `softlabels.data.splits.balanced_prefix`) with the CIFAR-10H distribution as target
  (docs/protocol.md#evaluation);
- the validation split of a hyperparameter-sweep run (thesis §3.3, appendix B.2), `sweeps.validation.source`:
  `cifar10_train`, of the N CIFAR-10 training images (`cifar10_train.npz`), the last ⌊N·fraction⌋ of
  `torch.randperm(N)` under `torch.manual_seed(seed)`, i.e. the second part of
  `torch.utils.data.random_split(train, [1 − fraction, fraction])` after seeding (15,000 images at 0.3), as the
  authors' code; or `unused_split`, the images of `splits.train` that no run of the configuration trains on
  (CIFAR-10 test images, so the offline mirror holds them). A class-balanced `limit` of them when set; one-hot
  targets; evaluated by accuracy = mean 1[argmax p(x) = y] and CE = −(1/n) Σ log p_y(x).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from softlabels.data.cifar10s import read_responses
from softlabels.data.splits import balanced_prefix
from softlabels.numerics import one_hot


@dataclass
class RunData:
    """The parsed inputs a builder reads (the agreed files under `results/data/`).

    `cifar10s_responses` is the tidy response table (`cifar10s_responses.csv`); `glove_path` the GloVe rows
    (read only by the semantic varieties); `data_dir` lets other protocols' builders read further files
    (`file`).
    """

    images: np.ndarray  # uint8 [10000, 32, 32, 3], CIFAR-10 test set
    labels: np.ndarray  # int64 [10000]
    split_train: np.ndarray  # int64 [7000]
    split_test: np.ndarray  # int64 [3000]
    cifar10h_counts: np.ndarray  # int64 [10000, 10]
    cifar10h_probs: np.ndarray  # float64 [10000, 10]
    cifar10s_responses: Any  # pandas.DataFrame
    glove_path: Path | None = None
    data_dir: Path | None = None

    @classmethod
    def from_dir(
        cls, data_dir: str | Path, glove_path: str | Path | None = None, responses: str = "cifar10s_responses.csv"
    ) -> "RunData":
        data_dir = Path(data_dir)
        with np.load(_existing(data_dir / "cifar10_test.npz")) as f:
            images, labels = f["images"], f["labels"].astype(np.int64)
        with np.load(_existing(data_dir / "splits.npz")) as f:
            split_train, split_test = f["train"].astype(np.int64), f["test"].astype(np.int64)
        with np.load(_existing(data_dir / "cifar10h.npz")) as f:
            counts, probs = f["counts"].astype(np.int64), f["probs"].astype(np.float64)
        return cls(
            images=images,
            labels=labels,
            split_train=split_train,
            split_test=split_test,
            cifar10h_counts=counts,
            cifar10h_probs=probs,
            cifar10s_responses=read_responses(_existing(data_dir / responses), key="image"),
            glove_path=Path(glove_path) if glove_path else None,
            data_dir=data_dir,
        )

    def cifar10s_images(self) -> np.ndarray:
        """The annotated images in order of first appearance in the response table (raw-file order)."""
        return np.asarray(self.cifar10s_responses["image"].drop_duplicates().to_numpy(), dtype=np.int64)

    def file(self, name: str) -> Path:
        """A further input of the data folder (`name` under `data_dir`); errors name the file."""
        if self.data_dir is None:
            raise ValueError(f"this protocol reads {name} from the data folder, but RunData has no data_dir")
        return _existing(Path(self.data_dir) / name)

    def hmix_judgments(self) -> pd.DataFrame:
        """The tidy H-Mix judgments (`hmix_judgments.csv`: stimulus, lambda_h, confidence, ...)."""
        return pd.read_csv(self.file("hmix_judgments.csv"))

    def hmix_stimuli(self) -> dict[str, np.ndarray]:
        """The arrays of `hmix_stimuli.npz` (names, images, lambda_f, classes, first_collection, ...)."""
        with np.load(self.file("hmix_stimuli.npz"), allow_pickle=False) as f:
            return {k: f[k] for k in f.files}


def _existing(path: Path) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"missing input {path} (built by the data stage)")
    return path


@dataclass
class EvalSet:
    """One evaluation set: images, soft targets [n, K], hard labels, FGSM targets, calibration bin size."""

    images: np.ndarray
    targets: np.ndarray
    hard_labels: np.ndarray
    fgsm_targets: np.ndarray
    bin_size: int
    indices: np.ndarray  # CIFAR-10 test indices (or stimulus numbers) of the images
    #: Optional replacement of `softlabels.evaluate.evaluate_model` for this set: f(model, device) -> dict.
    evaluate: Callable[..., dict] | None = None


@dataclass
class RunSets:
    """Training images + label pools and the evaluation sets of one run."""

    train_images: np.ndarray
    train_pools: Any  # softlabels.labels.LabelPools
    train_indices: np.ndarray
    eval_sets: dict[str, EvalSet]
    #: Facts recorded in metrics.json["train"] (e.g. numbers of soft/hard images, annotators per image).
    info: dict = field(default_factory=dict)
    #: Loss hook handed to `softlabels.train.fit` (chapter-5 mixing objectives); None = soft CE.
    objective: Callable | None = None


# ----------------------------------------------------------------------------------------------------------
# Images every protocol draws on
# ----------------------------------------------------------------------------------------------------------
def augmenting_positions(stimuli: Mapping[str, np.ndarray], pairs: int | None = None) -> np.ndarray:
    """Positions (in `hmix_stimuli.npz` order) of the chapter-4 augmenting set: the 810 first-collection
    stimuli, 18 per class pair (6 image pairs, each mixed at 3 values of λ_f). With `pairs` (config
    `protocols.<p>.augmenting_pairs`), only the first `pairs` image pairs of each class pair, ordered by their
    (smaller, larger) CIFAR-10 index, with all their stimuli (3 · 45 · pairs in all)."""
    keep = np.flatnonzero(np.asarray(stimuli["first_collection"], dtype=bool))
    if pairs is None:
        return keep
    i1, i2 = np.asarray(stimuli["image1"])[keep], np.asarray(stimuli["image2"])[keep]
    c1, c2 = np.asarray(stimuli["class1"])[keep], np.asarray(stimuli["class2"])[keep]
    frame = pd.DataFrame({"pos": keep, "class_pair": list(zip(np.minimum(c1, c2), np.maximum(c1, c2))),
                          "image_pair": list(zip(np.minimum(i1, i2), np.maximum(i1, i2)))})
    rank = frame.groupby("class_pair")["image_pair"].rank(method="dense").astype(int)
    return np.sort(frame["pos"].to_numpy()[rank.to_numpy() <= int(pairs)])


def augmenting_endpoints(stimuli: Mapping[str, np.ndarray], pairs: int | None = None) -> np.ndarray:
    """The CIFAR-10 test images mixed in the augmenting set (`augmenting_positions`), sorted."""
    keep = augmenting_positions(stimuli, pairs)
    return np.unique(np.concatenate([np.asarray(stimuli["image1"])[keep], np.asarray(stimuli["image2"])[keep]]))


def split_images(spec: Mapping, data: RunData) -> np.ndarray:
    """The training split of a chapter-4/5 run: `splits.train` (file order); with `hard_image_limit` (quick and
    smoke scales) a class-balanced subset of that size (`softlabels.data.splits.balanced_prefix`). With
    `augmenting_pairs` as well, the subset holds the endpoint images of the kept stimuli first (at paper
    scale every endpoint is a training image, so the augmenting set mixes images the model trains on)."""
    protocol = spec["protocol"]
    pairs = protocol.get("augmenting_pairs")
    first = augmenting_endpoints(data.hmix_stimuli(), pairs) if pairs is not None else None
    return balanced_prefix(data.split_train, data.labels, protocol.get("hard_image_limit"), first=first)


def cifar10h_holdout_images(spec: Mapping, data: RunData) -> np.ndarray:
    """The CIFAR-10H hold-out images: `splits.test`, class-balanced to `cifar10h_holdout_limit` when set."""
    return balanced_prefix(data.split_test, data.labels, spec["evaluation"].get("cifar10h_holdout_limit"))


def cifar10h_eval_set(spec: Mapping, data: RunData, test: np.ndarray) -> EvalSet:
    """The CIFAR-10H hold-out: CIFAR-10H distribution as target, FGSM target per `fgsm.cifar10h_target`."""
    evaluation = spec["evaluation"]
    targets = data.cifar10h_probs[test]
    fgsm = one_hot(data.labels[test], dtype=np.float32) if evaluation["fgsm"]["cifar10h_target"] == "hard" else targets
    return cifar10_test_eval_set(data, test, targets, fgsm, evaluation["calibration"]["bin_size"])


def cifar10_test_eval_set(data: RunData, indices: np.ndarray, targets: np.ndarray, fgsm_targets: np.ndarray,
                         bin_size: int) -> EvalSet:
    """An evaluation set of the CIFAR-10 test images `indices`, their CIFAR-10 labels as the hard labels."""
    return EvalSet(images=data.images[indices], targets=targets, hard_labels=data.labels[indices],
                   fgsm_targets=fgsm_targets, bin_size=bin_size, indices=indices)


# ----------------------------------------------------------------------------------------------------------
# The validation split of a sweep run
# ----------------------------------------------------------------------------------------------------------
def validation_indices(labels: np.ndarray, fraction: float, seed: int, limit: int | None) -> np.ndarray:
    """Indices of the validation part (see the module docstring), in permutation order."""
    import torch  # the light commands (make-spec, sweep-table) read this module without torch

    n = len(labels)
    n_val = int(math.floor(n * fraction))
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed))).numpy().astype(np.int64)
    return balanced_prefix(perm[n - n_val :], labels, limit)


VALIDATION_FILE = "validation.npz"


def authors_validation(train_npz: str | Path, block: Mapping) -> dict[str, np.ndarray]:
    """`source: cifar10_train`: the validation part of the CIFAR-10 training set (`validation_indices`) read
    from `cifar10_train.npz`: {images, labels, indices (training-set positions)}."""
    path = Path(train_npz)
    if not path.exists():
        raise FileNotFoundError(f"missing input {path} (rule parse_cifar10_train: `softlabels parse-cifar10-train`)")
    with np.load(path) as f:
        images, labels = f["images"], f["labels"].astype(np.int64)
    idx = validation_indices(labels, block["fraction"], block["seed"], block.get("limit"))
    if len(idx) == 0:
        raise ValueError(f"{path}: the validation split (fraction {block['fraction']}) holds no image")
    return {"images": images[idx], "labels": labels[idx], "indices": idx}


def trained_split_images(data: RunData, protocols: Mapping[str, Mapping], own_images=None) -> np.ndarray:
    """The images of `splits.train` some run of the configuration trains on (or, for the CIFAR-10S hold-out,
    evaluates on): every CIFAR-10S image and own-response image (`own_images`), chapter 3's hard images
    (`hard_image_limit` of those outside CIFAR-10S), and the training images of chapters 4 and 5
    (`split_images`, the augmenting set's endpoints included)."""
    soft = np.union1d(data.cifar10s_images(), np.asarray(own_images if own_images is not None else [], np.int64))
    used = [soft]
    if "chapter3" in protocols:
        outside = data.split_train[~np.isin(data.split_train, soft)]
        used.append(balanced_prefix(outside, data.labels, protocols["chapter3"].get("hard_image_limit")))
    for name in ("chapter4", "chapter5"):
        if name in protocols:
            used.append(split_images({"protocol": protocols[name]}, data))
    return np.unique(np.concatenate(used))


def unused_split_validation(data: RunData, protocols: Mapping[str, Mapping], block: Mapping,
                            own_images=None) -> dict[str, np.ndarray]:
    """`source: unused_split`: a class-balanced `limit` of the `splits.train` images that no run trains on
    (`trained_split_images`), in file order: CIFAR-10 test images that the offline mirror holds and the
    CIFAR-10H hold-out does not use. ValueError naming the keys when fewer are left than the limit asks."""
    unused = data.split_train[~np.isin(data.split_train, trained_split_images(data, protocols, own_images))]
    limit = block.get("limit")
    if len(unused) == 0 or (limit is not None and len(unused) < limit):
        raise ValueError(
            f"key 'sweeps.validation.limit': {limit} validation images asked for, but only {len(unused)} of the 7000 "
            "training-split images are not trained on at these settings (protocols.<p>.hard_image_limit); lower "
            "the limit or use sweeps.validation.source: cifar10_train")
    idx = balanced_prefix(unused, data.labels, limit)
    return {"images": data.images[idx], "labels": data.labels[idx], "indices": idx}


def validation_eval_set(block: Mapping, data_dir: str | Path) -> EvalSet:
    """The validation split of a sweep run (`validation.npz`, made by `softlabels validation-split` from the
    config block `sweeps.validation`) as an `EvalSet` whose evaluation gives accuracy and CE against the hard
    labels. The file must have been made from `block`'s source."""
    path = Path(data_dir) / VALIDATION_FILE
    if not path.exists():
        raise FileNotFoundError(f"missing input {path} (rule validation_split: `softlabels validation-split`)")
    with np.load(path) as f:
        x, y, source = f["images"], f["labels"].astype(np.int64), str(f["source"])
        idx = f["indices"]
    if source != block.get("source", "cifar10_train"):
        raise ValueError(f"{path} holds the {source} validation split, the run asks for "
                         f"sweeps.validation.source: {block.get('source')}; rebuild it")
    targets = one_hot(y, dtype=np.float32)

    def evaluate(model, device) -> dict:
        from softlabels.evaluate.metrics import accuracy_and_ce

        return accuracy_and_ce(model, x, y, device)

    return EvalSet(images=x, targets=targets, hard_labels=y, fgsm_targets=targets, bin_size=len(y),
                   indices=idx, evaluate=evaluate)
