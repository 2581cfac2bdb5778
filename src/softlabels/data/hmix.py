"""H-Mix human data over mixup images (thesis chapters 4-5; docs/protocol.md#h-mix-judgments).

A stimulus `mixed_{λ}_{Class1}_{id1}_{Class2}_{id2}.png` is λ·image(id1) + (1−λ)·image(id2) in pixel space,
ids being CIFAR-10 test indices. Outputs:

- `hmix_judgments.csv` (from `hmix_infer_mixing_factor.csv`, every `multiple-slider` row, reruns included):
  stimulus, lambda_f, class1, image1, class2, image2, first_collection, subject, trial, lambda_h, confidence,
  rt_ms. The raw `responses` JSON holds two sliders, `mixingcoeff` and `confidence`, in 0..100. The mixing
  slider measures the share of the *second* image: the released `processed_hmix_inferences.json` stores
  1 − mixingcoeff/100 as "Predicted Mixing Factor" (e.g. mixed_0.75_Cat_6126_Ship_2713: sliders 0 and 1 ->
  [1.0, 0.99]), and over all 4950 judgments the slider correlates at −0.77 with λ_f. So λ_h, like λ_f, is
  relative to image 1: lambda_h = 1 − mixingcoeff/100; confidence = confidence/100.
- `hmix_soft_responses.csv` (from `hmix_categorical_soft_labels.csv`, every `survey-html-form` row): the
  stimulus columns, subject, trial, then the CIFAR-10S elicitation columns.
- `hmix_stimuli.npz`: every stimulus of either table rebuilt from the CIFAR-10 test images.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from softlabels import CLASSES
from softlabels.data.cifar10 import load_cifar10_test
from softlabels.data.cifar10s import (
    RESPONSE_COLUMNS,
    RowError,
    elicitation_fields,
    parse_elicitation,
    parse_int,
    read_responses,
    trial_rows,
    write_table,
)
from softlabels.data.io import DataError, save_npz

STIMULUS_COLUMNS = ["stimulus", "lambda_f", "class1", "image1", "class2", "image2"]
JUDGMENT_COLUMNS = [*STIMULUS_COLUMNS, "first_collection", "subject", "trial", "lambda_h", "confidence", "rt_ms"]
SOFT_COLUMNS = [*STIMULUS_COLUMNS, "subject", "trial", *RESPONSE_COLUMNS]
SLIDER_TRIAL = "multiple-slider"
SOFT_TRIAL = "survey-html-form"

_CLASS_BY_NAME = {name.capitalize(): name for name in CLASSES}
_STIMULUS = re.compile(r"mixed_([0-9.]+)_([A-Za-z]+)_(\d+)_([A-Za-z]+)_(\d+)\.png")


def parse_stimulus_name(name: str) -> dict:
    """`mixed_{λ}_{Class1}_{id1}_{Class2}_{id2}.png` -> stimulus columns (class names lower-case)."""
    match = _STIMULUS.fullmatch(name)
    if not match:
        raise RowError(f"stimulus name '{name}' is not mixed_<lambda>_<Class1>_<id1>_<Class2>_<id2>.png")
    lam, c1, i1, c2, i2 = match.groups()
    for c in (c1, c2):
        if c not in _CLASS_BY_NAME:
            raise RowError(f"stimulus name '{name}': unknown class '{c}'")
    lam = float(lam)
    if not 0 <= lam <= 1:
        raise RowError(f"stimulus name '{name}': mixing factor {lam} outside 0..1")
    return {"stimulus": name, "lambda_f": lam, "class1": _CLASS_BY_NAME[c1], "image1": int(i1),
            "class2": _CLASS_BY_NAME[c2], "image2": int(i2)}


def stimulus_fields(row: dict) -> dict:
    """Stimulus columns from the row's `filename`, checked against label1/label2/mixtureCoeff/id1/id2."""
    fields = parse_stimulus_name(row["filename"])
    checks = {"label1": ("class1", str.lower), "label2": ("class2", str.lower),
              "mixtureCoeff": ("lambda_f", float), "id1": ("image1", lambda t: parse_int(t, "id")),
              "id2": ("image2", lambda t: parse_int(t, "id"))}
    for column, (field, convert) in checks.items():
        text = row.get(column, "")
        if text == "":
            continue
        try:
            value = convert(text)
        except ValueError:
            raise RowError(f"{column} '{text}' is not valid") from None
        if value != fields[field]:
            raise RowError(f"{column} '{text}' disagrees with filename '{row['filename']}'")
    return fields


def read_stimulus_list(path) -> set[str]:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    names = [n.strip() for n in path.read_text(encoding="utf-8").splitlines() if n.strip()]
    for number, name in enumerate(names, start=1):
        if not _STIMULUS.fullmatch(name):
            raise DataError(f"{path}, line {number}: '{name}' is not a stimulus file name")
    return set(names)


