"""Stage: train. `fit` trains one model on label pools (softlabels.train.trainer)."""

from softlabels.train.trainer import Batch, fit, learning_rate

__all__ = ["Batch", "fit", "learning_rate"]
