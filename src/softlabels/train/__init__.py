"""Stage: train. `fit` trains one model on label pools, `fit_group` a fused group of runs
(softlabels.train.trainer).

Names are resolved on first use (PEP 562), so that `softlabels --help` and the light subcommands start
without importing torch.
"""

__all__ = ["Batch", "Member", "fit", "fit_group", "learning_rate"]


def __getattr__(name):
    if name in __all__:
        from softlabels.train import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module 'softlabels.train' has no attribute {name!r}")
