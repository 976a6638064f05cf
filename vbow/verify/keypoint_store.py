"""Compact per-image keypoint geometry and word ids, for geometric verification.

This is the *direct index* of DBoW: for every indexed image, the visual word of each of its
features and the feature's geometry, so correspondences with a query come from shared words with
no descriptor matching. Features are stored CSR by image, in compact fixed-point form:

* ``words``: word id per feature (``uint16`` when the vocabulary has at most 65,536 words,
  else ``uint32``);
* ``xy``: ``(F, 2) uint16`` coordinates in 1/16 pixel (images up to 4,095 px per side);
* ``log_scale``: ``uint8``, ``round(16 * (log2(size) + 2))`` (sizes 0.25 .. ~16,000 px);
* ``angle``: ``uint8``, 256 steps per turn.

That is 8 bytes per feature with a 64k vocabulary. Hamming-embedding signatures are not kept
here: verification does not need them, and the postings keep one per (image, word), which is
what extending another index copies. Bundles written while the store also kept them
(``kp_signatures``) load, and that array is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vbow.search.csr import gather_ranges, offsets_from_counts
from vbow.errors import InvalidInputError

__all__ = ["KeypointStore", "encode_geometry", "decode_geometry", "MAX_COORD"]

#: Largest coordinate (pixels) the fixed-point ``xy`` encoding can hold.
MAX_COORD = 65535 / 16.0


def word_dtype(n_words: int) -> np.dtype:
    """The smallest unsigned dtype that holds word ids below ``n_words``."""
    return np.dtype(np.uint16) if n_words <= 65536 else np.dtype(np.uint32)


def encode_geometry(keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Encode ``(n, 4) float32`` keypoints (x, y, size, angle°) to ``xy``, ``log_scale``, ``angle``.

    Works in chunks of float64 (bounded temporaries for batches of millions of features).
    """
    kp_all = np.asarray(keypoints)
    n = kp_all.shape[0]
    xy = np.empty((n, 2), np.uint16)
    log_scale = np.empty(n, np.uint8)
    angle = np.empty(n, np.uint8)
    step = 1 << 20
    for s in range(0, n, step):
        kp = kp_all[s:s + step].astype(np.float64)
        xy[s:s + step] = np.clip(np.rint(kp[:, :2] * 16.0), 0, 65535)
        log_scale[s:s + step] = np.clip(np.rint(16.0 * (np.log2(np.maximum(kp[:, 2], 0.25)) + 2.0)),
                                        0, 255)
        angle[s:s + step] = np.rint(np.mod(kp[:, 3], 360.0) * (256.0 / 360.0)).astype(np.int64) % 256
    return xy, log_scale, angle


