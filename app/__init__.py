"""PySide6 desktop app ``fer-app``: a view over :mod:`fer_core`; no inference code of its own.

Importing this package applies the OpenCV / Qt plugin-path fix (:mod:`app.qt_env`) so that any
module of the app can be imported before the ``QApplication`` is created.
"""

from app.qt_env import fix_qt_env

fix_qt_env()
