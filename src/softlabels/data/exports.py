"""Exports in the layouts of the processed files the upstream repositories released.

- `human_soft_labels_data.json` (cambridge-mlg/cifar-10s; docs/protocol.md#exports): CIFAR-10 test index as a
  string -> list of responses {"Most Probable Class", "Most Probable Class Prob", "Second Most Probable Class"
  (or "No"), "Second Most Probable Class Prob" (or null), "Impossible Class(es)"}; class names capitalised.
- `processed_hmix_inferences.json` (cambridge-mlg/hill-mixup; docs/protocol.md#exports): stimulus filename ->
  {"Std Dev": population std of λ_h, "Re-Label Diff": λ_f − mean λ_h, "True Mixing Factor": λ_f,
  "Predicted Mixing Factor": [λ_h], "Weighted Re-Label": mean(λ_h·ω), "Weighted Re-Label Diff":
  λ_f − mean(λ_h·ω), "Predicted Confidence": [ω], "Endpoints": [Label1, Label2], "Class Pair":
  "{Label1}_{id1}_{Label2}_{id2}.png"}.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd



def _capital(name: str) -> str:
    return name.capitalize()


def _number(value) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def responses_json(responses: pd.DataFrame) -> dict[str, list[dict]]:
    """The CIFAR-10S JSON layout; images in increasing index, responses in table order."""
    out: dict[str, list[dict]] = {}
    for image, group in responses.sort_values("image", kind="stable").groupby("image", sort=False):
        out[str(int(image))] = [
            {
                "Most Probable Class": _capital(r.top_class),
                "Most Probable Class Prob": float(r.top_prob),
                "Second Most Probable Class": _capital(r.second_class) if r.second_class else "No",
                "Second Most Probable Class Prob": _number(r.second_prob) if r.second_class else None,
                "Impossible Class(es)": [_capital(c) for c in r.impossible.split("|") if c],
            }
            for r in group.itertuples(index=False)
        ]
    return out


def hmix_inferences_json(judgments: pd.DataFrame) -> dict[str, dict]:
    """The processed H-Mix inferences layout; stimuli in order of first appearance."""
    out = {}
    for stimulus, group in judgments.groupby("stimulus", sort=False):
        lam_h = group["lambda_h"].to_numpy(float)
        omega = group["confidence"].to_numpy(float)
        first = group.iloc[0]
        lam_f = float(first["lambda_f"])
        label1, label2 = _capital(first["class1"]), _capital(first["class2"])
        weighted = float(np.mean(lam_h * omega))
        out[stimulus] = {
            "Std Dev": float(np.std(lam_h)),
            "Re-Label Diff": lam_f - float(np.mean(lam_h)),
            "True Mixing Factor": lam_f,
            "Predicted Mixing Factor": lam_h.tolist(),
            "Weighted Re-Label": weighted,
            "Weighted Re-Label Diff": lam_f - weighted,
            "Predicted Confidence": omega.tolist(),
            "Endpoints": [label1, label2],
            "Class Pair": f"{label1}_{int(first['image1'])}_{label2}_{int(first['image2'])}.png",
        }
    return out

