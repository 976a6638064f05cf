"""Verifying a shortlist in rounds, and stopping once one candidate is clearly verified.

The whole shortlist is verified in one vectorised batch by default. With an :class:`EarlyStop`
rule it is verified in rounds of ``round_size`` candidates, in shortlist order, and the rest
are skipped once the best candidate so far has at least ``inliers`` inliers and at least
``ratio`` times the inliers of the second best. Skipped candidates keep their first-stage
scores, as candidates that failed verification do.

Each candidate's verification depends only on the query and that candidate
(:func:`vbow.verify.verification.verify_candidates`), so a candidate verified in a round gets
exactly what the one batch gives it; rounds change only which candidates are verified.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from vbow.errors import InvalidInputError
from vbow.verify.verification import Verification

__all__ = ["EarlyStop", "verify_in_rounds"]

logger = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class EarlyStop:
    """The rule that ends verification before the end of the shortlist.

    Attributes
    ----------
    inliers : int
        The best candidate needs at least this many inliers (``>= 1``).
    ratio : float
        ... and at least this many times the second best's (``>= 1``; 0 inliers when only one
        candidate verified).
    round_size : int
        Candidates verified between two checks of the rule (``>= 1``).
    """

    inliers: int
    ratio: float
    round_size: int

    def __post_init__(self) -> None:
        if int(self.inliers) < 1 or not float(self.ratio) >= 1.0 or int(self.round_size) < 1:
            raise InvalidInputError(
                f"early stop needs inliers >= 1, ratio >= 1 and round_size >= 1; got "
                f"{self.inliers}, {self.ratio} and {self.round_size}")

    def clear_winner(self, inliers: np.ndarray) -> bool:
        """Whether ``(n,) int`` inlier counts of the candidates verified so far (0 for those
        that failed) have a clear winner."""
        counts = np.asarray(inliers, np.int64)
        if counts.size == 0:
            return False
        top = np.sort(counts)[-2:]
        best = int(top[-1])
        second = int(top[0]) if top.size == 2 else 0
        return best >= int(self.inliers) and best >= float(self.ratio) * second


def verify_in_rounds(n: int, verify: Callable[[int, int], Mapping[K, Verification]],
                     stop: EarlyStop | None) -> tuple[dict[K, Verification], int]:
    """Verify the first ``n`` candidates of a shortlist, in rounds when ``stop`` is given.

    Parameters
    ----------
    n : int
        Candidates to verify at most.
    verify : callable
        ``verify(lo, hi)`` verifies the shortlist's candidates ``lo..hi-1`` and returns those
        that verified (inliers > 0), by any key.
    stop : EarlyStop or None
        The rule; None verifies all ``n`` in one call.

    Returns
    -------
    verifications : dict
        The union of what the calls returned.
    n_verified : int
        How many candidates were verified (``n`` unless the rule stopped early).
    """
    n = max(int(n), 0)
    if stop is None or n <= int(stop.round_size):
        return (dict(verify(0, n)) if n else {}), n
    found: dict[K, Verification] = {}
    step = int(stop.round_size)
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        found.update(verify(lo, hi))
        if hi < n and stop.clear_winner(np.fromiter((v.inliers for v in found.values()),
                                                    np.int64, len(found))):
            logger.debug("verification stopped after %d of %d candidates", hi, n)
            return found, hi
    return found, n
