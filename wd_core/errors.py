"""Exceptions the project raises on purpose (besides ``ValueError``/``TypeError``)."""


class DeviceUnavailableError(RuntimeError):
    """A device was asked for that this machine does not have (e.g. CUDA without a GPU)."""


def missing_framework(backend: str, package: str, extra: str) -> ImportError:
    """The ``ImportError`` a backend raises when its framework is not installed."""
    return ImportError(
        f"{backend} needs {package}, which is not installed; "
        f"install it with: pip install 'weight-decay[{extra}]'"
    )
