"""Argument parsing shared by the benchmark command lines (``python -m benchmarks`` and
``python -m benchmarks.data_parallel``): a parser whose usage errors are one line, and the
option types. A leaf module: it imports nothing of the benchmarks."""

from __future__ import annotations

import argparse

from wd_core.errors import InputError
from wd_core.validation import POSITIVE_INT, number_from_text


class OneLineParser(argparse.ArgumentParser):
    """Usage errors raise :class:`InputError` (one line, exit 2), not usage-and-exit."""

    def error(self, message):
        raise InputError(message)


def positive_int(text: str) -> int:
    """An integer >= 1 (argparse's ``type``)."""
    try:
        return number_from_text(text, POSITIVE_INT)
    except InputError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def names(accepted):
    """An argparse ``type``: a comma-separated list of names from ``accepted``, as a tuple."""
    def parse(text):
        chosen = tuple(n.strip() for n in text.split(",") if n.strip())
        bad = [n for n in chosen if n not in accepted]
        if not chosen or bad:
            raise argparse.ArgumentTypeError(
                f"{text!r}: accepted a comma-separated list of {', '.join(accepted)}")
        return chosen

    return parse