def decode_geometry(xy: np.ndarray, log_scale: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Inverse of :func:`encode_geometry`: ``(n, 4) float32`` x, y, size, angle in degrees."""
    out = np.empty((xy.shape[0], 4), dtype=np.float32)
    out[:, :2] = xy.astype(np.float32) / 16.0
    out[:, 2] = np.exp2(log_scale.astype(np.float32) / 16.0 - 2.0)
    out[:, 3] = angle.astype(np.float32) * (360.0 / 256.0)
    return out


@dataclass
class _Block:
    offsets: np.ndarray   # (n + 1,) int64, local
    words: np.ndarray
    xy: np.ndarray
    log_scale: np.ndarray
    angle: np.ndarray

    def take(self, mask: np.ndarray, offsets: np.ndarray) -> "_Block":
        """The features where ``mask`` is True, with new local ``offsets``."""
        return _Block(offsets, self.words[mask], self.xy[mask], self.log_scale[mask],
                      self.angle[mask])


class KeypointStore:
    """Append-only store of (word, geometry) per image, addressed by image id.

    Parameters
    ----------
    n_words : int
        Vocabulary size (chooses the word id dtype).
    """

    def __init__(self, n_words: int) -> None:
        self.n_words = int(n_words)
        self.word_dtype = word_dtype(self.n_words)
        self._blocks: list[_Block] = []
        self._block_starts: list[int] = []
        self.n_images = 0

    def add(self, words: list[np.ndarray], keypoints: list[np.ndarray]) -> None:
        """Append images: one ``(n_i,)`` word array and one ``(n_i, 4) float32`` keypoint array each."""
        if len(words) != len(keypoints):
            raise InvalidInputError("words and keypoints must have one entry per image")
        counts = np.array([w.shape[0] for w in words], dtype=np.int64)
        if any(k.shape != (c, 4) for k, c in zip(keypoints, counts)):
            raise InvalidInputError("each image's keypoints must be (n_i, 4) matching its words")
        flat_kp = np.concatenate(keypoints) if keypoints else np.zeros((0, 4), np.float32)
        flat_w = np.concatenate(words) if words else np.zeros(0, np.int64)
        self.add_flat(offsets_from_counts(counts), flat_w, flat_kp)

    def add_flat(self, offsets: np.ndarray, words: np.ndarray, keypoints: np.ndarray) -> None:
        """Append images given as one CSR batch.

        Parameters
        ----------
        offsets : np.ndarray
            ``(n + 1,) int64``; image ``i``'s features are rows ``offsets[i]:offsets[i+1]``.
        words : np.ndarray
            ``(F,) int`` word id per feature.
        keypoints : np.ndarray
            ``(F, 4) float32`` geometry per feature (x, y, size, angle°).
        """
        offsets = np.asarray(offsets, dtype=np.int64)
        n_feat = int(offsets[-1]) if offsets.size else -1
        if offsets.ndim != 1 or offsets.size < 1 or offsets[0] != 0 or np.any(np.diff(offsets) < 0) \
                or words.shape != (n_feat,) or keypoints.shape != (n_feat, 4):
            raise InvalidInputError("inconsistent CSR batch: offsets, words and keypoints disagree")
        if keypoints.size and float(keypoints[:, :2].max()) > MAX_COORD:
            raise InvalidInputError(f"keypoint coordinates above {MAX_COORD:.0f} px cannot be stored;"
                                    f" lower max_side")
        xy, log_scale, angle = encode_geometry(keypoints)
        self._blocks.append(_Block(offsets - offsets[0], words.astype(self.word_dtype),
                                   xy, log_scale, angle))
        self._block_starts.append(self.n_images)
        self.n_images += int(offsets.shape[0] - 1)
        if len(self._blocks) > 64:
            self._blocks = [self._merged()]
            self._block_starts = [0]

    def extend(self, other: "KeypointStore", keep: np.ndarray | None = None) -> None:
        """Append another store's images as stored (no re-encoding of the geometry).

        Parameters
        ----------
        other : KeypointStore
            A store over the same vocabulary size.
        keep : np.ndarray, optional
            ``(other.n_images,) bool``: append only these images, in order (default: all).
        """
        if other.n_words != self.n_words:
            raise InvalidInputError(f"cannot extend a store over {self.n_words} words with one over "
                                    f"{other.n_words}")
        if other.n_images == 0:
            return
        block = other._merged()
        if keep is not None:
            keep = np.asarray(keep, dtype=bool)
            if keep.shape != (other.n_images,):
                raise InvalidInputError(f"keep must be ({other.n_images},) bool; got {keep.shape}")
            counts = np.diff(block.offsets)
            mask = np.repeat(keep, counts)
            block = block.take(mask, offsets_from_counts(counts[keep]))
        n = int(block.offsets.shape[0] - 1)
        if n == 0:
            return
        self._blocks.append(_Block(block.offsets - block.offsets[0], block.words, block.xy,
                                   block.log_scale, block.angle))
        self._block_starts.append(self.n_images)
        self.n_images += n
        if len(self._blocks) > 64:
            self._blocks = [self._merged()]
            self._block_starts = [0]

    def _merged(self) -> _Block:
        if len(self._blocks) == 1:
            return self._blocks[0]
        counts = np.concatenate([np.diff(b.offsets) for b in self._blocks])
        return _Block(offsets_from_counts(counts),
                      np.concatenate([b.words for b in self._blocks]),
                      np.concatenate([b.xy for b in self._blocks]),
                      np.concatenate([b.log_scale for b in self._blocks]),
                      np.concatenate([b.angle for b in self._blocks]))

    def get(self, image_id: int) -> tuple[np.ndarray, np.ndarray]:
        """Words ``(n,) int64`` and keypoints ``(n, 4) float32`` of one image."""
        if not 0 <= image_id < self.n_images:
            raise InvalidInputError(f"image id {image_id} out of range 0..{self.n_images - 1}")
        b = int(np.searchsorted(self._block_starts, image_id, side="right")) - 1
        block = self._blocks[b]
        local = image_id - self._block_starts[b]
        s, e = int(block.offsets[local]), int(block.offsets[local + 1])
        return (block.words[s:e].astype(np.int64),
                decode_geometry(block.xy[s:e], block.log_scale[s:e], block.angle[s:e]))

    def gather(self, image_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Words and keypoints of many images at once, in CSR form (one copy per block, no
        Python loop per image).

        Parameters
        ----------
        image_ids : np.ndarray
            ``(n,) int`` image ids, any order, repeats allowed.

        Returns
        -------
        offsets : np.ndarray
            ``(n + 1,) int64``: image ``image_ids[i]``'s features are rows
            ``offsets[i]:offsets[i + 1]`` of the two arrays below.
        words : np.ndarray
            ``(F,) int64`` word id per feature.
        keypoints : np.ndarray
            ``(F, 4) float32`` x, y, size, angle°, as :meth:`get` gives them.
        """
        offsets, words, rows = self.gather_words(image_ids)
        return offsets, words, self.keypoints_at(rows)

    def gather_words(self, image_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Like :meth:`gather`, but the third array is ``(F,) int64`` each feature's row in the
        store (for :meth:`keypoints_at`), so that only the geometry needed is decoded."""
        ids = np.asarray(image_ids, dtype=np.int64).reshape(-1)
        if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= self.n_images):
            raise InvalidInputError(f"image ids must be in 0..{self.n_images - 1}")
        block_of = np.searchsorted(self._block_starts, ids, side="right") - 1
        bases = self._feature_bases()
        starts = np.zeros(ids.size, np.int64)
        lengths = np.zeros(ids.size, np.int64)
        for b in np.unique(block_of).tolist():
            sel = block_of == b
            local = ids[sel] - self._block_starts[b]
            starts[sel] = self._blocks[b].offsets[local]
            lengths[sel] = self._blocks[b].offsets[local + 1] - starts[sel]
            starts[sel] += bases[b]
        offsets = offsets_from_counts(lengths)
        rows = gather_ranges(starts, lengths)
        words = np.empty(rows.size, np.int64)
        for b, in_block in self._by_block(rows, bases):
            words[in_block] = self._blocks[b].words[rows[in_block] - bases[b]]
        return offsets, words, rows

    def keypoints_at(self, rows: np.ndarray) -> np.ndarray:
        """``(r, 4) float32`` decoded keypoints of feature ``rows`` (``(r,) int64``, from
        :meth:`gather_words`)."""
        rows = np.asarray(rows, np.int64)
        xy = np.empty((rows.size, 2), np.uint16)
        log_scale = np.empty(rows.size, np.uint8)
        angle = np.empty(rows.size, np.uint8)
        bases = self._feature_bases()
        for b, in_block in self._by_block(rows, bases):
            at = rows[in_block] - bases[b]
            block = self._blocks[b]
            xy[in_block], log_scale[in_block], angle[in_block] = \
                block.xy[at], block.log_scale[at], block.angle[at]
        return decode_geometry(xy, log_scale, angle)

    def _feature_bases(self) -> np.ndarray:
        """``(n_blocks + 1,) int64`` first store row of each block's features."""
        return offsets_from_counts(np.array([b.words.shape[0] for b in self._blocks], np.int64))

    @staticmethod
    def _by_block(rows: np.ndarray, bases: np.ndarray):
        """``(block, positions in rows)`` for each block that holds some of ``rows``."""
        if len(bases) == 2:                # one block: no split
            if rows.size:
                yield 0, slice(None)
            return
        block_of = np.searchsorted(bases, rows, side="right") - 1
        for b in np.unique(block_of).tolist():
            yield b, np.flatnonzero(block_of == b)

    def select(self, keep: np.ndarray) -> None:
        """Keep only the images where ``keep`` is True, renumbered in order."""
        block = self._merged()
        keep = np.asarray(keep, dtype=bool)
        counts = np.diff(block.offsets)
        mask = np.repeat(keep, counts)
        self._blocks = [block.take(mask, offsets_from_counts(counts[keep]))]
        self._block_starts = [0]
        self.n_images = int(keep.sum())

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Flat arrays for a bundle."""
        block = self._merged() if self._blocks else _Block(
            np.zeros(1, np.int64), np.zeros(0, self.word_dtype), np.zeros((0, 2), np.uint16),
            np.zeros(0, np.uint8), np.zeros(0, np.uint8))
        out = {"kp_offsets": block.offsets, "kp_words": block.words, "kp_xy": block.xy,
               "kp_log_scale": block.log_scale, "kp_angle": block.angle}
        return out

    def bundle_arrays(self) -> dict[str, object]:
        """Like :meth:`to_arrays`, but large arrays are :class:`vbow.search.lazy_array.LazyArray` objects
        that write the blocks straight into the output files (no merged copy in memory)."""
        from vbow.search.lazy_array import LazyArray
        if len(self._blocks) <= 1:
            return self.to_arrays()
        counts = np.concatenate([np.diff(b.offsets) for b in self._blocks])
        return {"kp_offsets": offsets_from_counts(counts),
                "kp_words": LazyArray.concatenate([b.words for b in self._blocks]),
                "kp_xy": LazyArray.concatenate([b.xy for b in self._blocks]),
                "kp_log_scale": LazyArray.concatenate([b.log_scale for b in self._blocks]),
                "kp_angle": LazyArray.concatenate([b.angle for b in self._blocks])}

    @classmethod
    def from_arrays(cls, n_words: int, arrays: dict[str, np.ndarray]) -> "KeypointStore":
        store = cls(n_words)
        # plain ndarray views of (possibly memory-mapped) arrays: np.memmap slicing is slow
        block = _Block(*(np.asarray(arrays[k]) for k in ("kp_offsets", "kp_words", "kp_xy",
                                                           "kp_log_scale", "kp_angle")))
        n_feat = block.words.shape[0]
        if int(block.offsets[-1]) != n_feat or block.xy.shape != (n_feat, 2) or \
                block.log_scale.shape != (n_feat,) or block.angle.shape != (n_feat,):
            raise InvalidInputError("keypoint arrays are inconsistent with each other")
        store._blocks = [block]
        store._block_starts = [0]
        store.n_images = int(block.offsets.shape[0] - 1)
        return store
