"""Options shared by several subcommands, and argparse types that name the bad value."""

from __future__ import annotations

import argparse

from wd_core.errors import InputError
from wd_core.validation import (
    BACKENDS,
    DTYPES,
    METHODS,
    NONNEGATIVE,
    NONNEGATIVE_INT,
    POSITIVE,
    POSITIVE_INT,
    Range,
    number_from_text,
)


def number_type(within: Range):
    """An argparse type: a number :func:`wd_core.validation.number_from_text` accepts
    ``within``; the error names the text given."""

    def parse(text: str):
        try:
            return number_from_text(text, within)
        except InputError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    return parse


nonnegative_float = number_type(NONNEGATIVE)
positive_float = number_type(POSITIVE)
positive_int = number_type(POSITIVE_INT)
nonnegative_int = number_type(NONNEGATIVE_INT)


def lambda_list(text: str) -> list[float]:
    """argparse type: comma-separated lambdas, each a finite number >= 0, at least one."""
    items = [item.strip() for item in text.split(",")]
    if not any(items):
        raise argparse.ArgumentTypeError(f"{text!r} names no lambda; accepted: e.g. 0,0.3,1,3")
    values = []
    for item in items:
        try:
            values.append(number_from_text(item, NONNEGATIVE))
        except InputError as err:  # "'abc' is not a number" -> "'abc' in '0,abc' is not ..."
            where = f"{item!r} in {text!r} "
            raise argparse.ArgumentTypeError(str(err).replace(f"{item!r} ", where, 1)) from None
    return values


def add_data_options(parser: argparse.ArgumentParser) -> None:
    """The chapter's data sizes and seed (defaults: 20, 100, 200, 5, seed 0)."""
    group = parser.add_argument_group("data")
    group.add_argument("--num-train", type=positive_int, default=20)
    group.add_argument("--num-val", type=positive_int, default=100)
    group.add_argument("--num-inputs", type=positive_int, default=200)
    group.add_argument("--batch-size", type=positive_int, default=5)
    group.add_argument("--seed", type=nonnegative_int, default=0)


def add_training_options(parser: argparse.ArgumentParser, *, backend_required=True) -> None:
    """Backend, method, lr, epochs, dtype and device."""
    parser.add_argument("--backend", choices=BACKENDS, required=backend_required)
    parser.add_argument("--method", choices=METHODS, default="concise")
    parser.add_argument("--lr", type=nonnegative_float, default=0.01)
    parser.add_argument("--epochs", type=positive_int, default=10, dest="max_epochs")
    parser.add_argument("--dtype", choices=DTYPES, default="float32")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--fused", action="store_true",
                        help="the analytic fused step (implementation='fused'): the same plain "
                             "SGD steps, faster; not with --optimizer")
    parser.add_argument("--epoch-params", action="store_true",
                        help="keep w and b after every epoch in the result (epoch_w, epoch_b); "
                             "by default only the final ones, as they grow with epochs x inputs")
    add_quiet_option(parser)


def training_options(args) -> dict:
    """The keyword arguments of ``train``/``sweep`` that :func:`add_training_options` sets
    (everything but the data, the lambdas, ``progress`` and the optimizer)."""
    return {"method": args.method, "lr": args.lr, "max_epochs": args.max_epochs,
            "dtype": args.dtype, "device": args.device, "epoch_params": args.epoch_params,
            "implementation": "fused" if args.fused else "idiomatic"}


def add_optimizer_options(parser: argparse.ArgumentParser) -> None:
    """``--optimizer`` and its hyper-parameters (torch's names and defaults)."""
    from wd_core.optimizers import FAMILIES

    group = parser.add_argument_group(
        "optimizer", "train with another torch.optim optimizer (and its optax twin); --lr and "
        "--lambd stay the learning rate and the weight decay of w")
    group.add_argument("--optimizer", choices=FAMILIES, default=None,
                       help="default: the chapter's plain SGD")
    group.add_argument("--momentum", type=nonnegative_float, help="sgd, sgdw (default 0)")
    group.add_argument("--dampening", type=nonnegative_float, help="sgd, sgdw (default 0)")
    group.add_argument("--nesterov", action="store_true", default=None, help="sgd, sgdw")
    group.add_argument("--betas", type=beta_pair, help="adam, adamw (default 0.9,0.999)")
    group.add_argument("--eps", type=nonnegative_float, help="adam, adamw (default 1e-8)")


def beta_pair(text: str) -> tuple[float, float]:
    """argparse type: two numbers ``b1,b2``."""
    parts = text.split(",")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"{text!r} is not two numbers b1,b2 (e.g. 0.9,0.999)")
    return tuple(nonnegative_float(part.strip()) for part in parts)


def optimizer_from_args(args):
    """The :class:`wd_core.optimizers.OptimizerSpec` of :func:`add_optimizer_options`' values,
    or None; ``InputError`` for a value without ``--optimizer`` or foreign to its family."""
    from wd_core.optimizers import FAMILIES, OptimizerSpec

    fields = [name for name in OptimizerSpec.__dataclass_fields__ if name != "family"]
    given = {name: getattr(args, name) for name in fields if getattr(args, name) is not None}
    if args.optimizer is None:
        if given:
            names = ", ".join(f"--{name}" for name in given)
            raise InputError(f"{names} needs --optimizer (one of {', '.join(FAMILIES)})")
        return None
    return OptimizerSpec(args.optimizer, **given)


def add_quiet_option(parser: argparse.ArgumentParser) -> None:
    """``--quiet``: no progress bar (there is none anyway when stdout is not a terminal)."""
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bar (shown only on a terminal, after about 1 s)")


def data_from_args(args):
    """A :class:`wd_core.SyntheticData` from :func:`add_data_options`' values."""
    from wd_core.data import SyntheticData

    return SyntheticData(
        num_train=args.num_train, num_val=args.num_val, num_inputs=args.num_inputs,
        batch_size=args.batch_size, seed=args.seed,
    )
