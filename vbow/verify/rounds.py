"""Verifying a shortlist in two rounds, and stopping after the first at a clear winner.

Without an :class:`EarlyStop` rule the whole shortlist is verified in one vectorised call.
With one, the first ``first_round`` candidates of the shortlist are verified in one call, and
the rest are skipped when the best of them has at least ``inliers`` inliers and at least
``ratio`` times the inliers of the second best; otherwise the rest are verified in a second
call (within a call, :func:`vbow.verify.verification.verify_candidates` works in cache-sized
blocks of candidates). Skipped candidates keep their first-stage scores, as candidates that
failed verification do.

The rule is checked once, not after every round of a longer series. Further checks would
let a query whose clear winner comes later stop earlier, but each call has a fixed cost, and a
sharded search makes one verify scatter per call (:mod:`vbow.distributed.shards`); checking
once bounds both at two. ``benchmarks/results/scale.md`` gives how many queries stop after the
first round and how many candidates are verified per query.

Each candidate's verification depends only on the query and that candidate
(:func:`vbow.verify.verification.verify_candidates`), so a candidate verified in either round
gets exactly what one call for the whole shortlist gives it; the rule changes only which
candidates are verified.
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
    first_round : int
        Candidates verified before the rule is checked (``>= 1``).
    """

    inliers: int
    ratio: float
    first_round: int

    def __post_init__(self) -> None:
        if int(self.inliers) < 1 or not float(self.ratio) >= 1.0 or int(self.first_round) < 1:
            raise InvalidInputError(
                f"early stop needs inliers >= 1, ratio >= 1 and first_round >= 1; got "
                f"{self.inliers}, {self.ratio} and {self.first_round}")

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
    """Verify the first ``n`` candidates of a shortlist, in two rounds when ``stop`` is given.

    Parameters
    ----------
    n : int
        Candidates to verify at most.
    verify : callable
        ``verify(lo, hi)`` verifies the shortlist's candidates ``lo..hi-1`` and returns those
        that verified (inliers > 0), by any key.
    stop : EarlyStop or None
        The rule; None verifies all ``n`` in one call, and so does a rule whose first round
        covers them. Otherwise ``verify(0, first_round)``, then ``verify(first_round, n)``
        unless the first round has a clear winner.

    Returns
    -------
    verifications : dict
        The union of what the calls returned.
    n_verified : int
        How many candidates were verified (``n`` unless the rule stopped early).
    """
    n = max(int(n), 0)
    if stop is None or n <= int(stop.first_round):
        return (dict(verify(0, n)) if n else {}), n
    first = int(stop.first_round)
    found = dict(verify(0, first))
    if stop.clear_winner(np.fromiter((v.inliers for v in found.values()), np.int64, len(found))):
        logger.debug("verification stopped after %d of %d candidates", first, n)
        return found, first
    found.update(verify(first, n))
    return found, n
