"""Run specifications and the data sets of one training run.

A run is (scheme, model, seed). `run_spec` turns the effective configuration into the exact settings that
produce the run (written to `results/runs/{scheme}/{model}/seed{seed}/spec.json`, so every run records what
made it); `build_run_sets` turns a spec and the parsed data into the training images + label pools and the
evaluation sets.

Chapter 3 (thesis §3.3; docs/protocol.md#cifar-10s-hold-out and docs/protocol.md#training-chapter-3):
- images: the CIFAR-10 *test* images at `splits.train` (7000, file order);
- CIFAR-10S hold-out: `evaluation.cifar10s_holdout.size` (100) of the 1000 CIFAR-10S images, drawn as the
  released code does (`random.seed(s); random.sample(list(set(images)), size)`) with s = the training seed
  when `resample_per_seed`, else `split_seed`;
- training: the other 900 CIFAR-10S images with the scheme's labels + the 6000 remaining split images with
  their hard CIFAR-10 label (a class-balanced `hard_image_limit` of them when set, see `softlabels.data.splits.balanced_prefix`)
  = 6900 images. With `n_soft: N'`
  only N' of the 900 soft images are used (a seeded permutation's first N', so smaller sets nest in larger
  ones) and no hard images (figure 3.6);
- evaluation: CIFAR-10H hold-out = the 3000 `splits.test` images (class-balanced `cifar10h_holdout_limit`) with the
  CIFAR-10H distribution as target; CIFAR-10S hold-out = the held-out images with the mean T2-Clamp label
  over at most `max_responses` responses.

Annotator subsets (M) are fixed per image by (`labels.annotator_subsample_seed`, image index) (see
`softlabels.labels.pools`), so an image's subset does not depend on which images were held out.

The chapter-4/5 builders live in `softlabels.train.synthetic`; `PROTOCOLS` maps each protocol to its
builder `builder(spec, data: RunData) -> RunSets` and the label/evaluation keys its runs depend on.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from softlabels.data.splits import balanced_prefix
from softlabels.numerics import one_hot

#: Keys of a protocol block that list which runs exist (or how jobs are cut and what they ask the scheduler
#: for, and cuDNN's algorithm search) rather than how one run is trained; left out of a run's spec so that adding a seed or a model re-runs nothing else.
RUN_LIST_KEYS = ("models", "seeds", "seeds_extra", "resources", "group_size", "cudnn_benchmark")


# ----------------------------------------------------------------------------------------------------------
# Data of a run
# ----------------------------------------------------------------------------------------------------------
@dataclass
class RunData:
    """The parsed inputs a builder reads (the agreed files under `results/data/`).

    `cifar10s_responses` is the tidy response table (`cifar10s_responses.csv`); `glove_path` the GloVe rows
    (read only by the semantic varieties); `data_dir` lets other protocols' builders read further files.
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
        from softlabels.data.cifar10s import read_responses

        data_dir = Path(data_dir)

        def need(name: str) -> Path:
            path = data_dir / name
            if not path.exists():
                raise FileNotFoundError(f"missing input {path} (built by the data stage)")
            return path

        with np.load(need("cifar10_test.npz")) as f:
            images, labels = f["images"], f["labels"].astype(np.int64)
        with np.load(need("splits.npz")) as f:
            split_train, split_test = f["train"].astype(np.int64), f["test"].astype(np.int64)
        with np.load(need("cifar10h.npz")) as f:
            counts, probs = f["counts"].astype(np.int64), f["probs"].astype(np.float64)
        responses = read_responses(need(responses), key="image")
        return cls(
            images=images,
            labels=labels,
            split_train=split_train,
            split_test=split_test,
            cifar10h_counts=counts,
            cifar10h_probs=probs,
            cifar10s_responses=responses,
            glove_path=Path(glove_path) if glove_path else None,
            data_dir=data_dir,
        )

    def cifar10s_images(self) -> np.ndarray:
        """The annotated images in order of first appearance in the response table (raw-file order)."""
        return np.asarray(self.cifar10s_responses["image"].drop_duplicates().to_numpy(), dtype=np.int64)


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
# Specs
# ----------------------------------------------------------------------------------------------------------
def _subset(block: Mapping, keys: tuple[str, ...] | None) -> dict:
    block = copy.deepcopy(dict(block))
    return block if keys is None else {k: block[k] for k in keys if k in block}


