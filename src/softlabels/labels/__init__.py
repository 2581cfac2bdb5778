"""Stage: labels. Soft-label construction from human data (thesis §3.2, chapter 4, appendices B.2-B.5, C).

Every training scheme becomes a `LabelPools` (image n's candidate labels are `labels[n, :sizes[n]]`).
"""

from softlabels.labels.baselines import hard_pools, label_smoothing_pools, random_pools, uniform_pools
from softlabels.labels.elicited import PATHS, SEMANTIC_BASES, VARIETIES, response_label, response_labels
from softlabels.labels.mixed import HMIX_VARIANTS, confidence_smoothed_label, hmix_pools, mixup_label
from softlabels.labels.pools import LabelPools, cifar10h_pools, cifar10s_pools
from softlabels.labels.semantic import semantic_similarity
from softlabels.labels.simulator import SimulatorParams, fit_simulator, simulate_labels
from softlabels.labels.tau import class_pair_tau, fit_class_pair_taus, pair_parameters, tau

__all__ = [
    "HMIX_VARIANTS",
    "LabelPools",
    "PATHS",
    "SEMANTIC_BASES",
    "SimulatorParams",
    "VARIETIES",
    "cifar10h_pools",
    "cifar10s_pools",
    "class_pair_tau",
    "confidence_smoothed_label",
    "fit_class_pair_taus",
    "fit_simulator",
    "hard_pools",
    "hmix_pools",
    "label_smoothing_pools",
    "mixup_label",
    "pair_parameters",
    "random_pools",
    "response_label",
    "response_labels",
    "semantic_similarity",
    "simulate_labels",
    "tau",
    "uniform_pools",
]
