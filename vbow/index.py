"""The facade: :class:`ImageIndex` holds the user's verbs and composes the parts that do the work.

- describing images: :class:`vbow.describe.extraction.ImageDescriber`;
- training: :mod:`vbow.vocab.training`;
- checking a batch of inputs, keys and metadata before any change: :mod:`vbow.index_batches`;
- what is indexed, changed in step: :class:`vbow.index_contents.IndexContents` (postings,
  per-image words and geometry, and the catalog of keys, metadata and per-image arrays);
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

import dataclasses
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
from vbow.describe.features import FeatureExtractor
from vbow.describe.image_input import ImageInput
from vbow.errors import ImageError, InvalidInputError, NotFittedError, UnknownOptionError
from vbow.index_batches import (BatchTally, StagedImages, as_list, error_name, keys_to_remove,
                                log_batch_problems, new_entries, stage_build, stage_described,
                                stage_quantised)
from vbow.persist.schema import IndexParts, read_index, write_index
from vbow.progress import Progress
from vbow.query import QueryPlan, SearchState, check_search_arguments
from vbow.results import AddReport, ImageFailure, SearchResult
from vbow.index_contents import IndexContents
from vbow.search.catalog import Where
from vbow.vocab.training import train_on_sample, train_vocabulary, training_subset
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
        """No contents before a vocabulary exists, empty ones after."""
        self._contents: IndexContents | None = None
        if self.vocabulary is not None:
            self._contents = IndexContents.empty(self.vocabulary.n_words_, self.config.burstiness,
                                                 self.config.colour.n_bins)

    # ------------------------------------------------------------------------------ inspection
    def __repr__(self) -> str:
        state = f"{len(self)} images" if self.is_fitted else "not fitted"
        return f"ImageIndex(method={self.config.method!r}, {state})"

    def __len__(self) -> int:
        return 0 if self._contents is None else len(self._contents)

    @property
    def is_fitted(self) -> bool:
        """True once a vocabulary has been trained or loaded."""
        return self.vocabulary is not None

    @property
    def keys(self) -> list[str]:
        """Keys of the indexed images, in index order."""
        with self._lock.read():
            return [] if self._contents is None else self._contents.keys()

    def __contains__(self, key: object) -> bool:
        with self._lock.read():
            return isinstance(key, str) and key in self._key_map()

    def metadata(self, key: str) -> dict[str, Any]:
        """The metadata stored with ``key`` (KeyError if absent)."""
        with self._lock.read():
            slot = self._key_map()[key]
            return self._contents.catalog.metadata(slot)

    @property
    def extractor(self) -> ImageDescriber:
        """The per-image feature and colour extractor this index uses."""
        return self._extractor

    def stats(self) -> dict[str, int]:
        """Sizes: ``images`` (live), ``slots`` (including removed ones, until saved),
        ``words`` (vocabulary size) and ``postings``."""
        with self._lock.read():
            postings = None if self._contents is None else self._contents.postings
            return {"images": len(self), "slots": 0 if postings is None else postings.n_docs,
                    "words": 0 if self.vocabulary is None else int(self.vocabulary.n_words_),
                    "postings": 0 if postings is None else int(postings.n_postings)}

    def _require_fitted(self) -> Vocabulary:
        if self.vocabulary is None:
            raise NotFittedError("this ImageIndex has no vocabulary; call fit() or build() first, "
                                 "or load() a saved index")
        return self.vocabulary

    def _key_map(self) -> dict[str, int]:
        return {} if self._contents is None else self._contents.key_map()

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
        self._set_vocabulary(train_on_sample(self.config, len(images), lambda chosen: self.describe_many(
            [images[i] for i in chosen], progress=progress, description="training features"),
            progress=progress).vocabulary)
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
        tally, added = BatchTally(), []
        vocabulary, batches = stage_build(
            self.config, len(images), lambda chosen, what: self.describe_many(
                [images[i] for i in chosen], [names[i] for i in chosen], progress=progress,
                description=what), keys_list, meta_json, BUILD_BATCH, tally, progress=progress)
        self._set_vocabulary(vocabulary)
        for staged in batches:
            with self._lock.write():
                self._contents.append(staged, vocabulary.idf_)
            added.extend(staged.keys)
        with self._lock.write():
            self._contents.refresh_idf(self.config.idf_source)
        log_batch_problems(tally.failed, tally.featureless)
        return AddReport(tuple(added), tuple(tally.failed), time.perf_counter() - t0,
                         tuple(tally.featureless))

    # -------------------------------------------------------------------------------- indexing
    def _check_batch(self, images: list, keys: Any, metadata: Any) -> tuple[list[str], list[str]]:
        with self._lock.read():
            start = 0 if self._contents is None else self._contents.n_slots
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
        self._commit(vocabulary, stage_described(
            vocabulary, [results[i] for i in good], [keys_list[i] for i in good],
            [meta_json[i] for i in good], hamming_embedding=self.config.hamming_embedding))
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
        self._commit(vocabulary, stage_described(vocabulary, features, keys_list, meta_json,
                                                 hamming_embedding=self.config.hamming_embedding))

    def _commit(self, vocabulary: Vocabulary, staged: StagedImages) -> None:
        """Append staged images under the write lock, re-checking what may have changed."""
        with self._lock.write():
            if self.vocabulary is not vocabulary:
                raise InvalidInputError("the vocabulary was re-trained while these images were "
                                        "being described; add them again")
            self._contents.check_new_keys(staged.keys)
            self._contents.append(staged, vocabulary.idf_)
            self._contents.refresh_idf(self.config.idf_source)

    def add_quantised(self, words: Sequence[np.ndarray], keypoints: Sequence[np.ndarray],
                      colours: np.ndarray, image_sizes: np.ndarray, keys: Sequence[str], *,
                      scales: np.ndarray | None = None,
                      metadata: Sequence[Mapping[str, Any] | None] | None = None,
                      signatures: Sequence[np.ndarray] | None = None) -> None:
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
        signatures : sequence of np.ndarray, optional
            ``(n_i,) uint64`` Hamming-embedding signature per feature, per image
            (:meth:`vbow.vocab.vocabulary.Vocabulary.signatures` of its descriptors for its
            words); required when ``config.hamming_embedding`` is on, refused otherwise.
        """
        vocabulary = self._require_fitted()
        words, keypoints = list(words), list(keypoints)
        keys_list, meta_json = self._check_batch(words, keys, metadata)
        staged = stage_quantised(words, keypoints, colours, image_sizes, scales, keys_list,
                                 meta_json, n_words=vocabulary.n_words_,
                                 n_bins=self.config.colour.n_bins,
                                 signatures=None if signatures is None else list(signatures),
                                 hamming_embedding=self.config.hamming_embedding)
        self._commit(vocabulary, staged)

    def extend(self, other: "ImageIndex") -> int:
        """Append another index's live images, in its order, after this index's images.

        Both indexes must hold the same vocabulary (e.g. segments of a segmented build, each
        built from a copy of one vocabulary bundle). Words, keypoint geometry (as stored),
        colour, size, scale, keys, metadata and postings (with their Hamming-embedding
        signatures) are copied, so the result equals adding the same images here directly.

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
        if not vocabulary.same_as(theirs):
            raise InvalidInputError(f"cannot extend: the other index has another vocabulary "
                                    f"({theirs.n_words_} words vs {vocabulary.n_words_} here, or "
                                    f"other centroids / IDF)")
        with other._lock.read():
            if len(other) == 0:
                return 0
            live = other._contents.live_images(theirs.idf_)
        with self._lock.write():
            self._contents.check_new_keys(live.keys)
            self._contents.append_live(live, vocabulary.idf_)
            self._contents.refresh_idf(self.config.idf_source)
        return len(live.keys)

    def remove(self, keys: Sequence[str] | str) -> int:
        """Remove images by key, all or nothing.

        Every key is checked first: an unknown key raises ``KeyError`` and nothing is removed.
        A key named twice is removed once.

        Returns
        -------
        int
            Number of images removed.
        """
        unique = keys_to_remove(keys)
        with self._lock.write():
            if self._contents is None:
                if unique:
                    raise KeyError(f"not in the index: {unique[0]!r}")
                return 0
            removed = self._contents.remove(unique)
            if removed:
                self._contents.refresh_idf(self.config.idf_source)
        return removed

    # ------------------------------------------------------------------------------- searching
    def _state(self) -> SearchState:
        vocabulary = self._require_fitted()
        c = self._contents
        idf = vocabulary.idf_ if c.database_idf is None else c.database_idf
        return SearchState(self.config, vocabulary, c.postings, c.store, c.catalog, idf)

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
               name: str | None = None, verify_all: bool = False) -> SearchResult:
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
        verify_all : bool
            Verify the whole shortlist even where ``config.early_stop_inliers`` would stop at a
            clear winner: for callers that want every verified match, not the best one
            (duplicate listings, similar products).

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
        check_search_arguments(top_k, shortlist, verify_all)
        t0 = time.perf_counter()
        query = self.describe(image, name)
        result = self.search_features(query, top_k, where=where, rerank=rerank, shortlist=shortlist,
                                      verify_all=verify_all)
        timings = dict(result.timings)
        elapsed = time.perf_counter() - t0
        timings["features"] = elapsed - timings.get("total", 0.0)
        timings["total"] = elapsed
        return dataclasses.replace(result, timings=timings)

    def search_features(self, query: ImageDescription, top_k: int = 10, *, where: Where = None,
                        rerank: bool | None = None, shortlist: int | None = None,
                        verify_all: bool = False) -> SearchResult:
        """Search with an already described query (see :meth:`describe`); arguments as
        :meth:`search`."""
        if not isinstance(query, ImageDescription):
            raise InvalidInputError("search_features takes an ImageDescription (see "
                                    f"ImageIndex.describe); got {type(query).__name__}")
        with self.reading() as plan:
            return plan.run(query, top_k, where=where, rerank=rerank, shortlist=shortlist,
                            verify_all=verify_all)

    def search_many(self, images: Sequence[ImageInput], top_k: int = 10, *, where: Where = None,
                    rerank: bool | None = None, shortlist: int | None = None,
                    progress: bool | None = None,
                    verify_all: bool = False) -> list[SearchResult | ImageFailure]:
        """Search with many query images; features are extracted in parallel.

        Returns one :class:`SearchResult` per query, or an :class:`ImageFailure` for a query
        image that could not be read (the others are still answered).
        """
        self._require_fitted()
        check_search_arguments(top_k, shortlist, verify_all)
        out: list[SearchResult | ImageFailure] = []
        queries = list(self.describe_many(images, progress=progress, description="query features"))
        with Progress(len(queries), "searching", progress) as bar:
            for q in queries:
                out.append(q if isinstance(q, ImageFailure) else
                           self.search_features(q, top_k, where=where, rerank=rerank,
                                                shortlist=shortlist, verify_all=verify_all))
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
            c = self._contents
            c.compact()
            return write_index(path, IndexParts(self.config, self.vocabulary, c.postings, c.store,
                                                c.catalog), len(self))

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
        index._contents = IndexContents(parts.postings, parts.store, parts.catalog)
        index._contents.refresh_idf(index.config.idf_source)
        return index
