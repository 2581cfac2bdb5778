"""The researcher's progress page: responses per image and per participant, time per response, attention-check
failures and the entropy of the labels collected so far, as plots (PNG, inlined) and a few numbers.

Labels for the entropy histogram (soft_label): each response's T2-Clamp label (thesis §3.2.2,
`softlabels.labels.response_label`) with the configured γ (`labels.gamma`), averaged per image; H = −Σ p log p in nats. Mixing: the mean human label λ_h·y1 + (1 − λ_h)·y2 per stimulus.
A repeat fails the attention check when its most probable class differs from the first answer (soft_label) or
its share differs by more than `attention_tolerance` points (mixing).
Flagged answers (`softlabels.elicit.store`: image not fetched, too fast) do not count towards M; the page lists
them per participant with the reasons, and offers them as CSV (`/admin/flagged.csv`).
"""

from __future__ import annotations

import base64
import html
import io
from collections import defaultdict
from urllib.parse import quote

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from softlabels import NUM_CLASSES
from softlabels import config as cfg
from softlabels.elicit.store import Store
from softlabels.labels import response_label
from softlabels.numerics import entropy

e = html.escape


def _summary(task: str, answer: dict) -> str:
    if task == "soft_label":
        return f"{answer['top_class']} {answer['top_prob']:g}%"
    return f"lambda_h {answer['lambda_h']:g}"


def attention_checks(store: Store) -> list[dict]:
    """One record per answered repeat: participant, stimulus, passed, and both answers in short."""
    study = store.study
    responses = store.responses()
    first = {(r["batch"], r["position"]): r for r in responses if not r["is_repeat"]}
    out = []
    for r in responses:
        if not r["is_repeat"]:
            continue
        orig = first.get((r["batch"], r["repeat_of"]))
        if orig is None:
            continue
        a, b = r["answer"], orig["answer"]
        if study.task == "soft_label":
            passed = a["top_class"] == b["top_class"]
        else:
            passed = abs(a["lambda_h"] - b["lambda_h"]) * 100 <= study["attention_tolerance"]
        out.append({"participant": r["participant"], "stimulus": study.stimuli[r["stimulus"]].name, "passed": passed,
                    "first": _summary(study.task, b), "repeat": _summary(study.task, a)})  # fmt: skip
    return out


def failed_participants_table(store: Store):
    """Participants with at least one failed attention check: participant, failed, checks, failures (the
    stimulus and both answers of each failure, '; '-joined). The progress page offers it as CSV."""
    checks = attention_checks(store)
    rows = {}
    for c in checks:
        row = rows.setdefault(c["participant"], {"participant": c["participant"], "failed": 0, "checks": 0, "failures": []})
        row["checks"] += 1
        if not c["passed"]:
            row["failed"] += 1
            row["failures"].append(f"{c['stimulus']}: {c['first']} then {c['repeat']}")
    table = [{**r, "failures": "; ".join(r["failures"])} for r in rows.values() if r["failed"]]
    return pd.DataFrame(table, columns=["participant", "failed", "checks", "failures"])


def label_entropies(store: Store, gamma: float) -> np.ndarray:
    """Entropy (nats) of the mean label of every stimulus with at least one response (T2-Clamp with `gamma`)."""
    study = store.study
    K = len(study.classes)
    index = {c: i for i, c in enumerate(study.classes)}
    per_stimulus = defaultdict(list)
    for r in store.responses():
        a = r["answer"]
        if study.task == "mixing":
            mix = study.stimuli[r["stimulus"]].mix
            label = np.zeros(K)
            label[index[mix["class1"]]] += a["lambda_h"]
            label[index[mix["class2"]]] += 1 - a["lambda_h"]
        else:
            label = _t2_clamp(a, index, K, gamma)
        per_stimulus[r["stimulus"]].append(label)
    if not per_stimulus:
        return np.zeros(0)
    return entropy(np.stack([np.mean(v, axis=0) for v in per_stimulus.values()]))


def _t2_clamp(a: dict, index: dict, K: int, gamma: float) -> np.ndarray:
    """The T2-Clamp label of one soft_label answer (CIFAR-10 classes: `response_label`)."""
    if K == NUM_CLASSES:
        second = index[a["second_class"]] if a["second_class"] else None
        return response_label(index[a["top_class"]], a["top_prob"], second, a["second_prob"],
                              [index[name] for name in a["impossible"]], variety="t2_clamp", gamma=gamma)  # fmt: skip
    # other class counts: top-2 with the rest spread uniformly over the classes not ruled out
    s = np.zeros(K)
    s[index[a["top_class"]]] = a["top_prob"] / 100
    if a["second_class"]:
        s[index[a["second_class"]]] = a["second_prob"] / 100
    free = [i for i in range(K) if s[i] == 0 and list(index)[i] not in a["impossible"]]
    if s.sum() < 1 and free:
        s[free] += (1 - s.sum()) / len(free)
    return s / s.sum()


