"""Progress bars that library functions show only when asked (``progress=True``; experiments ask).

On a terminal a bar is tqdm's. When stderr is not a terminal (a log redirected to a file, a CI job) tqdm's
carriage-return redraws would fill the file with partial lines, so the bar instead logs one plain line at most
every ``log_every`` seconds through the ``jaxfool.progress`` logger. ``TQDM_DISABLE=1`` turns both off.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable
from typing import Any

from tqdm.auto import tqdm

log = logging.getLogger(__name__)


class _LogLines:
    """A file-like object for tqdm that logs its redraws as lines (no ``\\r``), at most one per ``every``
    seconds; the final state (tqdm ends a closed bar with a newline) is always logged."""

    def __init__(self, every: float):
        self.every, self.last, self.pending = every, -float("inf"), ""

    def write(self, text: str) -> None:
        line = text.replace("\r", "").strip()
        if line:
            if time.monotonic() - self.last >= self.every:
                self._log(line)
            else:
                self.pending = line  # a postfix update between log lines
        elif "\n" in text and self.pending:
            self._log(self.pending)

    def _log(self, line: str) -> None:
        log.info(line)
        self.last, self.pending = time.monotonic(), ""

    def flush(self) -> None:
        pass


def bar(
    iterable: Iterable[Any] | None = None, *, progress: bool, desc: str, log_every: float = 30.0, **kwargs: Any
) -> tqdm:
    """A tqdm bar over ``iterable`` (or ``total=``), disabled unless ``progress``.

    Args:
        iterable: what to iterate over, as for ``tqdm``.
        progress: show progress at all.
        desc: the bar's label.
        log_every: seconds between log lines when stderr is not a terminal.
        **kwargs: passed to ``tqdm`` (``total``, ``unit``, ``unit_scale``...).
    """
    if not progress:
        return tqdm(iterable, desc=desc, disable=True, **kwargs)
    if sys.stderr.isatty():
        return tqdm(iterable, desc=desc, leave=False, **kwargs)
    return tqdm(
        iterable, desc=desc, file=_LogLines(log_every), mininterval=log_every, leave=True,
        bar_format="{desc}: {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}]{postfix}", **kwargs,
    )
