"""Writes that cannot lose data: every file attnverify writes goes through this module.

A file is written to a temporary file in its own folder, flushed to disk (``fsync``) and then
renamed over the target with :func:`os.replace`, which POSIX makes atomic within one file
system. A reader (or a later run) therefore sees either the complete old file or the complete
new one, never a truncated mix, whatever happens meanwhile: a kill, a Ctrl-C, a full disk.
On any failure the temporary file is removed and the old file is left untouched.

:func:`locked` serialises read-modify-write cycles (``results.json`` of a selective run) between
processes with an exclusive ``fcntl.flock`` on a lock file beside the target.

Failures are raised as :class:`WriteError`, an :class:`OSError` whose one-line message names
the path, for the command line to print.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from pathlib import Path

__all__ = ["WriteError", "write_text", "write_bytes", "locked"]


class WriteError(OSError):
    """A file could not be written; the message names the path, the old file is intact."""

    def __init__(self, path, err: OSError):
        super().__init__(err.errno, err.strerror or str(err), str(path))

    def __str__(self) -> str:
        return f"{self.filename}: cannot write ({self.strerror}); any previous version of the file is unchanged"


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def write_bytes(path, data) -> None:
    """Replace ``path`` by ``data`` (bytes-like) atomically: temporary file, fsync, os.replace.

    Missing parent folders are created. The new file gets the old file's permissions, or the umask's default for a new file
    (mkstemp alone would leave 0600)."""
    path = Path(path)
    try:
        mode = path.stat().st_mode & 0o7777
    except OSError:
        mode = _umask_mode()
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # the data is on disk before the rename makes it visible
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        raise WriteError(path, e) from None
    finally:  # also on KeyboardInterrupt: no stray temporary file, the old file untouched
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    _fsync_dir(path.parent)


def write_text(path, text: str, encoding: str = "utf-8") -> None:
    """Replace ``path`` by ``text`` atomically (see :func:`write_bytes`)."""
    write_bytes(path, text.encode(encoding))


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (best effort: not every file system allows it)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def locked(path):
    """Hold an exclusive lock for ``path`` (``fcntl.flock`` on ``<path>.lock`` beside it) inside the block.

    Every process that reads, merges and rewrites ``path`` takes this lock, so two of them never
    interleave (one would otherwise overwrite the other's update). The lock is released when the
    block exits or the process dies. The lock file is left in place: deleting it could let a
    third process lock a fresh file while a second still holds the old one."""
    lock = Path(path).with_name(Path(path).name + ".lock")
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as e:
        raise WriteError(lock, e) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock
