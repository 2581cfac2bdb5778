"""Soft-label simulator of appendix B.5 (docs/protocol.md#simulator-appendix-b5).

Fit (from the CIFAR-10S responses): each response is routed by the CIFAR-10H entropy of its image
(natural log; "high" when H >= threshold, else "low"). From its documented T2-Clamp label (γ) we take
top = the largest entry, second = the second-largest *unique* value (the top value when all are equal) and
n_also_possible = nnz − 1. Per group, Beta distributions are fitted to top and second with
`scipy.stats.beta.fit(x, floc=0)` (free scale) after mapping x = 1.0 -> 0.95 and x = 0 -> 1e-5, and the
n_also_possible histogram (0..9) is kept. These follow the exploratory notebook of cambridge-mlg/cifar-10s.

Simulate (one label per CIFAR-10H row): route by entropy; draw the hard label h from the CIFAR-10H probs
(taken as top-1); p1 ~ Beta(top); K_p ~ the histogram; the other classes ranked by semantic similarity to h,
the first K_p kept as possible; if K_p >= 1, p2 ~ Beta(second) goes on the closest class. The simulated
response (h, p1, closest, p2, impossible = the classes not kept) is then turned into a label by the
documented T2-Clamp construction with the same γ: the remainder 1 − p1 − p2 is spread uniformly over the other
kept classes, and p1 + p2 > 1 is renormalised first (then γ is re-injected, as Clamp does).
By default the Betas are sampled as Beta(a, b), ignoring the fitted scale, as the notebook did;
`use_beta_scale=True` samples scale·Beta(a, b) instead (config `labels.simulator_use_beta_scale`).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from softlabels import NUM_CLASSES
from softlabels.labels.elicited import elicited_labels, response_labels
from softlabels.numerics import entropy

GROUPS = ("low", "high")


@dataclass
class BetaFit:
    a: float
    b: float
    loc: float
    scale: float


@dataclass
class GroupParams:
    """Fitted statistics of one entropy group."""

    n_responses: int
    top_mean: float
    top_sd: float
    top: BetaFit
    second: BetaFit
    #: n_also_possible histogram: counts of responses with 0..K-1 further non-zero classes.
    n_also_possible: list[int] = field(default_factory=list)


@dataclass
class SimulatorParams:
    threshold: float
    gamma: float
    low: GroupParams
    high: GroupParams

    def group(self, name: str) -> GroupParams:
        return {"low": self.low, "high": self.high}[name]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "SimulatorParams":
        def group(g: dict) -> GroupParams:
            return GroupParams(
                n_responses=int(g["n_responses"]),
                top_mean=float(g["top_mean"]),
                top_sd=float(g["top_sd"]),
                top=BetaFit(**g["top"]),
                second=BetaFit(**g["second"]),
                n_also_possible=[int(x) for x in g["n_also_possible"]],
            )

        return cls(float(data["threshold"]), float(data["gamma"]), group(data["low"]), group(data["high"]))


def label_statistics(labels: np.ndarray) -> dict[str, np.ndarray]:
    """top (max), second (second-largest unique value, or top if all equal), n_also_possible (nnz − 1)."""
    top = labels.max(axis=1)
    ordered = -np.sort(-labels, axis=1)
    below = ordered < top[:, None]
    first_below = np.argmax(below, axis=1)
    second = np.where(below.any(axis=1), ordered[np.arange(len(labels)), first_below], top)
    return {"top": top, "second": second, "n_also_possible": (labels != 0).sum(axis=1) - 1}


def beta_fit(values: np.ndarray) -> BetaFit:
    """scipy.stats.beta.fit(x, floc=0) after x = 1.0 -> 0.95 and x = 0 -> 1e-5 (the notebook's mapping)."""
    x = np.asarray(values, dtype=np.float64).copy()
    x[x == 1.0] = 0.95
    x[x == 0.0] = 1e-5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        a, b, loc, scale = stats.beta.fit(x, floc=0)
    return BetaFit(float(a), float(b), float(loc), float(scale))


def fit_simulator(
    responses_df: pd.DataFrame,
    cifar10h_probs: np.ndarray,
    similarity: np.ndarray | None = None,
    threshold: float = 0.25,
    gamma: float = 0.1,
) -> SimulatorParams:
    """Fit the B.5 simulator. cifar10h_probs is indexed by the `image` column (the full [10000, K] array).
    `similarity` is not used by the fit (only by `simulate_labels`); it is accepted for symmetry."""
    probs = np.asarray(cifar10h_probs, dtype=np.float64)
    images = responses_df["image"].to_numpy(dtype=np.int64)
    if images.size and (images.min() < 0 or images.max() >= len(probs)):
        raise ValueError(f"response image index outside the {len(probs)} CIFAR-10H rows")
    high = entropy(probs[images]) >= threshold
    stats = label_statistics(response_labels(responses_df, "t2_clamp", gamma=gamma))
    groups = {}
    for name, mask in (("low", ~high), ("high", high)):
        if mask.sum() < 2:
            raise ValueError(f"too few responses in the {name}-entropy group ({mask.sum()}) to fit the simulator")
        top = stats["top"][mask]
        groups[name] = GroupParams(
            n_responses=int(mask.sum()),
            top_mean=float(top.mean()),
            top_sd=float(top.std(ddof=1)),
            top=beta_fit(top),
            second=beta_fit(stats["second"][mask]),
            n_also_possible=np.bincount(stats["n_also_possible"][mask], minlength=NUM_CLASSES).tolist(),
        )
    return SimulatorParams(threshold=float(threshold), gamma=float(gamma), **groups)


def _sample_categorical(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One index per row of probs [n, m] (inverse CDF)."""
    cdf = np.cumsum(probs, axis=1)
    u = rng.random(len(probs)) * cdf[:, -1]
    return np.minimum((cdf <= u[:, None]).sum(axis=1), probs.shape[1] - 1)


def simulate_labels(
    params: SimulatorParams,
    cifar10h_probs_rows: np.ndarray,
    similarity: np.ndarray,
    seed: int,
    use_beta_scale: bool = False,
) -> np.ndarray:
    """One simulated soft label [n, K] per CIFAR-10H probability row (see the module doc)."""
    probs = np.asarray(cifar10h_probs_rows, dtype=np.float64)
    sim = np.asarray(similarity, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] != NUM_CLASSES:
        raise ValueError(f"CIFAR-10H probs must be [n, {NUM_CLASSES}], got {probs.shape}")
    if sim.shape != (NUM_CLASSES, NUM_CLASSES):
        raise ValueError(f"similarity must be [{NUM_CLASSES}, {NUM_CLASSES}], got {sim.shape}")
    n = len(probs)
    rng = np.random.default_rng(seed)
    high = entropy(probs) >= params.threshold

    def per_row(getter) -> np.ndarray:
        return np.where(high, getter(params.high), getter(params.low))

    hard = _sample_categorical(rng, probs)
    scale_top = per_row(lambda g: g.top.scale) if use_beta_scale else 1.0
    scale_second = per_row(lambda g: g.second.scale) if use_beta_scale else 1.0
    p1 = rng.beta(per_row(lambda g: g.top.a), per_row(lambda g: g.top.b)) * scale_top
    p2 = rng.beta(per_row(lambda g: g.second.a), per_row(lambda g: g.second.b)) * scale_second
    hist = np.stack([np.asarray(params.group("high" if h else "low").n_also_possible, np.float64) for h in (False, True)])
    k_p = _sample_categorical(rng, hist[high.astype(int)])

    # Alternatives ranked by similarity to h (h itself last); the first K_p stay possible.
    scores = sim[hard].copy()
    scores[np.arange(n), hard] = -np.inf
    ranked = np.argsort(-scores, axis=1, kind="stable")
    possible = np.zeros((n, NUM_CLASSES), dtype=bool)
    possible[np.arange(n), hard] = True
    keep = np.arange(NUM_CLASSES)[None, :] < k_p[:, None]
    np.put_along_axis(possible, ranked, keep | possible[np.arange(n)[:, None], ranked], axis=1)
    second = np.where(k_p >= 1, ranked[:, 0], -1)
    p2 = np.where(k_p >= 1, p2, np.nan)
    return elicited_labels(
        hard,
        np.clip(p1 * 100.0, 0.0, 100.0),
        second,
        np.clip(p2 * 100.0, 0.0, 100.0),
        possible,
        variety="t2_clamp",
        gamma=params.gamma,
    )