def run_spec(config: Mapping, scheme: str, model: str, seed: int) -> dict:
    """The effective settings of run (scheme, model, seed): everything that changes its result.

    The protocol block keeps only this model's learning rate and drops the run lists (models, seeds), and the
    labels/evaluation blocks keep the keys the protocol registered, so unrelated edits do not re-run it.
    """
    if scheme not in config["schemes"]:
        raise ValueError(f"scheme '{scheme}' is not defined under 'schemes'")
    scheme_spec = copy.deepcopy(config["schemes"][scheme])
    protocol_name = scheme_spec["protocol"]
    protocol = {k: copy.deepcopy(v) for k, v in config["protocols"][protocol_name].items() if k not in RUN_LIST_KEYS}
    if model not in protocol["base_lr"]:
        raise ValueError(f"key 'protocols.{protocol_name}.base_lr': no learning rate for model '{model}'")
    protocol["base_lr"] = {model: protocol["base_lr"][model]}
    label_keys, evaluation_keys = protocol_entry(protocol_name)[1:]
    own = {"own_responses": config["own_responses"]} if protocol_name == "chapter3" and config.get("own_responses") else {}
    return {
        "scheme": scheme,
        "model": model,
        "seed": int(seed),
        "scale": config["scale"],
        "device": config["device"],
        "scheme_spec": scheme_spec,
        "protocol_name": protocol_name,
        "protocol": protocol,
        "labels": _subset(config["labels"], label_keys),
        "evaluation": _subset(config["evaluation"], evaluation_keys),
        **own,
    }


def responses_file(spec: Mapping) -> str:
    """The responses table under the data folder a run reads: own responses (config key own_responses, checked
    into own_responses.csv by `softlabels elicit import`) or the CIFAR-10S table."""
    return "own_responses.csv" if spec.get("own_responses") else "cifar10s_responses.csv"


def runs_of(config: Mapping, scheme: str, all_models: bool, seeds: str = "main") -> list[tuple[str, str, int]]:
    """The (scheme, model, seed) runs behind one row of a table or figure: every model of the protocol when
    `all_models`, else `single_model[protocol]`; the protocol's `seeds`, or `seeds_extra` when seeds='extra'."""
    protocol_name = config["schemes"][scheme]["protocol"]
    protocol = config["protocols"][protocol_name]
    models = list(protocol["models"]) if all_models else [config["single_model"][protocol_name]]
    seed_list = protocol.get("seeds_extra", protocol["seeds"]) if seeds == "extra" else protocol["seeds"]
    return [(scheme, m, int(s)) for m in models for s in seed_list]


def build_run_sets(spec: Mapping, data: RunData) -> RunSets:
    """Dispatch on the spec's protocol; a spec with a `validation` block (a hyperparameter-sweep run,
    `softlabels.train.sweeps`) is also evaluated on the validation split of the CIFAR-10 training set."""
    sets = protocol_entry(spec["protocol_name"])[0](spec, data)
    if spec.get("validation"):
        from softlabels.train.sweeps import validation_eval_set

        sets.eval_sets["validation"] = validation_eval_set(spec["validation"], data.data_dir)
    return sets


# ----------------------------------------------------------------------------------------------------------
# Chapter 3
# ----------------------------------------------------------------------------------------------------------
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
    test = balanced_prefix(data.split_test, data.labels, evaluation.get("cifar10h_holdout_limit"))
    return {"soft": soft, "hard": hard, "holdout": holdout, "test": test}


def _pool_sizes(pools) -> np.ndarray:
    return np.asarray(pools.sizes)


