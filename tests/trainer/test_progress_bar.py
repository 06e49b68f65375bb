"""The trainer's terminal progress bar: tqdm on a terminal, one line per tenth and per stage in a log."""

from __future__ import annotations

import io

from trainer.commands._common import ProgressBar
from trainer.pipeline import Progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _run(bar: ProgressBar) -> None:
    bar(Progress("loading", 0.0))
    for i in range(1, 101):
        bar(Progress("training", 0.05 + 0.009 * i, epoch=i, epochs=100, loss=1.0 / i, eta_seconds=100 - i))
    bar(Progress("exporting", 0.97, message="onnx"))
    bar(Progress("done", 1.0))


def test_a_log_gets_one_line_per_tenth_and_per_stage() -> None:
    log = io.StringIO()
    _run(ProgressBar(log))
    lines = log.getvalue().splitlines()
    assert lines[0].split() == ["0.0%", "loading"]
    assert lines[-1].split()[:2] == ["100.0%", "done"]
    # 100 training reports become one line per tenth of the run, not 100 lines; no terminal control codes.
    assert 8 <= sum("training" in line for line in lines) <= 11
    assert "\x1b" not in log.getvalue() and "\r" not in log.getvalue()
    assert "epoch 1/100  loss 1.0000  ETA 99s" in log.getvalue() and "exporting  onnx" in log.getvalue()


def test_a_terminal_gets_a_tqdm_bar_that_ends_full() -> None:
    term = _Terminal()
    _run(ProgressBar(term))
    text = term.getvalue()
    assert "\r" in text  # redrawn in place
    last = text.split("\r")[-1]
    assert last.startswith("done") and "100%" in last
    assert text.endswith("\n")  # closed when done, so the shell prompt starts on its own line
