"""OpenCV and its FFmpeg without their own log lines: the tools say what went wrong, in one line of their own.

Importing this module asks FFmpeg (inside OpenCV) to stay quiet; :func:`quiet_opencv` silences OpenCV's logging
around a call that logs what we report ourselves (probing a camera, opening a writer, a failed write).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # read when OpenCV first loads FFmpeg: set before any use

import cv2  # noqa: E402


@contextlib.contextmanager
def quiet_opencv() -> Iterator[None]:
    """OpenCV's log level at *silent* while the block runs, restored afterwards."""
    old = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(old)
