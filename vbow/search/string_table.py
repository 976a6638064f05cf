"""A list of strings stored as one UTF-8 byte array plus offsets (memory-mappable, no pickle)."""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from vbow.search.csr import offsets_from_counts

__all__ = ["encode_strings", "StringTable"]


def encode_strings(strings: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
    """Encode strings as ``(total,) uint8`` UTF-8 bytes and ``(n + 1,) int64`` offsets."""
    encoded = [s.encode("utf-8") for s in strings]
    blob = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    return blob, offsets_from_counts(np.array([len(e) for e in encoded], dtype=np.int64))


class StringTable(Sequence[str]):
    """Read-only sequence of strings decoded on demand from :func:`encode_strings` arrays."""

    def __init__(self, blob: np.ndarray, offsets: np.ndarray) -> None:
        self.blob = blob
        self.offsets = offsets

    def __len__(self) -> int:
        return int(self.offsets.shape[0] - 1)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(i)
        s, e = int(self.offsets[i]), int(self.offsets[i + 1])
        return bytes(self.blob[s:e]).decode("utf-8")

    def to_list(self) -> list[str]:
        """All strings, decoded at once."""
        data = bytes(self.blob)
        offs = self.offsets.tolist()
        return [data[offs[i]:offs[i + 1]].decode("utf-8") for i in range(len(self))]
