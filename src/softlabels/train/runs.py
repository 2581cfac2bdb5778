"""Runs: which settings make a run, where it lives, and which builder makes its data sets.

A run is (scheme, model, seed). `run_spec` turns the effective configuration into the exact settings that
produce the run (written to `results/runs/{scheme}/{model}/seed{seed}/spec.json`, so every run records what
made it); `build_run_sets` turns a spec and the parsed data (`softlabels.train.run_data.RunData`) into the
training images + label pools and the evaluation sets, with the builder of the spec's protocol:
`PROTOCOLS` maps each protocol to its module (`softlabels.train.chapter3`, `chapter4`, `chapter5`), which
gives the builder `build_chapterN_set(spec, data) -> RunSets` and the label/evaluation keys its runs depend on.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Callable, Mapping

from softlabels.train import chapter3, chapter4, chapter5
from softlabels.train.run_data import RunData, RunSets, validation_eval_set
from softlabels.train.selections import mark_selected

#: Keys of a protocol block that list which runs exist (or how jobs are cut and what they ask the scheduler
#: for, and cuDNN's algorithm search) rather than how one run is trained; left out of a run's spec so that adding a seed or a model re-runs nothing else.
RUN_LIST_KEYS = ("models", "seeds", "seeds_extra", "resources", "group_size", "cudnn_benchmark")
#: (builder, label keys of a scheme, evaluation keys) of each protocol: the keys of `labels`/`evaluation` a run
#: depends on go into its spec.json, so an edit of another key re-runs nothing.
PROTOCOLS = {
    "chapter3": (chapter3.build_chapter3_set, chapter3.label_keys, chapter3.EVALUATION_KEYS),
    "chapter4": (chapter4.build_chapter4_set, chapter4.label_keys, chapter4.EVALUATION_KEYS),
    "chapter5": (chapter5.build_chapter5_set, chapter5.label_keys, chapter5.EVALUATION_KEYS),
}


def protocol_entry(protocol: str) -> tuple[Callable[[Mapping, RunData], RunSets], Callable[[Mapping], tuple[str, ...]],
                                           tuple[str, ...]]:
    """(builder, label keys of a scheme, evaluation keys) of a protocol (`PROTOCOLS`)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"no training-set builder for protocol '{protocol}' (known: {', '.join(sorted(PROTOCOLS))})")
    return PROTOCOLS[protocol]


def _subset(block: Mapping, keys: tuple[str, ...] | None) -> dict:
    block = copy.deepcopy(dict(block))
    return block if keys is None else {k: block[k] for k in keys if k in block}


def run_spec(config: Mapping, scheme: str, model: str, seed: int, selections: bool = True) -> dict:
    """The effective settings of run (scheme, model, seed): everything that changes its result.

    The protocol block keeps only this model's learning rate and drops the run lists (models, seeds), and the
    labels/evaluation blocks keep the keys the protocol says the scheme reads, so unrelated edits do not re-run it.
    With `sweeps.apply`, each setting a sweep selects holds that sweep's marker instead of the configured value
    (`softlabels.train.selections`; `selections=False`: the configured values, as the sweep points use).
    """
    if scheme not in config["schemes"]:
        raise ValueError(f"scheme '{scheme}' is not defined under 'schemes'")
    scheme_spec = copy.deepcopy(config["schemes"][scheme])
    protocol_name = scheme_spec["protocol"]
    protocol = {k: copy.deepcopy(v) for k, v in config["protocols"][protocol_name].items() if k not in RUN_LIST_KEYS}
    if model not in protocol["base_lr"]:
        raise ValueError(f"key 'protocols.{protocol_name}.base_lr': no learning rate for model '{model}'")
    protocol["base_lr"] = {model: protocol["base_lr"][model]}
    scheme_label_keys, evaluation_keys = protocol_entry(protocol_name)[1:]
    own = {"own_responses": config["own_responses"]} if protocol_name == "chapter3" and config.get("own_responses") else {}
    spec = {
        "scheme": scheme,
        "model": model,
        "seed": int(seed),
        "scale": config["scale"],
        "device": config["device"],
        "scheme_spec": scheme_spec,
        "protocol_name": protocol_name,
        "protocol": protocol,
        "labels": _subset(config["labels"], scheme_label_keys(scheme_spec)),
        "evaluation": _subset(config["evaluation"], evaluation_keys),
        **own,
    }
    return mark_selected(spec, config) if selections else spec


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
        sets.eval_sets["validation"] = validation_eval_set(spec["validation"], data.data_dir)
    return sets


def run_dir(scheme: str, model: str, seed: int) -> str:
    """Folder of one run, relative to the working directory."""
    return f"results/runs/{scheme}/{model}/seed{seed}"


def spec_digest(spec: Mapping) -> str:
    """sha256 of the spec as canonical JSON."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()
