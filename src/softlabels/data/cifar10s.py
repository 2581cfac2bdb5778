"""CIFAR-10S raw elicitation data -> one row per response (docs/protocol.md#cifar-10s-responses).

Every `survey-html-form` row of `raw_human_data.csv` is a response, repeat trials (`rerun_spec_conf`) included.
Its `response` column holds the form as JSON: `classSelect` "mostProb<Class>", `prob` (free text, 0-100),
`classSelect2` "secondProb<Class>" or "secondProbNo", `prob2`, and one key "improbClassSelect<Class>" per class
ticked impossible. The image is the CIFAR-10 *test* index in `img_id` (the PNG name says "train" but is the
same index). Probabilities are parsed with float(); two manual fixes as in the released processing: the text
"8p" means 80, and a top probability of 0 means 100. The second probability is empty when the second class is
"No" or its text box was left empty.

Output (`cifar10s_responses.csv`, raw-file order): image, subject, task, trial, top_class, top_prob,
second_class, second_prob, impossible ('|'-joined), rt_ms. This is also the format for users' own data.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from softlabels import CLASSES
from softlabels.data.io import DataError, csv_records, write_csv

RESPONSE_COLUMNS = ["top_class", "top_prob", "second_class", "second_prob", "impossible", "rt_ms"]
COLUMNS = ["image", "subject", "task", "trial", *RESPONSE_COLUMNS]
TASKS = ("spec_conf", "rerun_spec_conf")
RESPONSE_TRIAL = "survey-html-form"
RAW_COLUMNS = ("trial_type", "trial_index", "subject", "rt", "response", "filename", "task", "img_id")
#: Probability texts corrected by hand in the released processing (docs/protocol.md#cifar-10s-responses).
PROBABILITY_FIXES = {"8p": 80.0}

_CLASS_BY_TAG = {name.capitalize(): name for name in CLASSES}
_TOP = re.compile(r"mostProb(\w+)")
_SECOND = re.compile(r"secondProb(\w+)")
_IMPOSSIBLE = re.compile(r"improbClassSelect(\w+)")
_PNG_INDEX = re.compile(r"cifar10_(?:train|test)_(\d+)_")


class RowError(ValueError):
    """A malformed field; the caller adds the file and line."""


@dataclass
class Elicitation:
    top_class: str
    top_prob: float
    second_class: str  # "" when the annotator chose "No"
    second_prob: float | None
    impossible: list[str]


def class_from_tag(tag: str, pattern: re.Pattern, what: str) -> str:
    match = pattern.fullmatch(tag or "")
    if not match or match.group(1) not in _CLASS_BY_TAG:
        raise RowError(f"unknown {what} tag '{tag}'")
    return _CLASS_BY_TAG[match.group(1)]


def parse_probability(text, what: str) -> float:
    """Free-text probability in 0..100, parsed with float() after the manual fixes."""
    text = str(text).strip()
    value = PROBABILITY_FIXES.get(text)
    if value is None:
        try:
            value = float(text)
        except ValueError:
            raise RowError(f"{what} '{text}' is not a number") from None
    if not math.isfinite(value) or not 0 <= value <= 100:
        raise RowError(f"{what} {value} is outside 0..100")
    return value


def parse_elicitation(response_json: str) -> Elicitation:
    """One form of the CIFAR-10S interface (also used over H-Mix images)."""
    try:
        form = json.loads(response_json)
    except json.JSONDecodeError as exc:
        raise RowError(f"response is not valid JSON ({exc.msg})") from None
    if not isinstance(form, dict):
        raise RowError("response JSON is not an object")
    for key in ("classSelect", "prob", "classSelect2"):
        if key not in form:
            raise RowError(f"response has no '{key}'")
    top = class_from_tag(form["classSelect"], _TOP, "classSelect")
    top_prob = parse_probability(form["prob"], "prob")
    if top_prob == 0:
        top_prob = 100.0  # annotation error in the released data: a top probability of 0 means 100
    second, second_prob = "", None
    if form["classSelect2"] != "secondProbNo":
        second = class_from_tag(form["classSelect2"], _SECOND, "classSelect2")
        text = str(form.get("prob2", "")).strip()
        second_prob = parse_probability(text, "prob2") if text else None
    impossible = []
    for key in form:
        if key in ("classSelect", "prob", "classSelect2", "prob2"):
            continue
        if not _IMPOSSIBLE.fullmatch(key):
            raise RowError(f"unexpected response key '{key}'")
        impossible.append(class_from_tag(key, _IMPOSSIBLE, "impossible-class"))
    return Elicitation(top, top_prob, second, second_prob, impossible)


def elicitation_fields(e: Elicitation, rt: str) -> dict:
    try:
        rt_ms = float(rt)
    except ValueError:
        raise RowError(f"rt '{rt}' is not a number") from None
    return {
        "top_class": e.top_class,
        "top_prob": e.top_prob,
        "second_class": e.second_class,
        "second_prob": e.second_prob,
        "impossible": "|".join(e.impossible),
        "rt_ms": rt_ms,
    }


def parse_int(text: str, what: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise RowError(f"{what} '{text}' is not a number") from None
    if not value.is_integer():
        raise RowError(f"{what} '{text}' is not an integer")
    return int(value)


def trial_rows(raw_path, trial_type: str, required, fields_of) -> list[dict]:
    """`fields_of(row)` for every row of a jsPsych export whose `trial_type` is `trial_type`, in file order.
    A row that `fields_of` rejects (RowError or ValueError) stops the parse with the file and its line."""
    rows = []
    for line, row in csv_records(raw_path, required=required):
        if row["trial_type"] != trial_type:
            continue
        try:
            rows.append(fields_of(row))
        except ValueError as exc:  # RowError is a ValueError
            raise DataError(f"{raw_path}, line {line}: {exc}") from None
    if not rows:
        raise DataError(f"{raw_path}: no '{trial_type}' rows")
    return rows


def image_index(row: dict) -> int:
    """The CIFAR-10 test index in `img_id`, which must agree with the index in the PNG name."""
    image = parse_int(row["img_id"], "img_id")
    if not 0 <= image < 10000:
        raise RowError(f"img_id {image} is outside 0..9999")
    match = _PNG_INDEX.search(row["filename"])
    if match and int(match.group(1)) != image:
        raise RowError(f"img_id {image} differs from the index in filename '{row['filename']}'")
    return image


def parse_cifar10s(raw_path) -> pd.DataFrame:
    """All responses of `raw_human_data.csv`, in file order (see the module docstring)."""

    def response_fields(row: dict) -> dict:
        if row["task"] not in TASKS:
            raise RowError(f"task '{row['task']}' is not one of {', '.join(TASKS)}")
        fields = {
            "image": image_index(row),
            "subject": row["subject"],
            "task": row["task"],
            "trial": parse_int(row["trial_index"], "trial_index"),
        }
        fields.update(elicitation_fields(parse_elicitation(row["response"]), row["rt"]))
        return fields

    return pd.DataFrame(trial_rows(raw_path, RESPONSE_TRIAL, RAW_COLUMNS, response_fields), columns=COLUMNS)


def write_table(table: pd.DataFrame, out_path) -> None:
    write_csv(out_path, table)


def write_cifar10s(raw_path, out_path) -> pd.DataFrame:
    table = parse_cifar10s(raw_path)
    write_table(table, out_path)
    return table


#: Columns of a tidy responses table read as text ("" for an empty cell); every other column is numeric.
TEXT_COLUMNS = ("subject", "task", "stimulus", "class1", "class2", "top_class", "second_class", "impossible")
NUMERIC_RESPONSE_COLUMNS = ("top_prob", "second_prob", "rt_ms")


def read_responses(path, key: str | None = None) -> pd.DataFrame:
    """The one reader of a tidy responses table: this module's `cifar10s_responses.csv`, the H-Mix
    `hmix_soft_responses.csv`, or users' own data in that format. `key` names the column saying what was
    labelled (`image`, or `stimulus` for H-Mix); None accepts either (`image` first).

    Missing values: text columns (TEXT_COLUMNS) keep "" for an empty cell; top_prob, second_prob and rt_ms
    are floats with NaN for an empty cell (top_prob must be given). Raises DataError naming the file and line
    for a missing file or column, an unknown class name or a probability outside 0..100."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    try:
        table = pd.read_csv(
            path,
            dtype={column: str for column in TEXT_COLUMNS},
            keep_default_na=False,
            na_values={column: [""] for column in NUMERIC_RESPONSE_COLUMNS},
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV table ({exc})") from None
    if key is None:
        key = "image" if "image" in table.columns or "stimulus" not in table.columns else "stimulus"
    missing = [c for c in (key, "top_class", "top_prob", "second_class", "second_prob", "impossible")
               if c not in table.columns]
    if missing:
        raise DataError(f"{path}, line 1: missing column(s) {', '.join(missing)}")

    def line_of(row: int) -> int:
        """1-based line of a data row in a CSV without multi-line fields (header on line 1)."""
        return int(row) + 2

    known = set(CLASSES) | {""}
    for column in ("top_class", "second_class", "impossible"):
        parts = table[column].str.split("|") if column == "impossible" else table[column].map(lambda v: [v])
        bad = parts.map(lambda names: any(n not in known for n in names))
        if column == "top_class":
            bad |= table[column] == ""
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"{path}, line {line_of(row)}: column {column}: unknown or empty class name "
                f"{table[column].iloc[row]!r} (expected one of {', '.join(CLASSES)})"
            )
    for column in ("top_prob", "second_prob"):
        values = pd.to_numeric(table[column], errors="coerce")
        unparsable = values.isna() & table[column].notna()
        out_of_range = (values < 0) | (values > 100)
        if column == "top_prob":
            unparsable |= table[column].isna()
        bad = (unparsable | out_of_range).to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{path}, line {line_of(row)}: column {column}: {table[column].iloc[row]!r} is not a "
                "probability between 0 and 100"
            )
        table[column] = values.astype(float)
    if key == "image":
        images = pd.to_numeric(table["image"], errors="coerce")
        bad = (images.isna() | (images != images.round()) | (images < 0)).to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(f"{path}, line {line_of(row)}: column image: {table['image'].iloc[row]!r} is not "
                            "an image index")
        table["image"] = images.astype(np.int64)
    return table
