"""The run key of every training run and sweep run, at every scale, equals the one recorded in
tests/run_keys.json, so a change to the config files or to how specs are built retrains nothing by accident.

A change that means to alter runs (a new protocol setting, a corrected default) rewrites the record on purpose,
and its commit shows which runs train again:

    python tests/test_run_keys.py --write

The record was first written from the tree before the config moved out of config.yaml (issue 27), and this
test held the move to it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RECORD = Path(__file__).resolve().parent / "run_keys.json"
SCALES = ("paper", "quick", "smoke")


def run_keys(repo: Path) -> dict[str, dict[str, str]]:
    """{scale: {"<scheme>/<model>/<seed>" or "sweep:<sweep>/<value>/<model>/<seed>": run key}} of the project
    at `repo` (its config.yaml), with no input files (`run_key(spec, [])`: the part a config edit changes)."""
    from softlabels import config as softlabels_config
    from softlabels.experiments.runs import run_key, run_spec, runs_of
    from softlabels.experiments.selections import active_grids
    from softlabels.experiments.sweeps import point_spec, sweep_points

    out = {}
    for scale in SCALES:
        config = softlabels_config.load([repo / "config.yaml"], {"scale": scale, "data_mirror": ""})
        keys = {}
        for kind in ("tables", "figures"):
            for result_set in config[kind].values():
                for row in result_set["rows"]:
                    for scheme, model, seed in runs_of(config, row, result_set["all_models"],
                                                       result_set.get("seeds", "main")):  # fmt: skip
                        keys[f"{scheme}/{model}/{seed}"] = run_key(run_spec(config, scheme, model, seed), [])
        for sweep in active_grids(config):
            for name, value, model, seed in sweep_points(config, sweep):
                keys[f"sweep:{name}/{value}/{model}/{seed}"] = run_key(point_spec(config, name, value, seed), [])
        out[scale] = dict(sorted(keys.items()))
    return out


def test_every_run_key_is_the_recorded_one():
    from conftest import REPO

    recorded = json.loads(RECORD.read_text())
    now = run_keys(REPO)
    for scale in SCALES:
        changed = sorted(k for k in recorded[scale] if now[scale].get(k) != recorded[scale][k])
        added = sorted(set(now[scale]) - set(recorded[scale]))
        assert not changed and not added, (
            f"scale {scale}: {len(changed)} runs would train again ({', '.join(changed[:5])}) and {len(added)} are "
            f"new ({', '.join(added[:5])}); if meant, rewrite the record: python tests/test_run_keys.py --write"
        )
    assert sum(map(len, recorded.values())) > 300  # the record covers the thesis' runs at three scales


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/test_run_keys.py --write   (rewrites tests/run_keys.json from this tree)")
    repo = Path(__file__).resolve().parents[1]
    RECORD.write_text(json.dumps(run_keys(repo), indent=1) + "\n")
    print(f"wrote {RECORD}: " + ", ".join(f"{s} {len(v)} runs" for s, v in json.loads(RECORD.read_text()).items()))
