"""Inverted file of visual words with compact CSR postings, 4 bytes per posting.

Postings live in *segments*. Each segment holds, for a contiguous range of document ids, flat
arrays ordered by word (CSR): ``word_offsets (n_words + 1,) int64`` and ``postings (P,) uint32``.
Each posting packs the document id and its capped term count in one ``uint32``
(:mod:`vbow.search.postings`).

:meth:`InvertedIndex.add` (bags of words) and :meth:`InvertedIndex.add_words` (raw per-feature
words; duplicates are counted with one radix sort of the batch, no per-image loop) append a
segment. :meth:`InvertedIndex.compact` merges segments in O(P) (no sort), dropping postings of
removed documents; saving never needs it, because :meth:`InvertedIndex.bundle_arrays` streams the
merge straight into the output file. A loaded index is one segment whose arrays may be
memory-mapped.

A query is scored by visiting only the postings of its own words: their term weights are
computed from each posting's low byte (the count code, converted to float32 and passed through
the burstiness function, numpy only), and they are accumulated with
``np.bincount``, or for large queries in float32 with one sparse matrix-vector product (the
per-document accumulator is half the size, which matters once it outgrows the cache). With
``max_postings`` the query words are taken in decreasing order of their
weight per posting (query weight times IDF, the greedy optimum of the fractional knapsack "most
score mass for a bounded number of postings read") until the budget is spent; the long postings
lists of very frequent words (stop words, low IDF) are the ones skipped, which bounds the latency
on large catalogs where word frequencies are Zipf-like.

Scores are cosines of TF-IDF vectors (see :mod:`vbow.search.weighting`): the postings keep counts, and
each document keeps its vector norm, so changing the IDF (``idf_source="database"``) only
recomputes norms.

Hamming embedding (optional, decided by the first batch added): each posting then also carries
a 64-bit signature, in a ``(P,) uint64`` array parallel to the postings (8 bytes per posting);
:meth:`InvertedIndex.add_words` makes it from the per-feature signatures of
:mod:`vbow.vocab.embedding`: the bitwise majority of the posting's features (ASMK*), and a
query given its own per-word signatures weighs each posting by the selective kernel of the
Hamming distance (:mod:`vbow.search.embedding`). Norms are unchanged (the kernel of a signature
with itself is 1). The distances are computed where the signatures lie
(:meth:`vbow.search.postings.PostingSegment.hamming_distances`), and only the postings within
the kernel's threshold (about 5 % at 1M images) are read, weighted and accumulated
(``benchmarks/results/he_scoring.md``).
"""

from __future__ import annotations

import logging

import numpy as np

from vbow.search.accumulate import accumulate_parallel
from vbow.search.csr import offsets_from_counts
from vbow.errors import InvalidInputError
from vbow.search.embedding import N_BITS, majority_signatures, summed_signatures
from vbow.search.postings import (MAX_DOCS, TF_BITS, TF_CAP, TF_MASK, PostingSegment,
                                  burst_weights, pack_postings)
from vbow.search.weighting import BURSTINESS

__all__ = ["InvertedIndex"]

logger = logging.getLogger(__name__)

_MAX_SEGMENTS = 64


