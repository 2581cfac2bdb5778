"""Own responses -> the chapter-3 training input (`results/data/own_responses.csv`, config key `own_responses`).

The file must be a tidy responses table (`softlabels.data.cifar10s.COLUMNS`) over CIFAR-10 *test* indices. Its
images become the chapter-3 soft-labelled images: a seeded `evaluation.cifar10s_holdout.size` of them are held
out for the CIFAR-10S-style evaluation, the rest train (thesis §3.3). Images of the CIFAR-10H evaluation hold-out
(`splits.npz` key `test`) are refused: training on them would leak the evaluation set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from softlabels.data.cifar10s import COLUMNS, read_responses
from softlabels.data.io import DataError


def check_own_responses(responses_path, splits_path, holdout_size: int) -> pd.DataFrame:
    """The validated table (columns exactly COLUMNS, in file order). Raises DataError naming the problem."""
    path = Path(responses_path)
    table = read_responses(path, key="image")  # columns present, class names known, probabilities in 0..100 (line named)
    extra = [c for c in table.columns if c not in COLUMNS]
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing or extra:
        raise DataError(f"{path}: columns must be exactly {','.join(COLUMNS)} (missing: {missing}, extra: {extra})")
    image = pd.to_numeric(table["image"], errors="coerce")
    bad = image.isna() | (image % 1 != 0) | (image < 0) | (image > 9999)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{path}, line {row + 2}: column image: {table['image'].iloc[row]!r} is not a CIFAR-10 "
                        "test index (0-9999); own responses over other images cannot feed the chapter-3 runs")  # fmt: skip
    table["image"] = image.astype(np.int64)
    if not Path(splits_path).exists():
        raise DataError(f"{splits_path}: file not found (built by the data stage: snakemake results/data/splits.npz)")
    with np.load(splits_path) as splits:
        held_out = np.asarray(splits["test"], dtype=np.int64)
    leaked = sorted(set(table["image"].tolist()) & set(held_out.tolist()))
    if leaked:
        shown = ", ".join(map(str, leaked[:20])) + (" ..." if len(leaked) > 20 else "")
        raise DataError(
            f"{path}: {len(leaked)} image(s) lie in the CIFAR-10H evaluation hold-out ({splits_path} key 'test') "
            f"and cannot be used for training: {shown}"
        )
    n_images = table["image"].nunique()
    if n_images <= holdout_size:
        raise DataError(
            f"{path}: {n_images} images, but key 'evaluation.cifar10s_holdout.size' holds out {holdout_size} of "
            "them for evaluation; collect more images or lower that key"
        )
    for column in ("subject", "task"):
        if (table[column].astype(str).str.strip() == "").any():
            row = int(np.flatnonzero((table[column].astype(str).str.strip() == "").to_numpy())[0])
            raise DataError(f"{path}, line {row + 2}: column {column} is empty")
    return table[list(COLUMNS)]
