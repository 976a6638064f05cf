"""What an :class:`vbow.ImageIndex` holds of its images, and every change to it.

:class:`IndexContents` keeps the three stores of one catalog together, so that they change in
step: the postings (:class:`vbow.search.inverted_index.InvertedIndex`), the per-image words and
keypoint geometry (:class:`vbow.verify.keypoint_store.KeypointStore`) and the keys, metadata and
per-image arrays (:class:`vbow.search.catalog.Catalog`). Image slots are numbered alike in all
three; a removed image keeps its slot, marked dead, until :meth:`IndexContents.compact`.

It takes no lock: the owning index calls it under its reader/writer lock (reads under the read
lock, changes under the write lock).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from vbow.errors import InvalidInputError
from vbow.index_batches import StagedImages
from vbow.search.catalog import Catalog
from vbow.search.inverted_index import InvertedIndex
from vbow.verify.keypoint_store import KeypointStore

__all__ = ["IndexContents", "LiveImages"]


@dataclasses.dataclass
class LiveImages:
    """A copy of an index's live images, in index order, ready to append to another index.

    ``colours`` is ``(n, n_bins) float32`` in [0, 1] (the stored uint8 histograms / 255, which
    round-trips exactly); ``scales`` ``(n,) float32``; ``sizes`` ``(n, 2) int32``; ``postings``
    holds just these images, numbered ``0 .. n - 1`` (with their Hamming-embedding signatures,
    which only the postings keep).
    """

    keys: list[str]
    metadata_json: list[str]
    colours: np.ndarray
    scales: np.ndarray
    sizes: np.ndarray
    store: KeypointStore
    postings: InvertedIndex


class IndexContents:
    """Postings, words and geometry, and catalog of one index's images, changed in step.

    Parameters
    ----------
    postings : InvertedIndex
    store : KeypointStore
    catalog : Catalog
        The three stores, with the same image slots (as :func:`vbow.persist.schema.read_index`
        returns them, or empty from :meth:`empty`).
    """

    def __init__(self, postings: InvertedIndex, store: KeypointStore, catalog: Catalog) -> None:
        self.postings = postings
        self.store = store
        self.catalog = catalog
        #: ``(n_words,) float32`` IDF recomputed from the live images (``idf_source="database"``),
        #: or None to use the vocabulary's.
        self.database_idf: np.ndarray | None = None

    @classmethod
    def empty(cls, n_words: int, burstiness: str, n_bins: int) -> "IndexContents":
        """No images, for a vocabulary of ``n_words`` words and ``n_bins`` colour bins."""
        return cls(InvertedIndex(n_words, burstiness), KeypointStore(n_words), Catalog(n_bins))

    # ------------------------------------------------------------------------------- reading
    def __len__(self) -> int:
        return int(np.count_nonzero(self.postings.alive))

    @property
    def n_slots(self) -> int:
        """Image slots, removed images included (the next slot number)."""
        return int(self.postings.n_docs)

    def keys(self) -> list[str]:
        """Keys of the live images, in slot order."""
        return [self.catalog.key(i) for i in np.flatnonzero(self.postings.alive).tolist()]

    def key_map(self) -> dict[str, int]:
        """Slot of each live key."""
        return self.catalog.key_map(self.postings.alive)

    def check_new_keys(self, keys: Sequence[str]) -> None:
        """Raise :class:`vbow.errors.InvalidInputError` if any of ``keys`` is already live."""
        mapping = self.key_map()
        clash = [k for k in keys if k in mapping]
        if clash:
            raise InvalidInputError(f"key {clash[0]!r} is already indexed; remove() it first")

    def live_images(self, idf: np.ndarray) -> LiveImages:
        """A copy of the live images (see :class:`LiveImages`), for another index's
        :meth:`append_live`; ``idf`` (``(n_words,) float32``) weights the copied postings' norms."""
        keep = np.asarray(self.postings.alive, dtype=bool)
        ids = np.flatnonzero(keep).tolist()
        src = self.catalog
        store = KeypointStore(self.store.n_words)
        store.extend(self.store, keep)
        postings = InvertedIndex(self.postings.n_words, self.postings.burstiness)
        postings.append_documents(self.postings, keep, idf)
        return LiveImages([src.key(i) for i in ids], [src.metadata_json(i) for i in ids],
                          np.asarray(src.colour)[ids].astype(np.float32) / 255.0,
                          np.asarray(src.scale)[ids], np.asarray(src.size)[ids], store, postings)

    # ------------------------------------------------------------------------------- changes
    def append(self, staged: StagedImages, idf: np.ndarray) -> None:
        """Append staged images to all three stores (keys already checked).

        ``idf`` is the ``(n_words,) float32`` IDF that weights the new postings. The keypoint
        store validates the batch before anything is added.
        """
        if not len(staged):
            return
        counts = np.array([np.shape(w)[0] for w in staged.words], np.int64)
        offsets = np.zeros(len(counts) + 1, np.int64)
        np.cumsum(counts, out=offsets[1:])
        flat_w = np.concatenate([np.asarray(w).reshape(-1) for w in staged.words]).astype(np.int64)
        flat_kp = np.concatenate([np.asarray(k, np.float32).reshape(-1, 4) for k in staged.keypoints])
        flat_sig = np.concatenate(staged.signatures) if staged.signatures else None
        self.store.add_flat(offsets, flat_w, flat_kp)
        self.postings.add_words(offsets, flat_w, idf, signatures=flat_sig)
        self.catalog.append(staged.keys, staged.meta, np.stack(staged.colours),
                            np.array(staged.scales, np.float32),
                            np.array(staged.sizes, np.int32).reshape(-1, 2))

    def append_live(self, live: LiveImages, idf: np.ndarray) -> None:
        """Append another index's live images (same vocabulary; keys already checked); their
        postings are copied, so the result equals adding them directly."""
        self.postings.append_documents(live.postings, live.postings.alive, idf)
        self.store.extend(live.store)
        self.catalog.append(live.keys, live.metadata_json, live.colours, live.scales, live.sizes)

    def remove(self, keys: Sequence[str]) -> int:
        """Remove distinct live ``keys``, all or nothing (KeyError naming the first unknown
        one, before any change). Returns how many were removed."""
        mapping = self.key_map()
        missing = [k for k in keys if k not in mapping]
        if missing:
            raise KeyError(f"not in the index: {missing[0]!r}")
        if not keys:
            return 0
        ids = np.array([mapping[k] for k in keys], dtype=np.int64)
        self.postings.remove(ids)
        self.catalog.forget(list(keys))
        return int(ids.size)

    def refresh_idf(self, idf_source: str) -> None:
        """Bring derived state up to date after a change: with ``idf_source="database"`` the
        IDF is recomputed from the live images and the postings' norms reweighted (never
        during a search); otherwise :attr:`database_idf` is None."""
        self.database_idf = None
        if idf_source == "database":
            df = self.postings.document_frequencies()
            idf = np.log(max(len(self), 1) / np.maximum(df, 0.5)).astype(np.float32)
            np.maximum(idf, 0, out=idf)
            self.postings.reweight(idf)
            self.database_idf = idf

    def compact(self) -> None:
        """Drop removed images' slots and renumber the rest, in order (before saving)."""
        keep = self.postings.alive.copy()
        if not keep.all():
            self.postings.renumber(keep)
            self.store.select(keep)
            self.catalog.select(keep)
