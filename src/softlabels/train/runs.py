"""Which builder makes a run's data sets.

`build_run_sets` turns a run's spec (`softlabels.experiments.runs.run_spec`) and the parsed data
(`softlabels.train.run_data.RunData`) into the training images + label pools and the evaluation sets, with the
builder of the spec's protocol: `BUILDERS` maps each protocol to `build_chapterN_set(spec, data) -> RunSets` of
`softlabels.train.chapter3`, `chapter4` or `chapter5`.
"""

from __future__ import annotations

from typing import Callable, Mapping

from softlabels.train import chapter3, chapter4, chapter5
from softlabels.train.run_data import RunData, RunSets, validation_eval_set

#: The training-set builder of each protocol.
BUILDERS: dict[str, Callable[[Mapping, RunData], RunSets]] = {
    "chapter3": chapter3.build_chapter3_set,
    "chapter4": chapter4.build_chapter4_set,
    "chapter5": chapter5.build_chapter5_set,
}


def training_set_builder(protocol: str) -> Callable[[Mapping, RunData], RunSets]:
    """The builder of a protocol (`BUILDERS`)."""
    if protocol not in BUILDERS:
        raise ValueError(f"no training-set builder for protocol '{protocol}' (known: {', '.join(sorted(BUILDERS))})")
    return BUILDERS[protocol]


def build_run_sets(spec: Mapping, data: RunData) -> RunSets:
    """Dispatch on the spec's protocol; a spec with a `validation` block (a hyperparameter-sweep run,
    `softlabels.experiments.sweeps`) is also evaluated on the validation split of the CIFAR-10 training set."""
    sets = training_set_builder(spec["protocol_name"])(spec, data)
    if spec.get("validation"):
        sets.eval_sets["validation"] = validation_eval_set(spec["validation"], data.data_dir)
    return sets
