"""Training a vocabulary for an index, and assigning whole images' descriptors to words.

The vocabulary and its IDF are learned on catalog-side images only, at most
``Config.max_training_images`` of them (a seeded sample, :func:`training_subset`), so the cost
of training is bounded whatever the catalog's size.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Callable, Iterable, Sequence

import numpy as np

from vbow.config import Config
from vbow.describe.extraction import ImageDescription, without_descriptors
from vbow.describe.features import BINARY_METHODS, LocalFeatures
from vbow.errors import InvalidInputError
from vbow.vocab.hamming_vocabulary import HammingVocabulary
from vbow.vocab.kmeans_vocabulary import KMeansVocabulary
from vbow.vocab.vocabulary import Vocabulary

__all__ = ["make_vocabulary", "training_subset", "train_vocabulary", "quantise_images",
           "descriptors32", "feature_signatures", "words_and_signatures", "TrainedSample",
           "train_on_sample"]

logger = logging.getLogger(__name__)

#: Descriptors assigned in one call of ``Vocabulary.quantise`` (a memory bound).
QUANTISE_BATCH = 200_000


def make_vocabulary(method: str, **params) -> Vocabulary:
    """The vocabulary class for a feature method: ``"sift"`` → k-means, the binary ones
    (``"orb"``, ``"teblid"``) → Hamming."""
    return (HammingVocabulary if method in BINARY_METHODS else KMeansVocabulary)(**params)


def training_subset(n_images: int, config: Config) -> np.ndarray:
    """Positions of the images a vocabulary is trained on.

    Parameters
    ----------
    n_images : int
        Catalog-side images offered.
    config : Config
        ``max_training_images`` and ``random_state``.

    Returns
    -------
    np.ndarray
        ``(m,) int64`` sorted positions, ``m = min(n_images, max_training_images)``; every
        position when the cap is not reached, else a seeded sample.
    """
    cap = config.max_training_images
    if n_images <= cap:
        return np.arange(n_images, dtype=np.int64)
    rng = np.random.default_rng(config.random_state)
    return np.sort(rng.choice(n_images, cap, replace=False)).astype(np.int64)


def descriptors32(features: LocalFeatures) -> np.ndarray:
    """An image's descriptors as the vocabulary takes them (float16 storage widened to float32)."""
    d = features.descriptors
    return d.astype(np.float32) if d.dtype == np.float16 else d


def quantise_images(vocabulary: Vocabulary, features: Sequence[LocalFeatures]) -> list[np.ndarray]:
    """Hard-assign every image's descriptors, in batches of up to 200,000 descriptors.

    Parameters
    ----------
    vocabulary : Vocabulary
        A fitted vocabulary.
    features : sequence of LocalFeatures
        Per-image local features.

    Returns
    -------
    list of np.ndarray
        One ``(n_i,) int32`` word array per image.
    """
    out: list[np.ndarray] = []
    batch: list[LocalFeatures] = []
    size = 0

    def flush() -> None:
        nonlocal batch, size
        if not batch:
            return
        if size:
            words = vocabulary.quantise(np.concatenate([descriptors32(f) for f in batch]))
        else:
            words = np.zeros(0, np.int32)
        out.extend(np.split(words, np.cumsum([len(f) for f in batch])[:-1]))
        batch, size = [], 0

    for f in features:
        batch.append(f)
        size += len(f)
        if size >= QUANTISE_BATCH:
            flush()
    flush()
    return out


def feature_signatures(vocabulary: Vocabulary, features: LocalFeatures, words: np.ndarray,
                       hamming_embedding: bool) -> np.ndarray | None:
    """``(n,) uint64`` Hamming-embedding signatures of an image's features for their ``(n,)``
    words, or None when ``hamming_embedding`` is off."""
    if not hamming_embedding:
        return None
    if not len(features):
        return np.zeros(0, np.uint64)
    return vocabulary.signatures(descriptors32(features), np.asarray(words))


