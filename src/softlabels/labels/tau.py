"""Human-fitted logistic mixing functions τ_{i,j} (appendix C; docs/protocol.md#tau-appendix-c).

τ(λ; k, λ0) = [σ(k(λ − λ0)) − σ(−k λ0)] / [σ(k(1 − λ0)) − σ(−k λ0)], the logistic σ rescaled so that
τ(0) = 0 and τ(1) = 1 (it tends to λ as k -> 0).

Fit: for every unordered class pair {i, j} (i < j) the H-Mix judgments are put in the orientation of class i:
a stimulus shown as (img1 of class i, img2 of class j) gives the point (λ_f, λ_h); one shown as (j, i) gives
(1 − λ_f, 1 − λ_h). `scipy.optimize.curve_fit` fits (k, λ0) on the pooled points. For the ordered pair
(j, i) we use τ_{j,i}(λ) = 1 − τ_{i,j}(1 − λ), so the two orders always agree.
`symmetric=True` adds both (λ_f, λ_h) and (1 − λ_f, 1 − λ_h) of every judgment instead, which forces
τ_{i,j} = τ_{j,i}.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.optimize import curve_fit

from softlabels import CLASSES, NUM_CLASSES
from softlabels.labels.elicited import class_index

#: Bounds of the fitted parameters (k: steepness, x0: the midpoint, kept inside [0, 1] so that it reads as
#: the λ at which the two classes look equally present) and the starting point.
K_BOUNDS = (1e-3, 200.0)
X0_BOUNDS = (0.0, 1.0)
P0 = (5.0, 0.5)
TAU_COLUMNS = ["class_i", "class_j", "name_i", "name_j", "k", "x0", "n", "rmse", "rmse_linear"]


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def tau(lam, k, x0):
    """τ(λ; k, λ0), the logistic rescaled to τ(0) = 0 and τ(1) = 1 (λ itself when k is ~0)."""
    lam = np.asarray(lam, dtype=np.float64)
    k = np.asarray(k, dtype=np.float64)
    x0 = np.asarray(x0, dtype=np.float64)
    lo = _sigmoid(-k * x0)
    hi = _sigmoid(k * (1.0 - x0))
    span = hi - lo
    flat = np.abs(span) < 1e-12
    value = (_sigmoid(k * (lam - x0)) - lo) / np.where(flat, 1.0, span)
    return np.where(flat, lam, value)


def _oriented_points(judgments_df: pd.DataFrame, symmetric: bool) -> pd.DataFrame:
    """Per judgment: the unordered pair (i < j) and (λ, λ_h) relative to class i."""
    missing = [c for c in ("class1", "class2", "lambda_f", "lambda_h") if c not in judgments_df.columns]
    if missing:
        raise ValueError(f"judgments table lacks column(s) {', '.join(missing)}")
    c1 = _class_column(judgments_df["class1"])
    c2 = _class_column(judgments_df["class2"])
    lam_f = judgments_df["lambda_f"].to_numpy(np.float64)
    lam_h = judgments_df["lambda_h"].to_numpy(np.float64)
    keep = (c1 != c2) & np.isfinite(lam_f) & np.isfinite(lam_h)
    c1, c2, lam_f, lam_h = c1[keep], c2[keep], lam_f[keep], lam_h[keep]
    flip = c1 > c2
    points = pd.DataFrame(
        {
            "class_i": np.minimum(c1, c2),
            "class_j": np.maximum(c1, c2),
            "x": np.where(flip, 1.0 - lam_f, lam_f),
            "y": np.where(flip, 1.0 - lam_h, lam_h),
        }
    )
    if symmetric:
        mirrored = points.assign(x=1.0 - points["x"], y=1.0 - points["y"])
        points = pd.concat([points, mirrored], ignore_index=True)
    return points


def _class_column(values: pd.Series) -> np.ndarray:
    """Class indices from a column of ints or class names."""
    if pd.api.types.is_integer_dtype(values):
        out = values.to_numpy(np.int64)
        if np.any((out < 0) | (out >= NUM_CLASSES)):
            raise ValueError("class index out of range in judgments table")
        return out
    return np.array([class_index(v, "judgments table") for v in values], dtype=np.int64)


def fit_tau(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(k, λ0) of τ fitted to points (x, y) by least squares (scipy.optimize.curve_fit, bounded)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (k, x0), _ = curve_fit(
            lambda lam, k, x0: tau(lam, k, x0),
            np.asarray(x, np.float64),
            np.asarray(y, np.float64),
            p0=P0,
            bounds=([K_BOUNDS[0], X0_BOUNDS[0]], [K_BOUNDS[1], X0_BOUNDS[1]]),
            maxfev=20000,
        )
    return float(k), float(x0)


def fit_class_pair_taus(judgments_df: pd.DataFrame, symmetric: bool = False) -> pd.DataFrame:
    """DataFrame(class_i, class_j, name_i, name_j, k, x0, n, rmse, rmse_linear): one row per class pair seen
    (i < j), τ relative to class i. n = the number of judgments used (points before mirroring); rmse is the
    root-mean-square residual of τ and rmse_linear that of plain mixup (λ_g = λ_f) on the same points."""
    points = _oriented_points(judgments_df, symmetric)
    rows = []
    for (i, j), group in points.groupby(["class_i", "class_j"], sort=True):
        if group["x"].nunique() < 2:
            raise ValueError(f"class pair ({CLASSES[i]}, {CLASSES[j]}) has judgments at fewer than 2 mixing factors")
        k, x0 = fit_tau(group["x"], group["y"])
        resid = tau(group["x"].to_numpy(), k, x0) - group["y"].to_numpy()
        n = len(group) // 2 if symmetric else len(group)
        linear = group["x"].to_numpy() - group["y"].to_numpy()
        rmse, rmse_linear = (float(np.sqrt(np.mean(r**2))) for r in (resid, linear))
        rows.append((int(i), int(j), CLASSES[i], CLASSES[j], k, x0, n, rmse, rmse_linear))
    return pd.DataFrame(rows, columns=TAU_COLUMNS)


def pair_parameters(taus: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(k, x0) as [K, K] matrices filled for i < j (NaN elsewhere) from a `fit_class_pair_taus` table."""
    k = np.full((NUM_CLASSES, NUM_CLASSES), np.nan)
    x0 = np.full((NUM_CLASSES, NUM_CLASSES), np.nan)
    i = taus["class_i"].to_numpy(np.int64)
    j = taus["class_j"].to_numpy(np.int64)
    if np.any(i >= j):
        raise ValueError("τ table rows must have class_i < class_j")
    k[i, j] = taus["k"].to_numpy(np.float64)
    x0[i, j] = taus["x0"].to_numpy(np.float64)
    return k, x0


