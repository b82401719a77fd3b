"""Notes that reach the terminal while a test runs: a run waiting on another's lock says so as it waits, and long
work says how far it is (:mod:`pytest_awml.progress`; not under ``-q``).

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

from pytest_awml import progress

PREFIX = "pytest-awml: "
LOGGERS = ("pytest_awml.locks",)
"""The loggers whose warnings are shown as they happen (the waits a person would otherwise take for a hang)."""
PROGRESS_LOGGERS = (progress.LOGGER,)
"""The loggers whose INFO lines are shown as they happen, unless -q: long work's progress."""


class TerminalNotes(logging.Handler):
    def __init__(self, config: pytest.Config, worker: str | None, level: int = logging.WARNING) -> None:
        super().__init__(level)
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


def install(config: pytest.Config, worker: str | None) -> list[TerminalNotes]:
    """The handlers: lock waits always; progress unless ``-q`` (``-s`` changes nothing: the lines bypass capture)."""
    handlers = [_attach(TerminalNotes(config, worker), LOGGERS)]
    if config.get_verbosity() >= 0:
        handlers.append(_attach(TerminalNotes(config, worker, logging.INFO), PROGRESS_LOGGERS))
        for name in PROGRESS_LOGGERS:
            logging.getLogger(name).setLevel(logging.INFO)  # the root's WARNING would drop them before any handler
    return handlers


def _attach(handler: TerminalNotes, names: tuple[str, ...]) -> TerminalNotes:
    for name in names:
        logging.getLogger(name).addHandler(handler)
    return handler


def remove(handlers: list[TerminalNotes]) -> None:
    for handler in handlers:
        for name in (*LOGGERS, *PROGRESS_LOGGERS):
            logging.getLogger(name).removeHandler(handler)
    for name in PROGRESS_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)
