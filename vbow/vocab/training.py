"""Training a vocabulary for an index, and assigning whole images' descriptors to words.

The vocabulary and its IDF are learned on catalog-side images only, at most
``Config.max_training_images`` of them (a seeded sample, :func:`training_subset`), so the cost
of training is bounded whatever the catalog's size.
"""

from __future__ import annotations

import logging
import time
from typing import Sequence

import numpy as np

from vbow.config import Config
from vbow.describe.features import LocalFeatures
from vbow.errors import InvalidInputError
from vbow.vocab.hamming_vocabulary import HammingVocabulary
from vbow.vocab.kmeans_vocabulary import KMeansVocabulary
from vbow.vocab.vocabulary import Vocabulary

__all__ = ["make_vocabulary", "training_subset", "train_vocabulary", "quantise_images",
           "descriptors32"]

logger = logging.getLogger(__name__)

#: Descriptors assigned in one call of ``Vocabulary.quantise`` (a memory bound).
QUANTISE_BATCH = 200_000


def make_vocabulary(method: str, **params) -> Vocabulary:
    """The vocabulary class for a feature method: ``"sift"`` → k-means, ``"orb"`` → Hamming."""
    return (HammingVocabulary if method == "orb" else KMeansVocabulary)(**params)


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