def _figure_png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    _pyplot().close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def progress_summary(store: Store, gamma: float | None = None) -> dict:
    """The page's numbers; `gamma` as `progress_html`."""
    gamma = cfg.load()["labels"]["gamma"] if gamma is None else gamma
    study = store.study
    responses = store.responses()
    counts = np.zeros(len(study.stimuli), dtype=int)
    for r in responses:
        if not r["is_repeat"] and not r["flag"]:
            counts[r["stimulus"]] += 1
    per_participant = defaultdict(int)
    for r in responses:
        per_participant[r["participant"]] += 1
    checks = attention_checks(store)
    batches = store.batches()
    return {
        "responses": len(responses),
        "participants": len(per_participant),
        "batches_finished": sum(b["finished"] is not None for b in batches),
        "images_complete": int((counts >= study["responses_per_image"]).sum()),
        "images": len(study.stimuli),
        "M": study["responses_per_image"],
        "counts": counts,
        "per_participant": dict(per_participant),
        "flagged": [r for r in responses if r["flag"]],
        "rt_s": np.array([r["rt_ms"] / 1000 for r in responses]),
        "checks": checks,
        "check_failures": sum(not c["passed"] for c in checks),
        "entropies": label_entropies(store, gamma),
    }


def _integer_axes(ax) -> None:
    """Counts on both axes as integers (histograms of counts; the per-participant bars)."""
    if ax.get_ylabel() in ("images", "participants", "responses"):
        ax.yaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    if ax.get_xlabel() in ("responses (repeats not counted)", "participant (sorted)", "failed repeats"):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


def _pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend (the page is drawn off screen), imported on the
    first page."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _axes():
    """A new 5×3-inch figure and its axes."""
    return _pyplot().subplots(figsize=(5, 3))


def _responses_per_image(s: dict):
    fig, ax = _axes()
    ax.hist(s["counts"], bins=np.arange(s["counts"].max(initial=0) + 2) - 0.5, color="#4c72b0")
    ax.axvline(s["M"], color="k", ls="--", label=f"M = {s['M']}")
    ax.set(xlabel="responses (repeats not counted)", ylabel="images", title="Responses per image")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend()
    _integer_axes(ax)
    return fig, ax


def _responses_per_participant(s: dict):
    fig, ax = _axes()
    values = sorted(s["per_participant"].values(), reverse=True)
    ax.bar(range(1, len(values) + 1), values, color="#55a868")
    ax.set(xlabel="participant (sorted)", ylabel="responses", title="Responses per participant")
    ax.set_xlim(0.5, max(len(values), 1) + 0.5)
    if len(values) <= 20:
        ax.set_xticks(range(1, len(values) + 1))
    if len(values) > 20:
        _integer_axes(ax)
    else:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    return fig, ax


def _time_per_response(s: dict):
    fig, ax = _axes()
    if len(s["rt_s"]):
        ax.hist(s["rt_s"], bins=30, color="#c44e52")
        ax.axvline(np.median(s["rt_s"]), color="k", ls="--", label=f"median {np.median(s['rt_s']):.1f} s")
        ax.legend()
    ax.set(xlabel="seconds", ylabel="responses", title="Time per response")
    _integer_axes(ax)
    return fig, ax


def _attention_failures(s: dict, repeats: int):
    fig, ax = _axes()
    failed = defaultdict(int)
    for c in s["checks"]:
        failed[c["participant"]] += int(not c["passed"])
    ax.hist(list(failed.values()) or [0], bins=np.arange(repeats + 2) - 0.5, color="#8172b2")
    ax.set(xlabel="failed repeats", ylabel="participants", title="Attention-check failures")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _integer_axes(ax)
    return fig, ax


def _label_entropy(s: dict, num_classes: int):
    fig, ax = _axes()
    if len(s["entropies"]):
        ax.hist(s["entropies"], bins=20, range=(0, np.log(num_classes)), color="#937860")
    ax.set(xlabel="entropy of the mean label (nats)", ylabel="images", title="Label entropy so far")
    _integer_axes(ax)
    return fig, ax


