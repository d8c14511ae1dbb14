"""Capture what native code (libjpeg, MediaPipe / LiteRT) writes straight to file descriptor 2, so that it does not
reach the user's terminal: the text is kept for the caller, who logs it or reads it for a warning."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator


@contextlib.contextmanager
def native_stderr() -> Iterator[list[str]]:
    """Inside the block, file descriptor 2 goes to a temporary file; afterwards (also when the block raises) the
    yielded list holds the text written there. Does nothing (the list stays empty) without an fd 2."""
    out: list[str] = []
    try:
        saved = os.dup(2)
    except OSError:
        yield out
        return
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield out
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            out.append(tmp.read().decode("utf-8", "replace"))
