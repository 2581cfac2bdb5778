"""The thesis' reported numbers, read from the one hand-typed file `thesis_values.csv` beside this module.

Every output that shows a thesis value beside a reproduced one looks it up here, so a transcription error
has exactly one place to be fixed.
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

from softlabels.vocabulary import METRICS

#: Columns of thesis_values.csv, in file order.
COLUMNS = ("table", "eval_set", "row", "metric", "value", "ci", "note")


def thesis_values_path():
    """Path of the packaged thesis_values.csv."""
    return resources.files("softlabels.report").joinpath("thesis_values.csv")


def load_thesis_values(path=None) -> pd.DataFrame:
    """All thesis values as a DataFrame with columns `COLUMNS`.

    `value` and `ci` are floats (`ci` NaN where the thesis gives no ±); `table`, `eval_set`, `row`, `metric`
    and `note` are strings ("" where empty). Raises ValueError naming the file and line of a malformed row, or
    of a table cell whose eval set or metric is not in `softlabels.vocabulary`.
    """
    source = path if path is not None else thesis_values_path()
    with open(source, encoding="utf-8") as handle:
        frame = pd.read_csv(handle, comment="#", dtype=str, keep_default_na=False)
    if tuple(frame.columns) != COLUMNS:
        raise ValueError(f"{source}: columns {list(frame.columns)}, expected {list(COLUMNS)}")
    n_header = _header_lines(source)
    for column in ("value", "ci"):
        numbers = pd.to_numeric(frame[column].replace("", None), errors="coerce")
        bad = numbers.isna() & (frame[column] != "")
        if column == "value":
            bad |= frame[column] == ""
        if bad.any():
            i = int(bad.to_numpy().nonzero()[0][0])
            raise ValueError(f"{source}:{n_header + i + 1}: {column} {frame[column].iloc[i]!r} is not a number")
        frame[column] = numbers.astype(float)
    measured = frame["eval_set"] != ""  # a cell of a result table, not a summary statistic
    pairs = {(e, m) for m, metric in METRICS.items() for e in metric.eval_sets}
    unknown = measured & ~pd.Series([pair in pairs for pair in zip(frame["eval_set"], frame["metric"])], dtype=bool)
    if unknown.any():
        i = int(unknown.to_numpy().nonzero()[0][0])
        e, m = frame["eval_set"].iloc[i], frame["metric"].iloc[i]
        raise ValueError(f"{source}:{n_header + i + 1}: metric {m!r} is not measured on eval set {e!r} "
                         f"(softlabels.vocabulary.METRICS: {', '.join(f'{m} on {e}' for e, m in sorted(pairs))})")
    key = ["table", "eval_set", "row", "metric"]
    duplicated = frame.duplicated(key)
    if duplicated.any():
        i = int(duplicated.to_numpy().nonzero()[0][0])
        raise ValueError(f"{source}:{n_header + i + 1}: duplicate entry {frame.loc[i, key].tolist()}")
    return frame


def _header_lines(source) -> int:
    """Number of lines up to and including the column header (for error messages)."""
    with open(source, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.startswith("#"):
                return number
    return 0


def thesis_table(table: str, values: pd.DataFrame | None = None) -> pd.DataFrame:
    """The rows of one output (e.g. "table3_1", "hmix_summary")."""
    values = load_thesis_values() if values is None else values
    return values[values["table"] == table].reset_index(drop=True)


def thesis_value(
    table: str, eval_set: str, row: str, metric: str, values: pd.DataFrame | None = None
) -> tuple[float, float]:
    """(value, ci) the thesis reports for one cell; (NaN, NaN) when it reports none."""
    values = load_thesis_values() if values is None else values
    hit = values[
        (values["table"] == table)
        & (values["eval_set"] == eval_set)
        & (values["row"] == row)
        & (values["metric"] == metric)
    ]
    if hit.empty:
        return float("nan"), float("nan")
    return float(hit["value"].iloc[0]), float(hit["ci"].iloc[0])


def thesis_statistics(table: str, values: pd.DataFrame | None = None) -> dict[str, tuple[float, float]]:
    """Summary statistics of `table` as {metric: (value, ci)} (ci NaN when none is given)."""
    rows = thesis_table(table, values)
    return {m: (v, c) for m, v, c in zip(rows["metric"], rows["value"], rows["ci"])}
