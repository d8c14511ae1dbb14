"""The one family of errors ``fer_core`` raises for things a user can fix: a missing model, an unusable
provider, a source that cannot be read, no face detector, an output that cannot be written. Each carries a
one-line message, the same the command-line tools print, so ``except FerError`` is enough around any call of
the API."""

from __future__ import annotations

import errno
from pathlib import Path

#: Plain words for the errno values a user meets when reading or writing files.
_REASONS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "the file is larger than this file system or a size limit allows",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "read-only file system",
    errno.ENOENT: "no such file or folder",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "it is a folder",
    errno.EIO: "input/output error (a failing disk or a disconnected drive?)",
}


class FerError(Exception):
    """Base class of the errors with a user-facing, one-line message."""


class WriteError(FerError):
    """An output file that cannot be written (full disk, no permission, ...): ``cannot write <file>: <why>``."""


def os_reason(exc: BaseException) -> str:
    """A short, plain, lower-case reason for an ``OSError`` (``"no space left on device"``), without the errno
    number or the file name; other exceptions as their text."""
    if isinstance(exc, OSError):
        if exc.errno in _REASONS:
            return _REASONS[exc.errno]
        if exc.strerror:
            return exc.strerror[0].lower() + exc.strerror[1:]
    return str(exc).strip() or type(exc).__name__


def write_error(path: str | Path, exc: BaseException, cls: type[FerError] = WriteError) -> FerError:
    """The error (a :class:`WriteError` unless ``cls`` names another) for ``path`` failing with ``exc``; keep ``exc``
    as its cause: ``raise write_error(...) from exc``."""
    return cls(f"cannot write {path}: {os_reason(exc)}")
