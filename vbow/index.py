"""The facade: :class:`ImageIndex` holds the user's verbs and composes the parts that do the work.

- describing images: :class:`vbow.describe.extraction.ImageDescriber`;
- training: :mod:`vbow.vocab.training`;
- checking a batch of inputs, keys and metadata before any change: :mod:`vbow.index_batches`;
- the catalog (keys, metadata, per-image arrays, filters): :class:`vbow.search.catalog.Catalog`;
- postings: :class:`vbow.search.inverted_index.InvertedIndex`; per-image words and geometry:
  :class:`vbow.verify.keypoint_store.KeypointStore`;
- one search: :class:`vbow.query.QueryPlan`;
- persistence: :mod:`vbow.persist.schema`.

Concurrency: any number of threads may search one index while others ``add``, ``remove``,
``fit`` or ``save``. Searches share a reader/writer lock (:class:`vbow.concurrency.ReadWriteLock`)
and changes take it exclusively, so a search sees the catalog wholly before or wholly after a
change; searching touches no global state, so concurrent results equal serial ones. Describing
images (decoding, features) happens outside the lock. A loaded index is read-only memory maps
shared between processes.
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from vbow.concurrency import ReadWriteLock
from vbow.config import Config, get_config
from vbow.describe.extraction import ImageDescriber, ImageDescription, extract_many
from vbow.describe.features import FeatureExtractor, LocalFeatures
from vbow.describe.image_input import ImageInput
from vbow.errors import ImageError, InvalidInputError, NotFittedError, UnknownOptionError
from vbow.index_batches import (StagedImages, as_list, error_name, log_batch_problems,
                                new_entries, stage_quantised, without_descriptors)
from vbow.persist.schema import IndexParts, read_index, write_index
from vbow.progress import Progress
from vbow.query import QueryPlan, SearchState, check_shortlist, check_top_k
from vbow.results import AddReport, ImageFailure, SearchResult
from vbow.search.catalog import Catalog, Where
from vbow.search.inverted_index import InvertedIndex
from vbow.verify.keypoint_store import KeypointStore
from vbow.search.embedding import signs_of
from vbow.vocab.training import descriptors32, quantise_images, train_vocabulary, training_subset
from vbow.vocab.vocabulary import Vocabulary

__all__ = ["ImageIndex", "BUILD_BATCH"]

logger = logging.getLogger(__name__)

#: Images described, quantised and indexed together by :meth:`ImageIndex.build`: memory for
#: their local features is all that a build holds beyond the index and the training sample.
BUILD_BATCH = 256


class ImageIndex:
    """A searchable catalog of product images.

    Parameters
    ----------
    preset : str or Config
        ``"sift"`` (accuracy, default), ``"orb"`` (low power) or ``"edge"``, or a
        :class:`vbow.Config`.
    **overrides
        Any :class:`vbow.Config` setting, e.g. ``n_words=16384`` or ``rerank=False``.

    Examples
    --------
    >>> index = ImageIndex("sift")
    >>> report = index.build(catalog_paths, keys=skus, metadata=[{"category": c} for c in cats])
    >>> result = index.search("photo.jpg", top_k=5, where={"category": "tea"})
    >>> result.best.key, result.best.inliers, result.best.transform
    >>> index.save("catalog.vbow"); index = ImageIndex.load("catalog.vbow")
    """

    def __init__(self, preset: str | Config = "sift", **overrides: Any) -> None:
        self.config = get_config(preset, **overrides)
        self.vocabulary: Vocabulary | None = None
        self._extractor = ImageDescriber(
            FeatureExtractor(self.config.method, self.config.max_keypoints,
                             contrast_threshold=self.config.contrast_threshold,
                             fast_threshold=self.config.fast_threshold),
            self.config.colour, self.config.max_side, self.config.min_side,
            self.config.max_pixels, self.config.max_file_bytes)
        self._lock = ReadWriteLock()
        self._clear()

    def _clear(self) -> None:
        """Empty catalog: no postings before a vocabulary exists, empty ones after."""
        self._postings: InvertedIndex | None = None
        self._store: KeypointStore | None = None
        if self.vocabulary is not None:
            self._postings = InvertedIndex(self.vocabulary.n_words_, self.config.burstiness)
            self._store = KeypointStore(self.vocabulary.n_words_)
        self._catalog = Catalog(self.config.colour.n_bins)
        self._idf: np.ndarray | None = None

    # ------------------------------------------------------------------------------ inspection
    def __repr__(self) -> str:
        state = f"{len(self)} images" if self.is_fitted else "not fitted"
        return f"ImageIndex(method={self.config.method!r}, {state})"

    def __len__(self) -> int:
        return 0 if self._postings is None else int(np.count_nonzero(self._postings.alive))

    @property
    def is_fitted(self) -> bool:
        """True once a vocabulary has been trained or loaded."""
        return self.vocabulary is not None

    @property
    def keys(self) -> list[str]:
        """Keys of the indexed images, in index order."""
        with self._lock.read():
            if self._postings is None:
                return []
            return [self._catalog.key(i) for i in np.flatnonzero(self._postings.alive).tolist()]

    def __contains__(self, key: object) -> bool:
        with self._lock.read():
            return isinstance(key, str) and key in self._key_map()

    def metadata(self, key: str) -> dict[str, Any]:
        """The metadata stored with ``key`` (KeyError if absent)."""
        with self._lock.read():
            return self._catalog.metadata(self._key_map()[key])

    @property
    def extractor(self) -> ImageDescriber:
        """The per-image feature and colour extractor this index uses."""
        return self._extractor

    def stats(self) -> dict[str, int]:
        """Sizes: ``images`` (live), ``slots`` (including removed ones, until saved),
        ``words`` (vocabulary size) and ``postings``."""
        with self._lock.read():
            postings = self._postings
            return {"images": len(self), "slots": 0 if postings is None else postings.n_docs,
                    "words": 0 if self.vocabulary is None else int(self.vocabulary.n_words_),
                    "postings": 0 if postings is None else int(postings.n_postings)}

    def _require_fitted(self) -> Vocabulary:
        if self.vocabulary is None:
            raise NotFittedError("this ImageIndex has no vocabulary; call fit() or build() first, "
                                 "or load() a saved index")
        return self.vocabulary

    def _key_map(self) -> dict[str, int]:
        alive = self._postings.alive if self._postings is not None else np.zeros(0, bool)
        return self._catalog.key_map(alive)

    # -------------------------------------------------------------------------------- training
    def describe(self, image: ImageInput, name: str | None = None) -> ImageDescription:
        """Load and describe one image with this index's settings (raises ImageError)."""
        return self._extractor(image, name)

    def describe_many(self, images: Sequence[ImageInput], names: Sequence[str] | None = None, *,
                      progress: bool | None = None, description: str = "features"
                      ) -> Iterator[ImageDescription | ImageFailure]:
        """Describe many images in parallel (``config.n_jobs`` processes), in input order.

        Yields an :class:`ImageDescription` per readable input and an :class:`ImageFailure` per
        unreadable one, so a batch carries on past bad files.
        """
        return extract_many(self._extractor, as_list(images), n_jobs=self.config.n_jobs,
                            names=names, progress=progress, description=description)

    def _set_vocabulary(self, vocabulary: Vocabulary) -> None:
        with self._lock.write():
            self.vocabulary = vocabulary
            self._clear()

    def fit(self, images: Sequence[ImageInput], *, progress: bool | None = None) -> "ImageIndex":
        """Train the vocabulary and its IDF on catalog-side images (not queries).

        At most ``config.max_training_images`` images are used (a seeded sample,
        :func:`vbow.vocab.training.training_subset`).

        Parameters
        ----------
        images : sequence of image inputs
            Paths, encoded bytes, arrays, file objects or PIL images.
        progress : bool or None
            Show progress (None: when stderr is a terminal).

        Returns
        -------
        ImageIndex
            ``self``. Any previously indexed images are dropped (their words would be stale).
        """
        images = as_list(images)
        chosen = training_subset(len(images), self.config)
        feats = [r.features for r in self.describe_many([images[i] for i in chosen.tolist()],
                                                        progress=progress,
                                                        description="training features")
                 if isinstance(r, ImageDescription)]
        self._set_vocabulary(train_vocabulary(self.config, feats, progress=progress)[0])
        return self

    def fit_features(self, features: Sequence[ImageDescription], *,
                     progress: bool | None = None) -> "ImageIndex":
        """Train the vocabulary and IDF on already described catalog-side images.

        Like :meth:`fit`, for pipelines that describe images elsewhere (with
        :attr:`extractor`, so the settings match); the same seeded sample is used.

        Returns
        -------
        ImageIndex
            ``self``; any previously indexed images are dropped.
        """
        features = list(features)
        if any(not isinstance(f, ImageDescription) for f in features):
            raise InvalidInputError("fit_features takes ImageDescription (see ImageIndex.describe)")
        chosen = training_subset(len(features), self.config)
        self._set_vocabulary(train_vocabulary(self.config, [features[i].features
                                                            for i in chosen.tolist()],
                                              progress=progress)[0])
        return self

    def build(self, images: Sequence[ImageInput], keys: Sequence[str] | str | None = None,
              metadata: Sequence[Mapping[str, Any] | None] | None = None, *,
              progress: bool | None = None) -> AddReport:
        """Train the vocabulary on these catalog images and index them, in bounded memory.

        The vocabulary and IDF are trained on a seeded sample of at most
        ``config.max_training_images`` images (exactly as :meth:`fit` samples them); the
        sample's features are kept only as words and geometry once it is trained. The rest of
        the catalog is then described, quantised and indexed :data:`BUILD_BATCH` images at a
        time, in input order, so peak memory is the training sample plus the index plus one
        batch, whatever the catalog's size. The result equals ``fit(images)`` followed by
        ``add(images, keys, metadata)``.

        Parameters
        ----------
        images : sequence of image inputs
            The catalog.
        keys : sequence of str, optional
            A unique key per image (default: the path, or ``"image-<n>"``).
        metadata : sequence of dict, optional
            JSON-serialisable metadata per image (used by ``search(where=...)``).
        progress : bool or None
            Show progress (None: when stderr is a terminal).

        Returns
        -------
        AddReport
            Keys added and inputs that failed (each named, with its error).

        Raises
        ------
        InvalidInputError
            Bad keys or metadata (nothing is done), or no training image could be read.
        """
        t0 = time.perf_counter()
        images = as_list(images)
        keys_list, meta_json = new_entries(images, keys, metadata, existing={}, start=0)
        names = [error_name(im, k) for im, k in zip(images, keys_list)]
        n = len(images)
        chosen = training_subset(n, self.config).tolist()
        training = dict(zip(chosen, self.describe_many([images[i] for i in chosen],
                                                       [names[i] for i in chosen], progress=progress,
                                                       description="training features")))
        good = [i for i in chosen if isinstance(training[i], ImageDescription)]
        if not good:
            raise InvalidInputError("no catalog image could be read; see the failures: " +
                                    "; ".join(training[i].error for i in chosen[:5]))
        vocabulary, words = train_vocabulary(self.config, [training[i].features for i in good],
                                             progress=progress)
        trained_words = dict(zip(good, words))
        self._set_vocabulary(vocabulary)
        trained_sigs = {i: self._signatures(vocabulary, training[i].features, trained_words[i])
                        for i in good}
        for i in good:  # keep the sample as words and geometry only
            training[i] = without_descriptors(training[i])
        rest = [i for i in range(n) if i not in training]
        described = iter(self.describe_many([images[i] for i in rest], [names[i] for i in rest],
                                            progress=progress, description="indexing"))
        failed: list[ImageFailure] = []
        added: list[str] = []
        featureless: list[str] = []
        pending: list[tuple[int, ImageDescription]] = []

        def flush() -> None:
            staged = StagedImages()
            fresh = [f for i, f in pending if i not in trained_words]
            fresh_words = iter(quantise_images(vocabulary, [f.features for f in fresh]))
            for i, f in pending:
                if i in trained_words:
                    w, sig = trained_words.pop(i), trained_sigs.pop(i)
                else:
                    w = next(fresh_words)
                    sig = self._signatures(vocabulary, f.features, w)
                staged.stage(f, w, keys_list[i], meta_json[i], sig)
            with self._lock.write():
                self._append(staged)
            added.extend(staged.keys)
            pending.clear()

        for i in range(n):
            r = training.pop(i) if i in training else next(described)
            if isinstance(r, ImageFailure):
                failed.append(r)
                continue
            pending.append((i, r))
            if not len(r.features):
                featureless.append(keys_list[i])
            if len(pending) >= BUILD_BATCH:
                flush()
        flush()
        with self._lock.write():
            self._after_change()
        log_batch_problems(failed, featureless)
        return AddReport(tuple(added), tuple(failed), time.perf_counter() - t0, tuple(featureless))

    # -------------------------------------------------------------------------------- indexing
    def _check_batch(self, images: list, keys: Any, metadata: Any) -> tuple[list[str], list[str]]:
        with self._lock.read():
            start = 0 if self._postings is None else self._postings.n_docs
            return new_entries(images, keys, metadata, existing=self._key_map(), start=start)

    def add(self, images: Sequence[ImageInput] | ImageInput, keys: Sequence[str] | str | None = None,
            metadata: Sequence[Mapping[str, Any] | None] | Mapping[str, Any] | None = None, *,
            progress: bool | None = None, on_error: str = "skip") -> AddReport:
        """Index more images with the existing vocabulary, all at once.

        Every key and metadata entry is validated before anything changes; the images are then
        described (outside the lock, so searches go on) and appended in one step, so a
        concurrent search sees none or all of them. For catalogs larger than memory, call
        ``add`` in batches or use :meth:`build`.

        Parameters
        ----------
        images : image input or sequence of them
            Paths, encoded bytes, arrays, file objects or PIL images.
        keys : str or sequence of str, optional
            Unique keys (default: the path, or ``"image-<n>"``); one str for one image. A key
            already in the index raises.
        metadata : dict or sequence of dict, optional
            JSON-serialisable metadata per image (one dict for one image).
        progress : bool or None
            Show progress (None: when stderr is a terminal).
        on_error : {"skip", "raise"}
            ``"skip"`` reports unreadable images in the returned :class:`AddReport` (and logs a
            warning for each) and indexes the rest; ``"raise"`` raises the first
            :class:`vbow.errors.ImageError` and indexes nothing.

        Returns
        -------
        AddReport
        """
        vocabulary = self._require_fitted()
        if on_error not in ("skip", "raise"):
            raise UnknownOptionError("on_error", on_error, ("skip", "raise"))
        t0 = time.perf_counter()
        images = as_list(images)
        keys_list, meta_json = self._check_batch(images, keys, metadata)
        names = [error_name(im, k) for im, k in zip(images, keys_list)]
        results = list(self.describe_many(images, names, progress=progress, description="indexing"))
        failed = tuple(r for r in results if isinstance(r, ImageFailure))
        if failed and on_error == "raise":
            raise ImageError(failed[0].error)
        good = [i for i, r in enumerate(results) if isinstance(r, ImageDescription)]
        self._append_described(vocabulary, [results[i] for i in good], [keys_list[i] for i in good],
                               [meta_json[i] for i in good])
        featureless = tuple(keys_list[i] for i in good if not len(results[i].features))
        log_batch_problems(failed, featureless)
        return AddReport(tuple(keys_list[i] for i in good), failed, time.perf_counter() - t0,
                         featureless)

    def add_features(self, features: Sequence[ImageDescription] | ImageDescription,
                     keys: Sequence[str] | str,
                     metadata: Sequence[Mapping[str, Any] | None] | Mapping[str, Any] | None = None) -> None:
        """Index images already described with :meth:`describe` / :meth:`describe_many`."""
        vocabulary = self._require_fitted()
        features = [features] if isinstance(features, ImageDescription) else list(features)
        if any(not isinstance(f, ImageDescription) for f in features):
            raise InvalidInputError("add_features takes ImageDescription (see ImageIndex.describe)")
        keys_list, meta_json = self._check_batch(features, keys, metadata)
        self._append_described(vocabulary, features, keys_list, meta_json)

    def _append_described(self, vocabulary: Vocabulary, feats: list[ImageDescription],
                          keys: list[str], meta_json: list[str]) -> None:
        staged = StagedImages()
        for f, w, k, m in zip(feats, quantise_images(vocabulary, [f.features for f in feats]),
                              keys, meta_json):
            staged.stage(f, w, k, m, self._signatures(vocabulary, f.features, w))
        self._commit(vocabulary, staged)

    def _signatures(self, vocabulary: Vocabulary, features: LocalFeatures,
                    words: np.ndarray) -> np.ndarray | None:
        """``(n,) uint64`` Hamming-embedding signatures of an image's features for their words,
        or None when ``config.hamming_embedding`` is off."""
        if not self.config.hamming_embedding:
            return None
        if not len(features):
            return np.zeros(0, np.uint64)
        return vocabulary.signatures(descriptors32(features), np.asarray(words))

    def _commit(self, vocabulary: Vocabulary, staged: StagedImages) -> None:
        """Append staged images under the write lock, re-checking what may have changed."""
        with self._lock.write():
            if self.vocabulary is not vocabulary:
                raise InvalidInputError("the vocabulary was re-trained while these images were "
                                        "being described; add them again")
            clash = [k for k in staged.keys if k in self._key_map()]
            if clash:
                raise InvalidInputError(f"key {clash[0]!r} is already indexed; remove() it first")
            self._append(staged)
            self._after_change()

    def add_quantised(self, words: Sequence[np.ndarray], keypoints: Sequence[np.ndarray],
                      colours: np.ndarray, image_sizes: np.ndarray, keys: Sequence[str], *,
                      scales: np.ndarray | None = None,
                      metadata: Sequence[Mapping[str, Any] | None] | None = None) -> None:
        """Index images given directly as visual words and keypoint geometry.

        For pipelines that quantise elsewhere, and for benchmarks that synthesise catalogs.

        Parameters
        ----------
        words : sequence of np.ndarray
            ``(n_i,) int`` word id per feature, per image.
        keypoints : sequence of np.ndarray
            ``(n_i, 4) float32`` keypoint geometry per image (x, y, size, angle°).
        colours : np.ndarray
            ``(n, n_bins) float32`` sqrt colour histograms.
        image_sizes : np.ndarray
            ``(n, 2) int`` processed image (width, height).
        keys : sequence of str
            Unique keys.
        scales : np.ndarray, optional
            ``(n,) float32`` original pixels per processed pixel (default 1).
        metadata : sequence of dict, optional
        """
        vocabulary = self._require_fitted()
        if self.config.hamming_embedding:
            raise InvalidInputError("add_quantised cannot index with hamming_embedding=True: "
                                    "signatures need the descriptors; use add or add_features")
        words, keypoints = list(words), list(keypoints)
        keys_list, meta_json = self._check_batch(words, keys, metadata)
        staged = stage_quantised(words, keypoints, colours, image_sizes, scales, keys_list,
                                 meta_json, n_words=vocabulary.n_words_,
                                 n_bins=self.config.colour.n_bins)
        self._commit(vocabulary, staged)

    def _append(self, staged: StagedImages) -> None:
        """Append staged images (caller holds the write lock)."""
        vocabulary = self._require_fitted()
        if not len(staged):
            return
        counts = np.array([np.shape(w)[0] for w in staged.words], np.int64)
        offsets = np.zeros(len(counts) + 1, np.int64)
        np.cumsum(counts, out=offsets[1:])
        flat_w = np.concatenate([np.asarray(w).reshape(-1) for w in staged.words]).astype(np.int64)
        flat_kp = np.concatenate([np.asarray(k, np.float32).reshape(-1, 4) for k in staged.keypoints])
        flat_sig = np.concatenate(staged.signatures) if staged.signatures else None
        self._store.add_flat(offsets, flat_w, flat_kp, flat_sig)  # validates before anything is added
        self._postings.add_words(offsets, flat_w, vocabulary.idf_, embedding=signs_of(flat_sig))
        self._catalog.append(staged.keys, staged.meta, np.stack(staged.colours),
                             np.array(staged.scales, np.float32),
                             np.array(staged.sizes, np.int32).reshape(-1, 2))

    def _after_change(self) -> None:
        """Bring derived state up to date after a change (caller holds the write lock): with
        ``idf_source="database"`` the IDF is recomputed from the live images and the postings'
        norms reweighted here, never during a search."""
        self._idf = None
        if self.config.idf_source == "database" and self._postings is not None:
            n = max(len(self), 1)
            df = self._postings.document_frequencies()
            idf = np.log(n / np.maximum(df, 0.5)).astype(np.float32)
            np.maximum(idf, 0, out=idf)
            self._postings.reweight(idf)
            self._idf = idf

    def extend(self, other: "ImageIndex") -> int:
        """Append another index's live images, in its order, after this index's images.

        Both indexes must hold the same vocabulary (e.g. segments of a segmented build, each
        built from a copy of one vocabulary bundle). Words, keypoint geometry (as stored),
        colour, size, scale, keys and metadata are copied; postings are rebuilt from the copied
        words, so the result equals adding the same images here directly.

        Returns
        -------
        int
            Number of images appended.

        Raises
        ------
        InvalidInputError
            The vocabularies differ, or a key of ``other`` is already in this index.
        """
        vocabulary = self._require_fitted()
        theirs = other._require_fitted()
        mine_a, theirs_a = vocabulary.to_arrays(), theirs.to_arrays()
        if type(vocabulary) is not type(theirs) or mine_a.keys() != theirs_a.keys() or not all(
                np.array_equal(mine_a[k], theirs_a[k]) for k in mine_a):
            raise InvalidInputError(f"cannot extend: the other index has another vocabulary "
                                    f"({theirs.n_words_} words vs {vocabulary.n_words_} here, or "
                                    f"other centroids / IDF)")
        with other._lock.read():
            if other._postings is None or len(other) == 0:
                return 0
            keep = np.asarray(other._postings.alive, dtype=bool)
            ids = np.flatnonzero(keep)
            src = other._catalog
            keys = [src.key(i) for i in ids.tolist()]
            meta = [src.metadata_json(i) for i in ids.tolist()]
            colours = np.asarray(src.colour)[ids].astype(np.float32) / 255.0  # exact round trip
            scales, sizes = np.asarray(src.scale)[ids], np.asarray(src.size)[ids]
            store = KeypointStore(vocabulary.n_words_)
            store.extend(other._store, keep)
        flat = store.to_arrays()
        with self._lock.write():
            clash = [k for k in keys if k in self._key_map()]
            if clash:
                raise InvalidInputError(f"key {clash[0]!r} is already indexed; remove() it first")
            self._postings.add_words(flat["kp_offsets"], flat["kp_words"].astype(np.int64),
                                     vocabulary.idf_, embedding=signs_of(flat.get("kp_signatures")))
            self._store.extend(store)
            self._catalog.append(keys, meta, colours, scales, sizes)
            self._after_change()
        return len(keys)

    def remove(self, keys: Sequence[str] | str) -> int:
        """Remove images by key, all or nothing.

        Every key is checked first: an unknown key raises ``KeyError`` and nothing is removed.
        A key named twice is removed once.

        Returns
        -------
        int
            Number of images removed.
        """
        keys = [keys] if isinstance(keys, str) else list(keys)
        if any(not isinstance(k, str) for k in keys):
            bad = next(k for k in keys if not isinstance(k, str))
            raise InvalidInputError(f"keys are str; got {type(bad).__name__} {bad!r:.80}")
        unique = list(dict.fromkeys(keys))
        with self._lock.write():
            mapping = self._key_map()
            missing = [k for k in unique if k not in mapping]
            if missing:
                raise KeyError(f"not in the index: {missing[0]!r}")
            if not unique:
                return 0
            ids = np.array([mapping[k] for k in unique], dtype=np.int64)
            self._postings.remove(ids)
            self._catalog.forget(unique)
            self._after_change()
        return int(ids.size)

    # ------------------------------------------------------------------------------- searching
    def _state(self) -> SearchState:
        vocabulary = self._require_fitted()
        idf = vocabulary.idf_ if self._idf is None else self._idf
        return SearchState(self.config, vocabulary, self._postings, self._store, self._catalog, idf)

    @contextmanager
    def reading(self) -> Iterator[QueryPlan]:
        """Hold the read lock and get a :class:`vbow.query.QueryPlan` over a consistent view.

        The public seam for tools that run the query steps themselves (benchmarks counting
        postings, a sharded search): ``with index.reading() as plan: plan.quantise(...)``.
        Do not change the index inside the block.
        """
        self._require_fitted()
        with self._lock.read():
            yield QueryPlan(self._state())

    def search(self, image: ImageInput, top_k: int = 10, *, where: Where = None,
               rerank: bool | None = None, shortlist: int | None = None,
               name: str | None = None) -> SearchResult:
        """Find the catalog images that show the product in ``image``.

        Parameters
        ----------
        image : image input
            A path, encoded bytes, an array, a file object or a PIL image.
        top_k : int
            Matches to return (an int >= 1).
        where : mapping or callable, optional
            Restrict to catalog images whose metadata matches: ``{"category": "tea"}``,
            ``{"category": ["tea", "coffee"]}`` (any of), or a predicate on the metadata dict.
            A field that no image has raises :class:`vbow.errors.InvalidInputError`.
        rerank : bool, optional
            Geometric re-ranking of the shortlist (default: ``config.rerank``).
        shortlist : int, optional
            Candidates to verify (an int >= 1; the rule is :func:`vbow.query.shortlist_sizes`).
        name : str, optional
            Name of the query in the result and in errors.

        Returns
        -------
        SearchResult
            Ranked :class:`Match` objects; ``warnings`` says why a result may be weak (e.g. a
            query with no local features).

        Raises
        ------
        ImageError
            The image cannot be read.
        InvalidInputError
            A bad ``top_k``, ``shortlist`` or ``where``.
        NotFittedError
            No vocabulary yet.
        """
        self._require_fitted()
        check_top_k(top_k)
        check_shortlist(shortlist)
        t0 = time.perf_counter()
        query = self.describe(image, name)
        result = self.search_features(query, top_k, where=where, rerank=rerank, shortlist=shortlist)
        timings = dict(result.timings)
        elapsed = time.perf_counter() - t0
        timings["features"] = elapsed - timings.get("total", 0.0)
        timings["total"] = elapsed
        return SearchResult(result.query, result.matches, timings, result.warnings)

    def search_features(self, query: ImageDescription, top_k: int = 10, *, where: Where = None,
                        rerank: bool | None = None, shortlist: int | None = None) -> SearchResult:
        """Search with an already described query (see :meth:`describe`); arguments as
        :meth:`search`."""
        if not isinstance(query, ImageDescription):
            raise InvalidInputError("search_features takes an ImageDescription (see "
                                    f"ImageIndex.describe); got {type(query).__name__}")
        with self.reading() as plan:
            return plan.run(query, top_k, where=where, rerank=rerank, shortlist=shortlist)

    def search_many(self, images: Sequence[ImageInput], top_k: int = 10, *, where: Where = None,
                    rerank: bool | None = None, shortlist: int | None = None,
                    progress: bool | None = None) -> list[SearchResult | ImageFailure]:
        """Search with many query images; features are extracted in parallel.

        Returns one :class:`SearchResult` per query, or an :class:`ImageFailure` for a query
        image that could not be read (the others are still answered).
        """
        self._require_fitted()
        check_top_k(top_k)
        check_shortlist(shortlist)
        out: list[SearchResult | ImageFailure] = []
        queries = list(self.describe_many(images, progress=progress, description="query features"))
        with Progress(len(queries), "searching", progress) as bar:
            for q in queries:
                out.append(q if isinstance(q, ImageFailure) else
                           self.search_features(q, top_k, where=where, rerank=rerank,
                                                shortlist=shortlist))
                bar.update()
        return out

    # ----------------------------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike) -> Path:
        """Save vocabulary and index as a versioned bundle directory, atomically.

        Removed images are dropped and the rest renumbered. The bundle is a ``manifest.json``
        and plain ``.npy`` arrays (see :mod:`vbow.persist.bundle` and
        :mod:`vbow.persist.schema`); nothing is pickled.

        Returns
        -------
        Path
            The bundle directory.
        """
        self._require_fitted()
        with self._lock.write():
            state = self._state()
            keep = state.postings.alive.copy()
            if not keep.all():
                state.postings.renumber(keep)
                state.store.select(keep)
                self._catalog.select(keep)
            return write_index(path, IndexParts(self.config, state.vocabulary, state.postings,
                                                state.store, self._catalog), len(self))

    @classmethod
    def load(cls, path: str | os.PathLike, *, mmap: bool = True,
             verify_checksums: bool = True) -> "ImageIndex":
        """Open a saved bundle.

        Parameters
        ----------
        path : str or os.PathLike
            Bundle directory written by :meth:`save`.
        mmap : bool
            Memory-map the arrays (fast open, pages shared between processes) instead of reading
            them. A memory-mapped index can still ``add`` and ``remove`` (copy on write).
        verify_checksums : bool
            Check every file's CRC-32 and the manifest's (reads the whole bundle; on by
            default). False opens faster and skips only that: structural checks still run
            (:mod:`vbow.persist.validate`), but flipped bits inside array values go unnoticed.

        Raises
        ------
        BundleError
            Missing, truncated, corrupt, or written by a newer format version; names the file.
        """
        parts = read_index(path, mmap=mmap, verify_checksums=verify_checksums)
        index = cls(parts.config)
        index.vocabulary = parts.vocabulary
        index._idf = None
        index._postings, index._store, index._catalog = parts.postings, parts.store, parts.catalog
        index._after_change()
        return index
