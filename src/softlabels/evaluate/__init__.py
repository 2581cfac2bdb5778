"""Stage: evaluate. Metrics of thesis §3.3.1 (softlabels.evaluate.metrics).

Names are resolved on first use (PEP 562), so the command line starts without importing torch.
"""

__all__ = ["evaluate_model", "fgsm_loss", "rms_calibration_error", "soft_cross_entropy"]


def __getattr__(name):
    if name in __all__:
        from softlabels.evaluate import metrics

        return getattr(metrics, name)
    raise AttributeError(f"module 'softlabels.evaluate' has no attribute {name!r}")
