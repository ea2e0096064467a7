"""wd_core: the numpy-only hub of the weight-decay project.

It owns the synthetic data and batch order (:class:`SyntheticData`), the initial
parameters (:func:`init_params`), the float64 reference (:mod:`wd_core.reference`), what
a run returns (:class:`History`), the validated run contract (:mod:`wd_core.runspec`) and the
training driver both backends feed (:mod:`wd_core.driver`). It imports numpy and the standard
library only, and nothing of the packages built on it.
"""

from wd_core import reference
from wd_core.data import SyntheticData
from wd_core.errors import DeviceUnavailableError, InputError
from wd_core.history import History
from wd_core.params import init_params

__all__ = ["SyntheticData", "init_params", "History", "reference", "InputError",
           "DeviceUnavailableError"]
__version__ = "0.1.0"