def words_and_signatures(vocabulary: Vocabulary, features: Sequence[LocalFeatures],
                         hamming_embedding: bool) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Per image, its ``(n_i,) int32`` words (:func:`quantise_images`) and its signatures
    (:func:`feature_signatures`)."""
    return [(w, feature_signatures(vocabulary, f, w, hamming_embedding))
            for f, w in zip(features, quantise_images(vocabulary, features))]


def train_vocabulary(config: Config, features: Sequence[LocalFeatures], *,
                     progress: bool | None = None) -> tuple[Vocabulary, list[np.ndarray]]:
    """Learn the word tree and its IDF from training images' features.

    Parameters
    ----------
    config : Config
        ``method``, ``n_words``, ``probes``, ``max_training_descriptors``, ``random_state``.
    features : sequence of LocalFeatures
        The training images' features (already sampled, see :func:`training_subset`).
    progress : bool or None
        A bar over the vocabulary's coarse cells (None: see
        :func:`vbow.progress.progress_enabled`).

    Returns
    -------
    vocabulary : Vocabulary
        Fitted, with ``idf_`` learned from these images.
    words : list of np.ndarray
        The training images' ``(n_i,) int32`` words, for reuse when they are indexed.

    Raises
    ------
    InvalidInputError
        No training image has a keypoint.
    """
    vocabulary = make_vocabulary(config.method, n_words=config.n_words, probes=config.probes,
                                 random_state=config.random_state)
    descriptors = [descriptors32(f) for f in features if len(f)]
    if not descriptors:
        raise InvalidInputError("cannot train a vocabulary: the training images have no keypoints")
    t = time.perf_counter()
    vocabulary.fit(descriptors, max_samples=config.max_training_descriptors, progress=progress)
    logger.info("vocabulary: %d words in %.1fs", vocabulary.n_words_, time.perf_counter() - t)
    words = quantise_images(vocabulary, features)
    vocabulary.fit_idf(words)
    return vocabulary, words


@dataclasses.dataclass
class TrainedSample:
    """A vocabulary trained on a sample of a catalog, and what the sample's images became.

    Attributes
    ----------
    vocabulary : Vocabulary
    described : dict
        Input position → the sample image's :class:`ImageDescription` with its descriptors
        dropped (words and geometry are all that indexing needs now), or its failure.
    known : dict
        Input position → ``(words, signatures)`` of each readable sample image, as
        :func:`words_and_signatures` gives them.
    """

    vocabulary: Vocabulary
    described: dict
    known: dict


def train_on_sample(config: Config, n_images: int,
                    describe: Callable[[list[int]], Iterable[object]], *,
                    progress: bool | None = None) -> TrainedSample:
    """Describe the seeded training sample of a catalog of ``n_images`` images and train on it.

    Parameters
    ----------
    config : Config
        The index's settings (sample size, vocabulary, ``hamming_embedding``).
    n_images : int
        Catalog size.
    describe : callable
        Describes the images at the given input positions, in order, yielding an
        :class:`ImageDescription` or a failure (any other object) for each.
    progress : bool or None
        Progress of the training (None: when stderr is a terminal).

    Raises
    ------
    InvalidInputError
        No image of the sample could be read (the first failures are named).
    """
    chosen = training_subset(n_images, config).tolist()
    described = dict(zip(chosen, describe(chosen)))
    good = [i for i in chosen if isinstance(described[i], ImageDescription)]
    if not good:
        raise InvalidInputError("no catalog image could be read; see the failures: " +
                                "; ".join(str(getattr(described[i], "error", described[i]))
                                          for i in chosen[:5]))
    vocabulary, words = train_vocabulary(config, [described[i].features for i in good],
                                         progress=progress)
    known = {i: (w, feature_signatures(vocabulary, described[i].features, w,
                                       config.hamming_embedding)) for i, w in zip(good, words)}
    for i in good:
        described[i] = without_descriptors(described[i])
    return TrainedSample(vocabulary, described, known)
