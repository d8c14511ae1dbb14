"""fer_core.cli: the one place the tools share errors, provider names and stop signals."""

from __future__ import annotations

import argparse
import os
import signal

import pytest

from fer_core.cli import (PROVIDER_CHOICES, STOP_SIGNALS, Stopped, fraction_arg, provider_arg, run_guarded,
                          signal_exit_status, signal_name, stop_signals)
from fer_core.session import PROVIDERS


def test_provider_names_come_from_the_session_table():
    assert PROVIDER_CHOICES == ("auto", *PROVIDERS)
    assert provider_arg(" CUDA ") == "cuda"
    with pytest.raises(argparse.ArgumentTypeError, match="Did you mean 'cuda'"):
        provider_arg("cdua")


def test_every_tool_takes_the_same_provider_argument():
    from app.main import build_parser as app_parser
    from fer_core.cli_bench import build_parser as bench_parser
    from fer_core.cli_run import build_parser as run_parser
    from training.cli import eval_parser

    for parser, flag in ((run_parser(), "--provider"), (app_parser(), "--provider"), (eval_parser(), "--provider"),
                         (bench_parser(), "--providers")):
        action = next(a for a in parser._actions if flag in a.option_strings)
        assert all(name in action.help for name in PROVIDER_CHOICES), (parser.prog, action.help)


def test_fraction_arg():
    assert fraction_arg("0.25") == 0.25
    for bad in ("x", "1.5", "-0.1"):
        with pytest.raises(argparse.ArgumentTypeError):
            fraction_arg(bad)


@pytest.mark.skipif(not hasattr(signal, "SIGTERM"), reason="no SIGTERM")
def test_first_signal_asks_second_aborts():
    seen = []
    with stop_signals(seen.append) as received:
        os.kill(os.getpid(), signal.SIGTERM)
        assert received == [signal.SIGTERM] and seen == [signal.SIGTERM]
        with pytest.raises(Stopped) as err:
            os.kill(os.getpid(), signal.SIGTERM)
        assert err.value.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert signal.SIGINT in STOP_SIGNALS and signal_name(signal.SIGINT) == "Ctrl+C"
    assert signal_exit_status(signal.SIGTERM) == 143


def test_run_guarded_turns_errors_into_one_line(capsys):
    def fail(_args):
        raise ValueError("bad thing")

    assert run_guarded("tool", fail, argparse.Namespace()) == 2
    assert capsys.readouterr().err.strip() == "tool: error: bad thing"
