"""The facade: :class:`ImageIndex` ties features, vocabulary, inverted file, colour and
geometric verification together.

Data flows one way. An image becomes :class:`~vbow.describe.extraction.ImageFeatures` (keypoints,
descriptors, colour); descriptors become visual words (:mod:`vbow.vocab.vocabulary`); words become a
TF-IDF bag scored against the inverted file (:mod:`vbow.search.inverted_index`); the shortlist is fused
with colour and re-ranked by geometric verification from shared words (:mod:`vbow.verify.verification`)
using the per-image keypoint geometry kept in :mod:`vbow.verify.keypoint_store`.

Concurrency: any number of threads or processes may search one index (a loaded index is
read-only memory maps shared between processes); ``add``, ``remove`` and ``fit`` must not run
concurrently with anything else on the same object.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from vbow import __version__
from vbow.persist.bundle import load_bundle, save_bundle
from vbow.config import Config, get_config
from vbow.errors import ImageError, InvalidInputError, NotFittedError, BundleFormatError
from vbow.describe.extraction import Extractor, ImageFeatures, extract_many
from vbow.describe.features import FeatureExtractor, Features
from vbow.search.fusion import FusedScores, interleaved_shortlist, select_pool
from vbow.describe.image_input import ImageInput
from vbow.search.inverted_index import TF_CAP, InvertedIndex
from vbow.verify.keypoint_store import KeypointStore
from vbow.progress import Progress
from vbow.results import AddReport, ImageFailure, Match, SearchResult
from vbow.search.string_table import StringTable, encode_strings
from vbow.verify.verification import QueryWords, verify_pair
from vbow.vocab.vocabulary import HammingVocabulary, KMeansVocabulary, Vocabulary, make_vocabulary
from vbow.search.weighting import bag_of_words, tfidf

__all__ = ["ImageIndex"]

logger = logging.getLogger(__name__)

Where = Mapping[str, Any] | Callable[[Mapping[str, Any]], bool] | None

FORMAT = "vbow-index"
FORMAT_VERSION = 2  # 2: postings packed as uint32 (doc << 2 | tf code); 1 still loads
_VOCAB_CLASSES = {"kmeans": KMeansVocabulary, "hamming": HammingVocabulary}


def _as_list(images: Sequence[ImageInput] | ImageInput) -> list[ImageInput]:
    if isinstance(images, (str, os.PathLike, bytes, bytearray, memoryview)):
        return [images]
    if isinstance(images, np.ndarray):
        return [images]
    return list(images)


#: Settings added after the first bundles were written, with the value that reproduces how
#: those bundles were built (a bundle without the key predates the setting).
_LEGACY_SETTINGS = {"min_side": 0}
_LEGACY_COLOUR_SETTINGS = {"border_suppression": 0.0, "soft_binning": False}


def _with_legacy_defaults(settings: Mapping[str, Any]) -> dict[str, Any]:
    out = {**_LEGACY_SETTINGS, **settings}
    if isinstance(out.get("colour"), Mapping):
        out["colour"] = {**_LEGACY_COLOUR_SETTINGS, **out["colour"]}
    return out


class ImageIndex:
    """A searchable catalog of product images.

    Parameters
    ----------
    preset : str or Config
        ``"sift"`` (accuracy, default) or ``"orb"`` (low power), or a :class:`vbow.Config`.
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
        self._extractor = Extractor(
            FeatureExtractor(self.config.method, self.config.max_keypoints,
                             contrast_threshold=self.config.contrast_threshold,
                             fast_threshold=self.config.fast_threshold),
            self.config.colour, self.config.max_side, self.config.min_side)
        self._clear()

    def _clear(self) -> None:
        self._index: InvertedIndex | None = None
        self._store: KeypointStore | None = None
        self._keys: list[str] | StringTable = []
        self._meta: list[str] | StringTable = []
        self._colour = np.zeros((0, self.config.colour.n_bins), dtype=np.uint8)
        self._scale = np.zeros(0, dtype=np.float32)
        self._size = np.zeros((0, 2), dtype=np.int32)
        self._key_to_id: dict[str, int] | None = None
        self._field_cache: dict[str, dict[str, np.ndarray]] = {}
        self._idf: np.ndarray | None = None

    # ------------------------------------------------------------------------------ inspection
    def __repr__(self) -> str:
        state = f"{len(self)} images" if self.is_fitted else "not fitted"
        return f"ImageIndex(method={self.config.method!r}, {state})"

    def __len__(self) -> int:
        return 0 if self._index is None else int(self._index.alive.sum())

    @property
    def is_fitted(self) -> bool:
        """True once a vocabulary has been trained or loaded."""
        return self.vocabulary is not None

    @property
    def keys(self) -> list[str]:
        """Keys of the indexed images, in index order."""
        if self._index is None:
            return []
        alive = np.flatnonzero(self._index.alive)
        return [self._keys[i] for i in alive.tolist()]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in self._key_map()

    def metadata(self, key: str) -> dict[str, Any]:
        """The metadata stored with ``key`` (KeyError if absent)."""
        return json.loads(self._meta[self._key_map()[key]])

    @property
    def extractor(self) -> Extractor:
        """The per-image feature and colour extractor this index uses."""
        return self._extractor

    def _require_fitted(self) -> Vocabulary:
        if self.vocabulary is None:
            raise NotFittedError("this ImageIndex has no vocabulary; call fit() or build() first, "
                                 "or load() a saved index")
        return self.vocabulary

    def _key_map(self) -> dict[str, int]:
        if self._key_to_id is None:
            keys = self._keys.to_list() if isinstance(self._keys, StringTable) else self._keys
            alive = self._index.alive if self._index is not None else np.zeros(0, bool)
            self._key_to_id = {k: i for i, k in enumerate(keys) if alive[i]}
        return self._key_to_id

    # -------------------------------------------------------------------------------- training
    def _extract(self, images: list[ImageInput], names: list[str] | None, progress: bool | None,
                 description: str):
        return extract_many(self._extractor, images, n_jobs=self.config.n_jobs, names=names,
                            progress=progress, description=description)

    def _fit_on_features(self, feats: Sequence[Features]) -> list[np.ndarray]:
        """Train vocabulary and IDF; returns the training images' word arrays (for reuse)."""
        cfg = self.config
        vocab = make_vocabulary(cfg.method, n_words=cfg.n_words, probes=cfg.probes,
                                random_state=cfg.random_state)
        descriptors = [self._descriptors32(f) for f in feats if len(f)]
        if not descriptors:
            raise InvalidInputError("cannot train a vocabulary: the training images have no "
                                    "keypoints")
        t = time.perf_counter()
        vocab.fit(descriptors, max_samples=cfg.max_training_descriptors)
        logger.info("vocabulary: %d words in %.1fs", vocab.n_words_, time.perf_counter() - t)
        words = self._quantize_all(vocab, feats)
        vocab.fit_idf(words)
        self.vocabulary = vocab
        self._clear()
        return words

    @staticmethod
    def _descriptors32(f: Features) -> np.ndarray:
        d = f.descriptors
        return d.astype(np.float32) if d.dtype == np.float16 else d

    def _quantize_all(self, vocab: Vocabulary, feats: Sequence[Features]) -> list[np.ndarray]:
        """Hard-assign every image's descriptors in large batches; one word array per image."""
        out: list[np.ndarray] = []
        batch: list[Features] = []
        size = 0

        def flush() -> None:
            nonlocal batch, size
            if not batch:
                return
            stacked = np.concatenate([self._descriptors32(f) for f in batch]) if size else \
                np.zeros((0, vocab.dim), vocab.dtype)
            words = vocab.quantize(stacked) if size else np.zeros(0, np.int32)
            bounds = np.cumsum([len(f) for f in batch])[:-1]
            out.extend(np.split(words, bounds))
            batch, size = [], 0

        for f in feats:
            batch.append(f)
            size += len(f)
            if size >= 200_000:
                flush()
        flush()
        return out

    def fit(self, images: Sequence[ImageInput], *, progress: bool | None = None) -> "ImageIndex":
        """Train the vocabulary and its IDF on catalog-side images (not queries).

        At most ``config.max_training_images`` images are used (a seeded sample).

        Parameters
        ----------
        images : sequence of image inputs
            Paths, encoded bytes or arrays.
        progress : bool or None
            Show progress (None: when stderr is a terminal).

        Returns
        -------
        ImageIndex
            ``self``. Any previously indexed images are dropped (their words would be stale).
        """
        images = _as_list(images)
        chosen = self._training_subset(len(images))
        feats = [r.features for r in self._extract([images[i] for i in chosen], None, progress,
                                                   "training features")
                 if isinstance(r, ImageFeatures)]
        self._fit_on_features(feats)
        return self

    def fit_features(self, features: Sequence[ImageFeatures]) -> "ImageIndex":
        """Train the vocabulary and IDF on already extracted catalog-side features.

        Like :meth:`fit`, for pipelines that extract features elsewhere (with
        :attr:`extractor`, so the settings match). At most ``config.max_training_images`` of
        them are used (a seeded sample).

        Returns
        -------
        ImageIndex
            ``self``; any previously indexed images are dropped.
        """
        features = list(features)
        if any(not isinstance(f, ImageFeatures) for f in features):
            raise InvalidInputError("fit_features takes ImageFeatures (see ImageIndex.describe)")
        chosen = self._training_subset(len(features))
        self._fit_on_features([features[i].features for i in chosen.tolist()])
        return self

    def _training_subset(self, n: int) -> np.ndarray:
        cap = self.config.max_training_images
        if n <= cap:
            return np.arange(n)
        rng = np.random.default_rng(self.config.random_state)
        return np.sort(rng.choice(n, cap, replace=False))

    def build(self, images: Sequence[ImageInput], keys: Sequence[str] | None = None,
              metadata: Sequence[Mapping[str, Any] | None] | None = None, *,
              progress: bool | None = None) -> AddReport:
        """Train the vocabulary on these catalog images and index them, extracting features once.

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
        """
        t0 = time.perf_counter()
        images = _as_list(images)
        keys_list, meta_json = self._check_new_entries(images, keys, metadata, fresh=True)
        chosen = set(self._training_subset(len(images)).tolist())
        results = list(self._extract(images, self._names(images, keys_list), progress, "features"))
        good = [i for i, r in enumerate(results) if isinstance(r, ImageFeatures)]
        training = [i for i in good if i in chosen]
        if not training:
            raise InvalidInputError("no catalog image could be read; see the failures: " +
                                    "; ".join(r.error for r in results[:5]))
        known = dict(zip(training, self._fit_on_features([results[i].features for i in training])))
        rest = [i for i in good if i not in known]
        known.update(zip(rest, self._quantize_all(self.vocabulary, [results[i].features for i in rest])))
        self._add_described([results[i] for i in good], [known[i] for i in good],
                            [keys_list[i] for i in good], [meta_json[i] for i in good])
        failed = tuple(r for r in results if isinstance(r, ImageFailure))
        for f in failed:
            logger.warning("skipped %s", f.error)
        return AddReport(tuple(keys_list[i] for i in good), failed, time.perf_counter() - t0)

    # -------------------------------------------------------------------------------- indexing
    @staticmethod
    def _names(images: list[ImageInput], keys: list[str]) -> list[str]:
        """Names for error messages: the file path where there is one, else the key."""
        return [os.fspath(im) if isinstance(im, (str, os.PathLike)) else k
                for im, k in zip(images, keys)]

    def _check_new_entries(self, images: list[ImageInput], keys: Sequence[str] | None,
                           metadata: Sequence[Mapping[str, Any] | None] | None,
                           fresh: bool = False) -> tuple[list[str], list[str]]:
        n = len(images)
        if keys is None:
            start = 0 if fresh else (0 if self._index is None else self._index.n_docs)
            keys_list = [os.fspath(im) if isinstance(im, (str, os.PathLike)) else f"image-{start + i}"
                         for i, im in enumerate(images)]
        else:
            keys_list = [str(k) for k in keys]
            if len(keys_list) != n:
                raise InvalidInputError(f"got {n} images but {len(keys_list)} keys")
        if len(set(keys_list)) != n:
            dup = next(k for k in keys_list if keys_list.count(k) > 1)
            raise InvalidInputError(f"duplicate key {dup!r} in this batch")
        if not fresh:
            existing = self._key_map()
            clash = [k for k in keys_list if k in existing]
            if clash:
                raise InvalidInputError(f"key {clash[0]!r} is already indexed; remove() it first")
        if metadata is None:
            meta_json = ["{}"] * n
        else:
            if len(metadata) != n:
                raise InvalidInputError(f"got {n} images but {len(metadata)} metadata entries")
            meta_json = []
            for k, m in zip(keys_list, metadata):
                try:
                    meta_json.append(json.dumps(dict(m or {}), sort_keys=True))
                except (TypeError, ValueError) as exc:
                    raise InvalidInputError(f"metadata of {k!r} is not JSON-serialisable: {exc}") from None
        return keys_list, meta_json

    def add(self, images: Sequence[ImageInput] | ImageInput, keys: Sequence[str] | None = None,
            metadata: Sequence[Mapping[str, Any] | None] | None = None, *,
            progress: bool | None = None, on_error: str = "skip") -> AddReport:
        """Index more images with the existing vocabulary.

        Parameters
        ----------
        images : image input or sequence of them
            Paths, encoded bytes or arrays.
        keys : sequence of str, optional
            Unique keys (default: the path, or ``"image-<n>"``). A key already in the index raises.
        metadata : sequence of dict, optional
            JSON-serialisable metadata per image.
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
        self._require_fitted()
        if on_error not in ("skip", "raise"):
            from vbow.errors import UnknownOptionError
            raise UnknownOptionError("on_error", on_error, ("skip", "raise"))
        t0 = time.perf_counter()
        images = _as_list(images)
        keys_list, meta_json = self._check_new_entries(images, keys, metadata)
        results = list(self._extract(images, self._names(images, keys_list), progress, "indexing"))
        failed = tuple(r for r in results if isinstance(r, ImageFailure))
        if failed and on_error == "raise":
            raise ImageError(failed[0].error)
        good = [i for i, r in enumerate(results) if isinstance(r, ImageFeatures)]
        self._add_features([results[i] for i in good], [keys_list[i] for i in good],
                           [meta_json[i] for i in good])
        for f in failed:
            logger.warning("skipped %s", f.error)
        return AddReport(tuple(keys_list[i] for i in good), failed, time.perf_counter() - t0)

    def add_features(self, features: Sequence[ImageFeatures], keys: Sequence[str],
                     metadata: Sequence[Mapping[str, Any] | None] | None = None) -> None:
        """Index images whose features were already extracted (see :attr:`extractor`)."""
        self._require_fitted()
        keys_list, meta_json = self._check_new_entries(list(features), keys, metadata)
        self._add_features(list(features), keys_list, meta_json)

    def _add_features(self, feats: list[ImageFeatures], keys: list[str], meta_json: list[str]) -> None:
        words = self._quantize_all(self._require_fitted(), [f.features for f in feats])
        self._add_described(feats, words, keys, meta_json)

    def _add_described(self, feats: list[ImageFeatures], words: list[np.ndarray], keys: list[str],
                       meta_json: list[str]) -> None:
        self._add_quantized(words, [f.features.keypoints for f in feats],
                            np.stack([f.colour for f in feats]) if feats else
                            np.zeros((0, self.config.colour.n_bins), np.float32),
                            np.array([f.scale for f in feats], np.float32),
                            np.array([f.features.image_size for f in feats], np.int32).reshape(-1, 2),
                            keys, meta_json)

    def add_quantized(self, words: Sequence[np.ndarray], keypoints: Sequence[np.ndarray],
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
        vocab = self._require_fitted()
        keys_list, meta_json = self._check_new_entries(list(words), keys, metadata)
        n = len(keys_list)
        colours = np.asarray(colours, np.float32)
        if colours.shape != (n, self.config.colour.n_bins):
            raise InvalidInputError(f"colours must be ({n}, {self.config.colour.n_bins}) float32; "
                                    f"got {colours.shape}")
        if len(words) != n or len(keypoints) != n:
            raise InvalidInputError(f"got {n} keys but {len(words)} word arrays and "
                                    f"{len(keypoints)} keypoint arrays")
        flat = np.concatenate([np.asarray(w).reshape(-1) for w in words]) if n else np.zeros(0, np.int64)
        if flat.size and (int(flat.min()) < 0 or int(flat.max()) >= vocab.n_words_):
            raise InvalidInputError(f"word ids must be in 0..{vocab.n_words_ - 1}")
        sizes = np.asarray(image_sizes, np.int32).reshape(-1, 2)
        scl = np.ones(n, np.float32) if scales is None else np.asarray(scales, np.float32)
        self._add_quantized(list(words), list(keypoints), colours, scl, sizes, keys_list, meta_json)

    def _add_quantized(self, words: list[np.ndarray], keypoints: list[np.ndarray],
                       colours: np.ndarray, scales: np.ndarray, sizes: np.ndarray,
                       keys: list[str], meta_json: list[str]) -> None:
        vocab = self._require_fitted()
        if self._index is None:
            self._index = InvertedIndex(vocab.n_words_, self.config.burstiness)
            self._store = KeypointStore(vocab.n_words_)
        if not keys:
            return
        counts = np.array([np.shape(w)[0] for w in words], np.int64)
        if any(np.shape(k) != (c, 4) for k, c in zip(keypoints, counts.tolist())):
            raise InvalidInputError("each image's keypoints must be (n_i, 4) matching its words")
        offsets = np.zeros(len(words) + 1, np.int64)
        np.cumsum(counts, out=offsets[1:])
        flat_w = np.concatenate([np.asarray(w).reshape(-1) for w in words]).astype(np.int64)
        flat_kp = np.concatenate([np.asarray(k, np.float32) for k in keypoints])
        first = self._index.n_docs
        self._store.add_flat(offsets, flat_w, flat_kp)  # validates geometry before anything is added
        self._index.add_words(offsets, flat_w, vocab.idf_)
        self._colour = np.concatenate([self._colour, np.clip(np.rint(colours * 255), 0, 255).astype(np.uint8)])
        self._scale = np.concatenate([self._scale, scales])
        self._size = np.concatenate([self._size, sizes])
        if isinstance(self._keys, StringTable):
            self._keys = self._keys.to_list()
            self._meta = self._meta.to_list()
        self._keys.extend(keys)
        self._meta.extend(meta_json)
        if self._key_to_id is not None:
            self._key_to_id.update({k: first + i for i, k in enumerate(keys)})
        self._field_cache.clear()
        self._idf = None

    def extend(self, other: "ImageIndex") -> int:
        """Append another index's live images, in its order, after this index's images.

        Both indexes must hold the same vocabulary (an index built from a copy of this one's
        vocabulary bundle, e.g. one segment of a segmented build). Words, keypoint geometry (as
        stored), colour, size, scale, keys and metadata are copied; postings are rebuilt from the
        copied words, so the result equals adding the same images here directly.

        Returns
        -------
        int
            Number of images appended.

        Raises
        ------
        InvalidInputError
            The vocabularies differ, or a key of ``other`` is already in this index.
        """
        vocab = self._require_fitted()
        theirs = other._require_fitted()
        mine_a, theirs_a = vocab.to_arrays(), theirs.to_arrays()
        if type(vocab) is not type(theirs) or mine_a.keys() != theirs_a.keys() or not all(
                np.array_equal(mine_a[k], theirs_a[k]) for k in mine_a):
            raise InvalidInputError(f"cannot extend: the other index has a different vocabulary "
                                    f"({theirs.n_words_} words vs {vocab.n_words_} here, or other "
                                    f"centroids / IDF)")
        if other._index is None or len(other) == 0:
            return 0
        keep = np.asarray(other._index.alive, dtype=bool)
        ids = np.flatnonzero(keep)
        keys = [other._keys[i] for i in ids.tolist()]
        existing = self._key_map()
        clash = [k for k in keys if k in existing]
        if clash:
            raise InvalidInputError(f"key {clash[0]!r} is already indexed; remove() it first")
        if self._index is None:
            self._index = InvertedIndex(vocab.n_words_, self.config.burstiness)
            self._store = KeypointStore(vocab.n_words_)
        store = KeypointStore(vocab.n_words_)
        store.extend(other._store, keep)
        flat = store.to_arrays()
        first = self._index.n_docs
        self._index.add_words(flat["kp_offsets"], flat["kp_words"].astype(np.int64), vocab.idf_)
        self._store.extend(store)
        self._colour = np.concatenate([self._colour, np.asarray(other._colour)[ids]])
        self._scale = np.concatenate([self._scale, np.asarray(other._scale)[ids]])
        self._size = np.concatenate([self._size, np.asarray(other._size)[ids]])
        if isinstance(self._keys, StringTable):
            self._keys = self._keys.to_list()
            self._meta = self._meta.to_list()
        self._keys.extend(keys)
        self._meta.extend(other._meta[i] for i in ids.tolist())
        if self._key_to_id is not None:
            self._key_to_id.update({k: first + i for i, k in enumerate(keys)})
        self._field_cache.clear()
        self._idf = None
        return len(keys)

    def remove(self, keys: Sequence[str] | str) -> int:
        """Remove images by key. Unknown keys raise ``KeyError`` before anything is removed.

        Returns
        -------
        int
            Number of images removed.
        """
        keys = [keys] if isinstance(keys, str) else list(keys)
        mapping = self._key_map()
        missing = [k for k in keys if k not in mapping]
        if missing:
            raise KeyError(f"not in the index: {missing[0]!r}")
        ids = np.array([mapping.pop(k) for k in keys], dtype=np.int64)
        if ids.size:
            self._index.remove(ids)
            self._field_cache.clear()
            self._idf = None
        return int(ids.size)

    # ------------------------------------------------------------------------------- searching
    def _current_idf(self) -> np.ndarray:
        vocab = self._require_fitted()
        if self.config.idf_source == "vocabulary":
            return vocab.idf_
        if self._idf is None:
            n = max(len(self), 1)
            df = self._index.document_frequencies()
            self._idf = np.log(n / np.maximum(df, 0.5)).astype(np.float32)
            np.maximum(self._idf, 0, out=self._idf)
            self._index.reweight(self._idf)
        return self._idf

    def _filter_mask(self, where: Where) -> np.ndarray:
        alive = self._index.alive
        if where is None:
            return alive
        if callable(where):
            mask = np.array([bool(where(json.loads(self._meta[i]))) if alive[i] else False
                             for i in range(alive.shape[0])], dtype=bool)
            return mask
        if not isinstance(where, Mapping):
            raise InvalidInputError("where must be a mapping {field: value or [values]} or a "
                                    "callable(metadata) -> bool")
        mask = alive.copy()
        for field, wanted in where.items():
            table = self._field_table(field)
            values = wanted if isinstance(wanted, (list, tuple, set, frozenset)) else [wanted]
            ids = [table.get(json.dumps(v, sort_keys=True)) for v in values]
            allowed = np.zeros(alive.shape[0], dtype=bool)
            for chosen in ids:
                if chosen is not None:
                    allowed[chosen] = True
            mask &= allowed
        return mask

    def _field_table(self, field: str) -> dict[str, np.ndarray]:
        """Lazily built map ``json(value) -> image ids`` for one metadata field."""
        if field not in self._field_cache:
            groups: dict[str, list[int]] = {}
            for i in np.flatnonzero(self._index.alive).tolist():
                meta = json.loads(self._meta[i])
                if field in meta:
                    groups.setdefault(json.dumps(meta[field], sort_keys=True), []).append(i)
            self._field_cache[field] = {k: np.array(v, np.int64) for k, v in groups.items()}
        return self._field_cache[field]

    def describe(self, image: ImageInput, name: str | None = None) -> ImageFeatures:
        """Load and describe one image with this index's settings (raises ImageError)."""
        return self._extractor(image, name)

    def search(self, image: ImageInput, top_k: int = 10, *, where: Where = None,
               rerank: bool | None = None, shortlist: int | None = None,
               name: str | None = None) -> SearchResult:
        """Find the catalog images that show the product in ``image``.

        Parameters
        ----------
        image : image input
            A path, encoded bytes or an array.
        top_k : int
            Matches to return.
        where : mapping or callable, optional
            Restrict to catalog images whose metadata matches: ``{"category": "tea"}``,
            ``{"category": ["tea", "coffee"]}`` (any of), or a predicate on the metadata dict.
        rerank : bool, optional
            Geometric re-ranking of the shortlist (default: ``config.rerank``).
        shortlist : int, optional
            Candidates to verify (default: ``config.shortlist_for(len(self))``).
        name : str, optional
            Name of the query in the result and in errors.

        Returns
        -------
        SearchResult
            Ranked :class:`Match` objects.

        Raises
        ------
        ImageError
            The image cannot be read.
        NotFittedError
            No vocabulary yet.
        """
        self._require_fitted()
        t0 = time.perf_counter()
        query = self.describe(image, name)
        result = self.search_features(query, top_k, where=where, rerank=rerank, shortlist=shortlist)
        timings = dict(result.timings)
        elapsed = time.perf_counter() - t0
        timings["features"] = elapsed - timings.get("total", 0.0)
        timings["total"] = elapsed
        return SearchResult(result.query, result.matches, timings)

    def search_many(self, images: Sequence[ImageInput], top_k: int = 10, *, where: Where = None,
                    rerank: bool | None = None, shortlist: int | None = None,
                    progress: bool | None = None) -> list[SearchResult | ImageFailure]:
        """Search with many query images; features are extracted in parallel.

        Returns one :class:`SearchResult` per query, or an :class:`ImageFailure` for a query
        image that could not be read (the others are still answered).
        """
        self._require_fitted()
        images = _as_list(images)
        out: list[SearchResult | ImageFailure] = []
        queries = list(self._extract(images, None, progress, "query features"))
        with Progress(len(queries), "searching", progress) as bar:
            for q in queries:
                out.append(q if isinstance(q, ImageFailure) else
                           self.search_features(q, top_k, where=where, rerank=rerank,
                                                shortlist=shortlist))
                bar.update()
        return out

    def search_features(self, query: ImageFeatures, top_k: int = 10, *, where: Where = None,
                        rerank: bool | None = None, shortlist: int | None = None) -> SearchResult:
        """Search with an already described query (see :meth:`describe`)."""
        vocab = self._require_fitted()
        cfg = self.config
        if int(top_k) < 1:
            raise InvalidInputError(f"top_k must be >= 1; got {top_k}")
        timings: dict[str, float] = {}
        t = time.perf_counter()
        if self._index is None or len(self) == 0:
            return SearchResult(query.name, (), {"total": 0.0})
        feats = query.features
        n_bins = self.config.colour.n_bins
        if np.shape(query.colour) != (n_bins,):
            raise InvalidInputError(
                f"query {query.name!r} has a {np.shape(query.colour)} colour signature; this "
                f"index uses ({n_bins},): describe queries with this index's describe()")
        descriptors = self._descriptors32(feats)
        if len(feats):
            q_words, q_weights = vocab.quantize_multi(descriptors, cfg.query_assignments,
                                                      sigma=cfg.assignment_sigma)
        else:
            q_words = np.zeros((0, cfg.query_assignments), np.int32)
            q_weights = np.zeros((0, cfg.query_assignments), np.float32)
        timings["quantize"] = time.perf_counter() - t
        t = time.perf_counter()
        idf = self._current_idf()
        words, tf = bag_of_words(q_words, q_weights)
        bow = self._index.scores(words, tfidf(words, tf, idf, cfg.burstiness), idf,
                                 max_postings=cfg.max_postings)
        allowed = self._filter_mask(where)
        fusion = self._fuse(bow, query.colour, allowed)
        n_allowed = int(allowed.sum())
        do_rerank = cfg.rerank if rerank is None else bool(rerank)
        depth = min(n_allowed, max(int(top_k), cfg.shortlist_for(len(self)) if shortlist is None
                                   else int(shortlist)) if do_rerank else int(top_k))
        if depth == 0:
            return SearchResult(query.name, (), {"total": time.perf_counter() - t})
        top = fusion.best(depth)
        timings["score"] = time.perf_counter() - t
        t = time.perf_counter()
        verifications: dict[int, Any] = {}
        if do_rerank:
            n_verify = depth if shortlist is not None or cfg.shortlist is not None else \
                min(depth, cfg.shortlist_for(len(self)))
            top = self._verification_order(fusion, top, n_verify)
            final = fusion.at(top)
            matcher = QueryWords(q_words, max_fanout=cfg.max_fanout)
            for j, doc in enumerate(top[:n_verify].tolist()):
                v = self._verify(feats, matcher, doc)
                if v.inliers > 0:
                    verifications[doc] = v
                    final[j] += v.inliers
            order = np.argsort(-final, kind="stable")
            top, final = top[order], final[order]
            expand = [d for d in top.tolist() if d in verifications][:cfg.query_expansion]
            if expand:
                top, final, fusion = self._expanded_ranking(
                    words, tf, query.colour, expand, verifications, allowed, depth)
        else:
            final = fusion.at(top)
        timings["rerank"] = time.perf_counter() - t
        matches = []
        q_scale = query.scale
        top, final = top[:top_k], final[:top_k]
        bow_at, colour_at = fusion.bow[top].tolist(), fusion.colour_at(top).tolist()
        for rank, (doc, score) in enumerate(zip(top.tolist(), final.tolist())):
            v = verifications.get(doc)
            transform, points = None, np.zeros((0, 4), np.float32)
            if v is not None:
                d_scale = float(self._scale[doc])
                s_q = np.diag([q_scale, q_scale, 1.0])
                s_d_inv = np.diag([1.0 / d_scale, 1.0 / d_scale, 1.0])
                transform = s_q @ v.transform @ s_d_inv
                transform /= transform[2, 2] if transform[2, 2] != 0 else 1.0
                _, db_kp = self._store.get(doc)
                points = np.concatenate([feats.keypoints[v.pairs[:, 0], :2] * q_scale,
                                         db_kp[v.pairs[:, 1], :2] * d_scale], axis=1).astype(np.float32)
            matches.append(Match(self._keys[doc], float(score), bow_at[rank], colour_at[rank],
                                 0 if v is None else v.inliers, transform, points,
                                 json.loads(self._meta[doc]), rank))
        timings["total"] = sum(timings.values())
        return SearchResult(query.name, tuple(matches), timings)

    def _verification_order(self, fusion: FusedScores, top: np.ndarray, n: int) -> np.ndarray:
        """Reorder the candidate list so its first ``n`` are the images to verify.

        With colour fused in, the ``n`` images verified alternate between the best by fused
        score and the best by bag-of-words score alone (:func:`vbow.search.fusion.interleaved_shortlist`):
        an image sharing many words with the query is checked geometrically whatever its colour
        (under odd light or on a shelf, colour can push the true product down), while the budget
        of ``n`` verifications stays. ``top`` is ``(depth,) int`` by fused score, best first.
        Returns ``(m,) int64`` ids, ``m >= depth``: the ``n`` to verify first, then the rest of
        ``top``.
        """
        if self.config.colour_weight <= 0 or n <= 0:
            return top
        return interleaved_shortlist(top, fusion.best(n, by_words=True), n)

    def _expanded_ranking(self, words: np.ndarray, tf: np.ndarray, query_colour: np.ndarray,
                          expand: list[int], verifications: Mapping[int, Any],
                          allowed: np.ndarray, depth: int
                          ) -> tuple[np.ndarray, np.ndarray, FusedScores]:
        """Average query expansion: rank again with the query averaged with verified results.

        The expanded bag is the sum of the L2-normalised TF-IDF vectors of the query and of the
        ``expand`` documents (their words come from the keypoint store); the expanded colour is
        the mean of their sqrt histograms. Verified documents keep their inlier bonus on top of
        the new fused score. Returns the new top ``depth`` ids and final scores, best first,
        and the expanded query's fused scores.
        """
        cfg = self.config
        idf = self._current_idf()
        parts_w = [words]
        parts_v = [tfidf(words, tf, idf, cfg.burstiness)]
        colours = [np.asarray(query_colour, np.float32)]
        for doc in expand:
            doc_words, _ = self._store.get(doc)
            w, c = bag_of_words(doc_words)
            np.minimum(c, TF_CAP, out=c)  # as the postings store it
            parts_w.append(w)
            parts_v.append(tfidf(w, c, idf, cfg.burstiness))
            colours.append(self._colour[doc].astype(np.float32) / 255.0)
        all_w = np.concatenate(parts_w)
        uniq, inverse = np.unique(all_w, return_inverse=True)
        summed = np.bincount(inverse, weights=np.concatenate(parts_v)).astype(np.float32)
        norm = float(np.linalg.norm(summed))
        bow = self._index.scores(uniq.astype(np.int32), summed / max(norm, 1e-12), idf,
                                 max_postings=cfg.max_postings)
        fusion = self._fuse(bow, np.mean(colours, axis=0), allowed)
        fusion.add_bonus(np.fromiter(verifications, np.int64, len(verifications)),
                         np.array([v.inliers for v in verifications.values()], np.float64))
        top = fusion.best(depth)
        return top, fusion.at(top), fusion

    def _fuse(self, bow: np.ndarray, query_colour: np.ndarray, allowed: np.ndarray) -> FusedScores:
        """Fused similarity ``z(bow) + w * z(colour)`` (see Config and :mod:`vbow.search.fusion`).

        The standardisation statistics are taken over every live image, so a metadata filter
        only removes candidates and never reorders the ones it keeps. ``bow`` is ``(n,)
        float32``, 0 for removed images. Colour is compared for every live image in catalogs
        up to ``colour_candidates`` images, else for that many best by words.
        """
        cfg = self.config
        live = self._index.alive
        n_live = int(np.count_nonzero(live))
        covers_all = n_live <= cfg.colour_candidates
        pool = np.flatnonzero(live) if covers_all else select_pool(bow, cfg.colour_candidates)
        if cfg.colour_weight > 0 and pool.size:
            q = np.clip(np.rint(query_colour * 255), 0, 255).astype(np.float32)
            colour = (self._colour[pool].astype(np.float32) @ q).astype(np.float64) / (255.0 * 255.0)
        else:
            colour = np.zeros(pool.size, np.float64)
        return FusedScores(bow, allowed, n_live, pool, colour, cfg.colour_weight, covers_all)

    def _verify(self, feats: Features, matcher: QueryWords, doc: int):
        cfg = self.config
        db_words, db_kp = self._store.get(doc)
        pairs = matcher.pairs_with(db_words)
        w, h = (int(x) for x in self._size[doc])
        return verify_pair(feats.keypoints, db_kp, pairs, db_size=(w, h), model=cfg.model,
                           threshold=cfg.ransac_threshold, min_inliers=cfg.min_inliers,
                           seed=cfg.random_state)

    # ----------------------------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike) -> Path:
        """Save vocabulary and index as a versioned bundle directory, atomically.

        Removed images are dropped and the rest renumbered. The bundle is a ``manifest.json``
        and plain ``.npy`` arrays (see :mod:`vbow.persist.bundle`); nothing is pickled.

        Returns
        -------
        Path
            The bundle directory.
        """
        vocab = self._require_fitted()
        arrays: dict[str, np.ndarray] = {f"vocab_{k}": v for k, v in vocab.to_arrays().items()}
        if self._index is None:
            self._add_quantized([], [], np.zeros((0, self.config.colour.n_bins), np.float32),
                                np.zeros(0, np.float32), np.zeros((0, 2), np.int32), [], [])
        keep = self._index.alive.copy()
        if not keep.all():
            self._compact_removed(keep)
        arrays.update({f"postings_{k}": v for k, v in self._index.bundle_arrays().items()})
        arrays.update(self._store.bundle_arrays())
        keys = self._keys.to_list() if isinstance(self._keys, StringTable) else self._keys
        meta = self._meta.to_list() if isinstance(self._meta, StringTable) else self._meta
        arrays["keys_blob"], arrays["keys_offsets"] = encode_strings(keys)
        arrays["meta_blob"], arrays["meta_offsets"] = encode_strings(meta)
        arrays["colour"] = self._colour
        arrays["scale"] = self._scale
        arrays["image_size"] = self._size
        manifest = {"vbow_version": __version__, "n_images": len(self),
                    "config": self.config.to_dict(),
                    "vocabulary": {"params": vocab.get_params(), "state": vocab.state_params(),
                                   "n_words": vocab.n_words_}}
        return save_bundle(path, FORMAT, FORMAT_VERSION, manifest, arrays)

    def _compact_removed(self, keep: np.ndarray) -> None:
        ids = np.flatnonzero(keep)
        self._index.renumber(keep)
        self._store.select(keep)
        self._colour = self._colour[keep]
        self._scale = self._scale[keep]
        self._size = self._size[keep]
        keys = self._keys.to_list() if isinstance(self._keys, StringTable) else self._keys
        meta = self._meta.to_list() if isinstance(self._meta, StringTable) else self._meta
        self._keys = [keys[i] for i in ids.tolist()]
        self._meta = [meta[i] for i in ids.tolist()]
        self._key_to_id = None
        self._field_cache.clear()

    @classmethod
    def load(cls, path: str | os.PathLike, *, mmap: bool = True,
             verify_checksums: bool = False) -> "ImageIndex":
        """Open a saved bundle.

        Parameters
        ----------
        path : str or os.PathLike
            Bundle directory written by :meth:`save`.
        mmap : bool
            Memory-map the arrays (fast open, pages shared between processes) instead of reading
            them. A memory-mapped index can still ``add`` and ``remove`` (copy on write).
        verify_checksums : bool
            Check every array's CRC-32 (reads the whole bundle).

        Raises
        ------
        BundleError
            Missing, truncated, corrupt, or written by a newer format version; names the file.
        """
        manifest, arrays = load_bundle(path, FORMAT, FORMAT_VERSION, mmap=mmap,
                                       verify_checksums=verify_checksums)
        manifest_path = Path(path) / "manifest.json"
        try:
            config = Config(**_with_legacy_defaults(manifest["config"]))
            vinfo = manifest["vocabulary"]
            vocab_cls = _VOCAB_CLASSES[vinfo["state"]["kind"]]
            vocab = vocab_cls.from_arrays(vinfo["params"], vinfo["state"],
                                          {k[len("vocab_"):]: v for k, v in arrays.items()
                                           if k.startswith("vocab_")})
            index = cls(config)
            index.vocabulary = vocab
            index._index = InvertedIndex.from_arrays(
                vocab.n_words_, config.burstiness,
                {k[len("postings_"):]: v for k, v in arrays.items() if k.startswith("postings_")})
            index._store = KeypointStore.from_arrays(vocab.n_words_, arrays)
            index._keys = StringTable(arrays["keys_blob"], arrays["keys_offsets"])
            index._meta = StringTable(arrays["meta_blob"], arrays["meta_offsets"])
            # plain ndarray views of the memory maps: per-image lookups on them are hot paths
            index._colour = np.asarray(arrays["colour"])
            index._scale = np.asarray(arrays["scale"])
            index._size = np.asarray(arrays["image_size"])
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleFormatError(f"inconsistent bundle: {exc}", manifest_path) from None
        n = index._index.n_docs
        if not (len(index._keys) == len(index._meta) == index._store.n_images == n ==
                index._colour.shape[0] == index._scale.shape[0] == index._size.shape[0]):
            raise BundleFormatError("inconsistent bundle: per-image arrays disagree in length",
                                    manifest_path)
        return index
