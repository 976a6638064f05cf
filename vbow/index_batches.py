"""One batch of images on its way into an :class:`vbow.ImageIndex`, checked before any change.

Inputs become a list (one image input is a batch of one); keys and metadata are validated and
made canonical for the whole batch first, so a bad entry changes nothing; described or
quantised images wait in :class:`StagedImages` until the index appends them under its lock.
:func:`stage_build` stages a whole catalog for :meth:`vbow.ImageIndex.build`, a batch at a time.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from vbow.describe.extraction import ImageDescription
from vbow.errors import InvalidInputError
from vbow.results import ImageFailure
from vbow.search.catalog import encode_metadata
from vbow.vocab.training import train_on_sample, words_and_signatures
from vbow.vocab.vocabulary import Vocabulary

__all__ = ["as_list", "new_entries", "keys_to_remove", "default_key", "error_name", "log_batch_problems",
           "StagedImages", "stage_quantised", "BatchTally",
           "stage_in_batches", "stage_build"]

logger = logging.getLogger(__name__)


def as_list(images: Any) -> list:
    """A batch of image inputs as a list; one image input (path, bytes, array, file object,
    PIL image, ...) becomes a list of one."""
    if isinstance(images, (list, tuple)):
        return list(images)
    if isinstance(images, (str, os.PathLike, bytes, bytearray, memoryview, np.ndarray)) or \
            hasattr(images, "read") or not hasattr(images, "__iter__"):
        return [images]
    return list(images)


def key_text(key: Any, position: int) -> str:
    if not isinstance(key, str):
        raise InvalidInputError(f"key at position {position} must be a str; got "
                                f"{type(key).__name__} {key!r:.80}")
    if not key:
        raise InvalidInputError(f"key at position {position} is empty")
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError(f"key at position {position} is not valid UTF-8: {key!r:.80}") from None
    return key


def keys_to_remove(keys: Sequence[str] | str) -> list[str]:
    """Distinct keys to remove, in order (one str is one key); raises
    :class:`vbow.errors.InvalidInputError` for a key that is not a str."""
    keys = [keys] if isinstance(keys, str) else list(keys)
    bad = [k for k in keys if not isinstance(k, str)]
    if bad:
        raise InvalidInputError(f"keys are str; got {type(bad[0]).__name__} {bad[0]!r:.80}")
    return list(dict.fromkeys(keys))


def default_key(image: Any, number: int) -> str:
    """The path (made valid UTF-8 by escaping undecodable bytes), or ``image-<number>``."""
    if isinstance(image, (str, os.PathLike)):
        return os.fsencode(image).decode("utf-8", "backslashreplace")
    return f"image-{number}"


def error_name(image: Any, key: str) -> str:
    """Name for error messages: the file path where there is one, else the key."""
    return default_key(image, 0) if isinstance(image, (str, os.PathLike)) else key


def log_batch_problems(failed: Sequence[ImageFailure], featureless: Sequence[str]) -> None:
    for f in failed:
        logger.warning("skipped %s", f.error)
    if featureless:
        logger.warning("%d images have no local features, so only their colour can match them: %s",
                       len(featureless), ", ".join(featureless[:5]))


class StagedImages:
    """Quantised images waiting to be appended: words, geometry, colour, scale, size."""

    def __init__(self) -> None:
        self.words: list[np.ndarray] = []
        self.keypoints: list[np.ndarray] = []
        self.colours: list[np.ndarray] = []
        self.scales: list[float] = []
        self.sizes: list[tuple[int, int]] = []
        self.keys: list[str] = []
        self.meta: list[str] = []
        self.signatures: list[np.ndarray] = []  # per image (n_i,) uint64, with Hamming embedding

    def __len__(self) -> int:
        return len(self.keys)

    def stage(self, feats: ImageDescription, words: np.ndarray, key: str, meta: str,
              signatures: np.ndarray | None = None) -> None:
        if signatures is not None:
            self.signatures.append(signatures)
        self.words.append(words)
        self.keypoints.append(feats.features.keypoints)
        self.colours.append(feats.colour)
        self.scales.append(feats.scale)
        self.sizes.append(tuple(feats.features.image_size))
        self.keys.append(key)
        self.meta.append(meta)


def new_entries(images: list, keys: Sequence[str] | str | None,
                metadata: Sequence[Mapping[str, Any] | None] | Mapping[str, Any] | None, *,
                existing: Mapping[str, int], start: int) -> tuple[list[str], list[str]]:
    """Validated keys and canonical metadata JSON for a batch (raises before any change)."""
    n = len(images)
    if keys is None:
        keys_list = [default_key(im, start + i) for i, im in enumerate(images)]
    else:
        keys_seq = [keys] if isinstance(keys, str) else list(keys)
        if len(keys_seq) != n:
            raise InvalidInputError(f"got {n} images but {len(keys_seq)} keys")
        keys_list = [key_text(k, i) for i, k in enumerate(keys_seq)]
    if len(set(keys_list)) != n:
        seen: set[str] = set()
        dup = next(k for k in keys_list if k in seen or seen.add(k))
        raise InvalidInputError(f"duplicate key {dup!r} in this batch")
    clash = [k for k in keys_list if k in existing]
    if clash:
        raise InvalidInputError(f"key {clash[0]!r} is already indexed; remove() it first")
    if metadata is None:
        meta_json = ["{}"] * n
    else:
        meta_seq = [metadata] if isinstance(metadata, Mapping) else list(metadata)
        if len(meta_seq) != n:
            raise InvalidInputError(f"got {n} images but {len(meta_seq)} metadata entries")
        meta_json = [encode_metadata(m, k) for k, m in zip(keys_list, meta_seq)]
    return keys_list, meta_json


def stage_described(vocabulary: Vocabulary, described: list[ImageDescription],
                    keys_list: list[str], meta_json: list[str], *,
                    hamming_embedding: bool) -> StagedImages:
    """Quantise images described with :meth:`vbow.ImageIndex.describe` (their words and, with
    ``hamming_embedding``, signatures) and stage them under validated keys and metadata."""
    staged = StagedImages()
    words = words_and_signatures(vocabulary, [f.features for f in described], hamming_embedding)
    for f, (w, sig), k, m in zip(described, words, keys_list, meta_json):
        staged.stage(f, w, k, m, sig)
    return staged


def stage_quantised(words: list, keypoints: list, colours: np.ndarray, image_sizes: np.ndarray,
                    scales: np.ndarray | None, keys_list: list[str], meta_json: list[str], *,
                    n_words: int, n_bins: int, signatures: list | None = None,
                    hamming_embedding: bool = False) -> StagedImages:
    """Check images given as words and geometry (see :meth:`vbow.ImageIndex.add_quantised`) and
    stage them; raises :class:`vbow.errors.InvalidInputError` naming what is wrong.
    ``signatures`` is one ``(n_i,) uint64`` array per image, required exactly when
    ``hamming_embedding``."""
    if hamming_embedding and signatures is None:
        raise InvalidInputError("this index uses hamming_embedding=True: add_quantised needs "
                                "each image's signatures (signatures=...)")
    if signatures is not None and not hamming_embedding:
        raise InvalidInputError("signatures were given, but this index does not use "
                                "hamming_embedding")
    n = len(keys_list)
    colours = np.asarray(colours, np.float32)
    if colours.shape != (n, n_bins):
        raise InvalidInputError(f"colours must be ({n}, {n_bins}) float32; got {colours.shape}")
    if len(keypoints) != n:
        raise InvalidInputError(f"got {n} keys but {len(words)} word arrays and "
                                f"{len(keypoints)} keypoint arrays")
    counts = [np.shape(w)[0] if np.ndim(w) == 1 else -1 for w in words]
    if any(np.shape(k) != (c, 4) for k, c in zip(keypoints, counts)):
        raise InvalidInputError("each image's words must be (n_i,) and its keypoints (n_i, 4)")
    flat = np.concatenate([np.asarray(w).reshape(-1) for w in words]) if n else np.zeros(0, np.int64)
    if flat.size and (int(flat.min()) < 0 or int(flat.max()) >= n_words):
        raise InvalidInputError(f"word ids must be in 0..{n_words - 1}")
    sizes = np.asarray(image_sizes, np.int32).reshape(-1, 2)
    scl = np.ones(n, np.float32) if scales is None else np.asarray(scales, np.float32)
    if sizes.shape != (n, 2) or scl.shape != (n,):
        raise InvalidInputError(f"image_sizes must be ({n}, 2) and scales ({n},); got "
                                f"{sizes.shape} and {scl.shape}")
    if signatures is not None:
        if len(signatures) != n or any(np.shape(s) != (c,) or np.asarray(s).dtype != np.uint64
                                       for s, c in zip(signatures, counts)):
            raise InvalidInputError("signatures must be one (n_i,) uint64 array per image, "
                                    "matching its words")
    staged = StagedImages()
    if signatures is not None:
        staged.signatures = [np.asarray(s) for s in signatures]
    staged.words, staged.keypoints = [np.asarray(w) for w in words], [np.asarray(k, np.float32)
                                                                      for k in keypoints]
    staged.colours, staged.scales = list(colours), scl.tolist()
    staged.sizes, staged.keys, staged.meta = [tuple(s) for s in sizes.tolist()], keys_list, meta_json
    return staged


#: Words ``(n_i,) int`` and Hamming-embedding signatures ``(n_i,) uint64`` (or None) of images.
WordsAndSignatures = tuple[np.ndarray, "np.ndarray | None"]


@dataclasses.dataclass
class BatchTally:
    """What a batched build saw: inputs that failed, and keys of images with no features."""

    failed: list[ImageFailure] = dataclasses.field(default_factory=list)
    featureless: list[str] = dataclasses.field(default_factory=list)


def stage_in_batches(results: Iterable[tuple[int, ImageDescription | ImageFailure]],
                     keys: Sequence[str], meta_json: Sequence[str],
                     words_of: Callable[[list[ImageDescription]], list[WordsAndSignatures]],
                     known: dict[int, WordsAndSignatures], batch_size: int,
                     tally: BatchTally) -> Iterator[StagedImages]:
    """Stage described images ``batch_size`` at a time, in input order.

    Parameters
    ----------
    results : iterable of (int, ImageDescription or ImageFailure)
        Input position and description (or failure) of each image, in input order.
    keys, meta_json : sequence of str
        Validated key and metadata JSON per input position.
    words_of : callable
        Quantises a batch of descriptions, returning their words and signatures.
    known : dict
        Words and signatures already computed (the training sample), by input position; an
        entry is used once and then dropped.
    batch_size : int
        Images per staged batch (the last one may be smaller).
    tally : BatchTally
        Filled with failures and featureless keys as the images go by.

    Yields
    ------
    StagedImages
        One batch at a time, for the caller to append before the next is described.
    """
    pending: list[tuple[int, ImageDescription]] = []

    def staged() -> StagedImages:
        batch = StagedImages()
        fresh = iter(words_of([f for i, f in pending if i not in known]))
        for i, f in pending:
            words, signatures = known.pop(i) if i in known else next(fresh)
            batch.stage(f, words, keys[i], meta_json[i], signatures)
        pending.clear()
        return batch

    for i, r in results:
        if isinstance(r, ImageFailure):
            tally.failed.append(r)
            continue
        pending.append((i, r))
        if not len(r.features):
            tally.featureless.append(keys[i])
        if len(pending) >= batch_size:
            yield staged()
    if pending:
        yield staged()


def stage_build(config: Any, n_images: int,
                describe: Callable[[list[int], str], Iterable[ImageDescription | ImageFailure]],
                keys: Sequence[str], meta_json: Sequence[str], batch_size: int,
                tally: BatchTally, *, progress: bool | None = None
                ) -> tuple[Vocabulary, Iterator[StagedImages]]:
    """A bounded-memory build: train on the catalog's seeded sample, then stage every image.

    Parameters
    ----------
    config : vbow.Config
        The index's settings (training sample, vocabulary, ``hamming_embedding``).
    n_images : int
        Catalog size.
    describe : callable
        ``describe(positions, what)`` describes the images at those input positions, in order
        (``what`` names the phase for progress).
    keys, meta_json, batch_size, tally
        As in :func:`stage_in_batches`.
    progress : bool or None
        Progress of the training.

    Returns
    -------
    vocabulary : Vocabulary
        Trained on the sample; the caller installs it before appending any batch.
    batches : iterator of StagedImages
        Every image in input order, ``batch_size`` at a time: the sample's descriptions and
        words are reused, the rest are described only as their batch is reached.
    """
    sample = train_on_sample(config, n_images, lambda chosen: describe(chosen, "training features"),
                             progress=progress)
    vocabulary, training, known = sample.vocabulary, sample.described, sample.known
    described = iter(describe([i for i in range(n_images) if i not in training], "indexing"))
    in_order = ((i, training.pop(i) if i in training else next(described))
                for i in range(n_images))
    return vocabulary, stage_in_batches(
        in_order, keys, meta_json,
        lambda feats: words_and_signatures(vocabulary, [f.features for f in feats],
                                           config.hamming_embedding),
        known, batch_size, tally)
