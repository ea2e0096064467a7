"""wd_torch: the chapter's weight decay in PyTorch (``torch.optim.SGD(weight_decay=...)``).

Mirrors :mod:`wd_jax` name for name. Data, batch order and initial parameters come from
:mod:`wd_core`; this package draws no random numbers.
"""

from wd_core.errors import framework_error

try:
    import torch  # noqa: F401
except Exception as err:  # absent, or installed and broken: the cause is chained and printed
    raise framework_error("wd_torch", "PyTorch", "torch", err) from err

from wd_torch.models import WeightDecay, WeightDecayScratch, l2_penalty, squared_loss
from wd_torch.step import sgd_step
from wd_torch.sweeping import sweep
from wd_torch.training import train

__all__ = ["l2_penalty", "squared_loss", "WeightDecayScratch", "WeightDecay", "sgd_step", "train",
           "sweep"]
