"""What the numbers were measured on: the machine, the library versions, a file-name tag."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import sys

LIBRARIES = ("numpy", "torch", "jax", "jaxlib", "optax", "matplotlib")


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else ``platform.processor()``."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> float | None:
    """Total memory in GiB (Linux), else None."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return None


def versions() -> dict:
    """Installed versions of the libraries that matter here (None when missing)."""
    found = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def describe() -> dict:
    """Machine facts for the JSON: CPU, cores, memory, OS, and the environment variables that
    change what is measured (BLAS and OpenMP threads, XLA flags, glibc's ``MALLOC_*``)."""
    return {
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "memory_gib": memory_gib(),
        "platform": platform.platform(),
        "python_executable": sys.executable,
        "env": {k: v for k, v in sorted(os.environ.items())
                if k.startswith(("OPENBLAS_", "OMP_", "MKL_", "XLA_FLAGS", "MALLOC_"))},
    }


def slug(text: str) -> str:
    """Lower-case words joined by ``-`` (for file names)."""
    return "-".join(re.findall(r"[a-z0-9]+", text.lower()))


def machine_tag(machine: dict) -> str:
    """A short description for file names, e.g. ``amd-epyc-2cpu``."""
    words = [w for w in slug(machine["cpu"]).split("-")
             if w not in ("processor", "cpu", "core", "with", "radeon", "graphics")][:4]
    return "-".join([*words, f"{machine['logical_cpus']}cpu"])
