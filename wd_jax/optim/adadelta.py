"""``torch.optim.Adadelta`` (coupled L2) as an optax chain, and its port.

``Adadelta(lr, rho, eps, weight_decay, maximize)``, per leaf ``p`` with gradient ``g``
(``-g`` if ``maximize``):

* ``g <- g + wd*p`` (coupled: the decay enters both running averages);
* ``v_t = rho*v_{t-1} + (1 - rho)*g**2`` (``v_0 = 0``);
* ``d_t = sqrt(u_{t-1} + eps) / sqrt(v_t + eps) * g`` (eps *inside* both roots);
* ``u_t = rho*u_{t-1} + (1 - rho)*d_t**2`` (``u_0 = 0``);
* ``p <- p - lr*d_t``: torch's ``lr`` (default 1.0) multiplies the delta.

Built from optax's own transforms: ``chain(add_decayed_weights(wd, mask),
scale_by_adadelta(rho, eps), scale_by_learning_rate(lr))``, which is ``optax.adadelta(lr,
rho, eps, weight_decay, weight_decay_mask=mask)`` itself: the namesake *is* a twin (measured
in ``parity_tests/test_optim_adadelta.py``). The one transform added by hand is
:func:`wd_jax.optim.transforms.count_steps`, for torch's ``step`` (counted, never used by
Adadelta's rule; ``scale_by_adadelta`` keeps no count).

State (torch key <-> optax field of the group's state): ``step`` <->
``TorchStepState.step``, ``square_avg`` <-> ``ScaleByAdaDeltaState.e_g``, ``acc_delta`` <->
``ScaleByAdaDeltaState.e_x``; torch creates them at the first step as zeros, which is optax's
``init``.
"""

from __future__ import annotations

import optax

from wd_core.errors import InputError
from wd_core.optimizers import check_hyperparameter
from wd_core.validation import NONNEGATIVE, is_number
from wd_jax.optim.registry import StateKey, TorchOptimizer
from wd_jax.optim.transforms import TorchStepState, count_steps, learning_rate, sign


def check_adadelta_arguments(*, lr, rho, eps, weight_decay) -> None:
    """The checks of ``torch.optim.Adadelta.__init__`` (``InputError``, a ``ValueError``
    like torch's): ``lr``, ``eps``, ``weight_decay`` >= 0 and ``0 <= rho <= 1``."""
    for name, value in (("lr", lr), ("rho", rho), ("eps", eps), ("weight_decay", weight_decay)):
        check_hyperparameter(name, value, NONNEGATIVE)
    if is_number(rho) and rho > 1:
        raise InputError(f"rho must be a finite number >= 0 and <= 1, got {rho!r}")


def torch_adadelta(lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, maximize=False,
                   mask=None) -> optax.GradientTransformation:
    """``torch.optim.Adadelta(params, lr, rho, eps, weight_decay, maximize)``: coupled L2
    (see the module for the rule).

    ``chain(scale(-1) if maximize, add_decayed_weights(weight_decay, mask),
    scale_by_adadelta(rho, eps), count_steps(), scale_by_learning_rate(lr))``. Any shapes, in
    the params' dtype; ``lr`` may be a schedule or a ported torch scheduler's stateful
    schedule. ``mask``: ``True`` where the decay applies (``None``: every leaf).
    """
    check_adadelta_arguments(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay)
    return optax.chain(
        *sign(maximize),
        optax.add_decayed_weights(weight_decay, mask),
        optax.scale_by_adadelta(rho=rho, eps=eps),
        count_steps(),
        learning_rate(lr),
    )


def naive_adadelta(lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, maximize=False,
                   mask=None) -> optax.GradientTransformation:
    """optax's namesake as a user porting by name writes it: ``optax.adadelta(lr, rho=rho,
    eps=eps, weight_decay=weight_decay, weight_decay_mask=mask)`` (its decay is coupled,
    as torch's). A twin of torch's rule, but without torch's ``step``, so the port uses
    :func:`torch_adadelta`."""
    return optax.chain(*sign(maximize),
                       optax.adadelta(lr, rho=rho, eps=eps, weight_decay=weight_decay,
                                      weight_decay_mask=mask))


def _adadelta_group(lr, rho, eps, weight_decay, maximize):
    return torch_adadelta(lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize)


def _naive_group(lr, rho, eps, weight_decay, maximize):
    return naive_adadelta(lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize)


ADADELTA = TorchOptimizer(
    "torch.optim.Adadelta", ("lr", "rho", "eps", "weight_decay", "maximize"),
    _adadelta_group,
    state=(StateKey("square_avg", optax.ScaleByAdaDeltaState, "e_g"),
           StateKey("acc_delta", optax.ScaleByAdaDeltaState, "e_x")),
    step=StateKey("step", TorchStepState, "step"), naive=_naive_group)
PORTS = (ADADELTA,)
