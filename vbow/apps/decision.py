"""The decision: which catalog product a photo shows, or that it shows none.

A ranked list always has a first entry, and its score (inliers plus standardised word and colour
similarity) is not comparable across queries. The decision looks only at geometric evidence of
each verified candidate:

* ``log_inliers``: ``log(1 + inliers)``;
* ``inlier_ratio``: inliers over the query's features;
* ``photo_coverage``: area of the convex hull of the inliers in the photo over the area of the
  catalog image's outline inside the photo (how much of the product's visible face they explain);
* ``catalog_coverage``: area of the convex hull of the inliers in the catalog image over its area.

A logistic model turns the evidence into a confidence in ``[0, 1]``; the candidate with the
highest confidence is accepted when it reaches the model's threshold. :func:`calibrate` fits the
model on catalog-side data only: synthetic shopper photos of catalog images (positives: their own
image; negatives: the best verified candidate of another product), and sets the threshold so that
at most ``max_far`` of the negatives would be accepted.

A query with no features is ``"none"`` with reason ``"no_features"``; one with no verified
candidate, ``"no_verified_candidate"``; one whose best candidate is below the threshold,
``"weak_evidence"``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from dataclasses import dataclass
from typing import Any, Callable, Final, Mapping, Sequence

import numpy as np

from vbow.describe.extraction import ImageDescription
from vbow.describe.image_input import read_image
from vbow.errors import InvalidInputError
from vbow.index import ImageIndex
from vbow.results import Match, SearchResult
from vbow.apps.catalog_view import catalog_size
from vbow.apps.geometry import clipped_area, hull_area, outline

__all__ = ["EVIDENCE_NAMES", "REASONS", "Evidence", "Decision", "DecisionModel", "match_evidence",
           "decide", "search_decided", "calibration_samples", "calibrate"]

logger = logging.getLogger(__name__)

#: Names of the evidence features, in the order of :meth:`Evidence.vector`.
EVIDENCE_NAMES: Final[tuple[str, ...]] = ("log_inliers", "inlier_ratio", "photo_coverage",
                                          "catalog_coverage")
#: Every reason a :class:`Decision` can give.
REASONS: Final[tuple[str, ...]] = ("accepted", "no_features", "no_verified_candidate",
                                   "weak_evidence")

SizeOf = Callable[[str], tuple[float, float]]


@dataclass(frozen=True)
class Evidence:
    """Geometric evidence that a verified candidate shows the photo's product.

    Attributes
    ----------
    key : str
        The candidate's key.
    inliers : int
        Verified correspondences.
    inlier_ratio : float
        ``inliers / n_query_features``, in ``[0, 1]``.
    photo_coverage : float
        Inlier hull area over the area of the candidate's outline inside the photo, in ``[0, 1]``.
    catalog_coverage : float
        Inlier hull area in the catalog image over the catalog image's area, in ``[0, 1]``.
    """

    key: str
    inliers: int
    inlier_ratio: float
    photo_coverage: float
    catalog_coverage: float

    def vector(self) -> np.ndarray:
        """``(4,) float64`` features in the order of :data:`EVIDENCE_NAMES`."""
        return np.array([math.log1p(self.inliers), self.inlier_ratio, self.photo_coverage,
                         self.catalog_coverage], np.float64)

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "inliers": int(self.inliers),
                "inlier_ratio": round(self.inlier_ratio, 6),
                "photo_coverage": round(self.photo_coverage, 6),
                "catalog_coverage": round(self.catalog_coverage, 6)}


def match_evidence(match: Match, *, n_query_features: int, photo_size: tuple[float, float],
                   catalog_size: tuple[float, float]) -> Evidence | None:
    """The geometric evidence of one match, or None when it is not verified.

    Parameters
    ----------
    match : Match
        A match of a :class:`vbow.SearchResult`.
    n_query_features : int
        Features of the query image.
    photo_size : tuple of float
        ``(width, height)`` of the query photo in original pixels.
    catalog_size : tuple of float
        ``(width, height)`` of the match's catalog image in original pixels.
    """
    if not match.verified or match.transform is None:
        return None
    pts = np.asarray(match.inlier_points, np.float64).reshape(-1, 4)
    q_hull = hull_area(pts[:, :2])
    c_hull = hull_area(pts[:, 2:])
    visible = clipped_area(outline(match.transform, catalog_size), *photo_size)
    c_area = max(float(catalog_size[0]) * float(catalog_size[1]), 1e-9)
    return Evidence(
        key=match.key, inliers=int(match.inliers),
        inlier_ratio=float(min(1.0, match.inliers / max(int(n_query_features), 1))),
        photo_coverage=float(min(1.0, q_hull / visible)) if visible > 0 else 0.0,
        catalog_coverage=float(min(1.0, c_hull / c_area)))


@dataclass(frozen=True)
class Decision:
    """The accepted product of a photo, or none.

    Attributes
    ----------
    key : str or None
        Key of the accepted catalog image; None when the photo shows no catalog product.
    confidence : float
        Calibrated probability, in ``[0, 1]``, that the best candidate is the photo's product
        (0 when there is no verified candidate).
    reason : str
        One of :data:`REASONS`.
    evidence : Evidence or None
        The evidence of the best candidate (accepted or not).
    threshold : float
        The confidence the model requires to accept.
    """

    key: str | None
    confidence: float
    reason: str
    evidence: Evidence | None
    threshold: float

    @property
    def accepted(self) -> bool:
        return self.key is not None

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "accepted": self.accepted,
                "confidence": round(float(self.confidence), 6), "reason": self.reason,
                "threshold": round(float(self.threshold), 6),
                "evidence": None if self.evidence is None else self.evidence.to_dict()}


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _newton(z: np.ndarray, y: np.ndarray, sw: np.ndarray, l2: float) -> np.ndarray:
    """Weighted, ridge-penalised logistic regression by Newton-Raphson.

    ``z`` ``(n, p)`` with an intercept column first (not penalised), ``y`` ``(n,)`` in {0, 1},
    ``sw`` ``(n,)`` sample weights; returns ``(p,)`` coefficients.
    """
    beta = np.zeros(z.shape[1])
    penalty = np.full(z.shape[1], float(l2))
    penalty[0] = 0.0
    for _ in range(50):
        p = _sigmoid(z @ beta)
        grad = z.T @ (sw * (p - y)) + penalty * beta
        hess = (z * (sw * p * (1 - p))[:, None]).T @ z + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hess, grad)
        beta -= step
        if float(np.max(np.abs(step))) < 1e-9:
            break
    return beta


@dataclass(frozen=True)
class DecisionModel:
    """A logistic model of the evidence, and the confidence needed to accept.

    ``confidence = sigmoid(bias + weights . (x - mean) / scale)`` for an evidence vector ``x``.

    Attributes
    ----------
    weights, mean, scale : tuple of float
        Four values each, in the order of :data:`EVIDENCE_NAMES`.
    bias : float
    threshold : float
        Accept when the confidence is at least this, in ``[0, 1]``.
    max_far : float
        False-accept rate the threshold was set for on the calibration negatives.
    n_positive, n_negative : int
        Calibration samples it was fitted on (0 for the built-in default).
    """

    weights: tuple[float, ...]
    bias: float
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    threshold: float
    max_far: float = 0.01
    n_positive: int = 0
    n_negative: int = 0

    def __post_init__(self) -> None:
        for name in ("weights", "mean", "scale"):
            v = getattr(self, name)
            if len(v) != len(EVIDENCE_NAMES) or not all(math.isfinite(float(x)) for x in v):
                raise InvalidInputError(f"{name} must be {len(EVIDENCE_NAMES)} finite numbers, "
                                        f"got {v!r}")
        if any(float(s) <= 0 for s in self.scale):
            raise InvalidInputError(f"scale must be positive, got {self.scale!r}")
        if not 0.0 <= float(self.threshold) <= 1.0:
            raise InvalidInputError(f"threshold must be in [0, 1], got {self.threshold!r}")

    def confidence(self, evidence: np.ndarray) -> np.ndarray:
        """Confidence of ``(n, 4)`` (or ``(4,)``) evidence vectors; ``(n,)`` float64 in [0, 1]."""
        x = np.atleast_2d(np.asarray(evidence, np.float64))
        if x.shape[1] != len(EVIDENCE_NAMES):
            raise InvalidInputError(f"evidence must have {len(EVIDENCE_NAMES)} columns, got "
                                    f"shape {x.shape}")
        z = (x - np.asarray(self.mean)) / np.asarray(self.scale)
        return _sigmoid(self.bias + z @ np.asarray(self.weights))

    @classmethod
    def fit(cls, positives: np.ndarray, negatives: np.ndarray, *, max_far: float = 0.01,
            negatives_unverified: int = 0, l2: float = 1.0) -> "DecisionModel":
        """Fit the logistic model and set the threshold for a false-accept rate.

        Parameters
        ----------
        positives, negatives : numpy.ndarray
            ``(p, 4)`` and ``(n, 4)`` float evidence of correct and of wrong verified candidates.
        max_far : float
            Largest share of negatives (verified and unverified) the threshold may accept.
        negatives_unverified : int
            Calibration negatives with no verified candidate at all (always rejected); they
            count in the false-accept denominator.
        l2 : float
            Ridge penalty on the standardised weights.
        """
        pos = np.asarray(positives, np.float64).reshape(-1, len(EVIDENCE_NAMES))
        neg = np.asarray(negatives, np.float64).reshape(-1, len(EVIDENCE_NAMES))
        if pos.shape[0] < 2 or neg.shape[0] < 2:
            raise InvalidInputError(f"calibration needs at least 2 positives and 2 negatives, "
                                    f"got {pos.shape[0]} and {neg.shape[0]}")
        if not 0.0 < float(max_far) < 1.0:
            raise InvalidInputError(f"max_far must be in (0, 1), got {max_far!r}")
        x = np.concatenate([pos, neg])
        y = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
        # balanced classes: each class weighs as much as the other in total
        sw = np.where(y == 1, 0.5 / len(pos), 0.5 / len(neg)) * len(y)
        mean = x.mean(0)
        scale = np.maximum(x.std(0), 1e-6)
        z_all = np.column_stack([np.ones(len(x)), (x - mean) / scale])
        # more evidence must never lower the confidence: a feature whose fitted weight comes
        # out negative (it only corrects a correlated one) is dropped and the rest refitted
        active = np.ones(z_all.shape[1], bool)
        while True:
            beta = np.zeros(z_all.shape[1])
            beta[active] = _newton(z_all[:, active], y, sw, l2)
            negative = np.flatnonzero(active[1:] & (beta[1:] < 0)) + 1
            if negative.size == 0:
                break
            active[negative[np.argmin(beta[negative])]] = False
        model = cls(tuple(float(v) for v in beta[1:]), float(beta[0]), tuple(map(float, mean)),
                    tuple(map(float, scale)), 0.5, float(max_far), int(len(pos)), int(len(neg)))
        conf = np.sort(model.confidence(neg))[::-1]
        allowed = int(math.floor(float(max_far) * (len(neg) + int(negatives_unverified))))
        # accept strictly above the (allowed+1)-th highest negative confidence
        threshold = 0.0 if allowed >= len(conf) else float(np.nextafter(conf[allowed], 2.0))
        return dataclasses.replace(model, threshold=float(min(max(threshold, 0.5), 1.0)))

    @classmethod
    def default(cls) -> "DecisionModel":
        """The built-in model, fitted by :func:`calibrate` on a synthetic catalog.

        Use it when no catalog-side calibration is available; calibrate on your catalog for
        a threshold that meets a stated false-accept rate.
        """
        return cls(**_DEFAULT)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable parameters (a few numbers; stored with an index's manifest)."""
        return {"weights": list(self.weights), "bias": self.bias, "mean": list(self.mean),
                "scale": list(self.scale), "threshold": self.threshold, "max_far": self.max_far,
                "n_positive": self.n_positive, "n_negative": self.n_negative}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DecisionModel":
        if not isinstance(data, Mapping):
            raise InvalidInputError(f"a decision model is a mapping, got {type(data).__name__}")
        try:
            return cls(tuple(map(float, data["weights"])), float(data["bias"]),
                       tuple(map(float, data["mean"])), tuple(map(float, data["scale"])),
                       float(data["threshold"]), float(data.get("max_far", 0.01)),
                       int(data.get("n_positive", 0)), int(data.get("n_negative", 0)))
        except KeyError as exc:
            raise InvalidInputError(f"decision model is missing {exc.args[0]!r}") from None

    def save(self, path: str) -> None:
        """Write the parameters as JSON."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=1)

    @classmethod
    def load(cls, path: str) -> "DecisionModel":
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f))


# Fitted by `python3 benchmarks/decision_default.py` (calibrate() on a synthetic catalog of 120
# products, seed 0: 119 positives, 76 negatives); the samples and the model are in
# benchmarks/results/decision_default.json. The log-inliers weight is 0: with the inlier ratio in the
# model its fitted weight came out negative, and the fit drops such features (see fit()).
_DEFAULT: Final[dict[str, Any]] = {
    "weights": (0.0, 3.245849, 1.405571, 0.920847), "bias": 2.444214,
    "mean": (3.674723, 0.117097, 0.398157, 0.358314),
    "scale": (1.043968, 0.09154, 0.251785, 0.23839),
    "threshold": 0.5, "max_far": 0.01, "n_positive": 119,
    "n_negative": 76,
}


def _photo_size(query: ImageDescription) -> tuple[float, float]:
    w, h = query.features.image_size
    return float(w) * float(query.scale), float(h) * float(query.scale)


def decide(result: SearchResult, *, n_query_features: int, photo_size: tuple[float, float],
           catalog_size_of: SizeOf, model: DecisionModel | None = None) -> Decision:
    """Decide which product of ``result`` the photo shows, if any.

    Parameters
    ----------
    result : SearchResult
        A search result (verified matches carry the evidence; unverified ones are ignored).
    n_query_features : int
        Features of the query.
    photo_size : tuple of float
        ``(width, height)`` of the photo in original pixels.
    catalog_size_of : callable
        ``key -> (width, height)`` of a catalog image in original pixels.
    model : DecisionModel, optional
        Default :meth:`DecisionModel.default`.
    """
    model = DecisionModel.default() if model is None else model
    if int(n_query_features) == 0:
        return Decision(None, 0.0, "no_features", None, model.threshold)
    evidence = [e for e in (match_evidence(m, n_query_features=n_query_features,
                                           photo_size=photo_size,
                                           catalog_size=catalog_size_of(m.key))
                            for m in result.matches if m.verified) if e is not None]
    if not evidence:
        return Decision(None, 0.0, "no_verified_candidate", None, model.threshold)
    conf = model.confidence(np.stack([e.vector() for e in evidence]))
    best = int(np.argmax(conf))
    c = float(conf[best])
    if c >= model.threshold:
        return Decision(evidence[best].key, c, "accepted", evidence[best], model.threshold)
    return Decision(None, c, "weak_evidence", evidence[best], model.threshold)


def search_decided(index: ImageIndex, image: Any, top_k: int = 10, *,
                   model: DecisionModel | None = None, **search_options: Any) -> SearchResult:
    """:meth:`ImageIndex.search`, with the decision in ``result.decision``.

    ``search_options`` are passed to :meth:`ImageIndex.search_features` (``where``,
    ``shortlist``, ...). Re-ranking is always on: the decision needs verified candidates.
    """
    query = image if isinstance(image, ImageDescription) else index.describe(image)
    result = index.search_features(query, top_k, rerank=True, **search_options)
    decision = decide(result, n_query_features=len(query.features),
                      photo_size=_photo_size(query),
                      catalog_size_of=lambda k: catalog_size(index, k), model=model)
    return dataclasses.replace(result, decision=decision)


def calibration_samples(index: ImageIndex, images: Sequence[Any], keys: Sequence[str], *,
                        group_of: Callable[[str], Any] | None = None, seed: int = 0,
                        top_k: int = 10, progress: bool | None = None
                        ) -> tuple[np.ndarray, np.ndarray, int]:
    """Catalog-side positives and negatives for :meth:`DecisionModel.fit`.

    Each catalog image (``images[i]``, indexed under ``keys[i]``) is photographed synthetically
    (:func:`vbow.synthetic.make_shopper_photo`: perspective, clutter, light, blur, noise, JPEG)
    and searched. The evidence of a verified match of its own product (its own key, or the same
    ``group_of(key)``) is a positive; the most confident verified candidate of any other product
    is a negative.

    Returns
    -------
    positives : numpy.ndarray
        ``(p, 4) float64``.
    negatives : numpy.ndarray
        ``(n, 4) float64``.
    n_unverified : int
        Queries with no verified candidate of another product.
    """
    from vbow.progress import Progress
    from vbow.synthetic import make_shopper_photo

    if len(images) != len(keys):
        raise InvalidInputError(f"images and keys must have the same length, got {len(images)} "
                                f"and {len(keys)}")
    group = (lambda k: k) if group_of is None else group_of
    model = DecisionModel.default()
    pos: list[np.ndarray] = []
    neg: list[np.ndarray] = []
    n_unverified = 0
    rngs = np.random.SeedSequence(seed).spawn(len(images))
    with Progress(len(images), "calibrating the decision", progress) as bar:
        for img, key, ss in zip(images, keys, rngs):
            bar.update()
            bgr = read_image(img) if not isinstance(img, np.ndarray) else img
            photo, _ = make_shopper_photo(np.ascontiguousarray(bgr[..., :3]),
                                          np.random.default_rng(ss))
            query = index.describe(photo, name=f"calibration:{key}")
            result = index.search_features(query, top_k, rerank=True)
            n_feat = len(query.features)
            own, other = [], []
            for m in result.matches:
                e = match_evidence(m, n_query_features=n_feat, photo_size=_photo_size(query),
                                   catalog_size=catalog_size(index, m.key))
                if e is not None:
                    (own if group(m.key) == group(key) else other).append(e.vector())
            if own:
                pos.append(own[0])
            if other:
                conf = model.confidence(np.stack(other))
                neg.append(other[int(np.argmax(conf))])
            else:
                n_unverified += 1
    width = len(EVIDENCE_NAMES)
    return (np.array(pos, np.float64).reshape(-1, width),
            np.array(neg, np.float64).reshape(-1, width), n_unverified)


def calibrate(index: ImageIndex, images: Sequence[Any], keys: Sequence[str], *,
              max_far: float = 0.01, group_of: Callable[[str], Any] | None = None,
              seed: int = 0, progress: bool | None = None) -> DecisionModel:
    """Fit a :class:`DecisionModel` on catalog-side data only (see :func:`calibration_samples`).

    Parameters
    ----------
    index : ImageIndex
        The built index the model will decide for.
    images, keys : sequence
        Catalog images (paths, bytes or BGR arrays) and their keys in ``index``; a sample of a
        few hundred is enough.
    max_far : float
        False-accept rate the threshold is set for, on the calibration negatives.
    group_of : callable, optional
        ``key -> product``; catalog images of one product are not negatives of each other.
    """
    pos, neg, n_unv = calibration_samples(index, images, keys, group_of=group_of, seed=seed,
                                          progress=progress)
    logger.info("decision calibration: %d positives, %d negatives, %d without a verified "
                "negative", len(pos), len(neg), n_unv)
    return DecisionModel.fit(pos, neg, max_far=max_far, negatives_unverified=n_unv)
