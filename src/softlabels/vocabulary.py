"""The project's names, each defined once: metrics, evaluation sets, label sources, chapter-4 augmenting labels,
mixing objectives and the figures drawn from training runs.

Every other module reads its names and titles from here: the config checks (`softlabels.config`), the training
builders, the tables, run figures, claims and the reproduction report. The schema's enumerations
(`workflow/schemas/config.schema.yaml`) cannot import Python, so `tests/test_vocabulary.py` holds them equal to
these tables.

A metric is stored in each run's `metrics.json` as `<eval set>.<metric>`; its name is the same in the result
tables (`metric` column), in `thesis_values.csv` and in a claims table. This module imports nothing from the
package (the bottom floor).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    """A number each training run measures on some evaluation sets.

    title: its name in tables and figures; eval_sets: where a run measures it; compared: a claim may compare it
    and the reproduction report plots it against the thesis (the thesis reports it); plotted: a panel of the
    figures drawn from runs (3.5, 3.6, B.3)."""

    title: str
    eval_sets: tuple[str, ...]
    compared: bool = True
    plotted: bool = False


#: Evaluation sets (thesis §3.3.1, §5.2.1) and their titles.
EVAL_SETS = {"cifar10h": "CIFAR-10H hold-out", "cifar10s": "CIFAR-10S hold-out", "corruption": "CIFAR-10-C"}
_CLEAN = ("cifar10h", "cifar10s")

#: Metrics in display order (`softlabels.evaluate.metrics.evaluate_model` computes the clean-set ones,
#: `softlabels.evaluate.corruption_ce.corruption_metrics` the corruption one).
METRICS = {
    "ce": Metric("CE", _CLEAN, plotted=True),
    "calibration": Metric("Calibration", _CLEAN, plotted=True),
    "fgsm": Metric("FGSM loss", _CLEAN, plotted=True),
    "accuracy": Metric("Accuracy", _CLEAN, compared=False),
    "corruption_ce": Metric("Corruption CE", ("corruption",)),
}
#: Metric names of earlier releases, by evaluation set: metrics.json files written before corruption CE had one
#: name store it as `corruption.mean` (`softlabels.report.tables.read_metrics` renames it on reading).
FORMER_METRIC_NAMES = {("corruption", "mean"): "corruption_ce"}
#: The thesis' per-label elicitation time (table 3.4): a `thesis_values.csv` metric that no run measures.
ELICITATION_TIME = "time_s"


@dataclass(frozen=True)
class LabelSource:
    """Where a scheme's training labels come from (`schemes.<name>.labels`, thesis §3.3.2-3.3.3).

    title: its row name in tables; keys: the scheme keys that apply only to this source."""

    title: str
    keys: tuple[str, ...] = ()


LABEL_SOURCES = {
    "hard": LabelSource("Hard labels"),
    "random": LabelSource("Random labels"),
    "uniform": LabelSource("Uniform labels"),
    "label_smoothing": LabelSource("Label smoothing"),
    "cifar10h": LabelSource("CIFAR-10H", ("aggregate", "M")),
    "cifar10s": LabelSource("CIFAR-10S", ("variety", "aggregate", "M")),
}

#: Labels of the 810 mixed H-Mix stimuli added in chapter 4 (`schemes.<name>.augment`; null: none added).
AUGMENTS = {None: "Regular (No Aug)", "uniform": "+ Uniform labels", "random": "+ Random labels",
            "mixup": "+ mixup labels (λ_f)", "agg": "Agg (mean λ_h)", "sep": "Sep (λ_h^m)",
            "agg_conf": "Agg (mean λ_h, mean ω)", "sep_conf": "Sep (λ_h^m, ω_m)"}  # fmt: skip


@dataclass(frozen=True)
class Objective:
    """A chapter-5 / appendix-C training objective (`schemes.<name>.objective`, thesis §5.1).

    title: its row name; keys: the scheme keys that apply only to it."""

    title: str
    keys: tuple[str, ...] = ()


OBJECTIVES = {
    "ce": Objective("CE"),
    "mixup": Objective("mixup", ("alpha", "target_mix")),
    "mixmaxent": Objective("Mix-MaxEnt", ("alpha", "maxent_weight", "partners")),
    "entwc": Objective("Ent-WC", ("alpha", "kappa", "detach_weight", "target_mix")),
}
#: The objectives that mix pairs of images (all but plain CE).
MIXING_OBJECTIVES = tuple(name for name in OBJECTIVES if name != "ce")

#: Figures drawn from training runs (`figures:`): the column of their data on the x axis and its title.
RUN_FIGURES = {
    "fig3_5": ("cost_s", "estimated annotation cost M · t_per (s)"),
    "figB_3": ("M", "annotators per image M"),
    "fig3_6": ("n_soft", "soft-labelled training images N'"),
}


def metric_title(name: str) -> str:
    """The title of a metric; an unknown name is its own title."""
    return METRICS[name].title if name in METRICS else name


def metrics_on(eval_set: str, *, compared: bool | None = None, plotted: bool | None = None) -> tuple[str, ...]:
    """The metrics measured on `eval_set` (`"*"`: on any), optionally only those compared or plotted."""
    return tuple(
        name for name, m in METRICS.items()
        if (eval_set == "*" or eval_set in m.eval_sets)
        and (compared is None or m.compared == compared) and (plotted is None or m.plotted == plotted)
    )  # fmt: skip


def keys_only_for(key: str) -> tuple[str, str, tuple[str, ...]] | None:
    """(the scheme key it depends on, that key's default, the values it applies with) for a scheme key that
    applies only to some label sources or objectives; None for any other key."""
    sources = tuple(name for name, s in LABEL_SOURCES.items() if key in s.keys)
    if sources:
        return "labels", None, sources
    objectives = tuple(name for name, o in OBJECTIVES.items() if key in o.keys)
    if objectives:
        return "objective", "ce", objectives
    return None
