"""Notes that reach the terminal while a test runs: a run waiting on another's lock says so as it waits.

pytest captures a test's output and log records and shows them only when the test fails, so a
warning logged during a 10-minute wait for a lock held by a hung process was seen by nobody until the
wait gave up (or never, with ``-s``: logging is captured apart from output). :class:`TerminalNotes` is a
logging handler that suspends capturing for the one line it writes, as pytest's live logging does. On
the controller it writes through pytest's terminal reporter (it starts a new line after progress dots);
an xdist worker has no terminal of its own, but its stderr is the controller's.
"""

from __future__ import annotations

import contextlib
import logging
import sys

import pytest

PREFIX = "pytest-awml: "
LOGGERS = ("pytest_awml.locks",)
"""The loggers whose warnings are shown as they happen (the waits a person would otherwise take for a hang)."""


class TerminalNotes(logging.Handler):
    def __init__(self, config: pytest.Config, worker: str | None) -> None:
        super().__init__(logging.WARNING)
        self._config = config
        self._worker = worker

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = PREFIX + (f"[{self._worker}] " if self._worker else "") + self.format(record)
            capture = self._config.pluginmanager.getplugin("capturemanager")
            reporter = self._config.pluginmanager.getplugin("terminalreporter")
            with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
                if reporter is not None and self._worker is None:
                    reporter.write_line(text, yellow=True)
                else:
                    sys.stderr.write(text + "\n")
                    sys.stderr.flush()
        except Exception:  # noqa: BLE001  logging.Handler's contract: a note that cannot be shown must not break the wait it reports on
            self.handleError(record)


def install(config: pytest.Config, worker: str | None) -> TerminalNotes:
    handler = TerminalNotes(config, worker)
    for name in LOGGERS:
        logging.getLogger(name).addHandler(handler)
    return handler


def remove(handler: TerminalNotes) -> None:
    for name in LOGGERS:
        logging.getLogger(name).removeHandler(handler)
