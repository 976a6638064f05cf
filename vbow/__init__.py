"""vbow: product image search with classical computer vision.

SIFT (RootSIFT) or ORB local features, a visual vocabulary tree, TF-IDF bags of visual words
fused with colour histograms in an inverted index, and RANSAC re-ranking of the shortlist.

>>> import vbow
>>> index = vbow.ImageIndex("sift")
>>> index.build(["catalog/a.jpg", "catalog/b.jpg"], keys=["SKU-A", "SKU-B"])
>>> index.search("photo.jpg").best

The public names below are imported on first use (PEP 562), so ``import vbow`` is fast and
the numpy-only search core (:mod:`vbow.search`) imports without OpenCV.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> module that defines it
_EXPORTS = {
    "ImageIndex": "vbow.index",
    "Config": "vbow.config", "PRESETS": "vbow.config", "get_config": "vbow.config",
    "read_image": "vbow.describe.image_input", "ImageArray": "vbow.describe.image_array",
    "FeatureExtractor": "vbow.describe.features", "LocalFeatures": "vbow.describe.features",
    "ImageDescription": "vbow.describe.extraction",
    "KMeansVocabulary": "vbow.vocab.kmeans_vocabulary",
    "HammingVocabulary": "vbow.vocab.hamming_vocabulary",
    "Match": "vbow.results", "SearchResult": "vbow.results", "AddReport": "vbow.results",
    "ImageFailure": "vbow.results",
    **{name: "vbow.errors" for name in (
        "VbowError", "ImageError", "ImageDecodeError", "ImageTooLargeError", "ImageTypeError",
        "InvalidInputError", "NotFittedError",
        "UnknownOptionError", "BundleError", "BundleFormatError", "BundleVersionError",
        "DatasetError")},
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'vbow' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # pragma: no cover
    from vbow.config import PRESETS, Config, get_config
    from vbow.describe.extraction import ImageDescription
    from vbow.describe.features import FeatureExtractor, LocalFeatures
    from vbow.describe.image_array import ImageArray
    from vbow.describe.image_input import read_image
    from vbow.errors import (BundleError, BundleFormatError, BundleVersionError, DatasetError,
                             ImageDecodeError, ImageError, ImageTooLargeError, ImageTypeError,
                             InvalidInputError, NotFittedError, UnknownOptionError, VbowError)
    from vbow.index import ImageIndex
    from vbow.results import AddReport, ImageFailure, Match, SearchResult
    from vbow.vocab.hamming_vocabulary import HammingVocabulary
    from vbow.vocab.kmeans_vocabulary import KMeansVocabulary
