"""Engine settings and the named presets (``"sift"`` for accuracy, ``"orb"`` for low power)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vbow.describe.colour import ColourHistogram
from vbow.errors import InvalidInputError, UnknownOptionError
from vbow.describe.features import METHODS
from vbow.verify.rounds import EarlyStop
from vbow.verify.verification import MODELS
from vbow.search.weighting import BURSTINESS

__all__ = ["Config", "PRESETS", "get_config", "IDF_SOURCES"]

IDF_SOURCES: tuple[str, ...] = ("vocabulary", "database")



_NUMBER_KINDS = {"int": (int, np.integer), "float": (int, float, np.integer, np.floating)}


def _check_field_types(config: "Config") -> None:
    """Every setting has its declared type: ``int`` settings take ints (not bools or floats),
    ``float`` ones finite numbers, ``bool`` ones bools, ``str`` ones strings; ``| None`` allows
    None. Raises :class:`InvalidInputError` naming the setting, the value and the type wanted."""
    for f in dataclasses.fields(config):
        declared = str(f.type).replace(" ", "")
        value = getattr(config, f.name)
        optional = declared.endswith("|None")
        kind = declared[:-len("|None")] if optional else declared
        if value is None and optional:
            continue
        if kind in _NUMBER_KINDS:
            ok = isinstance(value, _NUMBER_KINDS[kind]) and not isinstance(value, (bool, np.bool_))
            if ok and kind == "float":
                ok = math.isfinite(float(value))
        elif kind == "bool":
            ok = isinstance(value, (bool, np.bool_))
        elif kind == "str":
            ok = isinstance(value, str)
        else:
            continue
        if not ok:
            wanted = {"int": "an int", "float": "a finite number", "bool": "a bool",
                      "str": "a str"}[kind] + (" or None" if optional else "")
            raise InvalidInputError(f"setting {f.name} must be {wanted}; got "
                                    f"{type(value).__name__} {value!r:.60}")


@dataclass(frozen=True)
class Config:
    """Every setting of an :class:`vbow.ImageIndex`. Build one with :func:`get_config`.

    Features
        ``method`` ("sift", "orb", or "teblid": ORB's keypoints with TEBLID descriptors),
        ``max_keypoints`` per image, ``max_side`` (images are downscaled so the longer side is
        at most this), ``min_side`` (images whose longer side is smaller are upscaled to it, so
        thumbnails yield enough keypoints; 0 = never),
        ``contrast_threshold`` (SIFT), ``fast_threshold`` (ORB and TEBLID).
    Vocabulary
        ``n_words`` (target size), ``probes`` (coarse cells searched per descriptor),
        ``max_training_descriptors`` (reservoir sample size), ``max_training_images`` (images
        whose features train the vocabulary in :meth:`ImageIndex.build`).
    Bag of words
        ``burstiness`` ("sqrt", "log" or "none"), ``idf_source``: "vocabulary" (IDF learned with
        the vocabulary from its training images: adding images never changes other entries) or
        "database" (IDF recomputed over the indexed images whenever the index changes),
        ``query_assignments`` (multiple assignment: words per query descriptor, 1 = off) and
        ``assignment_sigma`` (soft weight bandwidth), ``max_postings`` (query postings budget:
        at most about this many postings are read per query, taking the query's words by
        decreasing weight per posting, so the long lists of frequent words are skipped first on
        very large catalogs; ``None`` reads them all). The default, 8,000,000, does not bind
        at 100,000 images (about 2M postings read per query at p95, growing about linearly
        with the catalog, so up to roughly 400,000); at a million images it keeps re-ranked
        recall@1 at 0.685 against 0.73 for reading every posting, at about half the re-ranked
        median latency (see ``benchmarks/results/scale.md``).
    Colour fusion
        ``colour``: :class:`vbow.describe.colour.ColourHistogram` settings; ``colour_weight`` ``w`` in
        the rule ``fused = z(bow) + w * z(colour)``, where ``bow`` is the TF-IDF cosine,
        ``colour`` the Bhattacharyya coefficient of the two colour histograms, and ``z``
        standardises a score (subtract the mean, divide by the standard deviation) over the images
        whose colour is compared (see ``colour_candidates`` and :mod:`vbow.search.fusion`).
        Standardising makes the rule independent of each score's scale (a cover photographed
        under odd light keeps its strong word score, while colour still separates textureless
        or 3-D objects), and taking both over the same images keeps it independent of the
        catalog's size. ``w = 0`` disables colour. The default, 5,
        is one setting for every benchmark (``benchmarks/results/accuracy.md``): 3-D objects
        turned on a turntable (coil100) need a strong colour vote, and the re-ranking shortlist
        takes half its images by words alone so that colour cannot push a verifiable product
        out of it (shelf photos, grocery_packages). It is tuned for re-ranked search: with
        ``rerank=False`` nothing checks geometry after colour, and flat printed products rank
        better with ``colour_weight=1`` (measured while tuning, not in the benchmark files: recall@1
        without re-ranking, w = 5 → 1, smvs_dvd with distractors 0.55 → 0.76, grocery_packages
        0.16 → 0.44; coil100 mAP 0.91 → 0.82).
        ``colour_candidates``: colour is computed for the images with the best ``bow`` scores, at
        most this many (all of them in catalogs up to that size); the others get the lowest
        colour z-score seen. The word scores are standardised over the same images, counting
        0 for any of them without a shared word.
    Re-ranking
        ``rerank`` (on by default), ``shortlist`` (candidates verified, taken alternately from
        the fused ranking and the bag-of-words ranking when colour is on; ``None`` picks
        ``clip(2 * sqrt(n_images), 20, 200)``), ``model`` ("similarity", "affine" or
        "homography"), ``ransac_threshold`` (pixels of the processed query), ``min_inliers``,
        ``max_fanout`` (words seen more often than this in an image give no correspondences).
        The final score is ``inliers + fused``: verified candidates (``inliers >= min_inliers``)
        gain their inlier count, the others keep their ``fused`` score.
        ``query_expansion``: average query expansion (Chum et al. 2007) from up to this many of
        the best verified results: their bags of words and colour histograms are averaged with
        the query's and the catalog is scored again, so views of the product that share little
        with the query photo but much with its verified matches move up. Only verified results
        are used, so an unverified shortlist never drifts the query. 0 disables it.
        ``early_stop_inliers``: verify the first ``early_stop_round`` candidates of the
        shortlist, and skip the rest when the best of them has at least this many inliers and
        at least ``early_stop_ratio`` times the second best's; otherwise verify the rest in one
        more call (:mod:`vbow.verify.rounds`). Skipped candidates keep their fused scores, and
        a shortlist no longer than the first round is verified in one call. ``None`` always verifies
        the whole shortlist (so does ``verify_all=True`` for one search). The defaults, 15,
        1.5 and 32, verify about two thirds of a 100-candidate shortlist on the scale
        benchmark's real queries, with the same recall@1 at 10,000 and 1,000,000 images, and
        change no preset's figure in ``benchmarks/results/accuracy.md`` for the worse (the
        comparison row with ORB's own descriptors lost one grocery shelf photo of 781).
        Sharded search makes one verify scatter per round, so at most two (see
        ``docs/scaling.md``).
    First stage: Hamming embedding
        ``hamming_embedding``: every indexed feature gets a 64-bit signature of its residual to
        its word (thresholds learned per word with the vocabulary, on catalog-side descriptors;
        :mod:`vbow.vocab.embedding`), summed per posting before binarising (ASMK*), and each
        (query word, posting) term of the cosine is weighted by the selective kernel
        ``(1 - 2h/64) ** he_alpha`` of their Hamming distance ``h`` if ``h <= he_threshold``,
        else 0 (:mod:`vbow.search.embedding`). Costs 8 bytes per posting.
    Other
        ``random_state`` (every random choice), ``n_jobs`` (feature extraction processes; -1 =
        all cores), ``query_threads`` (threads one query may use, at most the CPUs the process
        may run on: with a k-means vocabulary, a query of at least 400 descriptors (800
        descriptor-cell pairs at two probes) quantises its descriptors on this many threads of
        a shared pool, with the same words as on one; a query that reads at least 4M postings of a segment, as in catalogs
        of about a million images, is split by words across them for scoring; smaller
        queries, and 1, run on the calling thread).
    Image input
        ``max_pixels``: encoded images (and ``PIL.Image`` objects) whose header declares more
        than this many pixels (width x height, at full resolution) are refused before decoding,
        with :class:`vbow.errors.ImageTooLargeError`; the default, 89,478,485, is Pillow's
        decompression-bomb threshold (about 9460 x 9460); ``None`` leaves only OpenCV's limit
        (2^30). ``max_file_bytes``: files and file objects longer than this are refused
        (default 512 MiB). Arrays already in memory are not limited.
    """

    method: str = "sift"
    max_keypoints: int = 1000
    max_side: int = 640
    min_side: int = 400
    contrast_threshold: float = 0.04
    fast_threshold: int = 20
    n_words: int = 65536
    probes: int = 2
    max_training_descriptors: int = 1_000_000
    max_training_images: int = 5000
    burstiness: str = "sqrt"
    idf_source: str = "vocabulary"
    query_assignments: int = 3
    assignment_sigma: float = 0.1
    max_postings: int | None = 8_000_000
    colour: ColourHistogram = field(default_factory=ColourHistogram)
    colour_weight: float = 5.0
    colour_candidates: int = 5000
    rerank: bool = True
    shortlist: int | None = None
    model: str = "homography"
    ransac_threshold: float = 6.0
    min_inliers: int = 6
    max_fanout: int = 5
    query_expansion: int = 3
    early_stop_inliers: int | None = 15
    early_stop_ratio: float = 1.5
    early_stop_round: int = 32
    hamming_embedding: bool = False
    he_threshold: int = 24
    he_alpha: float = 3.0
    random_state: int = 0
    n_jobs: int = -1
    query_threads: int = 2
    max_pixels: int | None = 89_478_485
    max_file_bytes: int = 1 << 29

    def __post_init__(self) -> None:
        _check_field_types(self)
        if self.method not in METHODS:
            raise UnknownOptionError("feature method", self.method, METHODS)
        if self.burstiness not in BURSTINESS:
            raise UnknownOptionError("burstiness", self.burstiness, BURSTINESS)
        if self.idf_source not in IDF_SOURCES:
            raise UnknownOptionError("idf_source", self.idf_source, IDF_SOURCES)
        if self.model not in MODELS:
            raise UnknownOptionError("geometric model", self.model, MODELS)
        positive = ("max_keypoints", "max_side", "n_words", "probes", "max_training_descriptors",
                    "max_training_images", "query_assignments", "colour_candidates", "min_inliers",
                    "max_fanout", "query_threads")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise InvalidInputError(f"{name} must be >= 1; got {getattr(self, name)}")
        if not 0 <= self.min_side <= self.max_side:
            raise InvalidInputError(f"min_side must be in 0..max_side; got {self.min_side}")
        if self.max_side > 4095:
            raise InvalidInputError(f"max_side must be <= 4095 (keypoint storage); got {self.max_side}")
        for name in ("max_pixels", "max_file_bytes"):
            value = getattr(self, name)
            if value is None and name == "max_pixels":
                continue
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise InvalidInputError(f"{name} must be an integer >= 1"
                                        f"{' or None' if name == 'max_pixels' else ''}; "
                                        f"got {value!r}")
        if self.max_postings is not None and self.max_postings < 1:
            raise InvalidInputError(f"max_postings must be >= 1 or None; got {self.max_postings}")
        if int(self.query_expansion) < 0:
            raise InvalidInputError(f"query_expansion must be >= 0; got {self.query_expansion}")
        if not 0 <= int(self.he_threshold) <= 64 or not self.he_alpha > 0:
            raise InvalidInputError(f"he_threshold must be in 0..64 and he_alpha > 0; got "
                                    f"{self.he_threshold} and {self.he_alpha}")
        if (self.early_stop_inliers is not None and self.early_stop_inliers < 1) or \
                not self.early_stop_ratio >= 1 or self.early_stop_round < 1:
            raise InvalidInputError(
                f"early_stop_inliers must be >= 1 or None, early_stop_ratio >= 1 and "
                f"early_stop_round >= 1; got {self.early_stop_inliers}, {self.early_stop_ratio} "
                f"and {self.early_stop_round}")
        if self.shortlist is not None and self.shortlist < 1:
            raise InvalidInputError(f"shortlist must be >= 1 or None; got {self.shortlist}")
        if self.colour_weight < 0 or self.assignment_sigma <= 0 or self.ransac_threshold <= 0:
            raise InvalidInputError("colour_weight must be >= 0, assignment_sigma and "
                                    "ransac_threshold > 0")
        if isinstance(self.colour, dict):
            object.__setattr__(self, "colour", ColourHistogram(**self.colour))

    def shortlist_for(self, n_images: int) -> int:
        """Shortlist depth for a catalog of ``n_images`` (see the class docstring)."""
        if self.shortlist is not None:
            return int(self.shortlist)
        return int(min(200, max(20, round(2 * math.sqrt(max(n_images, 1))))))

    def early_stop(self) -> EarlyStop | None:
        """The rule that ends verification early, or None to verify the whole shortlist."""
        if self.early_stop_inliers is None:
            return None
        return EarlyStop(int(self.early_stop_inliers), float(self.early_stop_ratio),
                         int(self.early_stop_round))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable settings (for manifests and reports)."""
        out = dataclasses.asdict(self)
        out["colour"] = self.colour.get_params()
        return out

    def replace(self, **changes: Any) -> "Config":
        """A copy with some settings changed; unknown names raise and list the valid ones."""
        valid = [f.name for f in dataclasses.fields(self)]
        for name in changes:
            if name not in valid:
                raise UnknownOptionError("setting", name, valid)
        return dataclasses.replace(self, **changes)


