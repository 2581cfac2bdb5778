"""Runs: which settings make a run, where it lives, and what its result depends on.

A run is (scheme, model, seed). `run_spec` turns the effective configuration into the exact settings that
produce the run (written to `results/runs/{scheme}/{model}/seed{seed}/spec.json`, so every run records what
made it). Only the `labels` and `evaluation` keys that a run of its protocol reads go into its spec
(`SPEC_KEYS`), so an edit of another key retrains nothing; `run_key` adds its input files' digests, and a run
is current when its metrics.json records that key. Nothing here trains or reads data: the training-set
builders are in `softlabels.train`.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Callable, Mapping, Sequence

from softlabels.experiments.selections import mark_selected

#: Keys of a protocol block that list which runs exist (or how jobs are cut and what they ask the scheduler
#: for, and cuDNN's algorithm search) rather than how one run is trained; left out of a run's spec so that adding
#: a seed or a model re-runs nothing else.
RUN_LIST_KEYS = ("models", "seeds", "seeds_extra", "resources", "group_size", "cudnn_benchmark")
#: Spec keys that say how a run executes, not what it computes: recorded in metrics.json, left out of its key
#: (`--config device=cpu` after a CUDA build retrains nothing).
HOW_TO_RUN_SPEC_KEYS = ("device",)

#: `labels` keys a chapter-3 run may read. Every run reads the first three (its CIFAR-10S hold-out labels are
#: T2-Clamp means); the others only where `chapter3_label_keys` says.
CHAPTER3_LABEL_KEYS = (
    "gamma",
    "redistribution_path",
    "annotator_subsample_seed",
    "semantic_base",
    "label_smoothing_beta",
    "label_smoothing_normalised",
    "label_smoothing_scope",
)
#: `labels` keys a chapter-4 run may read.
CHAPTER4_LABEL_KEYS = ("confidence_gamma",)
#: `labels` keys a chapter-5 run may read.
CHAPTER5_LABEL_KEYS = (
    "gamma",
    "redistribution_path",
    "annotator_subsample_seed",
    "simulator_entropy_threshold",
    "simulator_seed",
    "simulator_use_beta_scale",
    "tau_stimuli",
)


def chapter3_label_keys(scheme: Mapping) -> tuple[str, ...]:
    """The `labels` keys a chapter-3 run of `scheme` reads: label smoothing's keys for `labels:
    label_smoothing`, `semantic_base` for the semantic varieties, the hold-out's three keys always. So an edit
    of β retrains only the label-smoothing runs."""
    smoothing = scheme["labels"] == "label_smoothing"
    semantic = scheme["labels"] == "cifar10s" and "semantic" in scheme.get("variety", "t2_clamp")
    wanted = {"semantic_base": semantic, "label_smoothing_beta": smoothing, "label_smoothing_normalised": smoothing,
              "label_smoothing_scope": smoothing}
    return tuple(k for k in CHAPTER3_LABEL_KEYS if wanted.get(k, True))


def chapter4_label_keys(scheme: Mapping) -> tuple[str, ...]:
    """The `labels` keys a chapter-4 run reads: the confidence smoothing's γ for the *_conf labels only."""
    return CHAPTER4_LABEL_KEYS if str(scheme.get("augment")).endswith("_conf") else ()


def chapter5_label_keys(scheme: Mapping) -> tuple[str, ...]:
    """The `labels` keys a chapter-5 run reads: the CIFAR-10S construction and the simulator for soft
    endpoints, `tau_stimuli` for τ mixing; none for plain hard endpoints."""
    soft = scheme.get("endpoints", "hard") == "soft"
    tau = scheme.get("target_mix", "linear") == "tau"
    return tuple(k for k in CHAPTER5_LABEL_KEYS if (k == "tau_stimuli" and tau) or (k != "tau_stimuli" and soft))


#: (the `labels` keys a scheme's run reads, the `evaluation` keys) of each protocol: they go into its spec.json.
SPEC_KEYS: dict[str, tuple[Callable[[Mapping], tuple[str, ...]], tuple[str, ...]]] = {
    "chapter3": (chapter3_label_keys, ("calibration", "fgsm", "cifar10s_holdout", "cifar10h_holdout_limit")),
    "chapter4": (chapter4_label_keys, ("calibration", "fgsm", "cifar10h_holdout_limit")),
    "chapter5": (chapter5_label_keys, ("calibration", "fgsm", "cifar10h_holdout_limit", "corruption")),
}


def spec_keys(protocol: str) -> tuple[Callable[[Mapping], tuple[str, ...]], tuple[str, ...]]:
    """(label keys of a scheme, evaluation keys) of a protocol (`SPEC_KEYS`)."""
    if protocol not in SPEC_KEYS:
        raise ValueError(f"no training-set builder for protocol '{protocol}' (known: {', '.join(sorted(SPEC_KEYS))})")
    return SPEC_KEYS[protocol]


def _subset(block: Mapping, keys: tuple[str, ...] | None) -> dict:
    block = copy.deepcopy(dict(block))
    return block if keys is None else {k: block[k] for k in keys if k in block}


def run_spec(config: Mapping, scheme: str, model: str, seed: int, selections: bool = True) -> dict:
    """The effective settings of run (scheme, model, seed): everything that changes its result.

    The protocol block keeps only this model's learning rate and drops the run lists (models, seeds), and the
    labels/evaluation blocks keep the keys the protocol says the scheme reads, so unrelated edits do not re-run it.
    With `sweeps.apply`, each setting a sweep selects holds that sweep's marker instead of the configured value
    (`softlabels.experiments.selections`; `selections=False`: the configured values, as the sweep points use).
    """
    if scheme not in config["schemes"]:
        raise ValueError(f"scheme '{scheme}' is not defined under 'schemes'")
    scheme_spec = copy.deepcopy(config["schemes"][scheme])
    protocol_name = scheme_spec["protocol"]
    protocol = {k: copy.deepcopy(v) for k, v in config["protocols"][protocol_name].items() if k not in RUN_LIST_KEYS}
    if model not in protocol["base_lr"]:
        raise ValueError(f"key 'protocols.{protocol_name}.base_lr': no learning rate for model '{model}'")
    protocol["base_lr"] = {model: protocol["base_lr"][model]}
    scheme_label_keys, evaluation_keys = spec_keys(protocol_name)
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


def result_group(name: str) -> str:
    """The config group that defines the result set `name`: `figures` for fig..., else `tables` (the schema
    holds the names of each group to these prefixes)."""
    return "figures" if name.startswith("fig") else "tables"


def result_set(config: Mapping, name: str) -> Mapping:
    """The block `tables.<name>` or `figures.<name>`. A job's config holds only the blocks its command reads, so
    the other group may be absent."""
    return config[result_group(name)][name]


def runs_of(config: Mapping, scheme: str, all_models: bool, seeds: str = "main") -> list[tuple[str, str, int]]:
    """The (scheme, model, seed) runs behind one row of a table or figure: every model of the protocol when
    `all_models`, else `single_model[protocol]`; the protocol's `seeds`, or `seeds_extra` when seeds='extra'."""
    protocol_name = config["schemes"][scheme]["protocol"]
    protocol = config["protocols"][protocol_name]
    models = list(protocol["models"]) if all_models else [config["single_model"][protocol_name]]
    seed_list = protocol.get("seeds_extra", protocol["seeds"]) if seeds == "extra" else protocol["seeds"]
    return [(scheme, m, int(s)) for m in models for s in seed_list]


def run_dir(scheme: str, model: str, seed: int) -> str:
    """Folder of one run, relative to the working directory."""
    return f"results/runs/{scheme}/{model}/seed{seed}"


def spec_digest(spec: Mapping) -> str:
    """sha256 of the spec as canonical JSON."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run_key(spec: Mapping, input_digests: Sequence[str]) -> str:
    """What a run's result depends on, as one digest: sha256 of its spec without the `HOW_TO_RUN_SPEC_KEYS`
    and of the sorted sha256 of its input files. Recorded in metrics.json as `run_key`."""
    what = {k: v for k, v in spec.items() if k not in HOW_TO_RUN_SPEC_KEYS}
    text = json.dumps({"spec": what, "inputs": sorted(input_digests)}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def recorded_run_key(folder: str | Path) -> str | None:
    """The `run_key` a run's metrics.json records (None: no metrics.json, unreadable, or none recorded)."""
    try:
        return json.loads((Path(folder) / "metrics.json").read_text()).get("run_key")
    except (OSError, ValueError, AttributeError):
        return None


def run_is_current(folder: str | Path, key: str) -> bool:
    """The one rerun decision for a training run: it is finished iff its metrics.json records `key`, the
    `run_key` of its current spec and inputs (a diverged run's record counts: it is that spec's result)."""
    return recorded_run_key(folder) == key
