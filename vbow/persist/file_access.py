"""Opening a bundle's files without trusting the directory they are in.

Every open is relative to an open directory descriptor, never follows a symbolic link
(``O_NOFOLLOW``), never blocks on a FIFO (``O_NONBLOCK``) and is checked to be a regular file;
new files are created exclusively (``O_EXCL``), so a planted file or link is never written
through. Failures are :class:`vbow.errors.BundleError` subclasses naming the file.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from vbow.errors import BundleError, BundleFormatError

__all__ = ["open_dir", "open_regular", "read_exactly", "create_exclusive"]

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)


def open_dir(path: Path) -> int:
    """Open a bundle directory read-only; returns its descriptor for the ``dir_fd`` opens."""
    try:
        return os.open(path, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        raise BundleFormatError("no bundle directory here", path) from None
    except OSError as exc:
        raise BundleFormatError(f"cannot open the bundle directory: {exc.strerror}", path) from None


def open_regular(dfd: int, name: str, where: Path) -> tuple[int, os.stat_result]:
    """Open ``name`` in the directory ``dfd`` read-only, never following a symbolic link and
    never blocking (a FIFO), and check it is a regular file. Raises FileNotFoundError as is."""
    try:
        fd = os.open(name, os.O_RDONLY | _O_NOFOLLOW | _O_NONBLOCK | _O_CLOEXEC, dir_fd=dfd)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise BundleFormatError("is a symbolic link; a bundle's files must be regular files "
                                    "inside it", where) from None
        raise BundleFormatError(f"cannot open: {exc.strerror}", where) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise BundleFormatError("is not a regular file", where)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def read_exactly(fd: int, size: int, where: Path) -> bytes:
    """Read ``size`` bytes from an open file; a file that shrank meanwhile is an error."""
    chunks, got = [], 0
    while got < size:
        try:
            chunk = os.read(fd, min(size - got, 1 << 20))
        except OSError as exc:
            raise BundleFormatError(f"cannot read: {exc.strerror}", where) from None
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    if got != size:
        raise BundleFormatError(f"file shrank while reading: {got} of {size} bytes", where)
    return b"".join(chunks)


def create_exclusive(dfd: int, name: str, where: Path) -> int:
    """Create ``name`` in the directory ``dfd`` for writing; it must not exist yet."""
    try:
        return os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC, 0o644,
                       dir_fd=dfd)
    except FileExistsError:
        raise BundleError("already exists (a file or link planted at this generation's name?); "
                          "refusing to write through it", where) from None
