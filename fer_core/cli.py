"""What every command-line tool shares: one-line errors and exit codes, the provider argument, the stop signals.

``fer-run``, ``fer-bench``, ``fer-report``, ``fer-app`` and the training commands use these, so a provider name,
an error line or a Ctrl+C reads and behaves the same in each.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

from fer_core.errors import FerError, os_reason
from fer_core.session import PROVIDERS
from fer_core.suggest import did_you_mean

#: The ``--provider`` names: ``auto`` and ONNX Runtime's providers by short name (``fer_core.session.PROVIDERS``).
PROVIDER_CHOICES = ("auto", *PROVIDERS)

#: Signals that ask a tool to stop cleanly (Ctrl+C, ``kill``, a closed terminal), where the platform has them.
STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))


class CliError(FerError):
    """A fatal, user-facing problem: printed as one line, exit status 2."""


class Stopped(KeyboardInterrupt):
    """A second stop signal: abort at once (the first one lets the work in hand finish)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def provider_arg(text: str) -> str:
    """argparse type for ``--provider``: a known name, else an error with a "did you mean"."""
    name = text.strip().lower()
    if name in PROVIDER_CHOICES:
        return name
    hint = did_you_mean(name, PROVIDER_CHOICES, cutoff=0.5)
    raise argparse.ArgumentTypeError(f"unknown provider '{text}'.{hint} Choose from {', '.join(PROVIDER_CHOICES)}")


def fraction_arg(text: str) -> float:
    """argparse type for a number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} is not between 0 and 1")
    return value


def signal_name(signum: int) -> str:
    """``Ctrl+C`` for SIGINT, else the signal's name (``SIGTERM``)."""
    return "Ctrl+C" if signum == signal.SIGINT else signal.Signals(signum).name


def signal_exit_status(signum: int) -> int:
    """The shell's convention for a run stopped by a signal: 130 Ctrl+C, 143 SIGTERM, 129 SIGHUP."""
    return 128 + int(signum)


@contextlib.contextmanager
def stop_signals(on_first: Callable[[int], None] | None = None) -> Iterator[list[int]]:
    """While active, the first stop signal only asks to stop (it is appended to the yielded list, which the work
    checks between frames or steps, and ``on_first(signum)`` is called); a second one raises :class:`Stopped`.

    Outside the main thread (where Python cannot install handlers) it yields a list nothing appends to.
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum: int, _frame: Any) -> None:
        if received:
            raise Stopped(signum)
        received.append(signum)
        if on_first is not None:
            on_first(signum)

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def error_message(exc: BaseException) -> str:
    """The user-facing line for an exception: our own errors as they are, others with their type."""
    if isinstance(exc, OSError) and exc.errno is not None:  # "x.csv: no space left on device", not "[Errno 28] ..."
        return f"{exc.filename}: {os_reason(exc)}" if exc.filename else os_reason(exc)
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, (FerError, OSError, ValueError)):
        return text
    return f"{type(exc).__name__}: {text}"


def run_guarded(prog: str, run_fn: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a command's ``run_fn(args)``: warnings as ``prog: WARNING: ...`` lines, errors as one line, exit 2."""
    logging.basicConfig(level=logging.WARNING, format=f"{prog}: %(levelname)s: %(message)s")
    try:
        return run_fn(args)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one clear line instead of a traceback; FER_DEBUG=1 shows it
        if os.environ.get("FER_DEBUG"):
            raise
        print(f"{prog}: error: {error_message(exc)}", file=sys.stderr)
        return 2
