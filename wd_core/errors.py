"""The project's own exceptions: bad input, told apart from bugs.

Every input error is an :class:`InputError` (a ``ValueError``, so code that catches
``ValueError`` keeps working); the subclasses also derive from the built-in class that the
same mistake raises elsewhere (``TypeError``, ``FileNotFoundError``, ``ImportError``,
``RuntimeError``). The command lines turn an :class:`InputError` into one line on stderr and
exit status 2; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class InputError(ValueError):
    """A value the project refuses; the message names it and what is accepted."""


class InputTypeError(InputError, TypeError):
    """A value of the wrong kind (a string where a number goes, a bool for an integer)."""


class PathError(InputError, OSError):
    """A file or folder named by the user that cannot be read or written."""


class MissingPathError(PathError, FileNotFoundError):
    """A file or folder named by the user that does not exist."""


class DeviceUnavailableError(InputError, RuntimeError):
    """A device was asked for that this machine does not have (e.g. CUDA without a GPU)."""


class MissingFrameworkError(InputError, ImportError):
    """An optional framework (PyTorch, JAX, matplotlib) that is not installed."""


def missing_framework(backend: str, package: str, extra: str) -> MissingFrameworkError:
    """The error a backend raises when its framework is not installed."""
    return MissingFrameworkError(
        f"{backend} needs {package}, which is not installed; "
        f"install it with: pip install 'weight-decay[{extra}]'"
    )


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
