"""Stored responses -> the tables the pipeline reads.

- soft_label: the tidy per-response table of `softlabels.data.cifar10s` (columns `COLUMNS`): `image` the CIFAR-10
  test index (or `class/file` of a folder study), `subject` the participant ID, `task` `spec_conf` for a first
  answer and `rerun_spec_conf` for a repeat (the CIFAR-10S task names), `trial` the position in the batch,
  probabilities in percent, `impossible` '|'-joined, `rt_ms`.
- mixing: the H-Mix judgment table of `softlabels.data.hmix` (`JUDGMENT_COLUMNS`): λ_h is the share of image 1
  (1 − share of image 2 / 100), confidence the rating / 100; `first_collection` is true for every stimulus
  (an own study is one collection).

Both hold the answers that count. Flagged answers (`softlabels.elicit.store`: image not fetched, too fast) are
left out of them and listed by `flagged_table` instead: the same columns and the reason in `flag`.
"""

from __future__ import annotations

import pandas as pd

from softlabels.data.cifar10s import COLUMNS
from softlabels.data.hmix import JUDGMENT_COLUMNS
from softlabels.elicit.store import Store


def tidy_responses(store: Store, responses: list[dict]) -> pd.DataFrame:
    study = store.study
    rows = []
    for r in responses:
        a = r["answer"]
        rows.append({
            "image": study.stimuli[r["stimulus"]].name,
            "subject": r["participant"],
            "task": "rerun_spec_conf" if r["is_repeat"] else "spec_conf",
            "trial": r["position"],
            "top_class": a["top_class"],
            "top_prob": a["top_prob"],
            "second_class": a["second_class"],
            "second_prob": a["second_prob"],
            "impossible": "|".join(a["impossible"]),
            "rt_ms": round(r["rt_ms"]),
        })  # fmt: skip
    return pd.DataFrame(rows, columns=COLUMNS)


def mixing_judgments(store: Store, responses: list[dict]) -> pd.DataFrame:
    study = store.study
    rows = []
    for r in responses:
        mix = study.stimuli[r["stimulus"]].mix
        rows.append({
            "stimulus": study.stimuli[r["stimulus"]].name, **mix, "first_collection": True,
            "subject": r["participant"], "trial": r["position"], "lambda_h": r["answer"]["lambda_h"],
            "confidence": r["answer"]["confidence"] / 100.0, "rt_ms": round(r["rt_ms"]),
        })  # fmt: skip
    return pd.DataFrame(rows, columns=JUDGMENT_COLUMNS)


def _table(store: Store, responses: list[dict]) -> pd.DataFrame:
    return (tidy_responses if store.study.task == "soft_label" else mixing_judgments)(store, responses)


def export_table(store: Store) -> pd.DataFrame:
    """The pipeline's table of the answers that count."""
    return _table(store, [r for r in store.responses() if not r["flag"]])


def flagged_table(store: Store) -> pd.DataFrame:
    """The flagged answers in the export's columns, with the reason as a last column `flag`."""
    flagged = [r for r in store.responses() if r["flag"]]
    return _table(store, flagged).assign(flag=[r["flag"] for r in flagged])