def class_pair_tau(lam, class_i, class_j, taus: pd.DataFrame | tuple[np.ndarray, np.ndarray]):
    """λ_g = τ_{i,j}(λ) for ordered pairs (vectorised): τ_{i,j}(λ) for i < j, 1 − τ_{j,i}(1 − λ) for i > j,
    and λ for i == j. `taus` is the fitted table or its `pair_parameters`. A pair with no fit is an error."""
    k_mat, x0_mat = pair_parameters(taus) if isinstance(taus, pd.DataFrame) else taus
    lam = np.asarray(lam, dtype=np.float64)
    ci, cj = np.broadcast_arrays(np.asarray(class_i, np.int64), np.asarray(class_j, np.int64))
    lo, hi = np.minimum(ci, cj), np.maximum(ci, cj)
    k, x0 = k_mat[lo, hi], x0_mat[lo, hi]
    same = ci == cj
    if np.any(~same & np.isnan(k)):
        bad = np.flatnonzero(~same & np.isnan(k))[0]
        raise ValueError(f"no fitted τ for class pair ({CLASSES[lo.flat[bad]]}, {CLASSES[hi.flat[bad]]})")
    k, x0 = np.where(same, 1.0, k), np.where(same, 0.5, x0)
    forward = ci < cj
    value = np.where(forward, tau(lam, k, x0), 1.0 - tau(1.0 - lam, k, x0))
    return np.where(same, lam, value)
