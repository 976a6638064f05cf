"""CRC-32 of large files: memory-mapped, in pieces on several threads, the pieces combined.

zlib releases the GIL while it checksums, so a file of many pieces is checksummed on all cores;
:func:`crc32_combine` joins the pieces' CRCs (the GF(2) matrix method zlib's ``crc32_combine``
uses, which Python's zlib does not expose).
"""

from __future__ import annotations

import functools
import mmap as _mmap
import os
import zlib
from concurrent.futures import ThreadPoolExecutor

__all__ = ["crc32_combine", "file_crc32", "CRC_PIECE_BYTES"]

#: Files larger than this are checksummed in pieces of this size on several threads.
CRC_PIECE_BYTES = 1 << 26
_CRC_POLY = 0xEDB88320


def _gf2_times(matrix: tuple[int, ...] | list[int], vector: int) -> int:
    """Multiply a 32x32 GF(2) matrix (one int per column) by a 32-bit vector."""
    out, i = 0, 0
    while vector:
        if vector & 1:
            out ^= matrix[i]
        vector >>= 1
        i += 1
    return out


def _gf2_compose(a: tuple[int, ...] | list[int], b: tuple[int, ...] | list[int]) -> tuple[int, ...]:
    """The matrix of applying ``b`` then ``a``."""
    return tuple(_gf2_times(a, column) for column in b)


@functools.lru_cache(maxsize=64)
def _crc_zeros_operator(n_bytes: int) -> tuple[int, ...]:
    """The GF(2) matrix that advances a CRC-32 register over ``n_bytes`` zero bytes."""
    one_bit = (_CRC_POLY,) + tuple(1 << i for i in range(31))
    step = one_bit
    for _ in range(3):                      # 1 bit -> 2 -> 4 -> 8 bits: one byte
        step = _gf2_compose(step, step)
    result = tuple(1 << i for i in range(32))
    while n_bytes:
        if n_bytes & 1:
            result = _gf2_compose(step, result)
        n_bytes >>= 1
        if n_bytes:
            step = _gf2_compose(step, step)
    return result


def crc32_combine(crc_a: int, crc_b: int, length_b: int) -> int:
    """CRC-32 of ``A + B`` from ``crc32(A)``, ``crc32(B)`` and ``len(B)`` (zlib's CRC-32)."""
    if length_b <= 0:
        return crc_a
    return _gf2_times(_crc_zeros_operator(length_b), crc_a) ^ crc_b


def file_crc32(fd: int, size: int) -> int:
    """CRC-32 of the first ``size`` bytes of an open file, memory-mapped; files larger than
    :data:`CRC_PIECE_BYTES` are checksummed in pieces on several threads (zlib releases the GIL)
    and the pieces' CRCs combined."""
    if size == 0:
        return zlib.crc32(b"")
    with _mmap.mmap(fd, size, access=_mmap.ACCESS_READ) as mapped:
        if size <= CRC_PIECE_BYTES or (os.cpu_count() or 1) < 2:
            return zlib.crc32(mapped)
        pieces = [(s, min(size, s + CRC_PIECE_BYTES)) for s in range(0, size, CRC_PIECE_BYTES)]
        view = memoryview(mapped)
        try:
            with ThreadPoolExecutor(max_workers=min(os.cpu_count() or 2, 8)) as pool:
                crcs = list(pool.map(lambda piece: zlib.crc32(view[piece[0]:piece[1]]), pieces))
        finally:
            view.release()
    crc = crcs[0]
    for (start, end), piece_crc in zip(pieces[1:], crcs[1:]):
        crc = crc32_combine(crc, piece_crc, end - start)
    return crc
