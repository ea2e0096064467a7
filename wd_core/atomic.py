"""Write result files atomically: a reader sees the previous file or the new one, never half."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
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


def _new_file_mode() -> int:
    """The permissions ``open()`` would give a new file: 0o666 less the process umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_writer(path, *, binary: bool = False):
    """Open a temporary file beside ``path`` for writing; on a clean exit it is flushed,
    synced, given the usual permissions (``mkstemp`` makes it 0600) and ``os.replace``d onto
    ``path``. On any exception, ``KeyboardInterrupt`` included, it is removed and ``path`` is
    left as it was. Raises ``FileNotFoundError`` naming the folder when it does not exist.
    """
    path = check_output_folder(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb" if binary else "w", encoding=None if binary else "utf-8") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _new_file_mode())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_text_atomic(path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`atomic_writer`); returns the path."""
    with atomic_writer(path) as handle:
        handle.write(text)
    return Path(path)


def write_bytes_atomic(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (:func:`atomic_writer`); returns the path."""
    with atomic_writer(path, binary=True) as handle:
        handle.write(data)
    return Path(path)
