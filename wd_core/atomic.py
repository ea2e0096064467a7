"""Write result files atomically: a reader sees the previous file or the new one, never half."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def check_output_folder(path) -> Path:
    """``path`` as a Path whose folder exists; ``FileNotFoundError`` naming it otherwise.

    Called before long work so that a mistyped output path fails at once.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(f"output folder {str(folder)!r} of {str(path)!r} does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"output path {str(path)!r} is a folder; give a file name")
    return path


def write_text_atomic(path, text: str) -> Path:
    """Write ``text`` to ``path`` via a temporary file in the same folder and ``os.replace``.

    Raises ``FileNotFoundError`` naming the folder when it does not exist.
    """
    path = check_output_folder(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        # KeyboardInterrupt included: never leave the temporary file behind.
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path