def soft_label_pools(spec: Mapping, data: RunData, images: np.ndarray):
    """Label pools of the soft-labelled images under the scheme (thesis §3.2-3.3, appendix B.2/B.4).

    hard / uniform / random (seeded by the run seed) / label_smoothing ((1-β)·y + β/K) / cifar10h (per-annotator
    one-hots, M of them) / cifar10s (one label per response of the variety, M of them); `aggregate: mean`
    replaces each pool by its mean. Returns (pools, annotators per image before aggregation).
    """
    from softlabels import labels as L

    scheme, lab = spec["scheme_spec"], spec["labels"]
    kind = scheme["labels"]
    y = data.labels[images]
    if kind == "hard":
        pools = L.hard_pools(y)
    elif kind == "uniform":
        pools = L.uniform_pools(len(images))
    elif kind == "random":
        pools = L.random_pools(len(images), int(spec["seed"]))
    elif kind == "label_smoothing":
        pools = L.label_smoothing_pools(y, lab["label_smoothing_beta"], normalised=lab["label_smoothing_normalised"])
    elif kind in ("cifar10h", "cifar10s"):
        M = scheme.get("M", "all")
        if kind == "cifar10h":
            pools = L.cifar10h_pools(data.cifar10h_counts[images], M, lab["annotator_subsample_seed"], image_ids=images)
        else:
            variety = scheme.get("variety", "t2_clamp")
            similarity = None
            if "semantic" in variety:
                if data.glove_path is None:
                    raise ValueError(f"scheme '{spec['scheme']}' (variety {variety}) needs the GloVe rows (--glove)")
                similarity = L.semantic_similarity(data.glove_path)
            pools = L.cifar10s_pools(
                data.cifar10s_responses,
                images,
                variety,
                M,
                lab["annotator_subsample_seed"],
                lab["gamma"],
                similarity=similarity,
                path=lab["redistribution_path"],
                semantic_base=lab["semantic_base"],
            )
    else:
        raise ValueError(f"key 'schemes.{spec['scheme']}.labels': unknown label source '{kind}'")
    annotators = float(_pool_sizes(pools).mean()) if len(images) else 0.0
    if scheme.get("aggregate", "none") == "mean":
        pools = pools.mean()
    return pools, annotators


def cifar10s_eval_targets(spec: Mapping, data: RunData, images: np.ndarray) -> np.ndarray:
    """CIFAR-10S hold-out labels: the mean T2-Clamp label over at most `max_responses` responses (the fixed
    subset of `labels.annotator_subsample_seed`)."""
    from softlabels import labels as L

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


def cifar10h_eval_set(spec: Mapping, data: RunData, test: np.ndarray) -> EvalSet:
    """The CIFAR-10H hold-out: CIFAR-10H distribution as target, FGSM target per `fgsm.cifar10h_target`."""
    evaluation = spec["evaluation"]
    targets = data.cifar10h_probs[test]
    fgsm = one_hot(data.labels[test], dtype=np.float32) if evaluation["fgsm"]["cifar10h_target"] == "hard" else targets
    return EvalSet(
        images=data.images[test],
        targets=targets,
        hard_labels=data.labels[test],
        fgsm_targets=fgsm,
        bin_size=evaluation["calibration"]["bin_size"],
        indices=test,
    )


def chapter3_eval_sets(spec: Mapping, data: RunData, split: Mapping[str, np.ndarray]) -> dict[str, EvalSet]:
    """CIFAR-10H hold-out and the per-seed CIFAR-10S hold-out (T2-Clamp mean labels, small calibration bins)."""
    evaluation = spec["evaluation"]
    holdout = split["holdout"]
    s_targets = cifar10s_eval_targets(spec, data, holdout)
    return {
        "cifar10h": cifar10h_eval_set(spec, data, split["test"]),
        "cifar10s": EvalSet(
            images=data.images[holdout],
            targets=s_targets,
            hard_labels=data.labels[holdout],
            fgsm_targets=s_targets,
            bin_size=evaluation["calibration"]["bin_size_cifar10s"],
            indices=holdout,
        ),
    }


