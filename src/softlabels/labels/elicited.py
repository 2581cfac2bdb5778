"""Soft labels from one elicited CIFAR-10S response (thesis §3.2.2, appendix B.4;
docs/protocol.md#labels-redistribution).

A response names a most probable class c1 with probability p1, optionally a second class c2 with p2 (both
0-100 as elicited) and a set I of impossible classes. P = all classes \\ I are the "possible" classes.

Documented algorithm (the README, the notebook and the released `cifar10s_t2clamp_redist10.json`):

1. s[c1] = p1; for T2, s[c2] = p2 when both are given (assignment: c2 == c1 overwrites p1); s = s / 100.
2. A = Σ s. If A < 1 the leftover is r = 1 − A. If A ≥ 1, s = s / A and the leftover is r = γ for Clamp
   (existing mass is then damped by 1 − γ) and r = 0 for Unif.
3. Spread r:
   - Unif: every zero entry gets r / (K − nnz(s)); the impossible set is ignored.
   - Clamp: with n_free = |P| − nnz(s) (nnz also counts non-zero entries outside P), every possible class
     with s_k = 0 gets r / n_free.
   - Semantic (appendix B.4, Tables B.2-B.3: the counterpart of Unif), `semantic_base="unif"`: the Unif
     leftover r (1 − A, or 0 when A ≥ 1) is split over every zero entry k in proportion to
     max(0, cos-sim(c1, k)) of GloVe vectors; the impossible set is ignored. If every such similarity is 0 the
     split is uniform, so semantic with constant similarity equals Unif.
   - Semantic on Clamp, `semantic_base="clamp"`: as Clamp, but the mass Clamp would add, r·|targets| / n_free,
     is split over the zero-valued possible classes in proportion to max(0, cos-sim(c1, k)) (uniform when
     every weight is 0, so constant similarity equals Clamp).
4. s = s / Σ s.

`path="hmix_release"` is the construction of the released `hmix_individ_soft_labels.json` (H-Mix), which
differs from the documented path only where the stated probabilities reach 100 (Clamp and Semantic on Clamp):
- A = 1: the stated classes are not damped; every zero-valued possible class gets γ / n_free *on top* and
  step 4 renormalises by Σ s = 1 + γ (truck 100 with two free classes, γ = 0.1: truck 1/1.1, the free
  classes 0.05/1.1 each; truck 75, automobile 25, one free: 0.75/1.1, 0.25/1.1, 0.1/1.1).
- A > 1: s is not divided by A; each of the nnz(s) stated classes gives up γ / nnz(s) (at most its value),
  the free classes get γ / n_free each, and step 4 renormalises by Σ s = A (truck 98, automobile 10, two free:
  (0.93, 0.05, 0.05, 0.05) / 1.08).
Rows without free classes (n_free ≤ 0) are only renormalised, as on the documented path.

Choices where the documented code is undefined (docs/protocol.md#redistribution-edge-cases):
- Clamp/Semantic spread (and damp) only when n_free > 0. The original code also runs for n_free < 0, which
  gives negative mass when c1 and c2 are both impossible and exactly one other class is possible; it never
  happens in the released data.
- If nothing is left to normalise (all-zero s: e.g. c2 == c1 with p2 = 0 and every class impossible under
  Clamp), the label is one-hot on c1 instead of the 0/0 NaN.

`path="released_code"` reproduces the released dataloader, which never redistributes
(docs/protocol.md#released-code-path): T1 is one-hot on c1 and T2 is (p1, p2) renormalised, the impossible
set is unused. The one released case that yields 0/0 (image 1633, Automobile 100 / Automobile 0) becomes
one-hot on c1 here instead of NaN, for the same reason as above: a NaN label cannot be trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pandas as pd

from softlabels import CLASSES, NUM_CLASSES

VARIETIES = ("t1_unif", "t1_clamp", "t2_unif", "t2_clamp", "t1_semantic", "t2_semantic")
PATHS = ("documented", "released_code", "hmix_release")
#: How the semantic varieties spread the leftover: `unif` (the thesis: Unif's spread, weighted by similarity to
#: the top class, impossible answers unused) or `clamp` (Clamp's spread over the possible classes, weighted).
SEMANTIC_BASES = ("unif", "clamp")

_CLASS_INDEX = {name: k for k, name in enumerate(CLASSES)}


@dataclass(frozen=True)
class Variety:
    """A label construction: which answers are used (top-1 or top-2) and how leftover mass is spread."""

    top2: bool
    spread: str  # "unif" | "clamp" | "semantic"

    @classmethod
    def parse(cls, name: str) -> "Variety":
        if name not in VARIETIES:
            raise ValueError(f"unknown label variety {name!r}; expected one of {', '.join(VARIETIES)}")
        tops, spread = name.split("_")
        return cls(top2=tops == "t2", spread=spread)


def class_index(name: str, where: str = "") -> int:
    """Index of a CIFAR-10 class name (case-insensitive, alphabetical order)."""
    key = str(name).strip().lower()
    if key not in _CLASS_INDEX:
        prefix = f"{where}: " if where else ""
        raise ValueError(f"{prefix}unknown class name {name!r}; expected one of {', '.join(CLASSES)}")
    return _CLASS_INDEX[key]


def elicited_labels(
    top: np.ndarray,
    p1: np.ndarray,
    second: np.ndarray,
    p2: np.ndarray,
    possible: np.ndarray,
    variety: str = "t2_clamp",
    gamma: float = 0.1,
    similarity: np.ndarray | None = None,
    path: str = "documented",
    semantic_base: str = "unif",
) -> np.ndarray:
    """Labels [n, K] for n responses given as arrays (the vectorised core of `response_label`).

    top: int [n]; p1: float [n] in 0-100; second: int [n], -1 for none; p2: float [n] in 0-100, NaN for none;
    possible: bool [n, K] (True where the class was not marked impossible).
    """
    kind = Variety.parse(variety)
    if path not in PATHS:
        raise ValueError(f"unknown redistribution path {path!r}; expected one of {', '.join(PATHS)}")
    if semantic_base not in SEMANTIC_BASES:
        raise ValueError(f"unknown semantic base {semantic_base!r}; expected one of {', '.join(SEMANTIC_BASES)}")
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must lie in [0, 1], got {gamma}")
    top = np.asarray(top, dtype=np.int64)
    second = np.asarray(second, dtype=np.int64)
    p1 = np.asarray(p1, dtype=np.float64)
    p2 = np.asarray(p2, dtype=np.float64)
    possible = np.asarray(possible, dtype=bool)
    n = top.shape[0]
    _check_inputs(top, p1, second, p2, possible)

    rows = np.arange(n)
    s = np.zeros((n, NUM_CLASSES))
    s[rows, top] = p1
    if kind.top2:
        has2 = (second >= 0) & np.isfinite(p2)
        s[rows[has2], second[has2]] = p2[has2]
    stated_percent = s.sum(axis=1)
    s /= 100.0
    total = s.sum(axis=1)
    over = total >= 1.0
    uniform_based = kind.spread == "unif" or (kind.spread == "semantic" and semantic_base == "unif")
    excess = None
    if path == "hmix_release" and not uniform_based:
        # compared in percent, so that e.g. 70 + 30 counts as exactly 100
        over, excess = stated_percent >= 100.0, stated_percent > 100.0
        s[over & ~excess] /= total[over & ~excess, None]
    else:
        s[over] /= total[over, None]

    if path != "released_code":
        weights = _semantic_weights(similarity, top) if kind.spread == "semantic" else None
        if uniform_based:
            _spread_uniform(s, np.where(over, 0.0, 1.0 - total), weights)
        else:
            _spread_clamp(s, possible, over, 1.0 - total, gamma, weights, damp=path == "documented",
                          excess=excess)

    return _normalise_or_onehot(s, top)


def _check_inputs(top, p1, second, p2, possible) -> None:
    n = top.shape[0]
    if p1.shape != (n,) or second.shape != (n,) or p2.shape != (n,) or possible.shape != (n, NUM_CLASSES):
        raise ValueError("top, p1, second, p2 must have shape [n] and possible [n, 10]")
    if np.any((top < 0) | (top >= NUM_CLASSES)):
        raise ValueError(f"top class index out of range 0..{NUM_CLASSES - 1}: {top[(top < 0) | (top >= NUM_CLASSES)][:5]}")
    if np.any(second >= NUM_CLASSES) or np.any(second < -1):
        raise ValueError("second class index out of range (use -1 for none)")
    if not np.all(np.isfinite(p1)) or np.any((p1 < 0) | (p1 > 100)):
        raise ValueError(f"top probability must be a number in [0, 100], got {p1[~((p1 >= 0) & (p1 <= 100))][:5]}")
    given = np.isfinite(p2)
    if np.any((p2[given] < 0) | (p2[given] > 100)) or np.any(np.isinf(p2)):
        raise ValueError("second probability must lie in [0, 100] (or be missing)")


def _spread_uniform(s: np.ndarray, leftover: np.ndarray, weights: np.ndarray | None = None) -> None:
    """Unif: every zero entry gets leftover / (K − nnz(s)), in place; with `weights` the leftover is split over
    the zero entries in proportion to them instead (uniformly where every weight is 0)."""
    zero = s == 0
    w = zero.astype(np.float64)
    if weights is not None:
        weighted = weights * zero
        has_weight = weighted.sum(axis=1) > 0
        w[has_weight] = weighted[has_weight]
    w_sum = w.sum(axis=1)
    share = np.divide(leftover, w_sum, out=np.zeros_like(leftover), where=w_sum > 0)
    s += w * share[:, None]


def _spread_clamp(s, possible, over, leftover, gamma, weights, damp: bool = True, excess=None) -> None:
    """Clamp (and Semantic on Clamp): spread r over the zero-valued possible classes, in place.

    r = 1 − A when A < 1, else γ, with the existing mass damped by (1 − γ) when `damp` (documented path) or
    left as it is (hmix_release: the final renormalisation divides by 1 + γ). The classes get r / n_free each
    (n_free = |P| − nnz(s)), i.e. r·|targets| / n_free in all, split by `weights` when given. Only rows with
    n_free > 0 change. Rows in `excess` (hmix_release, A > 1; `s` holds the stated values, not divided by A)
    give up γ / nnz(s) from each stated class (at most its value) before the spread.
    """
    nonzero = s != 0
    n_free = possible.sum(axis=1) - nonzero.sum(axis=1)
    spread = n_free > 0
    targets = possible & ~nonzero & spread[:, None]
    r = np.where(over, gamma, leftover) * spread
    if damp:
        s[over & spread] *= 1.0 - gamma
    elif excess is not None:
        take = excess & spread
        cut = np.divide(gamma, nonzero.sum(axis=1), out=np.zeros(len(s)), where=take)
        np.subtract(s, nonzero * cut[:, None], out=s)
        np.clip(s, 0.0, None, out=s)
    mass = np.divide(r * targets.sum(axis=1), n_free, out=np.zeros_like(r), where=spread)
    if weights is None:
        w = targets.astype(np.float64)
    else:
        w = weights * targets
        no_weight = w.sum(axis=1) == 0
        w[no_weight] = targets[no_weight]
    w_sum = w.sum(axis=1)
    share = np.divide(mass, w_sum, out=np.zeros_like(mass), where=w_sum > 0)
    s += w * share[:, None]


def _semantic_weights(similarity: np.ndarray | None, top: np.ndarray) -> np.ndarray:
    """max(0, sim[c1, k]) for each response: the semantic split of the leftover (appendix B.4)."""
    if similarity is None:
        raise ValueError("semantic varieties need `similarity` (see softlabels.labels.semantic_similarity)")
    sim = np.asarray(similarity, dtype=np.float64)
    if sim.shape != (NUM_CLASSES, NUM_CLASSES) or not np.all(np.isfinite(sim)):
        raise ValueError(f"similarity must be a finite [{NUM_CLASSES}, {NUM_CLASSES}] matrix, got shape {sim.shape}")
    return np.clip(sim[top], 0.0, None)


def _normalise_or_onehot(s: np.ndarray, top: np.ndarray) -> np.ndarray:
    """s / Σ s; rows with nothing to normalise become one-hot on the top class (instead of 0/0)."""
    total = s.sum(axis=1)
    empty = ~(total > 0)
    s[empty] = 0.0
    s[np.flatnonzero(empty), top[empty]] = 1.0
    total[empty] = 1.0
    return s / total[:, None]


def response_label(
    top: int,
    p1: float,
    second: int | None,
    p2: float | None,
    impossible: Iterable[int] = (),
    variety: str = "t2_clamp",
    gamma: float = 0.1,
    similarity: np.ndarray | None = None,
    path: str = "documented",
    semantic_base: str = "unif",
) -> np.ndarray:
    """Soft label [K] of one response (classes as int indices, probabilities 0-100; see the module doc)."""
    possible = np.ones((1, NUM_CLASSES), dtype=bool)
    impossible = [int(k) for k in impossible]
    if any(k < 0 or k >= NUM_CLASSES for k in impossible):
        raise ValueError(f"impossible class index out of range 0..{NUM_CLASSES - 1}: {impossible}")
    possible[0, impossible] = False
    p2_value = np.nan if p2 is None else float(p2)
    second_value = -1 if second is None else int(second)
    return elicited_labels(
        np.array([int(top)]),
        np.array([float(p1)]),
        np.array([second_value]),
        np.array([p2_value]),
        possible,
        variety=variety,
        gamma=gamma,
        similarity=similarity,
        path=path,
        semantic_base=semantic_base,
    )[0]


RESPONSE_COLUMNS = ("top_class", "top_prob", "second_class", "second_prob", "impossible")


def response_arrays(df: pd.DataFrame) -> dict[str, np.ndarray]:
    """The arrays `elicited_labels` takes, from a tidy responses table (the `cifar10s_responses.csv` columns:
    top_class, top_prob, second_class, second_prob, impossible as '|'-joined names). Errors name the row."""
    missing = [c for c in RESPONSE_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"responses table lacks column(s) {', '.join(missing)}")
    n = len(df)
    top = np.empty(n, dtype=np.int64)
    second = np.full(n, -1, dtype=np.int64)
    possible = np.ones((n, NUM_CLASSES), dtype=bool)
    for row, (t, c2, imp) in enumerate(zip(df["top_class"], df["second_class"], df["impossible"])):
        where = f"responses row {row}"
        top[row] = class_index(t, where)
        if _present(c2):
            second[row] = class_index(c2, where)
        if _present(imp):
            for name in str(imp).split("|"):
                if name.strip():
                    possible[row, class_index(name, where)] = False
    p1 = pd.to_numeric(df["top_prob"], errors="coerce").to_numpy(dtype=np.float64)
    p2 = pd.to_numeric(df["second_prob"], errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(p1))
    if bad.size:
        raise ValueError(f"responses row {bad[0]}: top_prob {df['top_prob'].iloc[bad[0]]!r} is not a number")
    return {"top": top, "p1": p1, "second": second, "p2": p2, "possible": possible}


def _present(value) -> bool:
    if value is None or (np.ndim(value) == 0 and pd.isna(value)):
        return False
    return str(value).strip() != ""


def response_labels(
    df: pd.DataFrame,
    variety: str = "t2_clamp",
    gamma: float = 0.1,
    similarity: np.ndarray | None = None,
    path: str = "documented",
    semantic_base: str = "unif",
) -> np.ndarray:
    """Labels [n, K] for every row of a tidy responses DataFrame, in row order."""
    arrays = response_arrays(df)
    return elicited_labels(**arrays, variety=variety, gamma=gamma, similarity=similarity, path=path,
                           semantic_base=semantic_base)
