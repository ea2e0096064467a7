"""Progress bars for work that takes longer than about a second.

A bar appears only when stdout is a terminal, ``quiet`` is false and tqdm is installed (the
``progress`` extra); it shows itself after ``DELAY_S`` seconds, so quick work prints nothing.
"""

from __future__ import annotations

import sys

DELAY_S = 1.0


class _NoBar:
    """Stands in for a tqdm bar when none is shown."""

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def bars_enabled(quiet: bool = False) -> bool:
    """True when a bar may be shown: not quiet and stdout is a terminal."""
    return not quiet and sys.stdout.isatty()


def progress_bar(total: int, *, desc: str, unit: str = "it", quiet: bool = False):
    """A context-managed bar with ``update(n)``; a silent stand-in when bars are off."""
    if not bars_enabled(quiet):
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, desc=desc, unit=unit, delay=DELAY_S, leave=False, file=sys.stderr)


def epoch_callback(bar):
    """``train(progress=...)`` callable that advances ``bar`` by one per finished epoch.

    ``None`` when ``bar`` is the silent stand-in, so that no per-epoch callback is compiled
    into a JAX run (or called by a torch run) that shows no bar.
    """
    if isinstance(bar, _NoBar):
        return None
    return lambda epoch: bar.update(1)
