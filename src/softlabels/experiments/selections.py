"""Selected hyperparameters: values chosen by the sweeps (thesis §3.3, §5.2, appendix B.2) that the runs of the
tables and claims then use (config `sweeps.apply`; docs/protocol.md#hyperparameter-selection).

With `sweeps.apply: true`, every key a sweep lists in `apply_to` (default: its own `key`) is *selected*: a run
whose spec holds that setting gets, in place of the configured value, a marker
``{"selected_by": <sweep>, "values": [...], "criterion": <criterion>}`` (`mark_selected`). The marker, not the
value, is part of the run's spec and run key, so the DAG is known before any sweep ran; the sweep's selection file
(`results/sweeps/<sweep>/selected.json`, written with the sweep table) is an input of the run's training job,
whose digest enters the run key, and the job puts the selected value in place of the marker before it trains
(`resolve_selected`): spec.json and metrics.json hold the value that was used, and `selected` says which sweep
chose it. Sweep points themselves use the configured values (each hyperparameter is selected with the others
at their configured values).

A dotted config key reaches a run's spec as follows: `labels.K` → spec.labels.K, `evaluation.K...` →
spec.evaluation.K..., `protocols.P.K...` → spec.protocol.K... for runs of protocol P (a `base_lr.<model>` only
for runs of that model), `schemes.S.K` → spec.scheme_spec.K for runs of scheme S; a key a run's spec lacks
does not apply to it.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Mapping, Sequence

MARKER = "selected_by"


def selection_file(sweep: str) -> str:
    """Where the sweep table's rule writes the value a sweep selected."""
    return f"results/sweeps/{sweep}/selected.json"


def active_grids(config: Mapping) -> dict:
    """The sweeps of the configuration (`sweeps.grids`, without the ones a scale set to null)."""
    grids = (config.get("sweeps") or {}).get("grids") or {}
    return {name: g for name, g in grids.items() if g is not None}


def apply_keys(grid: Mapping) -> list[str]:
    """The dotted config keys a sweep's selection replaces: `apply_to`, default its own `key`."""
    return list(grid.get("apply_to") or [grid["key"]])


def selected_keys(config: Mapping) -> dict[str, str]:
    """{dotted config key: sweep} of the keys whose value comes from a sweep (empty unless `sweeps.apply`)."""
    sweeps = config.get("sweeps") or {}
    if not sweeps.get("apply"):
        return {}
    # softlabels.config.check_sweeps has refused unset keys and keys two sweeps select
    return {key: name for name, grid in active_grids(config).items() for key in apply_keys(grid)}


def spec_path(spec: Mapping, key: str) -> tuple[str, ...] | None:
    """Path inside a run spec of the dotted config `key`, or None when the run does not read it (module
    docstring)."""
    parts = key.split(".")
    if parts[0] in ("labels", "evaluation"):
        path = tuple(parts)
    elif parts[0] == "protocols" and len(parts) > 2 and parts[1] == spec["protocol_name"]:
        path = ("protocol", *parts[2:])
    elif parts[0] == "schemes" and len(parts) > 2 and parts[1] == spec["scheme"]:
        path = ("scheme_spec", *parts[2:])
    else:
        return None
    node = spec
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return path


def _set(spec: dict, path: Sequence[str], value) -> None:
    node = spec
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


def mark_selected(spec: dict, config: Mapping) -> dict:
    """`spec` with each selected setting it holds replaced by its sweep's marker (in place; returned)."""
    grids = active_grids(config)
    criterion = (config.get("sweeps") or {}).get("criterion")
    for key, sweep in selected_keys(config).items():
        path = spec_path(spec, key)
        if path is not None:
            _set(spec, path, {MARKER: sweep, "values": list(grids[sweep]["values"]), "criterion": criterion})
    return spec


def markers(spec: Mapping, path: tuple = ()) -> list[tuple[tuple, dict]]:
    """(path, marker) of every selected setting in `spec`."""
    if isinstance(spec, Mapping):
        if MARKER in spec:
            return [(path, dict(spec))]
        return [item for k, v in spec.items() for item in markers(v, (*path, k))]
    return []


def spec_sweeps(spec: Mapping) -> list[str]:
    """The sweeps whose selections a run waits for, sorted."""
    return sorted({m[MARKER] for _, m in markers(spec)})


def read_selection(path: str | Path) -> dict:
    """A sweep's selection file: {sweep, key, apply_to, value, criterion, values}; ValueError naming the file."""
    try:
        record = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ValueError(f"selection file {path} is missing (written by the sweep table rule)") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"selection file {path} is not valid JSON: line {exc.lineno}: {exc.msg}") from None
    if not isinstance(record, dict) or not {"sweep", "value", "values"} <= set(record):
        raise ValueError(f"selection file {path} lacks sweep, value or values")
    return record


def resolve_selected(spec: Mapping, selections: Mapping[str, Mapping]) -> dict:
    """A copy of `spec` with each marker replaced by the value its sweep selected (`selections`: {sweep: the
    record of `read_selection`}), and `selected` = {dotted spec path: {sweep, value}}. ValueError naming the
    sweep when its selection is not given or was made over other values than the marker's."""
    out = copy.deepcopy(dict(spec))
    chosen = {}
    for path, marker in markers(out):
        sweep = marker[MARKER]
        if sweep not in selections:
            raise ValueError(f"run {spec.get('scheme')}/{spec.get('model')}/seed{spec.get('seed')}: its setting "
                             f"{'.'.join(path)} comes from sweep '{sweep}', whose selection was not given")
        record = selections[sweep]
        if list(record["values"]) != list(marker["values"]):
            raise ValueError(f"sweep '{sweep}': the selection was made over {record['values']}, the run expects "
                             f"{marker['values']}; rebuild the sweep table")
        _set(out, path, record["value"])
        chosen[".".join(path)] = {"sweep": sweep, "value": record["value"]}
    if chosen:
        out["selected"] = chosen
    return out
