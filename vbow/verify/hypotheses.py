"""Single-correspondence similarity hypotheses, scored for many candidates together.

A pair of keypoints with scale and orientation fixes a similarity transform on its own
(Philbin et al. 2007). A correspondence *supports* hypothesis ``h`` when its log scale ratio is
within ``log 2`` of ``h``'s, its rotation within 30°, and ``h`` maps its catalog point to
within a tolerance of its query point. The best hypothesis of a candidate (most support, first
on ties) picks the correspondences that the robust model fit sees.

**Bins that bound the work.** Every correspondence is binned by (log scale ratio, rotation),
with bins a little *wider* than the two tolerances. Whatever supports ``h`` then lies in
``h``'s bin or one of its 8 neighbours (rotation wraps around), so

* a hypothesis is compared only with the correspondences of its 3 × 3 neighbourhood, not with
  all of its candidate's, and
* the size of that neighbourhood bounds its support: a hypothesis that cannot reach the
  support a fit needs cannot be the winner that passes, and is not scored at all.

Both are exact: the winner and its supporters are what scoring every hypothesis against every
correspondence gives (a Hough transform over scale and rotation, Lowe 2004, used as a bound,
not as a vote). All candidates' hypotheses are scored together, in batches of bounded size,
with no Python loop per candidate or per hypothesis.
"""

from __future__ import annotations

import numpy as np

from vbow.search.csr import gather_ranges, offsets_from_counts

__all__ = ["SCALE_TOLERANCE", "ANGLE_TOLERANCE", "ScaleRotationBins", "hypothesis_subsets",
           "segment_medians", "best_hypotheses"]

#: Support tolerances: natural log of the scale ratio, and rotation in radians.
SCALE_TOLERANCE = float(np.log(2.0))
ANGLE_TOLERANCE = float(np.deg2rad(30.0))
#: Bins 1 % wider than the scale tolerance, and 11 rotation bins of 32.7° (> 30°), so that
#: floating-point rounding never puts two correspondences that agree two bins apart.
_SCALE_BIN = SCALE_TOLERANCE * 1.01
_N_ANGLE_BINS = 11
#: Hypothesis-correspondence comparisons per batch (bounds the temporaries to a few MB each).
_BATCH_ELEMENTS = 1 << 19
#: Up to this many (candidate, scale, rotation) cells, bins are looked up in a dense table.
_DENSE_CELLS = 1 << 22