PRESETS: dict[str, Config] = {
    "sift": Config(),
    # sift-he: sift with a Hamming-embedding first stage, for large catalogs and searches
    # without re-ranking. Same re-ranked accuracy or better on every protocol of
    # benchmarks/results/accuracy.md ("sift-he"); without re-ranking far better on product
    # photos (smvs_dvd + distractors recall@1 0.970 against 0.545) but lower on ukbench and
    # coil100. 8 more bytes per posting (benchmarks/results/scale_he.md).
    "sift-he": Config(hamming_embedding=True),
    # Low power: ORB's keypoints with TEBLID descriptors (method "teblid"), which beat ORB's
    # own descriptors at about the same cost on the headline metric of 5 of the 6 accuracy
    # protocols (benchmarks/results/accuracy.md, "orb" against "orb-rbrief"). Binary
    # descriptors give more chance correspondences: a verified match needs 8 inliers.
    "orb": Config(method="teblid", max_keypoints=1000, n_words=65536, ransac_threshold=8.0,
                  min_inliers=8),
    # edge: one core, small memory (benchmarks/results/edge.md). 450 ORB keypoints with TEBLID
    # descriptors (under 4 KB per image of postings and geometry), two words per query
    # feature, a short re-ranking list and no query expansion (measured while tuning, not in
    # the benchmark files: it cost about a fifth of the query's time and found no more
    # products first).
    "edge": Config(method="teblid", max_keypoints=450, n_words=65536, ransac_threshold=8.0,
                   min_inliers=8, query_assignments=2, shortlist=20, query_expansion=0),
}



def get_config(preset: str | Config = "sift", **overrides: Any) -> Config:
    """The settings of a named preset, with optional overrides.

    Parameters
    ----------
    preset : str or Config
        ``"sift"`` (accuracy, the default) or ``"orb"`` (low power), or a :class:`Config`.
    **overrides
        Any :class:`Config` field.

    Raises
    ------
    UnknownOptionError
        Unknown preset or setting name (the message lists the valid ones).
    """
    if isinstance(preset, Config):
        base = preset
    elif preset in PRESETS:
        base = PRESETS[preset]
    else:
        raise UnknownOptionError("preset", preset, tuple(PRESETS))
    return base.replace(**overrides) if overrides else base
