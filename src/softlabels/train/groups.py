"""Groups of runs trained together, and runs that share one training (aliases).

`plan_training` cuts the runs that are not finished into training jobs: runs of one `spec_identity` train
once (the others are aliases that copy its results), and the rest are grouped by `group_key` into fused
groups of at most `protocols.<p>.group_size` runs (`softlabels.train.trainer.fit_group`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable, Mapping

from softlabels.train.runs import run_spec, spec_digest


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