def slider(values: dict, key: str) -> float:
    if key not in values:
        raise RowError(f"responses has no '{key}'")
    value = values[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0 <= value <= 100:
        raise RowError(f"slider '{key}' = {value!r} is not a number in 0..100")
    return float(value)


def parse_judgments(raw_path, stimulus_list_path) -> pd.DataFrame:
    """Mixing-factor judgments (see the module docstring), in file order."""
    first = read_stimulus_list(stimulus_list_path)

    def judgment_fields(row: dict) -> dict:
        fields = stimulus_fields(row)
        try:
            values = json.loads(row["responses"])
        except json.JSONDecodeError as exc:
            raise RowError(f"responses is not valid JSON ({exc.msg})") from None
        if not isinstance(values, dict):
            raise RowError("responses JSON is not an object")
        fields.update(
            first_collection=fields["stimulus"] in first,
            subject=row["subject"],
            trial=parse_int(row["trial_index"], "trial_index"),
            lambda_h=1.0 - slider(values, "mixingcoeff") / 100.0,
            confidence=slider(values, "confidence") / 100.0,
            rt_ms=float(row["rt"]) if row["rt"] != "" else math.nan,
        )
        return fields

    required = ("trial_type", "trial_index", "subject", "rt", "responses", "filename")
    rows = trial_rows(raw_path, SLIDER_TRIAL, required, judgment_fields)
    missing = first - {r["stimulus"] for r in rows}
    if missing:
        raise DataError(f"{stimulus_list_path}: {len(missing)} stimuli have no judgment in {raw_path}, "
                        f"e.g. {sorted(missing)[0]}")
    return pd.DataFrame(rows, columns=JUDGMENT_COLUMNS)


def parse_soft_responses(raw_path) -> pd.DataFrame:
    """Categorical soft-label responses over mixed images, in file order."""

    def soft_fields(row: dict) -> dict:
        fields = stimulus_fields(row)
        fields.update(subject=row["subject"], trial=parse_int(row["trial_index"], "trial_index"))
        fields.update(elicitation_fields(parse_elicitation(row["response"]), row["rt"]))
        return fields

    required = ("trial_type", "trial_index", "subject", "rt", "response", "filename")
    return pd.DataFrame(trial_rows(raw_path, SOFT_TRIAL, required, soft_fields), columns=SOFT_COLUMNS)


def write_judgments(raw_path, stimulus_list_path, out_path) -> pd.DataFrame:
    table = parse_judgments(raw_path, stimulus_list_path)
    write_table(table, out_path)
    return table


def write_soft_responses(raw_path, out_path) -> pd.DataFrame:
    table = parse_soft_responses(raw_path)
    write_table(table, out_path)
    return table


def load_judgments(path) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    table = pd.read_csv(path, dtype={"subject": str, "stimulus": str, "class1": str, "class2": str})
    missing = [c for c in JUDGMENT_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}")
    table["first_collection"] = table["first_collection"].astype(bool)
    return table


def mix_images(images: np.ndarray, image1, image2, lam) -> np.ndarray:
    """round(λ·img1 + (1−λ)·img2) per stimulus, rounding halves up, as uint8 [n, 32, 32, 3]."""
    lam = np.asarray(lam, dtype=np.float64)[:, None, None, None]
    mixed = lam * images[image1].astype(np.float64) + (1.0 - lam) * images[image2].astype(np.float64)
    return np.clip(np.floor(mixed + 0.5), 0, 255).astype(np.uint8)


def stimulus_table(*tables: pd.DataFrame, first_collection: set[str] | None = None) -> pd.DataFrame:
    """One row per distinct stimulus of the tables, sorted by name."""
    stimuli = pd.concat([t[STIMULUS_COLUMNS] for t in tables]).drop_duplicates("stimulus")
    stimuli = stimuli.sort_values("stimulus").reset_index(drop=True)
    if first_collection is None:
        flags = pd.concat([t[["stimulus", "first_collection"]] for t in tables if "first_collection" in t])
        first_collection = set(flags.loc[flags["first_collection"].astype(bool), "stimulus"])
    stimuli["first_collection"] = stimuli["stimulus"].isin(first_collection)
    return stimuli


def build_stimuli(judgments: pd.DataFrame, soft: pd.DataFrame, images: np.ndarray, labels: np.ndarray,
                  source: str = "cifar10_test.npz") -> dict[str, np.ndarray]:
    """Arrays of `hmix_stimuli.npz`; the endpoint classes named in each stimulus must be the CIFAR-10 labels."""
    stimuli = stimulus_table(judgments, soft)
    class_index = {name: k for k, name in enumerate(CLASSES)}
    c1 = stimuli["class1"].map(class_index).to_numpy(np.int64)
    c2 = stimuli["class2"].map(class_index).to_numpy(np.int64)
    i1, i2 = stimuli["image1"].to_numpy(np.int64), stimuli["image2"].to_numpy(np.int64)
    out_of_range = (np.maximum(i1, i2) >= len(images)) | (np.minimum(i1, i2) < 0)
    if out_of_range.any():
        raise DataError(f"stimulus {stimuli['stimulus'][np.argmax(out_of_range)]}: image index outside "
                        f"0..{len(images) - 1} of {source}")
    wrong = (labels[i1] != c1) | (labels[i2] != c2)
    if wrong.any():
        k = int(np.argmax(wrong))
        raise DataError(f"stimulus {stimuli['stimulus'][k]}: endpoint classes disagree with the labels in {source} "
                        f"({CLASSES[labels[i1[k]]]}, {CLASSES[labels[i2[k]]]})")
    lam = stimuli["lambda_f"].to_numpy(np.float64)
    return {
        "names": stimuli["stimulus"].to_numpy(dtype=str),
        "images": mix_images(images, i1, i2, lam),
        "lambda_f": lam,
        "image1": i1,
        "image2": i2,
        "class1": c1,
        "class2": c2,
        "first_collection": stimuli["first_collection"].to_numpy(bool),
    }


def write_stimuli(judgments_path, soft_path, cifar10_npz, out_path) -> dict[str, np.ndarray]:
    judgments = load_judgments(judgments_path)
    soft = read_responses(soft_path, key="stimulus")
    for column in STIMULUS_COLUMNS:
        if column not in soft.columns:
            raise DataError(f"{soft_path}: missing column {column}")
    images, labels = load_cifar10_test(cifar10_npz)
    arrays = build_stimuli(judgments, soft, images, labels, source=str(cifar10_npz))
    save_npz(out_path, arrays)
    return arrays
