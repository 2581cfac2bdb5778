"""softlabels: a reproducible pipeline for Collins (2022), "Improving Machine Learning Systems by Eliciting
and Incorporating Additional Human Knowledge".

Stages, one subpackage each, in DAG order: `data` (downloads, parsing) -> `labels` (soft-label construction)
-> `train` (models, trainer) -> `evaluate` (metrics) -> `report` (tables, figures).
"""

__version__ = "0.1.0"

#: CIFAR-10 class names in the official (alphabetical) order; index k is class k everywhere.
CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
NUM_CLASSES = len(CLASSES)
