"""What a training run reads and what its builder hands the trainer.

`RunData` holds the parsed inputs (the agreed files under `results/data/`); a protocol's builder
(`softlabels.train.chapter3`, `chapter4`, `chapter5`) turns a run spec and a `RunData` into `RunSets`: the
training images with their label pools and the evaluation sets (`EvalSet`). The evaluation sets that several
protocols share live here too:
- the CIFAR-10H hold-out: the 3000 `splits.test` images (a class-balanced `cifar10h_holdout_limit` of them when
  set, `softlabels.data.splits.balanced_prefix`) with the CIFAR-10H distribution as target
  (docs/protocol.md#evaluation);
- the validation split of a hyperparameter-sweep run (thesis §3.3, appendix B.2): of the N CIFAR-10 training
  images (`cifar10_train.npz`), the last ⌊N·fraction⌋ of `torch.randperm(N)` under `torch.manual_seed(seed)`,
  i.e. the second part of `torch.utils.data.random_split(train, [1 − fraction, fraction])` after seeding
  (15,000 images at 0.3); a class-balanced `limit` of them when set; one-hot targets; evaluated by accuracy =
  mean 1[argmax p(x) = y] and CE = −(1/n) Σ log p_y(x).
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
def split_images(spec: Mapping, data: RunData) -> np.ndarray:
    """The training split of a chapter-4/5 run: `splits.train` (file order); with `hard_image_limit` (quick and
    smoke scales) a class-balanced subset of that size (`softlabels.data.splits.balanced_prefix`)."""
    return balanced_prefix(data.split_train, data.labels, spec["protocol"].get("hard_image_limit"))


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


def validation_eval_set(block: Mapping, data_dir: str | Path) -> EvalSet:
    """The validation split (config block `sweeps.validation`) as an `EvalSet` whose evaluation gives accuracy
    and CE against the hard labels."""
    path = Path(data_dir) / "cifar10_train.npz"
    if not path.exists():
        raise FileNotFoundError(f"missing input {path} (rule parse_cifar10_train: `softlabels parse-cifar10-train`)")
    with np.load(path) as f:
        images, labels = f["images"], f["labels"].astype(np.int64)
    idx = validation_indices(labels, block["fraction"], block["seed"], block.get("limit"))
    if len(idx) == 0:
        raise ValueError(f"{path}: the validation split (fraction {block['fraction']}) holds no image")
    x, y = images[idx], labels[idx]
    targets = one_hot(y, dtype=np.float32)

    def evaluate(model, device) -> dict:
        from softlabels.evaluate.metrics import accuracy_and_ce

        return accuracy_and_ce(model, x, y, device)

    return EvalSet(images=x, targets=targets, hard_labels=y, fgsm_targets=targets, bin_size=len(y),
                   indices=idx, evaluate=evaluate)
