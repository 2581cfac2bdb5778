"""From the configuration to the runs, with nothing trained or read from disk: the floor every stage stands on.

- `runs`: a run's spec (`run_spec`), its folder, the runs behind a table row, and its `run_key`;
- `groups`: how the runs are cut into training jobs, and which share one training;
- `sweeps`: the runs of a hyperparameter sweep;
- `selections`: the settings whose value a sweep selects (`sweeps.apply`).
"""
