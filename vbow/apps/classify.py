"""Product classification by weighted votes of the verified neighbours, with abstention.

:func:`classify` searches the index, weighs every verified candidate by the decision's confidence
(:mod:`vbow.apps.decision`) and adds the weights per value of a metadata field (``category`` by
default). The winning value's confidence is its share of the votes times the best confidence
behind it; below ``min_confidence``, or with no verified candidate, it abstains (label None).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vbow.describe.extraction import ImageDescription
from vbow.errors import InvalidInputError
from vbow.index import ImageIndex
from vbow.results import SearchResult
from vbow.apps.catalog_view import catalog_size
from vbow.apps.decision import DecisionModel, match_evidence

__all__ = ["Classification", "classify", "classify_features", "vote", "accuracy_coverage"]


@dataclass(frozen=True)
class Classification:
    """A label for a photo, or an abstention.

    Attributes
    ----------
    label : object or None
        The metadata value voted for; None when abstaining.
    confidence : float
        In ``[0, 1]``.
    votes : dict
        Summed confidence per label (JSON text of the value -> weight).
    reason : str
        ``"voted"``, ``"weak_evidence"``, ``"no_verified_candidate"`` or ``"no_features"``.
    """

    label: Any
    confidence: float
    votes: dict
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "confidence": round(float(self.confidence), 6),
                "votes": {k: round(float(v), 6) for k, v in self.votes.items()},
                "reason": self.reason}


def classify_features(index: ImageIndex, query: ImageDescription, *, field: str = "category",
                      top_k: int = 10, min_confidence: float = 0.5,
                      model: DecisionModel | None = None,
                      **search_options: Any) -> Classification:
    """:func:`classify` for an already described photo."""
    if not isinstance(field, str) or not field:
        raise InvalidInputError(f"field must be a non-empty str, got {field!r}")
    if not 0.0 <= float(min_confidence) <= 1.0:
        raise InvalidInputError(f"min_confidence must be in [0, 1], got {min_confidence!r}")
    if len(query.features) == 0:
        return Classification(None, 0.0, {}, "no_features")
    res = index.search_features(query, top_k, rerank=True, **search_options)
    return vote(index, res, query, field=field, min_confidence=min_confidence, model=model)


def vote(index: ImageIndex, res: SearchResult, query: ImageDescription, *, field: str = "category",
         min_confidence: float = 0.5, model: DecisionModel | None = None) -> Classification:
    """The classification of an existing search result ``res`` of ``query`` (no new search)."""
    model = DecisionModel.default() if model is None else model
    n = len(query.features)
    if n == 0:
        return Classification(None, 0.0, {}, "no_features")
    w, h = query.features.image_size
    photo = (w * query.scale, h * query.scale)
    labels, weights = [], []
    for m in res.matches:
        e = match_evidence(m, n_query_features=n, photo_size=photo,
                           catalog_size=catalog_size(index, m.key))
        if e is None or field not in m.metadata:
            continue
        labels.append(m.metadata[field])
        weights.append(float(model.confidence(e.vector())[0]))
    if not labels:
        return Classification(None, 0.0, {}, "no_verified_candidate")
    votes: dict[str, float] = {}
    best_of: dict[str, float] = {}
    names: dict[str, Any] = {}
    for lab, wt in zip(labels, weights):
        k = str(lab)
        names[k] = lab
        votes[k] = votes.get(k, 0.0) + wt
        best_of[k] = max(best_of.get(k, 0.0), wt)
    total = sum(votes.values())
    top = max(votes, key=lambda k: (votes[k], k))
    conf = (votes[top] / total if total > 0 else 0.0) * best_of[top]
    if conf < float(min_confidence):
        return Classification(None, float(conf), votes, "weak_evidence")
    return Classification(names[top], float(conf), votes, "voted")


def classify(index: ImageIndex, image: Any, *, field: str = "category", top_k: int = 10,
             min_confidence: float = 0.5, model: DecisionModel | None = None,
             **search_options: Any) -> Classification:
    """Classify the product in a photo by a metadata field of its verified neighbours.

    Parameters
    ----------
    index : ImageIndex
        An index whose catalog images carry ``field`` in their metadata.
    image : image input
        Path, bytes, array or PIL image.
    field : str, default "category"
        The metadata field to vote on.
    top_k : int, default 10
        Neighbours searched.
    min_confidence : float, default 0.5
        Abstain (label None) below this confidence; 0 never abstains when there is a vote.
    model : DecisionModel, optional
        Weighs each neighbour (default :meth:`DecisionModel.default`).

    Returns
    -------
    Classification
    """
    return classify_features(index, index.describe(image), field=field, top_k=top_k,
                             min_confidence=min_confidence, model=model, **search_options)


def accuracy_coverage(confidence: np.ndarray, correct: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy against coverage when abstaining below each confidence.

    ``confidence`` and ``correct`` are ``(n,)``; returns ``coverage`` and ``accuracy`` arrays,
    most confident first (coverage ``k / n`` for the ``k`` most confident answers).
    """
    order = np.argsort(-np.asarray(confidence, np.float64), kind="stable")
    c = np.asarray(correct, np.float64)[order]
    k = np.arange(1, len(c) + 1)
    return {"coverage": k / max(len(c), 1), "accuracy": np.cumsum(c) / k}
