"""Named result objects returned by :class:`vbow.ImageIndex`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

import numpy as np

__all__ = ["Match", "SearchResult", "ImageFailure", "AddReport"]


@dataclass(frozen=True)
class Match:
    """One catalog image returned for a query.

    Attributes
    ----------
    key : str
        The catalog image's key (e.g. a SKU).
    score : float
        Final ranking score, ``inliers + fused``, where ``fused`` is the standardised word and
        colour similarity (see :class:`vbow.Config`) and ``inliers`` is 0 when not verified.
    bow_score : float
        TF-IDF cosine similarity of the bags of visual words, in [0, 1]. When query expansion
        ran (``Config.query_expansion``), both similarities are those of the expanded query,
        the ones the ranking used.
    colour_score : float
        Bhattacharyya coefficient of the colour histograms, in [0, 1] (0 when not computed).
    inliers : int
        Geometrically verified correspondences (0 = not verified or verification failed).
    transform : np.ndarray or None
        ``(3, 3) float64`` homography (or affine/similarity in homogeneous form) mapping
        catalog-image pixel coordinates to query-photo pixel coordinates, both in the original
        images' pixels; None if not verified.
    inlier_points : np.ndarray
        ``(inliers, 4) float32`` rows ``(query_x, query_y, catalog_x, catalog_y)`` in original
        pixels: the verified correspondences, for drawing.
    metadata : Mapping
        The metadata stored with the catalog image.
    rank : int
        0-based position in the result list.
    catalog_size : tuple of int or None
        ``(width, height)`` of the catalog image in its original pixels (where ``transform``
        starts), so its outline in the photo is the four corners through ``transform``.
    """

    key: str
    score: float
    bow_score: float
    colour_score: float
    inliers: int
    transform: np.ndarray | None
    inlier_points: np.ndarray
    metadata: Mapping[str, Any]
    rank: int
    catalog_size: tuple[int, int] | None = None

    @property
    def verified(self) -> bool:
        """True if geometric verification found a model with enough inliers."""
        return self.inliers > 0

    def __repr__(self) -> str:
        return (f"Match(rank={self.rank}, key={self.key!r}, score={self.score:.4f}, "
                f"inliers={self.inliers}, bow_score={self.bow_score:.4f}, "
                f"colour_score={self.colour_score:.4f})")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary (no point arrays)."""
        return {"key": self.key, "rank": int(self.rank), "verified": bool(self.verified),
                "score": round(float(self.score), 6),
                "bow_score": round(float(self.bow_score), 6),
                "colour_score": round(float(self.colour_score), 6), "inliers": int(self.inliers),
                "transform": None if self.transform is None else self.transform.tolist(),
                "catalog_size": None if self.catalog_size is None else list(self.catalog_size),
                "metadata": dict(self.metadata)}


@dataclass(frozen=True)
class SearchResult:
    """Ranked matches for one query image.

    Attributes
    ----------
    query : str
        The query's name (its path, or a description of an array / bytes input).
    matches : tuple of Match
        Best first.
    timings : Mapping of str to float
        Seconds spent per stage (``features``, ``quantise``, ``score``, ``rerank``, ``total``).
    warnings : tuple of str
        Why the result may be weak, e.g. a query image with no local features.
    decision : object, optional
        The accepted product or "none" (:class:`vbow.apps.decision.Decision`, with
        ``to_dict()``), when the search was asked to decide; None otherwise.
    n_verified : int
        Shortlist candidates geometrically verified (0 without re-ranking; fewer than the
        shortlist when ``Config.early_stop_inliers`` stopped verification early).
    """

    query: str
    matches: tuple[Match, ...]
    timings: Mapping[str, float] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    decision: Any = None
    n_verified: int = 0

    def __repr__(self) -> str:
        best = "no match" if not self.matches else f"best={self.matches[0].key!r}"
        return f"SearchResult(query={self.query!r}, {len(self.matches)} matches, {best})"

    def __len__(self) -> int:
        return len(self.matches)

    def __iter__(self) -> Iterator[Match]:
        return iter(self.matches)

    def __getitem__(self, i: int) -> Match:
        return self.matches[i]

    @property
    def keys(self) -> list[str]:
        """Keys of the matches, best first."""
        return [m.key for m in self.matches]

    @property
    def best(self) -> Match | None:
        """The top match, or None for an empty result."""
        return self.matches[0] if self.matches else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form: the query and, per match, its key, score, inliers, ..."""
        return {"query": self.query, "results": [m.to_dict() for m in self.matches],
                "timings": {k: round(v, 6) for k, v in self.timings.items()},
                "warnings": list(self.warnings), "n_verified": int(self.n_verified),
                **({} if self.decision is None else {"decision": self.decision.to_dict()})}


@dataclass(frozen=True)
class ImageFailure:
    """An input that could not be used, and why."""

    source: str
    error: str
    error_type: str


@dataclass(frozen=True)
class AddReport:
    """What :meth:`vbow.ImageIndex.add` did.

    Attributes
    ----------
    added : tuple of str
        Keys of the images now in the index.
    failed : tuple of ImageFailure
        Inputs skipped because they could not be read (each named, with the error).
    seconds : float
        Wall time.
    no_features : tuple of str
        Keys of added images that yielded no local features (black, uniform, 1x1, thin
        strips): they are indexed, but only their colour can match them.
    """

    added: tuple[str, ...]
    failed: tuple[ImageFailure, ...]
    seconds: float
    no_features: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.failed