def progress_plots(s: dict, study) -> list[tuple[str, str]]:
    """(title, PNG data URL) of the page's five plots, from `progress_summary`."""
    figures = [_responses_per_image(s), _responses_per_participant(s), _time_per_response(s),
               _attention_failures(s, study["repeats"]), _label_entropy(s, len(study.classes))]  # fmt: skip
    return [(ax.get_title(), _figure_png(fig)) for fig, ax in figures]


def _facts_html(s: dict) -> str:
    facts = [
        ("responses stored", s["responses"]),
        ("participants", s["participants"]),
        ("batches finished", s["batches_finished"]),
        (f"images with M = {s['M']} responses", f"{s['images_complete']} / {s['images']}"),
        ("median seconds per response", f"{np.median(s['rt_s']):.1f}" if len(s["rt_s"]) else "-"),
        ("attention checks failed", f"{s['check_failures']} / {len(s['checks'])}"),
        ("answers flagged (not counted towards M)", len(s["flagged"])),
    ]
    return "".join(f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in facts)


def _admin_href(name: str, token: str) -> str:
    """The address of another admin page, relative to this one, with the token when there is one."""
    return name + (f"?token={quote(token)}" if token else "")


def _failed_participants_html(store: Store, token: str) -> str:
    failed_table = failed_participants_table(store)
    if not len(failed_table):
        return "<h2>Participants who failed attention checks</h2><p id='attention-failures'>none so far</p>"
    csv_href = _admin_href("attention.csv", token)
    items = "".join(
        f"<tr><td>{e(r.participant)}</td><td>{r.failed} / {r.checks}</td><td>{e(r.failures)}</td></tr>"
        for r in failed_table.itertuples()
    )
    return (f"<h2>Participants who failed attention checks ({len(failed_table)})</h2>"
            "<table id='attention-failures'><tr><th>participant</th><th>failed</th><th>failures "
            "(image: first answer then repeat)</th></tr>" + items + "</table>"
            f"<p><a id='attention-csv' href='{e(csv_href)}'>their IDs as CSV</a></p>")  # fmt: skip


def _flagged_html(flagged: list[dict], token: str) -> str:
    """The flagged answers per participant: how many, and why (the first reason of each kind, with its numbers)."""
    if not flagged:
        return "<h2>Flagged answers</h2><p id='flagged'>none so far</p>"
    per_participant = defaultdict(lambda: [0, {}])  # participant -> [answers flagged, {kind: first reason}]
    for r in flagged:
        entry = per_participant[r["participant"]]
        entry[0] += 1
        entry[1].setdefault(r["flag"].split(" ", 1)[0], r["flag"])
    rows = "".join(f"<tr><td>{e(p)}</td><td>{n}</td><td>{e('; '.join(why.values()))}</td></tr>"
                   for p, (n, why) in per_participant.items())  # fmt: skip
    csv_href = _admin_href("flagged.csv", token)
    return (f"<h2>Flagged answers ({len(flagged)}, not counted towards M)</h2>"
            "<table id='flagged'><tr><th>participant</th><th>flagged</th><th>why (first of each kind)</th></tr>"
            f"{rows}</table><p><a id='flagged-csv' href='{e(csv_href)}'>the flagged answers as CSV</a></p>")  # fmt: skip


def progress_html(store: Store, token: str = "", gamma: float | None = None) -> str:
    """The page; `token` (the admin token) goes into the links to the attention-failures and flagged CSVs;
    `gamma` is the T2-Clamp γ of the entropy histogram (default: `labels.gamma` of the checkout's config)."""
    s = progress_summary(store, gamma)
    study = store.study
    images = "".join(f'<figure><figcaption>{e(t)}</figcaption><img alt="{e(t)}" src="{p}"></figure>'
                     for t, p in progress_plots(s, study))  # fmt: skip
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Progress: {e(study['title'])}</title>"
        "<style>body{font-family:sans-serif;margin:2em}img{margin:.5em;border:1px solid #ddd}"
        "th{text-align:left;padding-right:1em}figure{display:inline-block}</style></head><body>"
        f"<h1>Progress: {e(study['title'])}</h1><p>Task: {e(study.task)}. Database: {e(str(store.path))}</p>"
        f"<table>{_facts_html(s)}</table>{_failed_participants_html(store, token)}{_flagged_html(s['flagged'], token)}"
        f"<div>{images}</div></body></html>"
    )
