"""vbow: product image search with classical computer vision.

SIFT (RootSIFT) or ORB local features, a visual vocabulary tree, TF-IDF bags of visual words
fused with colour histograms in an inverted index, and RANSAC re-ranking of the shortlist.

>>> import vbow
>>> index = vbow.ImageIndex("sift")
>>> index.build(["catalog/a.jpg", "catalog/b.jpg"], keys=["SKU-A", "SKU-B"])
>>> index.search("photo.jpg").best
"""

__version__ = "0.1.0"

from vbow.config import PRESETS, Config, get_config  # noqa: E402
from vbow.errors import (BundleError, BundleFormatError, BundleVersionError, DatasetError,  # noqa: E402
                     ImageDecodeError, ImageError, InvalidInputError, NotFittedError,
                     UnknownOptionError, VbowError)
from vbow.describe.extraction import ImageFeatures  # noqa: E402
from vbow.describe.features import FeatureExtractor, Features  # noqa: E402
from vbow.describe.image_input import read_image  # noqa: E402
from vbow.index import ImageIndex  # noqa: E402
from vbow.results import AddReport, ImageFailure, Match, SearchResult  # noqa: E402
from vbow.vocab.vocabulary import HammingVocabulary, KMeansVocabulary  # noqa: E402

__all__ = [
    "__version__", "ImageIndex", "Config", "PRESETS", "get_config", "read_image",
    "FeatureExtractor", "Features", "ImageFeatures", "KMeansVocabulary", "HammingVocabulary",
    "Match", "SearchResult", "AddReport", "ImageFailure",
    "VbowError", "ImageError", "ImageDecodeError", "InvalidInputError", "NotFittedError",
    "UnknownOptionError", "BundleError", "BundleFormatError", "BundleVersionError", "DatasetError",
]
