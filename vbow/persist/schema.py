"""The index's persistence schema: which arrays and manifest fields a saved index holds.

The data structures hand plain arrays (or :class:`vbow.search.lazy_array.LazyArray`
descriptions of them) to :func:`write_index`, which names them and writes one bundle
(:mod:`vbow.persist.bundle`); :func:`read_index` reads a bundle back into the same parts.

Array names: ``vocab_*`` (the vocabulary, :meth:`Vocabulary.to_arrays`), ``postings_*``
(:meth:`InvertedIndex.bundle_arrays`), ``kp_*`` (:meth:`KeypointStore.bundle_arrays`), and the
catalog's ``keys_blob``, ``keys_offsets``, ``meta_blob``, ``meta_offsets``, ``colour``,
``scale``, ``image_size`` (:meth:`Catalog.to_arrays`). Hamming embedding adds, when present,
``vocab_he_projection`` and ``vocab_he_thresholds`` (every vocabulary trained since), and with
``Config.hamming_embedding`` ``postings_signatures``; each is listed in the manifest's arrays like
the others, and bundles without them load as before. (Bundles of an earlier release also hold
``kp_signatures``, one per feature; they load, and that array is ignored.)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from vbow import __version__
from vbow.config import Config
from vbow.errors import BundleFormatError
from vbow.persist.bundle import load_bundle, save_bundle
from vbow.persist.validate import validate_index_bundle
from vbow.search.catalog import Catalog
from vbow.search.inverted_index import InvertedIndex
from vbow.verify.keypoint_store import KeypointStore
from vbow.vocab.hamming_vocabulary import HammingVocabulary
from vbow.vocab.kmeans_vocabulary import KMeansVocabulary
from vbow.vocab.vocabulary import Vocabulary

__all__ = ["FORMAT", "FORMAT_VERSION", "IndexParts", "write_index", "read_index"]

FORMAT = "vbow-index"
FORMAT_VERSION = 2  # 2: postings packed as uint32 (doc << 2 | tf code); 1 still loads
_VOCAB_CLASSES = {"kmeans": KMeansVocabulary, "hamming": HammingVocabulary}

#: Settings added after the first bundles were written, with the value that reproduces how
#: those bundles were built (a bundle without the key predates the setting).
_LEGACY_SETTINGS = {"min_side": 0}
_LEGACY_COLOUR_SETTINGS = {"border_suppression": 0.0, "soft_binning": False, "bands": 0}


def _with_legacy_defaults(settings: Mapping[str, Any]) -> dict[str, Any]:
    out = {**_LEGACY_SETTINGS, **settings}
    if isinstance(out.get("colour"), Mapping):
        out["colour"] = {**_LEGACY_COLOUR_SETTINGS, **out["colour"]}
    return out


@dataclass
class IndexParts:
    """The parts of a saved index."""

    config: Config
    vocabulary: Vocabulary
    postings: InvertedIndex
    store: KeypointStore
    catalog: Catalog


def write_index(path: str | os.PathLike, parts: IndexParts, n_images: int) -> Path:
    """Write ``parts`` (with no removed images left) as a bundle directory, atomically.

    Returns
    -------
    Path
        The bundle directory.
    """
    vocab = parts.vocabulary
    arrays: dict[str, Any] = {f"vocab_{k}": v for k, v in vocab.to_arrays().items()}
    arrays.update({f"postings_{k}": v for k, v in parts.postings.bundle_arrays().items()})
    arrays.update(parts.store.bundle_arrays())
    arrays.update(parts.catalog.to_arrays())
    manifest = {"vbow_version": __version__, "n_images": int(n_images),
                "config": parts.config.to_dict(),
                "vocabulary": {"params": vocab.get_params(), "state": vocab.state_params(),
                               "n_words": vocab.n_words_}}
    return save_bundle(path, FORMAT, FORMAT_VERSION, manifest, arrays)


def read_index(path: str | os.PathLike, *, mmap: bool = True,
               verify_checksums: bool = True) -> IndexParts:
    """Read a bundle written by :func:`write_index` (or an older supported version).

    Raises
    ------
    BundleError
        Missing, truncated, corrupt, inconsistent, or of an unknown format version; names the file.
    """
    manifest, arrays = load_bundle(path, FORMAT, FORMAT_VERSION, mmap=mmap,
                                   verify_checksums=verify_checksums)
    validate_index_bundle(manifest, arrays, path)  # structure, before any object is built
    manifest_path = Path(path) / "manifest.json"
    try:
        config = Config(**_with_legacy_defaults(manifest["config"]))
        vinfo = manifest["vocabulary"]
        vocab_cls = _VOCAB_CLASSES[vinfo["state"]["kind"]]
        vocab = vocab_cls.from_arrays(vinfo["params"], vinfo["state"],
                                      {k[len("vocab_"):]: v for k, v in arrays.items()
                                       if k.startswith("vocab_")})
        postings = InvertedIndex.from_arrays(
            vocab.n_words_, config.burstiness,
            {k[len("postings_"):]: v for k, v in arrays.items() if k.startswith("postings_")})
        store = KeypointStore.from_arrays(vocab.n_words_, arrays)
        catalog = Catalog.from_arrays(config.colour.n_bins, arrays)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BundleFormatError(f"inconsistent bundle: {type(exc).__name__}: {exc}",
                                manifest_path) from None
    if not (len(catalog) == store.n_images == postings.n_docs):
        raise BundleFormatError("inconsistent bundle: per-image arrays disagree in length",
                                manifest_path)
    return IndexParts(config, vocab, postings, store, catalog)

