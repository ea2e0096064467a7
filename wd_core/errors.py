"""The project's own exceptions: bad input, told apart from bugs.

Every input error is an :class:`InputError`, a ``ValueError`` and nothing else: code that
means the project's refusals catches these classes by name, so that an ``except TypeError``
or ``except ImportError`` never swallows a bug or a broken install by accident. The command
lines turn an :class:`InputError` into one line on stderr and exit status 2; any other
exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class InputError(ValueError):
    """A value the project refuses; the message names it and what is accepted."""


class InputTypeError(InputError):
    """A value of the wrong kind (a string where a number goes, a bool for an integer)."""


class PathError(InputError):
    """A file or folder named by the user that cannot be read or written."""


class MissingPathError(PathError):
    """A file or folder named by the user that does not exist."""


class DeviceUnavailableError(InputError):
    """A device was asked for that this machine does not have (e.g. CUDA without a GPU)."""


class MissingFrameworkError(InputError):
    """An optional framework (PyTorch, JAX, matplotlib) that is not installed."""


class BrokenFrameworkError(InputError):
    """An optional framework that is installed but fails to import (a broken shared library,
    mismatched versions); the message carries the original error, which is also chained."""


def missing_framework(backend: str, package: str, extra: str) -> MissingFrameworkError:
    """The error a backend raises when its framework is not installed (raise it ``from`` the
    original ``ImportError``; :func:`framework_error` tells a missing framework from a broken
    one)."""
    return MissingFrameworkError(
        f"{backend} needs {package}, which is not installed; "
        f"install it with: pip install 'weight-decay[{extra}]'"
    )


def framework_error(backend: str, package: str, extra: str, err: BaseException,
                    modules=None) -> InputError:
    """The error to raise ``from err`` when importing ``package`` (top-level modules
    ``modules``, default ``extra``) for ``backend`` raised ``err``.

    :class:`MissingFrameworkError` (with the install command) when ``err`` says that one of
    ``modules`` itself is absent; otherwise :class:`BrokenFrameworkError`, whose message ends
    with ``err``'s type and message (the real cause: a missing shared library, a version
    mismatch), e.g.::

        try:
            import torch
        except Exception as err:
            raise framework_error("wd_torch", "PyTorch", "torch", err) from err
    """
    names = {extra} if modules is None else set(modules)
    if isinstance(err, ModuleNotFoundError) and err.name in names:
        return missing_framework(backend, package, extra)
    cause = " ".join(str(err).split()) or "(no message)"
    return BrokenFrameworkError(
        f"{backend} needs {package}, whose import fails: {type(err).__name__}: {cause}")


def run_command(prog: str, parse, execute) -> int:
    """``execute(parse())`` for a command line; returns its exit status.

    An :class:`InputError` (raised by ``parse`` for a usage error, or by the work itself)
    prints one line ``<prog>: error: ...`` on stderr and returns 2; Ctrl-C prints
    ``<prog>: interrupted`` and returns 130. Any other exception propagates with its
    traceback (Python then exits with status 1).
    """
    try:
        return execute(parse())
    except InputError as err:
        print(f"{prog}: error: {' '.join(str(err).split())}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