class ScaleRotationBins:
    """Correspondences of many candidates binned by (candidate, log scale ratio, rotation).

    Parameters
    ----------
    group : np.ndarray
        ``(m,) int`` candidate of each correspondence, ``>= 0``.
    ratio : np.ndarray
        ``(m,) float64`` natural log of query keypoint size over catalog keypoint size.
    rotation : np.ndarray
        ``(m,) float64`` query minus catalog keypoint angle, radians.
    """

    def __init__(self, group: np.ndarray, ratio: np.ndarray, rotation: np.ndarray) -> None:
        r_bin = np.floor(np.asarray(ratio, np.float64) / _SCALE_BIN).astype(np.int64)
        if r_bin.size:
            r_bin -= int(r_bin.min()) - 1                # >= 1: r_bin - 1 stays in the group
        n_r = int(r_bin.max()) + 2 if r_bin.size else 1
        turns = np.mod(np.asarray(rotation, np.float64), 2 * np.pi) * (_N_ANGLE_BINS / (2 * np.pi))
        a_bin = np.clip(np.floor(turns).astype(np.int64), 0, _N_ANGLE_BINS - 1)  # mod may give 2π
        self._row = (np.asarray(group, np.int64) * n_r + r_bin)    # (candidate, scale) row
        self._a_bin = a_bin
        cells = self._row * _N_ANGLE_BINS + a_bin
        self.order = np.argsort(cells, kind="stable")               # correspondences by cell
        n_cells = (int(np.max(group)) + 1) * n_r * _N_ANGLE_BINS if r_bin.size else 0
        if n_cells <= _DENSE_CELLS:   # a dense table of every cell's start and count
            self._dense = True
            self.counts = np.bincount(cells, minlength=n_cells)
            self.starts = offsets_from_counts(self.counts)[:-1]
        else:
            self._dense = False
            self.cells, self.starts, self.counts = np.unique(cells[self.order], return_index=True,
                                                             return_counts=True)

    def _neighbour_ranges(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(len(idx), 9) int64`` start (in :attr:`order`) and length of each neighbour cell."""
        idx = np.asarray(idx, np.int64)
        row = self._row[idx][:, None] + np.repeat(np.array([-1, 0, 1]), 3)[None, :]
        col = (self._a_bin[idx][:, None] + np.tile(np.array([-1, 0, 1]), 3)[None, :]) % _N_ANGLE_BINS
        wanted = row * _N_ANGLE_BINS + col
        if self._dense:                # rows stay inside their candidate's range: no bounds check
            return self.starts[wanted], self.counts[wanted]
        pos = np.minimum(np.searchsorted(self.cells, wanted), max(self.cells.size - 1, 0))
        hit = self.cells[pos] == wanted if self.cells.size else np.zeros(wanted.shape, bool)
        return np.where(hit, self.starts[pos], 0), np.where(hit, self.counts[pos], 0)

    def neighbourhood_counts(self, idx: np.ndarray) -> np.ndarray:
        """``(len(idx),) int64`` correspondences in the 3 × 3 neighbourhood of each of ``idx``,
        itself included: a bound on its support as a hypothesis."""
        return self._neighbour_ranges(idx)[1].sum(axis=1)

    def neighbours(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every (hypothesis, correspondence) pair to compare.

        Returns ``counts``, ``(len(idx),) int64`` neighbourhood sizes (each >= 1: a
        correspondence is in its own neighbourhood), and ``member``, ``(counts.sum(),) int64``
        the indices of the correspondences in the neighbourhood of ``idx[0]``, then of
        ``idx[1]``, and so on."""
        starts, lengths = self._neighbour_ranges(idx)
        member = self.order[gather_ranges(starts.reshape(-1), lengths.reshape(-1))]
        return lengths.sum(axis=1), member


def hypothesis_subsets(pair_offsets: np.ndarray, need: int, max_hypotheses: int,
                       seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The correspondences tried as hypotheses: all of a candidate's, or a seeded sorted subset
    of ``max_hypotheses`` when it has more; none for a candidate with fewer than ``need``.

    Returns ``(H,) int64`` global correspondence indices, by candidate then index, and the
    ``(H,) int64`` candidate of each."""
    offsets = np.asarray(pair_offsets, np.int64)
    m = np.diff(offsets)
    used = m >= need
    small = used & (m <= max_hypotheses)
    local = [gather_ranges(np.zeros(int(small.sum()), np.int64), m[small])]
    cand = [np.repeat(np.flatnonzero(small), m[small])]
    for c in np.flatnonzero(used & ~small).tolist():   # a seeded subset, one draw per candidate
        local.append(np.sort(np.random.default_rng(seed).choice(int(m[c]), max_hypotheses,
                                                                 replace=False)))
        cand.append(np.full(max_hypotheses, c, np.int64))
    cand_all = np.concatenate(cand)
    local_all = np.concatenate(local)
    order = np.argsort(cand_all, kind="stable")
    cand_all, local_all = cand_all[order], local_all[order]
    return offsets[cand_all] + local_all, cand_all


def segment_medians(values: np.ndarray, segment: np.ndarray) -> np.ndarray:
    """``(n,) float64`` the median of each value's segment, for ``(n,)`` ``values`` and
    ``(n,) int`` ``segment`` labels that are contiguous (equal labels adjacent); the two
    middle values of an even segment are averaged, as :func:`numpy.median` does."""
    n = values.shape[0]
    if n == 0:
        return np.zeros(0, np.float64)
    order = np.lexsort((values, segment))
    ordered = values[order]
    seg = segment[order]
    starts = np.flatnonzero(np.r_[True, seg[1:] != seg[:-1]])
    lengths = np.diff(np.r_[starts, n])
    upper = ordered[starts + lengths // 2]
    lower = ordered[starts + (lengths - 1) // 2]
    median = np.where(lengths % 2 == 1, upper, (lower + upper) / 2)
    return np.repeat(median, lengths)   # segments are contiguous in the input as well


class _Correspondences:
    """Columns of the correspondences' geometry, contiguous for fast gathers."""

    def __init__(self, q: np.ndarray, d: np.ndarray, ratio: np.ndarray, rotation: np.ndarray) -> None:
        self.qx, self.qy = np.ascontiguousarray(q[:, 0]), np.ascontiguousarray(q[:, 1])
        self.dx, self.dy = np.ascontiguousarray(d[:, 0]), np.ascontiguousarray(d[:, 1])
        self.ratio, self.rotation = ratio, rotation

    def agreement(self, hyp: np.ndarray, tol: np.ndarray, counts: np.ndarray,
                  member: np.ndarray) -> np.ndarray:
        """``(E,) bool`` whether each correspondence of ``member`` supports its hypothesis:
        the first ``counts[0]`` are compared with ``hyp[0]`` (position tolerance ``tol[0]``),
        the next ``counts[1]`` with ``hyp[1]``, and so on.

        The position test runs first, on every pair (per-hypothesis values are repeated, not
        gathered, since each hypothesis' pairs are contiguous); it is the selective one, so the
        scale and rotation tests run on its survivors only. Each comparison is computed with
        the same floating-point operations as the dense form (products and sums commuted only).
        """
        def per_pair(values: np.ndarray) -> np.ndarray:
            return np.repeat(values, counts)

        h_ratio, h_angle = self.ratio[hyp], self.rotation[hyp]
        cos, sin, scale = per_pair(np.cos(h_angle)), per_pair(np.sin(h_angle)), per_pair(np.exp(h_ratio))
        ex = self.dx[member]
        ex -= per_pair(self.dx[hyp])
        ey = self.dy[member]
        ey -= per_pair(self.dy[hyp])
        px = cos * ex
        px -= sin * ey
        px *= scale
        px += per_pair(self.qx[hyp])
        px -= self.qx[member]
        py = sin * ex
        py += cos * ey
        py *= scale
        py += per_pair(self.qy[hyp])
        py -= self.qy[member]
        px *= px
        py *= py
        px += py
        t = per_pair(tol)
        t *= t
        live = np.flatnonzero(px < t)
        j, r = member[live], np.repeat(np.arange(hyp.size), counts)[live]
        turn = np.abs(np.mod(self.rotation[j] - h_angle[r] + np.pi, 2 * np.pi) - np.pi)
        out = np.zeros(member.size, bool)
        out[live] = (np.abs(self.ratio[j] - h_ratio[r]) < SCALE_TOLERANCE) & (turn < ANGLE_TOLERANCE)
        return out


def _support(geometry: _Correspondences, bins: ScaleRotationBins, hyp: np.ndarray,
             tol: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """``(h,) int64`` support of hypotheses ``hyp`` (``bounds``: their neighbourhood counts,
    which size the batches)."""
    support = np.zeros(hyp.size, np.int64)
    edges = np.searchsorted(np.cumsum(bounds), np.arange(1, int(bounds.sum()) // _BATCH_ELEMENTS + 1)
                            * _BATCH_ELEMENTS)
    for lo, hi in zip(np.r_[0, edges], np.r_[edges, hyp.size]):
        if hi > lo:
            counts, member = bins.neighbours(hyp[lo:hi])
            agree = geometry.agreement(hyp[lo:hi], tol[lo:hi], counts, member)
            support[lo:hi] = np.add.reduceat(agree, np.r_[0, np.cumsum(counts)[:-1]],
                                             dtype=np.int64)
    return support


def best_hypotheses(q: np.ndarray, d: np.ndarray, ratio: np.ndarray, rotation: np.ndarray,
                    bins: ScaleRotationBins, hyp: np.ndarray, hyp_cand: np.ndarray,
                    tol: np.ndarray, n_candidates: int, need: int) -> list[np.ndarray | None]:
    """The supporters of each candidate's best hypothesis.

    Parameters
    ----------
    q, d : np.ndarray
        ``(M, 4) float64`` query and catalog keypoints of every correspondence.
    ratio, rotation : np.ndarray
        ``(M,) float64`` log scale ratio and rotation (radians) of every correspondence.
    bins : ScaleRotationBins
        The correspondences binned by candidate, scale and rotation.
    hyp, hyp_cand, tol : np.ndarray
        ``(H,)`` hypotheses (correspondence indices), their candidates, and their position
        tolerances, ordered by candidate (as :func:`hypothesis_subsets` gives them).
    n_candidates : int
        Number of candidates ``n``.
    need : int
        Support a winner must reach.

    Returns
    -------
    list of np.ndarray or None
        Per candidate, the ``(k,) int64`` indices of the correspondences supporting its best
        hypothesis, or None when that support is below ``need``.
    """
    bounds = bins.neighbourhood_counts(hyp)
    keep = bounds >= need
    hyp, hyp_cand, tol, bounds = hyp[keep], hyp_cand[keep], tol[keep], bounds[keep]
    out: list[np.ndarray | None] = [None] * n_candidates
    if hyp.size == 0:
        return out
    geometry = _Correspondences(q, d, ratio, rotation)
    support = np.full(hyp.size, -1, np.int64)           # -1: not scored, cannot win
    # first pass: each candidate's hypothesis with the largest bound sets a floor ...
    by_bound = np.lexsort((-bounds, hyp_cand))
    probes = by_bound[np.r_[True, hyp_cand[by_bound][1:] != hyp_cand[by_bound][:-1]]]
    support[probes] = _support(geometry, bins, hyp[probes], tol[probes], bounds[probes])
    floor = np.zeros(n_candidates, np.int64)
    floor[hyp_cand[probes]] = np.maximum(support[probes], need)
    # ... and the second scores only hypotheses whose bound reaches it: the others have less
    # support than the probe, so they can neither win nor tie
    rest = np.flatnonzero((support < 0) & (bounds >= floor[hyp_cand]))
    support[rest] = _support(geometry, bins, hyp[rest], tol[rest], bounds[rest])
    starts = np.flatnonzero(np.r_[True, hyp_cand[1:] != hyp_cand[:-1]])
    best_support = np.maximum.reduceat(support, starts)
    is_best = support == np.repeat(best_support, np.diff(np.r_[starts, hyp.size]))
    first_best = np.flatnonzero(is_best)
    _, first = np.unique(hyp_cand[first_best], return_index=True)
    winners = first_best[first]                         # first hypothesis of the highest support
    winners = winners[support[winners] >= need]
    if winners.size == 0:
        return out
    counts, member = bins.neighbours(hyp[winners])
    agree = geometry.agreement(hyp[winners], tol[winners], counts, member)
    row = np.repeat(np.arange(winners.size), counts)[agree]
    member = member[agree]
    split = np.searchsorted(row, np.arange(1, winners.size))
    for w, members in zip(hyp_cand[winners].tolist(), np.split(member, split)):
        out[w] = np.sort(members)
    return out
