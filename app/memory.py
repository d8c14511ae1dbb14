"""Giving freed memory back to the system.

Every source and every model switch builds a new ONNX Runtime session and MediaPipe detector in a new worker
thread and frees the old ones. glibc keeps freed blocks in per-thread arenas, so without a trim the app's
resident memory ratchets up with each reopen although nothing leaks (``benchmarks/app_soak.py``,
``benchmarks/app_reopen.py``). The worker trims after a model switch too; threads share two arenas (more only
fragmented memory that no trim gives back), and MediaPipe is imported here (below).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None  # musl has no malloc_trim
    except OSError:
        return None


_LIBC = _libc()
M_ARENA_MAX = -8  # glibc's mallopt() parameter: the most malloc arenas
ARENAS = 2  # every worker and ONNX Runtime thread got its own arena, and their fragments grew with each reopen


def limit_arenas(count: int = ARENAS) -> bool:
    """Let threads share ``count`` malloc arenas (glibc's ``mallopt``); False where there is no such call."""
    if _LIBC is None or not hasattr(_LIBC, "mallopt"):
        return False
    try:
        return bool(_LIBC.mallopt(M_ARENA_MAX, count))
    except Exception:  # never worth a failure
        log.debug("mallopt failed", exc_info=True)
        return False


limit_arenas()  # at import, before the app starts its threads (benchmarks/app_reopen.py: flat instead of +4.5%)

try:  # imported with the app, when no pipeline is being built: MediaPipe keeps the error of an optional import
    # (sounddevice) whose traceback's frames would otherwise hold the first pipeline, model and detector, for good
    import mediapipe.tasks.python.vision  # noqa: F401
except ImportError:  # no MediaPipe: the Haar fallback
    pass


def release_freed_memory() -> bool:
    """Return freed heap memory to the system (glibc's ``malloc_trim``); False where there is no such call."""
    if _LIBC is None:
        return False
    try:
        return bool(_LIBC.malloc_trim(0))
    except Exception:  # never worth a failure
        log.debug("malloc_trim failed", exc_info=True)
        return False
