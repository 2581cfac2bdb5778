"""Groups of runs trained together, and runs that share one training (aliases).

`config_groups` cuts the runs of the config into training jobs, from the config alone: runs of one
`spec_identity` train once (the others are aliases that copy its results), and the rest are grouped by
`group_key` into fused groups of at most `protocols.<p>.group_size` runs (`softlabels.train.trainer.fit_group`).
Which members of a group still need training is decided when the job runs (`softlabels.experiments.runs.run_is_current`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from softlabels.experiments.runs import run_spec, spec_digest


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


def config_groups(config: Mapping, runs) -> tuple[list, dict, dict]:
    """The training groups of `runs`, from the config alone (nothing on disk is read): runs of one
    `spec_identity` train once, the smallest (scheme, model, seed) being the trained one and the others its
    aliases, copied by the same job; the trained runs are sorted by (`group_key`, scheme, seed) and cut per
    `group_key` into near-equal chunks of at most `protocols.<p>.group_size`. A group is named after its first member,
    `<model>.<scheme>.seed<seed>`. A new seed or scheme can move finished runs into other groups: such a job
    trains only its members that are not `run_is_current`.
    Returns (groups, spec by run, canonical run by run)."""
    specs = {run: run_spec(config, *run) for run in sorted(set(runs))}
    first_of: dict[str, tuple] = {}
    for run, spec in specs.items():  # sorted: the first run of an identity is its canonical run
        first_of.setdefault(spec_identity(spec), run)
    canonical_of = {run: first_of[spec_identity(spec)] for run, spec in specs.items()}
    blocks: dict[tuple, list] = {}
    for run in specs:
        if canonical_of[run] == run:
            blocks.setdefault(group_key(specs[run]), []).append(run)
    groups = []
    for key, members in sorted(blocks.items()):
        protocol, model = key[0], key[1]
        size = max(1, int(config["protocols"][protocol].get("group_size", 1)))
        check_group_precision(config, protocol, size)
        for part in near_equal_chunks(members, size):
            aliases = [(run, canonical_of[run]) for run in specs if canonical_of[run] in part and canonical_of[run] != run]
            name = f"{model}.{part[0][0]}.seed{part[0][2]}"
            groups.append(TrainingGroup(name, protocol, model, part, aliases))
    return groups, specs, canonical_of


def approximate_train_size(spec: Mapping) -> int:
    """Training images of a run from its spec alone (the builders give the exact number): chapter 3:
    `n_soft`, else the soft images (CIFAR-10S minus the hold-out: 1000 − size) + `hard_image_limit` (or
    the 6000 other split images); chapter 4: `hard_image_limit` or 7000, + the augmenting set with `augment`
    (810 stimuli, or 3 · 45 · `augmenting_pairs`); chapter 5: `hard_image_limit` or 7000."""
    scheme, protocol = spec["scheme_spec"], spec["protocol"]
    limit = protocol.get("hard_image_limit")
    if spec["protocol_name"] == "chapter3":
        if scheme.get("n_soft"):
            return int(scheme["n_soft"])
        return 1000 - int(spec["evaluation"]["cifar10s_holdout"]["size"]) + int(limit if limit is not None else 6000)
    n = int(limit if limit is not None else 7000)
    pairs = protocol.get("augmenting_pairs")
    stimuli = 810 if pairs is None else 3 * 45 * int(pairs)
    return n + (stimuli if spec["protocol_name"] == "chapter4" and scheme.get("augment") else 0)
