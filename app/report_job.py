"""The app's *Session report*: ``fer_core.report`` run in a background thread, its result sent back as a signal."""

from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from fer_core.errors import FerError


class ReportJob(QObject):
    """Writes the HTML report of a recording's CSV off the GUI thread.

    Signals:
        done(str): the report file.
        failed(str): a one-line message.
    """

    done = Signal(str)
    failed = Signal(str)

    def start(self, records: str | Path) -> None:
        threading.Thread(target=self._run, args=(Path(records),), name="fer-report", daemon=True).start()

    def _run(self, records: Path) -> None:
        from fer_core.report import write_report

        try:
            self.done.emit(str(write_report(records)))
        except FerError as exc:
            self.failed.emit(f"No session report: {exc}")
        except Exception as exc:  # matplotlib or the disk: a message, never a crash of the app
            self.failed.emit(f"The session report failed: {exc}")