def build_chapter3_set(spec: Mapping, data: RunData) -> RunSets:
    """Chapter-3 run: soft-labelled CIFAR-10S training images + hard-labelled rest, two evaluation sets."""
    from softlabels import labels as L

    split = chapter3_split(spec, data)
    soft_pools, annotators = soft_label_pools(spec, data, split["soft"])
    pools = soft_pools.concat(L.hard_pools(data.labels[split["hard"]])) if len(split["hard"]) else soft_pools
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


CHAPTER3_LABEL_KEYS = (
    "gamma",
    "redistribution_path",
    "semantic_base",
    "label_smoothing_beta",
    "label_smoothing_normalised",
    "annotator_subsample_seed",
)
CHAPTER3_EVALUATION_KEYS = ("calibration", "fgsm", "cifar10s_holdout", "cifar10h_holdout_limit")


def protocol_entry(protocol: str) -> tuple[Callable[[Mapping, RunData], RunSets], tuple[str, ...], tuple[str, ...]]:
    """(builder, label keys, evaluation keys) of a protocol: the keys of `labels`/`evaluation` its runs
    depend on (they go into spec.json, so an edit of another key re-runs nothing)."""
    from softlabels.train import synthetic

    protocols = {
        "chapter3": (build_chapter3_set, CHAPTER3_LABEL_KEYS, CHAPTER3_EVALUATION_KEYS),
        "chapter4": (synthetic.build_chapter4_set, synthetic.CHAPTER4_LABEL_KEYS, synthetic.CHAPTER4_EVALUATION_KEYS),
        "chapter5": (synthetic.build_chapter5_set, synthetic.CHAPTER5_LABEL_KEYS, synthetic.CHAPTER5_EVALUATION_KEYS),
    }
    if protocol not in protocols:
        raise ValueError(f"no training-set builder for protocol '{protocol}' (known: {', '.join(sorted(protocols))})")
    return protocols[protocol]


# ----------------------------------------------------------------------------------------------------------
# Groups of runs trained together, and runs that share one training (aliases)
# ----------------------------------------------------------------------------------------------------------
def run_dir(scheme: str, model: str, seed: int) -> str:
    """Folder of one run, relative to the working directory."""
    return f"results/runs/{scheme}/{model}/seed{seed}"


