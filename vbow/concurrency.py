"""Concurrency helpers: a reader/writer lock, and the thread pool that splits one query's work.

:class:`ReadWriteLock`: many concurrent readers, one writer, writers preferred.
:class:`vbow.ImageIndex` takes the read side for every search and the write side for every
change (``fit``, ``add``, ``remove``, and the compaction of ``save``), so a search sees the
catalog either wholly before or wholly after a change. A writer waiting for the lock stops
new readers from entering, so a stream of searches cannot starve it.

:func:`shared_pool` is the process's pool for the parts of one query that run on several threads
(``Config.query_threads``): quantising its descriptors and accumulating its postings. Its tasks
never submit tasks of their own, so a caller waiting on them cannot deadlock the pool.
:func:`run_split` runs one query's parts on it, the first on the calling thread.
:func:`usable_cores` caps those threads at the CPUs the process may run on.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence, TypeVar

__all__ = ["ReadWriteLock", "shared_pool", "usable_cores", "run_split"]

_Part = TypeVar("_Part")
_Result = TypeVar("_Result")

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _reset_pool_after_fork() -> None:
    global _pool
    _pool = None  # the parent's worker threads do not exist in a forked child


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_pool_after_fork)


def usable_cores() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def shared_pool() -> ThreadPoolExecutor:
    """The process's query pool, one worker per core, created on first use."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 2,
                                       thread_name_prefix="vbow-query")
        return _pool



def run_split(fn: Callable[[_Part], _Result], parts: Sequence[_Part]) -> list[_Result]:
    """``[fn(part) for part in parts]``, the first part on the calling thread and the others on
    :func:`shared_pool`, at the same time; results in the order of ``parts`` (non-empty)."""
    futures = [shared_pool().submit(fn, part) for part in parts[1:]]
    first = fn(parts[0])
    return [first] + [f.result() for f in futures]

class ReadWriteLock:
    """Shared/exclusive lock. Not reentrant: a thread holding it must not take it again."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._waiting_writers = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        """Hold the lock shared for the ``with`` block."""
        with self._cond:
            while self._writer or self._waiting_writers:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if self._readers == 0:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        """Hold the lock exclusively for the ``with`` block."""
        with self._cond:
            self._waiting_writers += 1
            try:
                while self._writer or self._readers:
                    self._cond.wait()
            finally:
                self._waiting_writers -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()
