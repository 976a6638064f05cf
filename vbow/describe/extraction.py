"""Per-image work shared by indexing and querying: load, detect, describe, colour.

:func:`extract_many` runs it over many inputs, in parallel worker processes (joblib) when there
are enough of them, yielding each image's result or its failure in input order, so a batch job
reports bad files and carries on.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Iterator, Sequence

import cv2
import numpy as np

from vbow.describe.colour import ColourHistogram
from vbow.errors import ImageError
from vbow.describe.features import FeatureExtractor, Features
from vbow.describe.image_input import ImageInput, load_image, source_name
from vbow.progress import Progress
from vbow.results import ImageFailure

__all__ = ["ImageFeatures", "Extractor", "extract_many", "upscale_min_side"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageFeatures:
    """Everything vbow computes from one image.

    Attributes
    ----------
    name : str
        The input's name (path or description).
    features : Features
        Local features in processed-image pixels.
    colour : np.ndarray
        ``(n_bins,) float32`` sqrt colour histogram.
    scale : float
        Original pixels per processed pixel (> 1 when downscaled, < 1 when upscaled).
    """

    name: str
    features: Features
    colour: np.ndarray
    scale: float


@dataclass(frozen=True)
class Extractor:
    """Picklable bundle of the per-image settings."""

    features: FeatureExtractor
    colour: ColourHistogram
    max_side: int
    min_side: int = 0

    def __call__(self, source: ImageInput, name: str | None = None) -> ImageFeatures:
        """Load and describe one image; raises :class:`vbow.errors.ImageError` for bad input.

        Images whose longer side is above ``max_side`` are downscaled to it; images whose longer
        side is below ``min_side`` are upscaled to it (bicubic), so thumbnails still yield
        enough keypoints. Colour is computed on the image as loaded.
        """
        label = source_name(source, name)
        image, original = load_image(source, max_side=self.max_side, name=label)
        colour = self.colour.compute(image)
        image = upscale_min_side(image, self.min_side)
        scale = max(original) / max(image.shape[:2])
        return ImageFeatures(label, self.features.extract(image), colour, float(scale))


def upscale_min_side(image: np.ndarray, min_side: int) -> np.ndarray:
    """Upscale (bicubic) so the longer side is at least ``min_side``; larger images unchanged.

    Parameters
    ----------
    image : np.ndarray
        ``(h, w)`` or ``(h, w, 3) uint8``.
    min_side : int
        Target for the longer side (0 disables).

    Returns
    -------
    np.ndarray
        The same array, or a resized ``uint8`` copy.
    """
    longest = max(image.shape[:2])
    if min_side <= 0 or longest >= min_side or longest == 0:
        return image
    factor = min_side / longest
    size = (max(1, round(image.shape[1] * factor)), max(1, round(image.shape[0] * factor)))
    return cv2.resize(image, size, interpolation=cv2.INTER_CUBIC)


def _work_chunk(extractor: Extractor, sources: Sequence[ImageInput],
                names: Sequence[str]) -> list[ImageFeatures | ImageFailure]:
    out: list[ImageFeatures | ImageFailure] = []
    for source, name in zip(sources, names):
        try:
            out.append(extractor(source, name))
        except ImageError as exc:
            out.append(ImageFailure(name, str(exc), type(exc).__name__))
    return out


def resolve_jobs(n_jobs: int) -> int:
    """Number of worker processes for ``n_jobs`` (-1 = all cores)."""
    cores = os.cpu_count() or 1
    return cores if n_jobs < 0 else max(1, min(int(n_jobs), cores))


def extract_many(extractor: Extractor, sources: Sequence[ImageInput], *, n_jobs: int = -1,
                 names: Sequence[str] | None = None, progress: bool | None = None,
                 description: str = "features", chunk: int = 8
                 ) -> Iterator[ImageFeatures | ImageFailure]:
    """Describe many images, in input order, in parallel when worthwhile.

    Parameters
    ----------
    extractor : Extractor
        Per-image settings.
    sources : sequence of image inputs
        Paths, bytes or arrays.
    n_jobs : int
        Worker processes (-1 = all cores, 1 = in this process).
    names : sequence of str, optional
        Names for error messages (default: the paths).
    progress : bool or None
        Show a progress bar (None: when stderr is a terminal).

    Yields
    ------
    ImageFeatures or ImageFailure
        One per input, in order.
    """
    labels = [source_name(s, n) for s, n in zip(sources, names or [None] * len(sources))]
    jobs = resolve_jobs(n_jobs)
    chunks = [(sources[i:i + chunk], labels[i:i + chunk]) for i in range(0, len(sources), chunk)]
    with Progress(len(sources), description, progress) as bar:
        if jobs == 1 or len(chunks) <= 1:
            for src, lab in chunks:
                results = _work_chunk(extractor, src, lab)
                bar.update(len(results))
                yield from results
            return
        from joblib import Parallel, delayed

        parallel = Parallel(n_jobs=jobs, return_as="generator", pre_dispatch="2*n_jobs")
        for results in parallel(delayed(_work_chunk)(extractor, src, lab) for src, lab in chunks):
            bar.update(len(results))
            yield from results