def spec_digest(spec: Mapping) -> str:
    """sha256 of the spec as canonical JSON."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def spec_identity(spec: Mapping) -> str:
    """Digest of what the training sees: the spec without the scheme's name. Runs with one identity are one
    training (e.g. cifar10h_sep_m51 and cifar10h_sep: both `M: all`)."""
    return spec_digest({k: v for k, v in spec.items() if k != "scheme"})


def group_key(spec: Mapping) -> tuple:
    """Runs that may share a fused group: one protocol and model, and one training-set size (n_soft
    schemes and chapter-4 schemes with/without the augmenting set have other sizes)."""
    scheme = spec["scheme_spec"]
    return (spec["protocol_name"], spec["model"], scheme.get("n_soft") or 0, bool(scheme.get("augment")))


@dataclass
class TrainingGroup:
    """One training job: `members` (scheme, model, seed) trained fused; `aliases` (alias run, canonical run)
    whose results it copies (canonical runs are members here or already finished)."""

    name: str
    protocol: str
    model: str
    members: list[tuple[str, str, int]]
    aliases: list[tuple[tuple[str, str, int], tuple[str, str, int]]]


def near_equal_chunks(items: list, size: int) -> list[list]:
    """`items` cut into k = ⌈n / size⌉ consecutive chunks of ⌊n/k⌋ or ⌈n/k⌉ (chunk i = items[⌊i·n/k⌋ :
    ⌊(i+1)·n/k⌋]): 20 runs at size 16 become 10 + 10, not 16 + 4, since a fused job costs about as much
    device time as its largest sibling."""
    n = len(items)
    k = -(-n // size) if n else 0
    return [items[i * n // k : (i + 1) * n // k] for i in range(k)]


def check_group_precision(config: Mapping, protocol: str, size: int) -> None:
    """bf16 with fused groups is refused before any job starts (`softlabels.train.trainer.resolve_precision`)."""
    if size > 1 and config["protocols"][protocol].get("precision", "fp32") == "bf16":
        raise ValueError(
            f"key 'protocols.{protocol}.precision' is bf16 with 'protocols.{protocol}.group_size' {size}: bf16 "
            "autocast does not reach fused (vmap) convolutions; set the precision to fp32 or auto, or group_size to 1")


def plan_training(config: Mapping, runs, finished: Callable[[tuple, Mapping], bool]):
    """Group the runs that are not finished into training jobs.

    `finished(run, spec)` says whether a run's outputs are current (the workflow: metrics.json exists, records
    this spec and is newer than the run's inputs). Runs of one `spec_identity` train once: the canonical run
    is a finished, trained (not copied) one if there is one, else the smallest scheme name; the others are
    aliases. To-do canonical runs are sorted by (`group_key`, scheme, seed) and cut into chunks of
    `protocols.<p>.group_size`; a group is named by its model and a digest of its members' specs, so a
    change of any member's spec names a new group. Returns (groups, specs by run)."""
    specs = {run: run_spec(config, *run) for run in sorted(set(runs))}
    by_identity: dict[str, list] = {}
    for run, spec in specs.items():
        by_identity.setdefault(spec_identity(spec), []).append(run)
    status = {run: finished(run, spec) for run, spec in specs.items()}
    canonical_of = {}
    for same in by_identity.values():
        trained = [r for r in same if status[r] == "trained"]
        canonical = min(trained) if trained else min(same)
        for run in same:
            canonical_of[run] = canonical
    todo = [r for r in specs if canonical_of[r] == r and not status[r]]
    alias_todo = [(r, canonical_of[r]) for r in specs if canonical_of[r] != r and not status[r]]
    chunks: dict[tuple, list] = {}
    for run in sorted(todo, key=lambda r: (group_key(specs[r]), r)):
        chunks.setdefault(group_key(specs[run]), []).append(run)
    groups = []
    for key, members in chunks.items():
        protocol, model = key[0], key[1]
        size = max(1, int(config["protocols"][protocol].get("group_size", 1)))
        check_group_precision(config, protocol, size)
        for part in near_equal_chunks(members, size):
            groups.append((protocol, model, part))
    result = []
    placed = set()
    for protocol, model, part in groups:
        aliases = [(a, c) for a, c in alias_todo if c in part]
        placed.update(a for a, _ in aliases)
        digest = hashlib.sha256("".join(spec_digest(specs[r]) for r in part).encode()).hexdigest()[:10]
        result.append(TrainingGroup(f"{model}-{digest}", protocol, model, part, aliases))
    for alias, canonical in alias_todo:
        if alias not in placed:  # the canonical run is finished: a copy job
            digest = hashlib.sha256(spec_digest(specs[alias]).encode()).hexdigest()[:10]
            result.append(TrainingGroup(f"alias-{digest}", specs[alias]["protocol_name"], alias[1], [], [(alias, canonical)]))
    return result, specs, canonical_of


def approximate_train_size(spec: Mapping) -> int:
    """Training images of a run from its spec alone (the builders give the exact number): chapter 3:
    `n_soft`, else the soft images (CIFAR-10S minus the hold-out: 1000 − size) + `hard_image_limit` (or
    the 6000 other split images); chapter 4: `hard_image_limit` or 7000, + 810 stimuli with `augment`;
    chapter 5: `hard_image_limit` or 7000."""
    scheme, protocol = spec["scheme_spec"], spec["protocol"]
    limit = protocol.get("hard_image_limit")
    if spec["protocol_name"] == "chapter3":
        if scheme.get("n_soft"):
            return int(scheme["n_soft"])
        return 1000 - int(spec["evaluation"]["cifar10s_holdout"]["size"]) + int(limit if limit is not None else 6000)
    n = int(limit if limit is not None else 7000)
    return n + (810 if spec["protocol_name"] == "chapter4" and scheme.get("augment") else 0)
