"""Per-image work shared by indexing and querying: load, detect, describe, colour.

:func:`extract_many` runs it over many inputs, in parallel worker processes (joblib) when there
are enough of them, yielding each image's result or its failure in input order, so a batch job
reports bad files and carries on.

Failures are per item: a bad file, an unreadable header, an OpenCV error or an item that is not an
image at all (None, a number) becomes an :class:`~vbow.results.ImageFailure` naming that item,
and the rest of the batch goes on. File objects and ``PIL.Image`` objects are read in the calling
process (they cannot be sent to worker processes); everything else is read by the workers.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
import dataclasses
from dataclasses import dataclass
from typing import Iterator, Sequence

import cv2
import numpy as np

from vbow.describe.colour import ColourHistogram
from vbow.errors import ImageError, ImageTooLargeError, InvalidInputError
from vbow.describe.features import FeatureExtractor, LocalFeatures
from vbow.describe.image_input import (DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_PIXELS, ImageInput,
                                       load_image, source_name)
from vbow.describe.image_sources import (is_binary_stream, is_pil_image, pil_source,
                                         read_stream)
from vbow.progress import Progress
from vbow.results import ImageFailure

__all__ = ["ImageDescription", "ImageDescriber", "extract_many", "upscale_min_side",
           "without_descriptors", "opencv_threads"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageDescription:
    """Everything vbow computes from one image: what :class:`ImageDescriber` returns.

    Its ``features`` (:class:`~vbow.describe.features.LocalFeatures`, keypoints and
    descriptors) feed the vocabulary and verification; ``colour`` feeds fusion.

    Attributes
    ----------
    name : str
        The input's name (path or description).
    features : LocalFeatures
        Local features in processed-image pixels.
    colour : np.ndarray
        ``(n_bins,) float32`` sqrt colour histogram.
    scale : float
        Original pixels per processed pixel (> 1 when downscaled, < 1 when upscaled).
    """

    name: str
    features: LocalFeatures
    colour: np.ndarray
    scale: float

    @property
    def has_features(self) -> bool:
        """False for an image with no keypoints (black, uniform, tiny or a thin strip).

        Such an image can be indexed (colour still describes it) but no visual word or
        geometric check can ever match it; index reports and search results flag it.
        """
        return len(self.features) > 0


@dataclass(frozen=True)
class ImageDescriber:
    """Load an image and describe it: local features (a ``FeatureExtractor``) and colour.

    A picklable bundle of the per-image settings, sent to the worker processes of
    :func:`extract_many`.

    ``max_pixels`` and ``max_file_bytes`` are the input limits of :func:`load_image` (see
    ``Config.max_pixels`` / ``Config.max_file_bytes``).
    """

    features: FeatureExtractor
    colour: ColourHistogram
    max_side: int
    min_side: int = 0
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES

    def __call__(self, source: ImageInput, name: str | None = None) -> ImageDescription:
        """Load and describe one image; raises :class:`vbow.errors.ImageError` for bad input.

        Images whose longer side is above ``max_side`` are downscaled to it; images whose longer
        side is below ``min_side`` are upscaled to it (bicubic), so thumbnails still yield
        enough keypoints. Colour is computed on the image as loaded.
        """
        label = source_name(source, name)
        if isinstance(source, _Refused):
            raise source.error
        image, original = load_image(source, max_side=self.max_side, name=label,
                                     max_pixels=self.max_pixels,
                                     max_file_bytes=self.max_file_bytes)
        try:
            colour = self.colour.compute(image)
            image = upscale_min_side(image, self.min_side)
            scale = max(original) / max(image.shape[:2])
            features = self.features.extract(image)
        except (cv2.error, InvalidInputError) as exc:
            raise ImageError(f"cannot describe the decoded image {image.shape}: {exc}",
                             label) from None
        except MemoryError:
            raise ImageTooLargeError("ran out of memory describing the image", label) from None
        return ImageDescription(label, features, colour, float(scale))

    def prepare(self, source: ImageInput, name: str) -> ImageInput:
        """Read what cannot cross to a worker process: file objects to bytes, PIL images to arrays.

        Errors are kept, to be raised for this item by :meth:`__call__` in the worker.
        """
        try:
            if is_binary_stream(source):
                return read_stream(source, self.max_file_bytes, name)
            if is_pil_image(source):
                return pil_source(source, self.max_pixels, self.max_file_bytes, name)
        except ImageError as exc:
            return _Refused(exc)
        return source


@dataclass(frozen=True)
class _Refused:
    """An item that failed while being prepared in the calling process."""

    error: ImageError


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


def without_descriptors(feats: ImageDescription) -> ImageDescription:
    """The same image with its descriptors dropped (what indexing needs once words are known)."""
    f = feats.features
    empty = np.zeros((0,) + f.descriptors.shape[1:], f.descriptors.dtype)
    return dataclasses.replace(feats, features=dataclasses.replace(f, descriptors=empty))


def _work_chunk(extractor: ImageDescriber, sources: Sequence[ImageInput],
                names: Sequence[str]) -> list[ImageDescription | ImageFailure]:
    out: list[ImageDescription | ImageFailure] = []
    for source, name in zip(sources, names):
        try:
            out.append(extractor(source, name))
        except ImageError as exc:
            out.append(ImageFailure(name, str(exc), type(exc).__name__))
        except Exception as exc:  # a bug, not bad input: report it, and keep the batch going
            logger.error("unexpected error describing %s", name, exc_info=True)
            out.append(ImageFailure(name, f"{name}: unexpected {type(exc).__name__}: {exc}",
                                    type(exc).__name__))
    return out


def _work_chunk_on_one_thread(extractor: ImageDescriber, sources: Sequence[ImageInput],
                              names: Sequence[str]) -> list[ImageDescription | ImageFailure]:
    """:func:`_work_chunk` in a worker process that is one of ``n_jobs``: OpenCV's own thread
    pool is set to one thread there (for the life of that worker process), so that the
    processes, not OpenCV's threads inside each of them, share the cores."""
    cv2.setNumThreads(1)
    return _work_chunk(extractor, sources, names)