class InvertedIndex:
    """Inverted file over ``n_words`` visual words.

    Parameters
    ----------
    n_words : int
        Vocabulary size.
    burstiness : {"sqrt", "log", "none"}
        Applied to term counts on both the document and the query side.
    """

    def __init__(self, n_words: int, burstiness: str = "sqrt") -> None:
        if burstiness not in BURSTINESS:
            from vbow.errors import UnknownOptionError
            raise UnknownOptionError("burstiness", burstiness, BURSTINESS)
        self.n_words = int(n_words)
        self.burstiness = burstiness
        self.segments: list[PostingSegment] = []
        self.norms = np.zeros(0, dtype=np.float32)
        self.alive = np.zeros(0, dtype=bool)
        #: whether postings carry Hamming-embedding signatures (None until the first batch)
        self.has_signatures: bool | None = None
        self._inv: np.ndarray | None = None  # cached 1 / norms (see _inverse_norms)
        # burst weight of each stored tf code, computed by the same vectorised routine that
        # weighs a query's postings, so the document norms and the scores agree bit for bit
        self._tf_table = burst_weights(np.arange(TF_CAP, dtype=np.uint32), burstiness)

    @property
    def n_docs(self) -> int:
        """Number of document slots (removed documents keep their slot until renumbering)."""
        return int(self.alive.shape[0])

    @property
    def n_postings(self) -> int:
        return sum(s.n_postings for s in self.segments)

    # ------------------------------------------------------------------------------- building
    def add(self, doc_offsets: np.ndarray, words: np.ndarray, counts: np.ndarray,
            idf: np.ndarray) -> np.ndarray:
        """Append documents given as a CSR batch of sparse bags of words.

        Parameters
        ----------
        doc_offsets : np.ndarray
            ``(n + 1,) int64``; document ``i``'s words are ``words[doc_offsets[i]:doc_offsets[i+1]]``.
        words : np.ndarray
            ``(m,) int`` word ids, distinct within each document.
        counts : np.ndarray
            ``(m,)`` positive term counts (rounded and capped at :data:`TF_CAP` when stored).
        idf : np.ndarray
            ``(n_words,) float32`` IDF used for the document norms.

        Returns
        -------
        np.ndarray
            ``(n,) int64`` the new documents' ids.
        """
        doc_offsets = np.asarray(doc_offsets, dtype=np.int64)
        words = np.asarray(words, dtype=np.int64)
        counts = np.asarray(counts)
        if counts.shape != words.shape:
            raise InvalidInputError("inconsistent CSR batch: words and counts disagree")
        n = self._check_batch(doc_offsets, words)
        start = self.n_docs
        doc_local = np.repeat(np.arange(n, dtype=np.int64), np.diff(doc_offsets))
        order = np.argsort(words, kind="stable")  # stable: docs stay ascending within a word
        postings = pack_postings(doc_local[order] + start, counts[order])
        self._append(start, n, np.bincount(words, minlength=self.n_words), postings,
                     words[order], doc_local[order], idf, None)
        return np.arange(start, start + n, dtype=np.int64)

    def add_words(self, image_offsets: np.ndarray, words: np.ndarray, idf: np.ndarray,
                  embedding: np.ndarray | None = None,
                  signatures: np.ndarray | None = None) -> np.ndarray:
        """Append documents given as their raw per-feature word ids (with repeats).

        Equivalent to :meth:`add` with each document's bag of words, but with no per-document
        work: one stable (radix, for 16-bit word ids) argsort of the whole batch by word puts each
        (word, document) pair's repeats next to each other, already in posting order.

        Parameters
        ----------
        image_offsets : np.ndarray
            ``(n + 1,) int64``; document ``i``'s features are ``words[image_offsets[i]:image_offsets[i+1]]``.
        words : np.ndarray
            ``(F,) int`` word id of every feature.
        idf : np.ndarray
            ``(n_words,) float32`` IDF used for the document norms.
        embedding : np.ndarray, optional
            ``(F, 64) float32`` centred projected residual of every feature
            (:meth:`vbow.vocab.embedding.HammingEmbedding.residuals`); each posting's signature
            is the signs of the sum over its features. Either every batch has one or none.
        signatures : np.ndarray, optional
            ``(F,) uint64`` signature of every feature, instead of ``embedding``: each posting's
            signature is the bitwise majority of its features' (a tie leaves the bit unset), the
            same as ``embedding=signs_of(signatures)`` without its ``(F, 64)`` array. Only the
            features of postings with more than one feature are unpacked.

        Returns
        -------
        np.ndarray
            ``(n,) int64`` the new documents' ids.
        """
        image_offsets = np.asarray(image_offsets, dtype=np.int64)
        words = np.asarray(words)
        n = self._check_batch(image_offsets, words)
        if embedding is not None and np.shape(embedding) != (words.shape[0], N_BITS):
            raise InvalidInputError(f"embedding must be ({words.shape[0]}, {N_BITS}); got "
                                    f"{np.shape(embedding)}")
        if signatures is not None:
            if embedding is not None:
                raise InvalidInputError("give embedding or signatures, not both")
            signatures = np.asarray(signatures)
            if signatures.shape != (words.shape[0],) or signatures.dtype != np.uint64:
                raise InvalidInputError(f"signatures must be ({words.shape[0]},) uint64; got "
                                        f"{signatures.shape} {signatures.dtype}")
        sort_dtype = np.uint16 if self.n_words <= 1 << 16 else np.int64
        start = self.n_docs
        order = np.argsort(words.astype(sort_dtype), kind="stable")
        w_sorted = words[order].astype(np.int64)
        doc_sorted = np.repeat(np.arange(n, dtype=np.int64), np.diff(image_offsets))[order]
        if w_sorted.size:
            new = np.empty(w_sorted.shape[0], dtype=bool)
            new[0] = True
            new[1:] = (w_sorted[1:] != w_sorted[:-1]) | (doc_sorted[1:] != doc_sorted[:-1])
            firsts = np.flatnonzero(new)
        else:
            firsts = np.zeros(0, np.int64)
        tf = np.diff(np.append(firsts, w_sorted.shape[0]))
        w_u, d_u = w_sorted[firsts], doc_sorted[firsts]
        postings = pack_postings(d_u + start, tf)
        if signatures is not None:
            signatures = majority_signatures(signatures[order], firsts, tf)
        elif embedding is not None:
            signatures = summed_signatures(embedding, order, firsts)
        self._append(start, n, np.bincount(w_u, minlength=self.n_words), postings, w_u, d_u, idf,
                     signatures)
        return np.arange(start, start + n, dtype=np.int64)

    def append_documents(self, other: "InvertedIndex", keep: np.ndarray, idf: np.ndarray) -> np.ndarray:
        """Append the documents of another inverted file where ``keep`` is True, in order.

        The postings (counts and, with Hamming embedding, signatures) are copied, not rebuilt,
        so the result equals adding those documents here directly. Norms are recomputed with
        ``idf``.

        Parameters
        ----------
        other : InvertedIndex
            Same vocabulary size and burstiness.
        keep : np.ndarray
            ``(other.n_docs,) bool``; documents removed from ``other`` must not be kept.
        idf : np.ndarray
            ``(n_words,) float32`` IDF for the new documents' norms.

        Returns
        -------
        np.ndarray
            ``(n,) int64`` the new documents' ids.
        """
        keep = np.asarray(keep, dtype=bool)
        if other.n_words != self.n_words or other.burstiness != self.burstiness:
            raise InvalidInputError("the other inverted file has another vocabulary size or burstiness")
        if keep.shape != (other.n_docs,):
            raise InvalidInputError(f"keep must be ({other.n_docs},) bool; got {keep.shape}")
        if np.any(keep & ~other.alive):
            raise InvalidInputError("removed documents cannot be appended")
        n = int(keep.sum())
        if n == 0:
            return np.zeros(0, np.int64)
        if self.n_docs + n > MAX_DOCS:
            raise InvalidInputError(f"an index holds at most {MAX_DOCS} images")
        start = self.n_docs
        new_id = np.cumsum(keep, dtype=np.int64) - 1
        words, docs, codes, sigs = [], [], [], []
        for seg in other.segments:  # segments cover ascending document ranges
            d = seg.docs.astype(np.int64)
            mask = keep[d]
            words.append(seg.word_of_posting()[mask])
            docs.append(new_id[d[mask]])
            codes.append(seg.postings[mask] & TF_MASK)
            if other.has_signatures:
                sigs.append(np.asarray(seg.signatures)[mask])
        if words:
            w, d, c = np.concatenate(words), np.concatenate(docs), np.concatenate(codes)
        else:
            w, d, c = np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.uint32)
        order = np.argsort(w, kind="stable")  # stable: documents stay ascending within a word
        w, d, c = w[order], d[order], c[order]
        postings = ((d + start).astype(np.uint32) << np.uint32(TF_BITS)) | c.astype(np.uint32)
        signatures = None
        if other.has_signatures:
            signatures = np.concatenate(sigs)[order] if sigs else np.zeros(0, np.uint64)
        self._append(start, n, np.bincount(w, minlength=self.n_words), postings, w, d, idf,
                     signatures)
        return np.arange(start, start + n, dtype=np.int64)

    def _check_batch(self, offsets: np.ndarray, words: np.ndarray) -> int:
        """Validate a CSR batch (``(n + 1,) int64`` offsets into ``(m,)`` word ids) that is to be
        appended; returns its number of documents ``n``."""
        n = offsets.shape[0] - 1
        if n < 0 or offsets[0] != 0 or offsets[-1] != words.shape[0] or np.any(np.diff(offsets) < 0):
            raise InvalidInputError("inconsistent CSR batch: offsets and words disagree")
        self._check_word_ids(words)
        if self.n_docs + n > MAX_DOCS:
            raise InvalidInputError(f"an index holds at most {MAX_DOCS} images")
        return n

    def _check_word_ids(self, words: np.ndarray) -> None:
        if words.size and (int(words.min()) < 0 or int(words.max()) >= self.n_words):
            raise InvalidInputError(f"word ids must be in 0..{self.n_words - 1}")

    def _append(self, start: int, n: int, per_word: np.ndarray, postings: np.ndarray,
                words: np.ndarray, doc_local: np.ndarray, idf: np.ndarray,
                signatures: np.ndarray | None) -> None:
        """Store one segment (postings already in word order) and its documents' norms."""
        with_sig = signatures is not None
        if self.n_docs == 0:  # nothing indexed yet (e.g. a saved empty index): the batch decides
            self.segments = []
            self.has_signatures = with_sig
        elif self.has_signatures is None:
            self.has_signatures = with_sig
        elif self.has_signatures != with_sig:
            raise InvalidInputError(
                "this index's postings " + ("carry" if self.has_signatures else "have no") +
                " Hamming-embedding signatures; a batch " + ("with" if with_sig else "without") +
                " them cannot be added")
        self.segments.append(PostingSegment(start, n, offsets_from_counts(per_word), postings,
                                            signatures))
        code = (postings & TF_MASK).astype(np.intp)
        contrib = (self._tf_table[code] * idf[words]).astype(np.float64) ** 2
        norms = np.sqrt(np.bincount(doc_local, weights=contrib, minlength=n)).astype(np.float32)
        self.norms = np.concatenate([self.norms, norms])
        self.alive = np.concatenate([self.alive, np.ones(n, dtype=bool)])
        self._inv = None
        if len(self.segments) > _MAX_SEGMENTS:
            self.compact()

    def remove(self, doc_ids: np.ndarray) -> None:
        """Mark documents as removed; their postings are dropped at the next :meth:`compact`."""
        ids = np.asarray(doc_ids, dtype=np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= self.n_docs):
            raise InvalidInputError(f"document ids must be in 0..{self.n_docs - 1}")
        if not self.alive.flags.writeable:
            self.alive = self.alive.copy()
        self.alive[ids] = False
        self._inv = None

    def _merge_into(self, out: np.ndarray, keep: list[np.ndarray] | None = None,
                    field: str = "postings") -> np.ndarray:
        """Write the merged postings of every segment into ``out``; returns merged word offsets.

        ``keep`` (one bool mask per segment) drops postings; ``out`` must have room for the kept
        postings. Each segment's postings move as whole per-word runs, in segment order, so every
        word's postings stay sorted by document. ``field="signatures"`` merges the signatures
        the same way.
        """
        per_word = []
        for i, seg in enumerate(self.segments):
            if keep is None:
                per_word.append(seg.word_counts())
            else:
                per_word.append(np.bincount(seg.word_of_posting()[keep[i]], minlength=self.n_words))
        total = np.sum(per_word, axis=0) if per_word else np.zeros(self.n_words, np.int64)
        offsets = offsets_from_counts(total)
        filled = offsets[:-1].copy()  # where the next segment's postings for each word go
        for i, (seg, counts) in enumerate(zip(self.segments, per_word)):
            arr = getattr(seg, field)
            src = arr if keep is None else arr[keep[i]]
            seg_offsets = offsets_from_counts(counts)
            # destination of the j-th kept posting of word w: filled[w] + (j - seg_offsets[w])
            dest = np.repeat(filled - seg_offsets[:-1], counts) + np.arange(src.shape[0])
            out[dest] = src
            filled += counts
        return offsets

    def compact(self) -> None:
        """Merge all segments into one, in O(P), dropping postings of removed documents."""
        if len(self.segments) <= 1 and (not self.segments or
                                        self.alive[self.segments[0].docs].all()):
            return
        keep = [self.alive[seg.docs] for seg in self.segments]
        out = np.empty(int(sum(int(k.sum()) for k in keep)), dtype=np.uint32)
        offsets = self._merge_into(out, keep)
        sig = None
        if self.has_signatures:
            sig = np.empty(out.shape[0], dtype=np.uint64)
            self._merge_into(sig, keep, "signatures")
        self.segments = [PostingSegment(0, self.n_docs, offsets, out, sig)]

    def renumber(self, keep: np.ndarray) -> np.ndarray:
        """Drop removed document slots and renumber the rest in order.

        Parameters
        ----------
        keep : np.ndarray
            ``(n_docs,) bool`` which slots to keep (normally :attr:`alive`).

        Returns
        -------
        np.ndarray
            ``(n_docs,) int64`` new id of each old id (-1 for dropped ones).
        """
        keep = np.asarray(keep, dtype=bool)
        self.alive = self.alive & keep
        self._inv = None
        self.compact()
        new_id = np.full(self.n_docs, -1, dtype=np.int64)
        new_id[keep] = np.arange(int(keep.sum()))
        if self.segments:
            seg = self.segments[0]
            seg.postings = (new_id[seg.docs].astype(np.uint32) << np.uint32(TF_BITS)) | \
                (seg.postings & TF_MASK)
            seg.n_docs = int(keep.sum())
        self.norms = self.norms[keep]
        self.alive = np.ones(int(keep.sum()), dtype=bool)
        self._inv = None
        return new_id

    def document_frequencies(self) -> np.ndarray:
        """``(n_words,) int64`` number of live documents containing each word."""
        df = np.zeros(self.n_words, dtype=np.int64)
        for seg in self.segments:
            live = self.alive[seg.docs]
            df += np.bincount(seg.word_of_posting()[live], minlength=self.n_words)
        return df

    def reweight(self, idf: np.ndarray) -> None:
        """Recompute every document norm for a new IDF vector (O(P))."""
        sq = np.zeros(self.n_docs, dtype=np.float64)
        for seg in self.segments:
            code = (seg.postings & TF_MASK).astype(np.intp)
            contrib = (self._tf_table[code] * idf[seg.word_of_posting()]).astype(np.float64) ** 2
            sq += np.bincount(seg.docs, weights=contrib, minlength=self.n_docs)
        self.norms = np.sqrt(sq).astype(np.float32)
        self._inv = None

    # -------------------------------------------------------------------------------- scoring
    def scores(self, words: np.ndarray, weights: np.ndarray, idf: np.ndarray, *,
               max_postings: int | None = None) -> np.ndarray:
        """Cosine scores of one query against every document.

        Parameters
        ----------
        words : np.ndarray
            ``(m,) int`` the query's distinct word ids.
        weights : np.ndarray
            ``(m,) float32`` the query's L2-normalised TF-IDF weights for those words
            (see :func:`vbow.search.weighting.tfidf`).
        idf : np.ndarray
            ``(n_words,) float32`` the IDF the document norms were computed with.
        max_postings : int, optional
            Read at most about this many postings (see the module docstring); None reads all.

        Returns
        -------
        np.ndarray
            ``(n_docs,) float32`` cosine similarities; removed and empty documents score 0.
        """
        return self.score_query(words, weights, idf, max_postings=max_postings)[0]

    def postings_lengths(self, words: np.ndarray) -> np.ndarray:
        """``(m,) int64`` postings of each of the ``(m,) int`` words, over all segments."""
        words = np.asarray(words, dtype=np.int64)
        lengths = np.zeros(words.shape[0], dtype=np.int64)
        for seg in self.segments:
            lengths += seg.word_offsets[words + 1] - seg.word_offsets[words]
        return lengths

    def select_words(self, words: np.ndarray, weights: np.ndarray, idf: np.ndarray,
                     max_postings: int | None) -> np.ndarray:
        """Indices into ``words`` of the query words read under a postings budget.

        Words are taken in decreasing order of ``weights * idf`` while the running total of their
        postings (over all segments) stays within ``max_postings``; the first word is always
        taken. Returns ``(k,) int64`` indices, all of them when ``max_postings`` is None.
        """
        words = np.asarray(words, dtype=np.int64)
        if max_postings is None or words.size == 0:
            return np.arange(words.shape[0])
        lengths = self.postings_lengths(words)
        if int(lengths.sum()) <= max_postings:
            return np.arange(words.shape[0])
        order = np.argsort(-(np.asarray(weights, np.float64) * idf[words]), kind="stable")
        within = np.cumsum(lengths[order]) <= max_postings
        within[0] = True
        return np.sort(order[within])

    def score_query(self, words: np.ndarray, weights: np.ndarray, idf: np.ndarray, *,
                    max_postings: int | None = None, signatures: np.ndarray | None = None,
                    kernel: np.ndarray | None = None, threads: int = 1) -> tuple[np.ndarray, int]:
        """:meth:`scores` and the number of postings it read.

        With ``signatures`` (``(m,) uint64``, one per query word, see
        :func:`vbow.search.embedding.aggregate_query`) and ``kernel`` (``(65,) float32``, see
        :func:`vbow.search.embedding.selective_kernel`), each posting's term is multiplied by
        the kernel of the Hamming distance between its signature and its query word's; the
        index must carry signatures. With ``threads`` > 1, a query reading many postings is
        accumulated on that many threads (:func:`vbow.search.accumulate.accumulate_parallel`);
        the scores agree with one thread's to float32 rounding.
        """
        words = np.asarray(words, dtype=np.int64)
        weights = np.asarray(weights, dtype=np.float32)
        if words.shape != weights.shape:
            raise InvalidInputError("words and weights must have the same shape")
        self._check_word_ids(words)
        use_he = signatures is not None
        if use_he:
            signatures = np.asarray(signatures, dtype=np.uint64)
            if signatures.shape != words.shape:
                raise InvalidInputError(f"query signatures must be {words.shape}; got {signatures.shape}")
            if kernel is None or np.shape(kernel) != (N_BITS + 1,):
                raise InvalidInputError(f"a ({N_BITS + 1},) kernel is needed with query signatures")
            if self.segments and not self.has_signatures:
                raise InvalidInputError("this index's postings carry no Hamming-embedding signatures")
            kernel = np.asarray(kernel, dtype=np.float32)
            max_h = int(np.flatnonzero(kernel > 0).max()) if np.any(kernel > 0) else -1
        chosen = self.select_words(words, weights, idf, max_postings)
        words, weights = words[chosen], weights[chosen]
        if use_he:
            signatures = signatures[chosen]
        word_weight = (weights * idf[words]).astype(np.float32)
        total: np.ndarray | None = None
        touched = 0
        for seg in self.segments:
            starts = seg.word_offsets[words]
            lengths = seg.word_offsets[words + 1] - starts
            n = int(lengths.sum())
            if n == 0:
                continue
            touched += n
            nz = np.flatnonzero(lengths)
            part = accumulate_parallel(seg, starts[nz], lengths[nz], word_weight[nz], self.n_docs,
                                       self.burstiness, threads,
                                       signatures=signatures[nz] if use_he else None,
                                       kernel=kernel if use_he else None,
                                       max_distance=max_h if use_he else -1)
            if total is None:
                total = part
            else:
                total += part
        if total is None:
            return np.zeros(self.n_docs, dtype=np.float32), 0
        total *= self._inverse_norms()
        return total, touched

    def _inverse_norms(self) -> np.ndarray:
        """``(n_docs,) float32`` 1 / norm for live documents with a non-zero norm, else 0 (cached
        until the norms or the live set change)."""
        if self._inv is None or self._inv.shape[0] != self.n_docs:
            norms = np.asarray(self.norms, dtype=np.float64)
            inv = np.zeros(norms.shape[0], dtype=np.float64)
            np.divide(1.0, norms, out=inv, where=(norms > 0) & self.alive)
            self._inv = inv.astype(np.float32)
        return self._inv

    # ---------------------------------------------------------------------------- persistence
    def to_arrays(self) -> dict[str, np.ndarray]:
        """One compacted segment's arrays (call :meth:`renumber` first to drop removed slots)."""
        self.compact()
        seg = self.segments[0] if self.segments else PostingSegment(
            0, 0, np.zeros(self.n_words + 1, np.int64), np.zeros(0, np.uint32))
        out = {"word_offsets": seg.word_offsets, "postings": seg.postings, "norms": self.norms}
        if self.has_signatures:
            out["signatures"] = seg.signatures if seg.signatures is not None else \
                np.zeros(0, np.uint64)
        return out

    def bundle_arrays(self) -> dict[str, object]:
        """Like :meth:`to_arrays`, but the postings are a :class:`vbow.search.lazy_array.LazyArray` that
        merges the segments straight into the output file (no merged copy in memory).

        Removed documents must have been dropped first (:meth:`renumber`).
        """
        from vbow.search.lazy_array import LazyArray
        if len(self.segments) <= 1:
            return self.to_arrays()
        offsets = offsets_from_counts(np.sum([s.word_counts() for s in self.segments], axis=0))
        merged = LazyArray((self.n_postings,), np.dtype(np.uint32), self._merge_into)
        out = {"word_offsets": offsets, "postings": merged, "norms": self.norms}
        if self.has_signatures:
            out["signatures"] = LazyArray((self.n_postings,), np.dtype(np.uint64),
                                          lambda target: self._merge_into(target, None, "signatures"))
        return out

    @classmethod
    def from_arrays(cls, n_words: int, burstiness: str, arrays: dict[str, np.ndarray]) -> "InvertedIndex":
        """Rebuild from :meth:`to_arrays` output (arrays may be memory-mapped).

        Format-1 arrays (separate ``docs`` uint32 and ``tf`` uint8) are packed on load (in memory).
        """
        index = cls(n_words, burstiness)
        norms = arrays["norms"]
        offsets = arrays["word_offsets"]
        if "postings" in arrays:
            postings = arrays["postings"]
        else:
            if arrays["tf"].shape != arrays["docs"].shape:
                raise InvalidInputError("postings arrays are inconsistent with each other")
            postings = pack_postings(arrays["docs"], arrays["tf"])
        if offsets.shape != (n_words + 1,) or int(offsets[-1]) != postings.shape[0] or \
                postings.dtype != np.uint32:
            raise InvalidInputError("postings arrays are inconsistent with each other")
        signatures = arrays.get("signatures")
        if signatures is not None and (signatures.shape != postings.shape or
                                       signatures.dtype != np.uint64):
            raise InvalidInputError("postings and signatures arrays are inconsistent")
        index.segments = [PostingSegment(0, int(norms.shape[0]), offsets, postings, signatures)]
        index.has_signatures = signatures is not None
        index.norms = norms
        index.alive = np.ones(norms.shape[0], dtype=bool)
        return index
