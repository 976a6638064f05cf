"""A bounded, seeded uniform sample of a descriptor stream (reservoir sampling)."""

from __future__ import annotations

import numpy as np

from vbow.errors import InvalidInputError, NotFittedError

__all__ = ["DescriptorSampler"]


class DescriptorSampler:
    """Keep a uniform random sample of at most ``capacity`` descriptors from a stream.

    Reservoir sampling (Algorithm R, vectorised per batch), so millions of descriptors can stream
    through while only ``capacity`` rows are ever held.

    Parameters
    ----------
    capacity : int
        Maximum number of descriptors kept.
    random_state : int
        Seed; the same stream and seed give the same sample.
    """

    def __init__(self, capacity: int, random_state: int = 0) -> None:
        if capacity < 1:
            raise InvalidInputError(f"sampler capacity must be >= 1; got {capacity}")
        self.capacity = int(capacity)
        self._rng = np.random.default_rng(random_state)
        self._buffer: np.ndarray | None = None
        self._filled = 0
        self.seen = 0

    def add(self, descriptors: np.ndarray) -> None:
        """Offer a ``(n, d)`` batch of descriptors to the sample."""
        n = int(descriptors.shape[0])
        if n == 0:
            return
        if self._buffer is None:
            self._buffer = np.empty((self.capacity, descriptors.shape[1]), dtype=descriptors.dtype)
        take = min(n, self.capacity - self._filled)
        if take:
            self._buffer[self._filled:self._filled + take] = descriptors[:take]
            self._filled += take
        rest = descriptors[take:]
        if rest.shape[0]:
            positions = self.seen + take + np.arange(rest.shape[0])  # 0-based stream positions
            slots = (self._rng.random(rest.shape[0]) * (positions + 1)).astype(np.int64)
            keep = slots < self.capacity
            # later rows win when two land in one slot, as in sequential Algorithm R
            self._buffer[slots[keep]] = rest[keep]
        self.seen += n

    def sample(self) -> np.ndarray:
        """The sample so far, ``(min(seen, capacity), d)``."""
        if self._buffer is None:
            raise NotFittedError("the descriptor sampler has seen no descriptors")
        return self._buffer[:self._filled]
