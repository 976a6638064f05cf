"""Counters and latency percentiles for ``GET /stats``."""

from __future__ import annotations

import threading
from collections import deque

import numpy as np

__all__ = ["LatencyRecorder"]


class LatencyRecorder:
    """Counts requests and keeps the latest ``window`` latencies for percentiles.

    Parameters
    ----------
    window : int
        Latencies kept (a ring buffer).
    """

    def __init__(self, window: int) -> None:
        self._recent: deque[float] = deque(maxlen=int(window))
        self._lock = threading.Lock()
        self.count = 0

    def record(self, seconds: float) -> None:
        """Add one request's latency."""
        with self._lock:
            self.count += 1
            self._recent.append(float(seconds))

    def percentiles_ms(self, qs: tuple[float, ...] = (50, 95, 99)) -> dict[str, float | None]:
        """``{"p50": ms, "p95": ms, "p99": ms}`` over the window (None before any request)."""
        with self._lock:
            values = np.fromiter(self._recent, dtype=np.float64, count=len(self._recent))
        if values.size == 0:
            return {f"p{q:g}": None for q in qs}
        pct = np.percentile(values, qs) * 1000.0
        return {f"p{q:g}": round(float(v), 3) for q, v in zip(qs, pct)}
