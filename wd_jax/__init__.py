"""wd_jax: the chapter's weight decay in JAX + optax (``add_decayed_weights`` before ``sgd``).

Mirrors :mod:`wd_torch` name for name. Data, batch order and initial parameters come from
:mod:`wd_core`; this package draws no random numbers. Importing it changes no global JAX
setting: float64 runs enable x64 only inside their own scope.
"""

from wd_core.errors import framework_error

try:
    import jax  # noqa: F401
    import optax  # noqa: F401
except Exception as err:  # absent, or installed and broken: the cause is chained and printed
    raise framework_error("wd_jax", "JAX and optax", "jax", err, ("jax", "optax")) from err

from wd_jax.models import WeightDecay, WeightDecayScratch, l2_penalty, squared_loss
from wd_jax.step import sgd_step
from wd_jax.sweeping import sweep
from wd_jax.training import train

__all__ = ["l2_penalty", "squared_loss", "WeightDecayScratch", "WeightDecay", "sgd_step", "train",
           "sweep"]
