"""Training tools draw progress bars on a terminal only: with stderr going to a file or a pipe (a GPU window's log,
CI), ``fer-train`` writes its log lines and no bar redraws (each redraw would be one more carriage-return line)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from training.progress import on_terminal

REPO = Path(__file__).resolve().parents[1]


def test_fer_train_writes_no_bar_redraws_when_stderr_is_not_a_terminal(fer2013_root, tmp_path):
    args = ["--model", "emonext_test", "--data", f"fer2013={fer2013_root}", "--subset", "16", "--img-size", "32",
            "--batch-size", "2", "--epochs", "1", "--device", "cpu", "--workers", "1", "--project", str(tmp_path),
            "--name", "bars", "--cache-dir", str(tmp_path / "cache")]
    # tqdm redraws at most every 0.1 s (1 s for the training bars); a zero interval makes these seconds of
    # training redraw as often as hours would, so a bar that draws into the pipe shows here as many lines
    env = dict(os.environ, PYTHONPATH=str(REPO), TQDM_MININTERVAL="0", TQDM_MINITERS="1")
    code = "import sys; from training.cli import train_main; sys.exit(train_main(sys.argv[1:]))"
    proc = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, env=env, capture_output=True, timeout=300)
    err = proc.stderr.decode()
    assert proc.returncode == 0, err
    assert "\r" not in err and len(err.splitlines()) <= 12, err
    assert "epoch 1/1: train loss" in err  # the log lines are still there


def test_on_terminal_follows_stderr(monkeypatch):
    class Stream:
        def __init__(self, tty: bool) -> None:
            self.tty = tty

        def isatty(self) -> bool:
            return self.tty

    monkeypatch.setattr(sys, "stderr", Stream(True))
    assert on_terminal(True) and not on_terminal(False)
    monkeypatch.setattr(sys, "stderr", Stream(False))
    assert not on_terminal(True)
    monkeypatch.setattr(sys, "stderr", None)  # pythonw: no stderr at all
    assert not on_terminal(True)
