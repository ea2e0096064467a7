"""Which optimizer trains the chapter's model, named without importing a framework.

An :class:`OptimizerSpec` names the optimizer family and its hyper-parameters *other than*
the learning rate and the weight decay, which stay ``train(..., lr=, lambd=)`` as in the
chapter. Each backend translates the spec: ``wd_torch.optim.build_optimizer`` to
``torch.optim`` and ``wd_jax.optim.build_optimizer`` to an optax chain.

The families, with ``g`` the gradient, ``wd`` the weight decay (``lambd``) on the decayed
parameters and ``lr`` the learning rate (torch's definitions; ``t`` counts steps from 1):

* ``"sgd"`` (``torch.optim.SGD``, coupled): ``d = g + wd*p``; with momentum ``mu``:
  ``buf_1 = d``, ``buf_t = mu*buf_{t-1} + (1 - dampening)*d``, then ``d = buf_t`` (or
  ``d + mu*buf_t`` with nesterov); ``p <- p - lr*d``.
* ``"sgdw"`` (decoupled SGD): the same momentum on ``g`` alone, then
  ``p <- (1 - lr*wd)*p - lr*d``.
* ``"adam"`` (``torch.optim.Adam``, coupled L2): Adam on ``g + wd*p``.
* ``"adamw"`` (``torch.optim.AdamW``, decoupled): ``p <- (1 - lr*wd)*p - lr*adam(g)``.

The checks below repeat the ones ``torch.optim`` makes (same exception type), and also
reject NaN and infinities, which torch lets through. Values that are not Python or numpy
numbers (a schedule, a traced JAX value) are not checked here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from wd_core.errors import InputError, InputTypeError
from wd_core.validation import FINITE, NONNEGATIVE, Range, check_choice, check_number, is_number

FAMILIES = ("sgd", "sgdw", "adam", "adamw")
SGD_FAMILIES = ("sgd", "sgdw")
ADAM_FAMILIES = ("adam", "adamw")
BETA = Range(low=0.0, high=1.0)


def check_hyperparameter(name: str, value, within: Range = FINITE) -> None:
    """:func:`wd_core.validation.check_number` for a value that is a number; a schedule or a
    traced JAX value (anything else but a bool) is left to the framework."""
    if isinstance(value, bool) or is_number(value):
        check_number(name, value, within)


def _real(name: str, value) -> float:
    """``value`` as a float if it is a real number (not a bool); ``InputTypeError`` otherwise."""
    return check_number(name, value, FINITE)


def check_sgd_arguments(*, lr, momentum, dampening, weight_decay, nesterov) -> None:
    """The checks of ``torch.optim.SGD.__init__`` (``InputError``, a ``ValueError`` like torch's).

    ``lr``, ``momentum``, ``weight_decay`` >= 0; ``nesterov`` needs ``momentum > 0`` and
    ``dampening == 0``.
    """
    check_hyperparameter("lr", lr, NONNEGATIVE)
    check_hyperparameter("momentum", momentum, NONNEGATIVE)
    check_hyperparameter("dampening", dampening)
    check_hyperparameter("weight_decay", weight_decay, NONNEGATIVE)
    if not isinstance(nesterov, bool):
        raise InputTypeError(f"nesterov must be True or False, got {nesterov!r}")
    if nesterov and ((is_number(momentum) and not momentum > 0) or dampening != 0):
        raise InputError(
            f"nesterov=True requires momentum > 0 and dampening == 0, got "
            f"momentum={momentum!r}, dampening={dampening!r}"
        )


def check_adam_arguments(*, lr, betas, eps, weight_decay) -> None:
    """The checks of ``torch.optim.Adam.__init__`` (``InputError``, a ``ValueError`` like torch's).

    ``lr``, ``eps``, ``weight_decay`` >= 0; ``betas`` a pair with ``0 <= beta < 1``.
    """
    check_hyperparameter("lr", lr, NONNEGATIVE)
    check_hyperparameter("eps", eps, NONNEGATIVE)
    beta1, beta2 = _pair(betas)
    check_hyperparameter("betas[0]", beta1, BETA)
    check_hyperparameter("betas[1]", beta2, BETA)
    check_hyperparameter("weight_decay", weight_decay, NONNEGATIVE)


def _pair(betas) -> tuple:
    try:
        beta1, beta2 = betas
    except (TypeError, ValueError):
        raise InputError(f"betas must be a pair (beta1, beta2), got {betas!r}") from None
    return beta1, beta2


@dataclass(frozen=True)
class OptimizerSpec:
    """An optimizer family and its hyper-parameters except ``lr`` and the weight decay.

    Attributes:
        family: ``"sgd"``, ``"sgdw"``, ``"adam"`` or ``"adamw"`` (see the module docstring).
        momentum, dampening, nesterov: the SGD families only (torch's meaning).
        betas, eps: the Adam families only (torch's meaning).

    Frozen and hashable, so a compiled JAX run can take it as a static argument. A value
    that does not apply to the family must keep its default (``InputError`` otherwise).
    """

    family: str = "sgd"
    momentum: float = 0.0
    dampening: float = 0.0
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8

    def __post_init__(self):
        check_choice("optimizer family", self.family, FAMILIES)
        # Plain floats: a spec is a static (hashed) argument of a compiled JAX run and is
        # written to JSON; schedules and traced values belong to the optax builders.
        for name in ("momentum", "dampening", "eps"):
            object.__setattr__(self, name, _real("OptimizerSpec." + name, getattr(self, name)))
        beta1, beta2 = _pair(self.betas)
        object.__setattr__(self, "betas", (_real("OptimizerSpec.betas[0]", beta1),
                                           _real("OptimizerSpec.betas[1]", beta2)))
        check_sgd_arguments(lr=0.0, momentum=self.momentum, dampening=self.dampening,
                            weight_decay=0.0, nesterov=self.nesterov)
        check_adam_arguments(lr=0.0, betas=self.betas, eps=self.eps, weight_decay=0.0)
        defaults = OptimizerSpec.__dataclass_fields__
        foreign = ("betas", "eps") if self.family in SGD_FAMILIES else (
            "momentum", "dampening", "nesterov")
        for name in foreign:
            if getattr(self, name) != defaults[name].default:
                raise InputError(
                    f"{name}={getattr(self, name)!r} does not apply to optimizer family "
                    f"{self.family!r}; accepted for it: {', '.join(self._own_fields())}"
                )

    def _own_fields(self) -> tuple[str, ...]:
        if self.family in SGD_FAMILIES:
            return ("momentum", "dampening", "nesterov")
        return ("betas", "eps")

    @property
    def decoupled(self) -> bool:
        """True for ``sgdw`` and ``adamw``: the decay multiplies ``p`` by ``1 - lr*wd``."""
        return self.family in ("sgdw", "adamw")

    def label(self) -> str:
        """A short name: the family and its non-default values, e.g. ``sgd(momentum=0.9)``."""
        defaults = OptimizerSpec.__dataclass_fields__
        changed = [f"{name}={getattr(self, name)!r}" for name in self._own_fields()
                   if getattr(self, name) != defaults[name].default]
        return f"{self.family}({', '.join(changed)})" if changed else self.family

    def to_config(self) -> dict:
        """A JSON-ready dict of every field (``betas`` as a list)."""
        config = asdict(self)
        config["betas"] = list(self.betas)
        return config


def check_optimizer(optimizer) -> OptimizerSpec | None:
    """``None`` or an :class:`OptimizerSpec`; ``InputTypeError`` naming anything else."""
    if optimizer is None or isinstance(optimizer, OptimizerSpec):
        return optimizer
    raise InputTypeError(
        f"optimizer must be None or a wd_core.optimizers.OptimizerSpec, got "
        f"{type(optimizer).__name__}"
    )
