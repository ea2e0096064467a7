"""Write result files atomically: a reader sees the previous file or the new one, never half."""

from __future__ import annotations

import os
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path

from wd_core.errors import MissingPathError, PathError


def check_output_folder(path) -> Path:
    """``path`` as a Path whose folder exists; :class:`~wd_core.errors.MissingPathError` (a
    ``FileNotFoundError``) naming it otherwise, :class:`~wd_core.errors.PathError` when
    ``path`` is a folder.

    Called before long work so that a mistyped output path fails at once.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise MissingPathError(f"output folder {str(folder)!r} of {str(path)!r} does not exist")
    if path.is_dir():
        raise PathError(f"output path {str(path)!r} is a folder; give a file name")
    return path


def _current_umask() -> int:
    """The process umask, read without changing it where Linux shows it (``/proc``)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    umask = os.umask(0o022)  # elsewhere: the classic read, set and restore
    os.umask(umask)
    return umask


def _mode_for(path: Path) -> int:
    """What ``open(path, "w")`` would leave: an existing file keeps its permissions, a new
    one gets 0o666 less the umask."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return 0o666 & ~_current_umask()


@contextmanager
def atomic_writer(path, *, binary: bool = False):
    """Open a temporary file beside ``path`` for writing; on a clean exit it is flushed,
    synced, given the permissions ``open()`` would leave (``mkstemp`` makes it 0600) and
    ``os.replace``d onto ``path``. On any exception, ``KeyboardInterrupt`` included, it is
    removed and ``path`` is left as it was. Raises ``MissingPathError`` naming the folder
    when it does not exist, and ``PathError`` when the folder does not take a new file.
    """
    path = check_output_folder(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise PathError(f"cannot write {str(path)!r}: {err.strerror}") from None
    try:
        with os.fdopen(fd, "wb" if binary else "w", encoding=None if binary else "utf-8") as f:
            yield f
            f.flush()
            os.fchmod(f.fileno(), _mode_for(path))
            os.fsync(f.fileno())
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
