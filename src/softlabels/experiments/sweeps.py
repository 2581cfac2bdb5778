"""Hyperparameter-sweep points (thesis §3.3, §5.2, appendix B.2): which runs a sweep is made of.

A sweep (`sweeps.grids.<name>` of the configuration) varies one dotted config key over a list of values; a sweep
point is the run spec of the sweep's scheme (`softlabels.experiments.runs.run_spec`, with the configured values
of every other setting) computed from the configuration with that key set to the value, plus a `validation`
block, the split it is also evaluated on. Runs live under `results/sweeps/{sweep}/{value}/{model}/seed{seed}/`.
The sweep's table and the value it selects are built in `softlabels.report.sweeps`; the validation split in
`softlabels.train.sweeps`.
"""

from __future__ import annotations

import copy
from typing import Mapping

from softlabels.config import ConfigError, set_dotted, setting
from softlabels.experiments.runs import run_spec
from softlabels.experiments.selections import active_grids


def grid(config: Mapping, sweep: str) -> Mapping:
    grids = active_grids(config)
    if sweep not in grids:
        raise ConfigError(f"key 'sweeps.grids.{sweep}' is not set (known: {', '.join(sorted(grids)) or 'none'})")
    return grids[sweep]


def value_name(value) -> str:
    """Folder name of a swept value (`str` of the configured number: 0.001, 10, 0.0)."""
    return str(value)


def sweep_model(config: Mapping, sweep: str) -> str:
    """The sweep's model: `model`, or `single_model` of its scheme's protocol when null."""
    g = grid(config, sweep)
    scheme = config["schemes"].get(g["scheme"])
    if scheme is None:
        raise ConfigError(f"key 'sweeps.grids.{sweep}.scheme': scheme '{g['scheme']}' is not defined under 'schemes'")
    return g.get("model") or config["single_model"][scheme["protocol"]]


def sweep_points(config: Mapping, sweep: str) -> list[tuple[str, str, str, int]]:
    """(sweep, value name, model, seed) of every run of a sweep."""
    g, model = grid(config, sweep), sweep_model(config, sweep)
    return [(sweep, value_name(v), model, int(s)) for v in g["values"] for s in config["sweeps"]["seeds"]]


def sweep_dir(sweep: str, value: str, model: str, seed: int) -> str:
    return f"results/sweeps/{sweep}/{value}/{model}/seed{seed}"


def _with_value(config: Mapping, key: str, value, where: str) -> dict:
    """A copy of the configuration with the dotted `key` (which must be set already) replaced by `value`."""
    if isinstance(setting(config, key), (dict, list)):  # setting: a ConfigError naming the key when it is absent
        raise ConfigError(f"key '{where}': '{key}' is not a single setting")
    out = copy.deepcopy(dict(config))
    set_dotted(out, key, value)
    return out


def point_spec(config: Mapping, sweep: str, value: str, seed: int) -> dict:
    """The spec of one sweep run: `run_spec` of the sweep's scheme under the configuration with the swept key
    set to `value`, plus `sweep` {name, key, value} and `validation` (the `sweeps.validation` block)."""
    g = grid(config, sweep)
    matches = [v for v in g["values"] if value_name(v) == str(value)]
    if not matches:
        raise ConfigError(f"key 'sweeps.grids.{sweep}.values': {value} is not one of {g['values']}")
    model = sweep_model(config, sweep)
    changed = _with_value(config, g["key"], matches[0], f"sweeps.grids.{sweep}.key")
    try:
        spec = run_spec(changed, g["scheme"], model, int(seed), selections=False)
    except ValueError as exc:
        raise ConfigError(f"sweeps.grids.{sweep}: {exc}") from None
    other = _with_value(config, g["key"], _other(matches[0]), sweep)
    if spec == run_spec(other, g["scheme"], model, int(seed), selections=False):
        raise ConfigError(f"key 'sweeps.grids.{sweep}.key': {g['key']} does not change the runs of scheme "
                          f"'{g['scheme']}' with model {model}")
    spec["sweep"] = {"name": sweep, "key": g["key"], "value": matches[0]}
    spec["validation"] = copy.deepcopy(dict(config["sweeps"]["validation"]))
    return spec


def _other(value):
    """A number different from `value` (to check that the swept key reaches the run)."""
    return value + 1 if isinstance(value, (int, float)) and not isinstance(value, bool) else None


#: The settings `validation-split` reads besides `sweeps.validation` when the source is `unused_split`: what
#: decides which split images the runs train on.
UNUSED_SPLIT_KEYS = ("protocols.chapter3.hard_image_limit", "protocols.chapter4.hard_image_limit",
                     "protocols.chapter4.augmenting_pairs", "protocols.chapter5.hard_image_limit",
                     "protocols.chapter5.augmenting_pairs", "own_responses")


def validation_settings(config: Mapping) -> list[str]:
    """The settings the validation split depends on (its rule declares them)."""
    source = config["sweeps"]["validation"].get("source", "cifar10_train")
    return ["sweeps.validation", *(UNUSED_SPLIT_KEYS if source == "unused_split" else ())]
