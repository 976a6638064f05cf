"""Progress display for long operations (feature extraction, vocabulary training, indexing,
searching, evaluation).

A bar is drawn on standard error, never on standard output, so ``--json`` output stays clean. It
is drawn when

* the caller forces it (``enabled=True``), or
* ``enabled`` is None inside ``with progress_scope(True):`` (``progress_scope(False)`` turns
  bars off; the ``vbow`` command sets it from ``--progress``/``--no-progress``), or
* ``enabled`` is None and the environment variable ``VBOW_PROGRESS`` is ``1``/``on`` (``0``/``off``
  turns bars off), or
* ``enabled`` is None, ``VBOW_PROGRESS`` is unset, and standard error is a terminal or the code
  runs in a Jupyter kernel.

Bars are drawn by ``tqdm.auto`` (a widget in Jupyter, a text bar in a terminal). If tqdm is not
installed, or its notebook widget cannot be shown (no ``ipywidgets``), a plain text bar is drawn
instead; a progress display never makes the operation fail. Whether or not a bar is drawn, a
summary is logged at INFO level when the phase ends. The library never configures logging.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import sys
import time
from typing import Any, Iterator

__all__ = ["Progress", "progress_enabled", "progress_scope"]

logger = logging.getLogger(__name__)

_ON = frozenset({"1", "true", "on", "yes"})
_OFF = frozenset({"0", "false", "off", "no"})
_SCOPE: contextvars.ContextVar[bool | None] = contextvars.ContextVar("vbow_progress", default=None)


@contextlib.contextmanager
def progress_scope(enabled: bool | None) -> Iterator[None]:
    """Within the block, phases started with ``enabled=None`` draw a bar if ``enabled`` is True
    and never if it is False (None changes nothing). Context-local: other threads and
    contexts are not affected.
    """
    if enabled is None:
        yield
        return
    token = _SCOPE.set(bool(enabled))
    try:
        yield
    finally:
        _SCOPE.reset(token)


def _stderr_is_terminal() -> bool:
    isatty = getattr(sys.stderr, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except (OSError, ValueError):  # closed or detached stream
        return False


def _in_notebook() -> bool:
    """True inside a Jupyter (IPython kernel) session; never imports IPython itself."""
    ipython = sys.modules.get("IPython")
    get_ipython = getattr(ipython, "get_ipython", None)
    if not callable(get_ipython):
        return False
    try:
        shell = get_ipython()
    except Exception:  # noqa: BLE001 - a broken IPython must not break indexing
        return False
    return shell is not None and hasattr(shell, "kernel")


def progress_enabled(enabled: bool | None = None) -> bool:
    """Whether a progress bar is drawn for a phase started with this ``enabled`` setting.

    Parameters
    ----------
    enabled : bool or None
        True or False decide. None: the enclosing :func:`progress_scope` if any, else
        ``VBOW_PROGRESS`` (``1``/``on`` or ``0``/``off``) if set, else draw when standard error
        is a terminal or the code runs in a Jupyter kernel.

    Returns
    -------
    bool
    """
    if enabled is not None:
        return bool(enabled)
    scoped = _SCOPE.get()
    if scoped is not None:
        return scoped
    setting = os.environ.get("VBOW_PROGRESS", "").strip().lower()
    if setting in _ON:
        return True
    if setting in _OFF:
        return False
    return _stderr_is_terminal() or _in_notebook()


class _TextBar:
    """A one-line bar on standard error, for when tqdm is unavailable."""

    def __init__(self, total: int, description: str) -> None:
        self.total = total
        self.description = description
        self.n = 0
        self._start = time.perf_counter()
        self._last_draw = -1.0

    def update(self, n: int) -> None:
        self.n += n
        now = time.perf_counter()
        if now - self._last_draw > 0.1 or self.n >= self.total:
            self._last_draw = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        elapsed = now - self._start
        frac = self.n / self.total if self.total else 1.0
        width = 28
        filled = int(width * min(frac, 1.0))
        eta = elapsed / frac - elapsed if 0 < frac < 1 else 0.0
        sys.stderr.write(f"\r{self.description}: [{'#' * filled}{'.' * (width - filled)}] "
                         f"{self.n}/{self.total} {elapsed:5.1f}s eta {eta:5.1f}s ")
        sys.stderr.flush()

    def close(self) -> None:
        self._draw(time.perf_counter())
        sys.stderr.write("\n")
        sys.stderr.flush()


def _open_bar(total: int, description: str) -> Any:
    """A tqdm.auto bar (widget in Jupyter, text in a terminal), else a text bar."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _TextBar(total, description)
    kwargs = dict(total=total, desc=description, file=sys.stderr, mininterval=0.1,
                  dynamic_ncols=True)
    try:
        return tqdm(**kwargs)
    except Exception as exc:  # noqa: BLE001 - e.g. the notebook widget needs ipywidgets
        logger.debug("tqdm.auto bar unavailable (%s); using tqdm's text bar", exc)
    try:
        from tqdm.std import tqdm as text_tqdm

        return text_tqdm(**kwargs)
    except Exception as exc:  # noqa: BLE001
        logger.debug("tqdm text bar unavailable (%s); using vbow's text bar", exc)
        return _TextBar(total, description)


class Progress:
    """A counter for one long phase, drawn as a bar when :func:`progress_enabled` says so.

    Use it as a context manager; :meth:`close` draws the final state and logs a summary.

    Parameters
    ----------
    total : int
        Expected number of steps.
    description : str
        Label shown before the bar and in the log summary.
    enabled : bool or None
        True: always draw; False: never; None: see :func:`progress_enabled`.

    Attributes
    ----------
    count : int
        Steps done so far.
    enabled : bool
        Whether a bar is drawn.
    """

    def __init__(self, total: int, description: str, enabled: bool | None = None) -> None:
        self.total = max(int(total), 0)
        self.description = description
        self.count = 0
        self.enabled = progress_enabled(enabled)
        self._start = time.perf_counter()
        self._bar = _open_bar(self.total, description) if self.enabled else None
        self._closed = False

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        """Advance by ``n`` steps."""
        self.count += n
        if self._bar is not None:
            self._bar.update(n)
        else:
            logger.debug("%s: %d/%d", self.description, self.count, self.total)

    def close(self) -> None:
        """Finish the bar (once) and log a summary at INFO level."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        logger.info("%s: %d in %.1fs", self.description, self.count,
                    time.perf_counter() - self._start)
