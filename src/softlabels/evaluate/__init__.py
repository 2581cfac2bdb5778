"""Stage: evaluate. Metrics of thesis §3.3.1 (softlabels.evaluate.metrics)."""

from softlabels.evaluate.metrics import evaluate_model, fgsm_loss, rms_calibration_error, soft_cross_entropy

__all__ = ["evaluate_model", "fgsm_loss", "rms_calibration_error", "soft_cross_entropy"]
