"""The OpenCV / Qt plugin-path trap, and its fix.

The ``opencv-python`` / ``opencv-contrib-python`` wheels for Linux ship their own Qt build for
``cv2.imshow``. Importing ``cv2`` sets ``QT_QPA_PLATFORM_PLUGIN_PATH`` to ``cv2/qt/plugins``; PySide6
then loads OpenCV's platform plugins (built against another Qt) and aborts with "Could not load the Qt
platform plugin". :func:`fix_qt_env` imports ``cv2`` first (so it cannot set the variable again later)
and removes the variable when it points into OpenCV, restoring any value the user had set before.
It must run before the ``QApplication`` is created; importing the :mod:`app` package does it.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

log = logging.getLogger(__name__)

PLUGIN_VAR = "QT_QPA_PLATFORM_PLUGIN_PATH"


def _inside(path: str, folder: Path) -> bool:
    try:
        return Path(path).resolve().is_relative_to(folder)
    except (OSError, ValueError):
        return False


def fix_qt_env() -> str | None:
    """Import ``cv2`` and undo its Qt plugin-path override.

    Returns:
        The value that was removed, or ``None`` when nothing needed fixing.
    """
    before = os.environ.get(PLUGIN_VAR) if "cv2" not in sys.modules else None
    import cv2  # noqa: F401  (imported for its side effect on os.environ, which is undone below)

    cv2_dir = Path(cv2.__file__).resolve().parent
    value = os.environ.get(PLUGIN_VAR)
    if not value or not _inside(value, cv2_dir):
        return None
    if before and not _inside(before, cv2_dir):
        os.environ[PLUGIN_VAR] = before
    else:
        os.environ.pop(PLUGIN_VAR)
    log.debug("removed %s=%s set by OpenCV", PLUGIN_VAR, value)
    return value


def has_display() -> bool:
    """False on Linux/BSD without an X11 or Wayland display (and no platform chosen by QT_QPA_PLATFORM)."""
    if os.environ.get("QT_QPA_PLATFORM") or not sys.platform.startswith(("linux", "freebsd")):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def use_offscreen_if_headless() -> bool:
    """Select Qt's ``offscreen`` platform when there is no display (screenshot mode, CI). True if it did."""
    if has_display():
        return False
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    return True


#: The X11 libraries Qt 6's xcb platform plugin needs beyond a desktop's usual ones: (soname stem, Debian package).
XCB_LIBS = (("xcb-cursor", "libxcb-cursor0"), ("xcb-icccm", "libxcb-icccm4"), ("xcb-keysyms", "libxcb-keysyms1"))


def missing_xcb_packages(find=None) -> list[str]:
    """The Debian/Ubuntu packages whose libraries Qt's X11 (xcb) plugin would fail to load, on Linux with X11
    (not Wayland, not a platform chosen by ``QT_QPA_PLATFORM``); ``[]`` elsewhere or when all are there.

    Without them Qt aborts with a generic "could not load the Qt platform plugin" and exit 134.
    """
    import ctypes.util

    find = find or ctypes.util.find_library
    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM"):
        return []
    if not os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return []
    return [package for lib, package in XCB_LIBS if not find(lib)]


class QtBindingError(RuntimeError):
    """The installed PySide6 cannot run this app; the message says what to install."""


def check_pyside() -> None:
    """Refuse a PySide6 build that corrupts reference counts (PySide6 6.12.0 on Python 3.11).

    That build releases a reference to ``None`` on every call of a method returning ``void``, so any
    app crashes after a few thousand calls with "Fatal Python error: none_dealloc". Python 3.12+ is
    immune (``None`` is immortal there). The probe calls such a method and watches the count.

    Raises:
        QtBindingError: with the fix (install ``PySide6-Essentials<6.12``, or use Python 3.12+).
    """
    if sys.version_info >= (3, 12):
        return
    import PySide6
    from PySide6.QtCore import QObject

    probe = QObject()
    before = sys.getrefcount(None)
    for _ in range(50):
        probe.setObjectName("probe")
    if sys.getrefcount(None) < before - 25:
        raise QtBindingError(
            f"PySide6 {PySide6.__version__} on Python {sys.version.split()[0]} has a reference-counting bug "
            "(every call of a Qt method without a return value releases a reference to None) that crashes the "
            "app within seconds. Install another version: pip install 'PySide6-Essentials>=6.6,<6.12' "
            "(or use Python 3.12 or newer).")