@contextmanager
def opencv_threads(n: int) -> Iterator[None]:
    """Run the block with OpenCV's thread pool at ``n`` threads, and restore it after.

    For a process that is itself one unit of parallelism, such as a single-threaded Dask
    worker: left at its default, OpenCV spreads each image's SIFT over every core, and workers
    on one machine contend for them. Process-wide: other threads' OpenCV calls in this process
    run on ``n`` threads too while the block runs.
    """
    before = cv2.getNumThreads()
    cv2.setNumThreads(int(n))
    try:
        yield
    finally:
        cv2.setNumThreads(before)


def resolve_jobs(n_jobs: int) -> int:
    """Number of worker processes for ``n_jobs`` (-1 = all cores)."""
    cores = os.cpu_count() or 1
    return cores if n_jobs < 0 else max(1, min(int(n_jobs), cores))


def extract_many(extractor: ImageDescriber, sources: Sequence[ImageInput], *, n_jobs: int = -1,
                 names: Sequence[str] | None = None, progress: bool | None = None,
                 description: str = "features", chunk: int = 8
                 ) -> Iterator[ImageDescription | ImageFailure]:
    """Describe many images, in input order, in parallel when worthwhile.

    Parameters
    ----------
    extractor : ImageDescriber
        Per-image settings.
    sources : sequence of image inputs
        Paths, bytes, arrays, :class:`~vbow.describe.image_array.ImageArray`, ``PIL.Image`` or
        binary file objects; any other item fails alone (:class:`vbow.errors.ImageTypeError`).
    n_jobs : int
        Worker processes (-1 = all cores, 1 = in this process).
    names : sequence of str, optional
        Names for error messages (default: the paths).
    progress : bool or None
        Show a progress bar (None: when stderr is a terminal).

    Yields
    ------
    ImageDescription or ImageFailure
        One per input, in order.
    """
    labels = [source_name(s, n) for s, n in zip(sources, names or [None] * len(sources))]
    prepare = getattr(extractor, "prepare", None)  # any picklable callable may stand in
    sources = [prepare(s, lab) for s, lab in zip(sources, labels)] if prepare else list(sources)
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
        for results in parallel(delayed(_work_chunk_on_one_thread)(extractor, src, lab)
                                for src, lab in chunks):
            bar.update(len(results))
            yield from results
