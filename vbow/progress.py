"""Progress display for long operations.

Shown on standard error only when it is a terminal (or when forced with ``enabled=True``);
otherwise progress is logged at DEBUG level and a summary at INFO level. The library never
configures logging itself.
"""

from __future__ import annotations

import logging
import sys
import time

__all__ = ["Progress"]

logger = logging.getLogger(__name__)


class Progress:
    """A counter with an optional one-line bar.

    Parameters
    ----------
    total : int
        Expected number of steps.
    description : str
        Label shown before the bar.
    enabled : bool or None
        True: always draw; False: never; None: draw when stderr is a terminal.
    """

    def __init__(self, total: int, description: str, enabled: bool | None = None) -> None:
        self.total = max(int(total), 0)
        self.description = description
        self.count = 0
        self.enabled = sys.stderr.isatty() if enabled is None else bool(enabled)
        self._start = time.perf_counter()
        self._last_draw = 0.0

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        """Advance by ``n`` steps."""
        self.count += n
        now = time.perf_counter()
        if self.enabled and (now - self._last_draw > 0.1 or self.count >= self.total):
            self._last_draw = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        elapsed = now - self._start
        frac = self.count / self.total if self.total else 1.0
        width = 28
        filled = int(width * min(frac, 1.0))
        eta = elapsed / frac - elapsed if 0 < frac < 1 else 0.0
        sys.stderr.write(f"\r{self.description}: [{'#' * filled}{'.' * (width - filled)}] "
                         f"{self.count}/{self.total} {elapsed:5.1f}s eta {eta:5.1f}s ")
        sys.stderr.flush()

    def close(self) -> None:
        """Finish the bar and log a summary."""
        elapsed = time.perf_counter() - self._start
        if self.enabled:
            self._draw(time.perf_counter())
            sys.stderr.write("\n")
            sys.stderr.flush()
        logger.info("%s: %d in %.1fs", self.description, self.count, elapsed)
