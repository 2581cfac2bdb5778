"""Server-side checks of one submitted answer (the page runs the same checks in app.js).

soft_label (thesis §3.2): `top_class` from the class list with `top_prob` in 0..100; optionally `second_class`
(≠ the first) with `second_prob` in 0..100, and top_prob + second_prob ≤ 100; `impossible` a list of distinct
classes that excludes the chosen ones.
mixing (thesis §4.2.1): `share` in 0..100, the percentage of the class shown on the right, and `confidence` in
0..100. The stored λ_h is the share of image 1 of the stimulus, as in the H-Mix table.
"""

from __future__ import annotations

import math
import re
from typing import Any

SUBMISSION_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
PARTICIPANT_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MAX_RT_MS = 24 * 3600 * 1000
MIN_TOKEN = 16  # characters of an admin token
MIN_TOKEN_KINDS = 8  # different characters in an admin token
MAX_INDEX = 2**31 - 1  # batch ids and trial positions (SQLite integers; larger values are no trial)


class Rejected(ValueError):
    """A submission that is not stored; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def weak_token(token: str) -> str | None:
    """Why `token` is too weak to guard the admin pages, or None when it is not: shorter than MIN_TOKEN
    characters, anything but printable ASCII (it travels in URLs and headers), fewer than MIN_TOKEN_KINDS
    different characters (`aaaa...`, `abab...`), or a shorter sequence repeated (`abcdefghabcdefgh`)."""
    if len(token) < MIN_TOKEN:
        return f"it must be at least {MIN_TOKEN} characters, got {len(token)}"
    if not all("!" <= c <= "~" for c in token):
        return "it must consist of letters, digits and punctuation only (printable ASCII, no spaces)"
    if len(set(token)) < MIN_TOKEN_KINDS:
        return f"it must have at least {MIN_TOKEN_KINDS} different characters, got {len(set(token))}"
    if (token + token).find(token, 1) < len(token):
        return "it repeats a shorter sequence"
    return None


def _finite(value: Any) -> float | None:
    """`value` as a finite float, or None for what is no number here: booleans, other types, NaN, infinities and
    integers beyond float range (JSON integers are unbounded; `float()` of such one raises OverflowError)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _shown(value: Any) -> str:
    """A refused value for a message: at most 40 characters of its repr (a JSON integer may have thousands)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _number(answer: dict, key: str, lo: float = 0, hi: float = 100) -> float:
    value = answer.get(key)
    number = _finite(value)
    if number is None:
        raise Rejected(f"field '{key}' must be a number between {lo:g} and {hi:g}, got {_shown(value)}")
    if not lo <= number <= hi:
        raise Rejected(f"field '{key}' must be between {lo:g} and {hi:g}, got {number:g}")
    return number


def _class(answer: dict, key: str, classes) -> str:
    value = answer.get(key)
    if value not in classes:
        raise Rejected(f"field '{key}': {value!r} is not one of the classes ({', '.join(classes)})")
    return value


def soft_label_answer(answer: Any, classes) -> dict:
    if not isinstance(answer, dict):
        raise Rejected("field 'answer' must be an object")
    unknown = set(answer) - {"top_class", "top_prob", "second_class", "second_prob", "impossible"}
    if unknown:
        raise Rejected(f"unknown answer field(s): {', '.join(sorted(unknown))}")
    top = _class(answer, "top_class", classes)
    top_prob = _number(answer, "top_prob")
    second = answer.get("second_class")
    if second is None:
        second = ""
    if not isinstance(second, str):
        raise Rejected(f"field 'second_class' must be a class name or \"\" (no second class), got {second!r}")
    second_prob = None
    if second:
        second = _class(answer, "second_class", classes)
        if second == top:
            raise Rejected(f"field 'second_class': the second class must differ from the most probable ('{top}')")
        second_prob = _number(answer, "second_prob")
        if top_prob + second_prob > 100:
            raise Rejected(f"probabilities sum to {top_prob + second_prob:g} > 100 (top_prob + second_prob)")
    elif answer.get("second_prob") not in (None, ""):
        raise Rejected("field 'second_prob' given without a 'second_class'")
    impossible = answer.get("impossible", [])
    if not isinstance(impossible, list):
        raise Rejected("field 'impossible' must be a list of classes")
    for name in impossible:
        if name not in classes:
            raise Rejected(f"field 'impossible': {name!r} is not one of the classes")
        if name in (top, second):
            raise Rejected(f"field 'impossible': '{name}' is also chosen as a probable class")
    if len(set(impossible)) != len(impossible):
        raise Rejected("field 'impossible' lists a class twice")
    order = {c: i for i, c in enumerate(classes)}
    return {"top_class": top, "top_prob": top_prob, "second_class": second, "second_prob": second_prob,
            "impossible": sorted(impossible, key=order.get)}  # fmt: skip


def mixing_answer(answer: Any, swapped: bool) -> dict:
    """`swapped`: the page showed the stimulus' class 2 on the left (endpoint order shuffled per trial)."""
    if not isinstance(answer, dict):
        raise Rejected("field 'answer' must be an object")
    unknown = set(answer) - {"share", "confidence"}
    if unknown:
        raise Rejected(f"unknown answer field(s): {', '.join(sorted(unknown))}")
    share = _number(answer, "share")
    confidence = _number(answer, "confidence")
    share_class2 = 100.0 - share if swapped else share  # share of the stimulus' image 2
    return {"share": share, "confidence": confidence, "lambda_h": round(1.0 - share_class2 / 100.0, 6)}


def index(payload: dict, key: str) -> int:
    """A batch id or trial position: an integer (not a boolean) in 0..MAX_INDEX."""
    value = payload.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INDEX:
        raise Rejected(f"field '{key}' must be an integer from 0 to {MAX_INDEX}, got {_shown(value)}")
    return value


def reaction_time(value: Any) -> float:
    number = _finite(value)
    if number is None:
        raise Rejected(f"field 'rt_ms' must be a number of milliseconds, got {_shown(value)}")
    if not 0 < number <= MAX_RT_MS:
        raise Rejected(f"field 'rt_ms' must be between 0 and {MAX_RT_MS} ms, got {number:g}")
    return number
