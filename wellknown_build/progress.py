"""How far a long loop got: a bar on a terminal, a line every few seconds in a CI log.

The core only counts (`Progress`); how it is shown is the CLI's choice (`show_bar_on`), as
logging separates messages from handlers. Without a terminal a line is logged at most every
`EVERY` seconds, so a short run says nothing and a CI log is not flooded.
"""

from __future__ import annotations

import logging
import threading
import time
from types import TracebackType
from typing import Any, TextIO

import click

log = logging.getLogger(__name__)
EVERY = 5.0  # seconds between lines in a log
BAR_AFTER = 0.5  # seconds before a bar appears: quick runs draw none
clock = time.monotonic  # a test gives its own

_bar_stream: TextIO | None = None


def show_bar_on(stream: TextIO | None) -> None:
    """Draw bars on `stream` (a terminal) from now on; None: log lines instead."""
    global _bar_stream
    _bar_stream = stream


class Progress:
    """Counts steps of one phase; safe to advance from worker threads."""

    def __init__(self, label: str, total: int) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self._lock = threading.Lock()
        self._start = self._last = clock()
        self._logged = False
        self._stream = _bar_stream
        self._bar: Any = None  # click's ProgressBar, once the phase has run BAR_AFTER

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def advance(self, steps: int = 1) -> None:
        with self._lock:
            self.done += steps
            now = clock()
            if self._stream is not None:
                self._draw(now, steps)
            elif now - self._last >= EVERY:
                self._last = now
                self._logged = True
                log.info("%s: %d/%d", self.label, self.done, self.total)

    def _draw(self, now: float, steps: int) -> None:
        if self._bar is None:
            if now - self._start < BAR_AFTER or self.done >= self.total:
                return
            self._bar = click.progressbar(
                length=self.total,
                label=self.label,
                file=self._stream,
                show_pos=True,
                update_min_steps=max(1, self.total // 200),
            )
            self._bar.__enter__()
            steps = self.done
        self._bar.update(steps)

    def close(self) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.update_min_steps = 1
                self._bar.update(0)  # draws the steps still below update_min_steps
                self._bar.__exit__(None, None, None)
                self._bar = None
            elif self._logged:
                log.info("%s: %d/%d, %.1f s", self.label, self.done, self.total, self._elapsed())

    def _elapsed(self) -> float:
        return clock() - self._start
