"""Local features: SIFT with RootSIFT (default), ORB, or ORB keypoints with TEBLID
descriptors, with keypoint geometry kept.

A :class:`LocalFeatures` holds, for one image, the keypoint geometry used by geometric verification
and the descriptors used by the vocabulary. Keypoints are capped at ``max_keypoints`` (strongest
first). :class:`vbow.describe.extraction.ImageDescription` wraps it with what else vbow keeps
of an image (colour, scale).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from vbow.errors import InvalidInputError, UnknownOptionError

__all__ = ["LocalFeatures", "FeatureExtractor", "root_sift", "DESCRIPTOR_SHAPES", "BINARY_METHODS",
           "empty_features"]

logger = logging.getLogger(__name__)

FeatureMethod = Literal["sift", "orb", "teblid"]
#: Images narrower or shorter than this many pixels have no keypoints (not an error).
MIN_SIDE = 4
METHODS: tuple[str, ...] = ("sift", "orb", "teblid")

#: Descriptor width and dtype per method.
DESCRIPTOR_SHAPES: dict[str, tuple[int, np.dtype]] = {
    "sift": (128, np.dtype(np.float32)),
    "orb": (32, np.dtype(np.uint8)),
    "teblid": (32, np.dtype(np.uint8)),
}
#: Methods whose descriptors are packed bits (Hamming vocabularies).
BINARY_METHODS: tuple[str, ...] = ("orb", "teblid")
#: TEBLID's sampling window for ORB keypoints (OpenCV's documented scale for them).
_TEBLID_SCALE_FOR_ORB = 1.0


@dataclass(frozen=True)
class LocalFeatures:
    """Local features of one image.

    Attributes
    ----------
    keypoints : np.ndarray
        ``(n, 4) float32``: x, y (pixels in the processed image), scale (keypoint diameter in
        pixels, OpenCV's ``size``) and angle (degrees, 0..360, -1 if undefined).
    descriptors : np.ndarray
        ``(n, 128) float32`` (RootSIFT/SIFT) or ``(n, 32) uint8`` (ORB or TEBLID, 256 packed
        bits).
    image_size : tuple of int
        ``(width, height)`` of the processed image the keypoints refer to.
    """

    keypoints: np.ndarray
    descriptors: np.ndarray
    image_size: tuple[int, int]

    def __len__(self) -> int:
        return int(self.keypoints.shape[0])


def empty_features(method: str, image_size: tuple[int, int] = (0, 0)) -> LocalFeatures:
    """Features with no keypoints: ``(0, 4)`` keypoints and ``(0, d)`` descriptors."""
    dim, dtype = DESCRIPTOR_SHAPES[method]
    return LocalFeatures(np.zeros((0, 4), np.float32), np.zeros((0, dim), dtype), image_size)


def root_sift(descriptors: np.ndarray) -> np.ndarray:
    """RootSIFT (Arandjelović & Zisserman 2012): L1-normalise, then take the square root.

    Parameters
    ----------
    descriptors : np.ndarray
        ``(n, 128)`` non-negative SIFT descriptors, any float or integer dtype.

    Returns
    -------
    np.ndarray
        ``(n, 128) float32`` descriptors with unit L2 norm (zero rows stay zero).
    """
    d = np.asarray(descriptors, dtype=np.float32)
    norms = d.sum(axis=1, keepdims=True)
    np.maximum(norms, 1e-12, out=norms)
    return np.sqrt(d / norms, dtype=np.float32)


class _DetectThenDescribe:
    """One detector's keypoints described by another OpenCV extractor, with the
    ``detectAndCompute`` call of a single OpenCV feature object."""

    def __init__(self, detector, describer) -> None:
        self.detector = detector
        self.describer = describer

    def detectAndCompute(self, gray: np.ndarray, mask):  # noqa: N802 (OpenCV's name)
        keypoints = self.detector.detect(gray, mask)
        if not keypoints:
            return keypoints, None
        return self.describer.compute(gray, keypoints)


class FeatureExtractor:
    """Detect keypoints and compute descriptors.

    Parameters
    ----------
    method : {"sift", "orb", "teblid"}
        ``"sift"`` gives 128-d float descriptors (RootSIFT unless ``root_sift=False``); ``"orb"``
        gives 256-bit binary descriptors packed in 32 bytes, for low-power use; ``"teblid"``
        keeps ORB's keypoints and describes them with TEBLID (Suárez et al. 2021, OpenCV
        contrib's ``xfeatures2d``): 256 bits too, learned by boosting differences of box
        averages. In ``benchmarks/results/accuracy.md`` (``orb`` against ``orb-rbrief``) it
        costs about the same to extract and finds the right product more often than ORB's own
        descriptors.
    max_keypoints : int
        Keep at most this many keypoints per image, the strongest first.
    root_sift : bool
        Apply RootSIFT to SIFT descriptors (ignored for ORB).
    contrast_threshold : float
        SIFT's contrast threshold (lower gives more keypoints on flat or small images).
    fast_threshold : int
        ORB's FAST threshold.
    """

    def __init__(self, method: FeatureMethod = "sift", max_keypoints: int = 1000, *,
                 root_sift: bool = True, contrast_threshold: float = 0.04,
                 fast_threshold: int = 20) -> None:
        if method not in METHODS:
            raise UnknownOptionError("feature method", method, METHODS)
        if int(max_keypoints) < 1:
            raise InvalidInputError(f"max_keypoints must be >= 1; got {max_keypoints}")
        self.method = method
        self.max_keypoints = int(max_keypoints)
        self.root_sift = bool(root_sift)
        self.contrast_threshold = float(contrast_threshold)
        self.fast_threshold = int(fast_threshold)
        self._local = threading.local()  # one OpenCV detector per thread

    def get_params(self) -> dict:
        """The constructor parameters, as saved in bundle manifests."""
        return {"method": self.method, "max_keypoints": self.max_keypoints,
                "root_sift": self.root_sift, "contrast_threshold": self.contrast_threshold,
                "fast_threshold": self.fast_threshold}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"FeatureExtractor({args})"

    @property
    def descriptor_shape(self) -> tuple[int, np.dtype]:
        """``(dim, dtype)`` of the descriptors this extractor makes."""
        return DESCRIPTOR_SHAPES[self.method]

    def _make_detector(self):
        if self.method == "sift":
            return cv2.SIFT_create(nfeatures=self.max_keypoints,
                                   contrastThreshold=self.contrast_threshold)
        orb = cv2.ORB_create(nfeatures=self.max_keypoints, scaleFactor=1.2, nlevels=8,
                             edgeThreshold=19, patchSize=31, fastThreshold=self.fast_threshold,
                             scoreType=cv2.ORB_HARRIS_SCORE)
        if self.method == "orb":
            return orb
        return _DetectThenDescribe(orb, cv2.xfeatures2d.TEBLID_create(
            _TEBLID_SCALE_FOR_ORB, cv2.xfeatures2d.TEBLID_SIZE_256_BITS))

    def __getstate__(self) -> dict:  # OpenCV detectors cannot be sent to worker processes
        state = self.__dict__.copy()
        del state["_local"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

    def extract(self, image: np.ndarray) -> LocalFeatures:
        """Compute features of one canonical image.

        Parameters
        ----------
        image : np.ndarray
            ``(h, w, 3) uint8`` BGR or ``(h, w) uint8`` gray (see :func:`vbow.read_image`).

        Returns
        -------
        LocalFeatures
            Possibly empty (an image with no texture has no keypoints, nor one with a side
            under :data:`MIN_SIDE` pixels; that is not an error).
        """
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim not in (2, 3):
            got = f"{image.shape} {image.dtype}" if isinstance(image, np.ndarray) else type(image).__name__
            raise InvalidInputError(f"image must be (h, w, 3) or (h, w) uint8; got {got}")
        if image.ndim == 3 and image.shape[2] != 3:
            raise InvalidInputError(f"image must have 3 channels (BGR); got shape {image.shape}")
        size = (int(image.shape[1]), int(image.shape[0]))
        if min(size) < MIN_SIDE:  # no detector has room for a keypoint (ORB's pyramid fails)
            return empty_features(self.method, size)
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        detector = getattr(self._local, "detector", None)
        if detector is None:  # OpenCV does not promise that one detector object is reentrant
            detector = self._local.detector = self._make_detector()
        try:
            kps, desc = detector.detectAndCompute(gray, None)
        except cv2.error as exc:
            raise InvalidInputError(f"OpenCV's {self.method} detector failed on a {size[0]}x"
                                    f"{size[1]} image: {exc}") from None
        if desc is None or len(kps) == 0:
            return empty_features(self.method, size)
        if len(kps) > self.max_keypoints:  # SIFT may return a few extra on ties
            order = np.argsort([-k.response for k in kps], kind="stable")[: self.max_keypoints]
            kps = [kps[i] for i in order]
            desc = desc[order]
        geometry = np.array([(k.pt[0], k.pt[1], k.size, k.angle) for k in kps], dtype=np.float32)
        if self.method == "sift":
            desc = root_sift(desc) if self.root_sift else np.asarray(desc, np.float32)
        else:
            desc = np.ascontiguousarray(desc, dtype=np.uint8)
        return LocalFeatures(geometry, desc, size)
