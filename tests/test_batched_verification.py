"""The batched shortlist verification against the dense, one-candidate-at-a-time form.

The dense reference below scores every sampled hypothesis against every correspondence of a
candidate, as verification did before it was batched; the batched form bins correspondences by
scale and rotation, skips hypotheses whose bin neighbourhood cannot reach the support a fit
needs, and scores all candidates together. The two must pick the same supporters, and so give
the same Verification, on any input.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_verification import (CASES, SIFT, nn_words, product, query_words, ref_correspondences,
                               warp)

from vbow.errors import InvalidInputError
from vbow.search.csr import offsets_from_counts
from vbow.verify.correspondences import QueryWords
from vbow.verify.hypotheses import (ANGLE_TOLERANCE, SCALE_TOLERANCE, ScaleRotationBins,
                                    segment_medians)
from vbow.verify.keypoint_store import KeypointStore
from vbow.verify.shortlist import verify_shortlist
from vbow.verify.verification import (BLOCK_CORRESPONDENCES, fit_consistent, minimum_support,
                                      verify_candidates, verify_pair)


def dense_supporters(q, d, db_size, need, threshold=6.0, tolerance=0.08, max_hypotheses=200,
                     seed=0):
    """Supporters of the best hypothesis, scoring all hypotheses against all pairs (or None)."""
    m = q.shape[0]
    if m < need:
        return None
    hyp = np.arange(m) if m <= max_hypotheses else np.sort(
        np.random.default_rng(seed).choice(m, max_hypotheses, replace=False))
    ratio = np.log(np.maximum(q[:, 2], 1e-6) / np.maximum(d[:, 2], 1e-6))
    rot = np.deg2rad(q[:, 3] - d[:, 3])
    scale_of_hyp = q[hyp, 2] / np.maximum(d[hyp, 2], 1e-6)
    rows = []
    for lo in range(0, hyp.size, 64):
        h = hyp[lo:lo + 64]
        tol = max(threshold, float(np.median(tolerance * max(db_size) * scale_of_hyp[lo:lo + 64])))
        s = np.exp(ratio[h])[:, None]
        c, sn = np.cos(rot[h])[:, None], np.sin(rot[h])[:, None]
        dx = d[None, :, 0] - d[h, 0][:, None]
        dy = d[None, :, 1] - d[h, 1][:, None]
        px = q[h, 0][:, None] + s * (c * dx - sn * dy)
        py = q[h, 1][:, None] + s * (sn * dx + c * dy)
        close = (px - q[None, :, 0]) ** 2 + (py - q[None, :, 1]) ** 2 < tol * tol
        same_scale = np.abs(ratio[None, :] - ratio[h][:, None]) < SCALE_TOLERANCE
        turn = np.abs(np.mod(rot[None, :] - rot[h][:, None] + np.pi, 2 * np.pi) - np.pi)
        rows.append(close & same_scale & (turn < ANGLE_TOLERANCE))
    agree = np.concatenate(rows)
    best = int(np.argmax(agree.sum(axis=1)))
    return agree[best] if agree[best].sum() >= need else None


def dense_verification(query_kp, db_kp, pairs, db_size, model="homography", min_inliers=8,
                       seed=0):
    q = query_kp[pairs[:, 0]].astype(np.float64)
    d = db_kp[pairs[:, 1]].astype(np.float64)
    row = dense_supporters(q, d, db_size, minimum_support(model, min_inliers), seed=seed)
    if row is None:
        return 0, None, np.zeros((0, 2), np.int64)
    v = fit_consistent(q, d, pairs, row, db_size, model, 6.0, min_inliers)
    return v.inliers, v.transform, v.pairs


def random_candidate(rng, nq, nd, m, inlier_share, upright):
    """Keypoints of a query and a catalog image and ``m`` pairs, a share of them following one
    similarity; ``upright`` keeps angles and scales close (as product photos have them), which
    puts most pairs in one scale-rotation bin."""
    d = np.c_[rng.random((nd, 2)) * 300, np.exp2(rng.uniform(1, 4, nd)), rng.random(nd) * 360]
    q = np.c_[rng.random((nq, 2)) * 400, np.exp2(rng.uniform(1, 4, nq)), rng.random(nq) * 360]
    if upright:
        d[:, 3] = rng.normal(0, 8, nd) % 360
        q[:, 3] = rng.normal(0, 8, nq) % 360
        q[:, 2] = d[rng.integers(0, nd, nq), 2] * rng.uniform(0.8, 1.3, nq)
    pairs = np.unique(np.c_[rng.integers(0, nq, m), rng.integers(0, nd, m)], axis=0)
    n_in = int(inlier_share * len(pairs))
    if n_in:
        a, s, t = np.deg2rad(rng.uniform(-40, 40)), rng.uniform(0.7, 1.4), rng.uniform(20, 80, 2)
        rot = s * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        inl = pairs[:n_in]
        q[inl[:, 0], :2] = d[inl[:, 1], :2] @ rot.T + t + rng.normal(0, 1.0, (n_in, 2))
        q[inl[:, 0], 2] = d[inl[:, 1], 2] * s
        q[inl[:, 0], 3] = (d[inl[:, 1], 3] + np.rad2deg(a)) % 360
    return q.astype(np.float32), d.astype(np.float32), pairs


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 6), upright=st.booleans(),
       model=st.sampled_from(["similarity", "affine", "homography"]),
       block=st.sampled_from([1, 37, 300, BLOCK_CORRESPONDENCES]))
def test_batched_candidates_equal_the_dense_form_one_by_one(seed, n, upright, model, block):
    """... in blocks of any size: one candidate per block, several, or all in one."""
    rng = np.random.default_rng(seed)
    nq = int(rng.integers(20, 120))
    query_kp = None
    db_kps, pair_sets, sizes = [], [], []
    for _ in range(n):
        m = int(rng.choice([0, 5, 30, 150, 260]))       # 260 > 200 exercises the hypothesis subset
        q, d, pairs = random_candidate(rng, nq, int(rng.integers(10, 90)), m,
                                       float(rng.choice([0.0, 0.1, 0.5])), upright)
        query_kp = q if query_kp is None else query_kp  # one query for all candidates
        pair_sets.append(pairs)
        db_kps.append(d)
        sizes.append((int(rng.integers(60, 1500)), int(rng.integers(60, 1500))))
    # every candidate's pairs refer to the first candidate's query keypoints
    db_offsets = offsets_from_counts(np.array([len(d) for d in db_kps]))
    pair_offsets = offsets_from_counts(np.array([len(p) for p in pair_sets]))
    all_pairs = np.concatenate(pair_sets).astype(np.int64).reshape(-1, 2)
    of = np.repeat(np.arange(n), np.diff(pair_offsets))
    batched = verify_candidates(query_kp, all_pairs, pair_offsets,
                                np.concatenate(db_kps)[db_offsets[of] + all_pairs[:, 1]],
                                np.array(sizes), model=model, seed=seed % 1000,
                                block_correspondences=block)
    assert len(batched) == n
    for c in range(n):
        inliers, transform, inlier_pairs = dense_verification(
            query_kp, db_kps[c], pair_sets[c].reshape(-1, 2), sizes[c], model, seed=seed % 1000)
        assert batched[c].inliers == inliers
        assert batched[c].n_correspondences == len(pair_sets[c])
        np.testing.assert_array_equal(batched[c].pairs, inlier_pairs)
        if transform is None:
            assert batched[c].transform is None
        else:
            np.testing.assert_array_equal(batched[c].transform, transform)


@pytest.mark.parametrize("block", [0, -5])
def test_a_block_size_below_one_is_refused(block):
    with pytest.raises(InvalidInputError, match="block_correspondences"):
        verify_candidates(np.zeros((1, 4), np.float32), np.zeros((0, 2), np.int64),
                          np.zeros(1, np.int64), np.zeros((0, 4), np.float32),
                          np.zeros((0, 2)), block_correspondences=block)


@pytest.mark.parametrize("model", ["similarity", "homography"])
def test_a_real_warp_verifies_the_same_batched_and_dense(model):
    """Real SIFT keypoints of a product and its warp, among random-pair decoys."""
    prod = product(0)
    fp, fq = SIFT.extract(prod), SIFT.extract(warp(prod, CASES["homography"]))
    words = nn_words(fq.descriptors, fp.descriptors)
    true_pairs = QueryWords(words).pairs_with(np.arange(len(fp)))
    rng = np.random.default_rng(1)
    decoy = np.unique(np.c_[rng.integers(0, len(fq), 300), rng.integers(0, len(fp), 300)], axis=0)
    sets = [decoy, true_pairs, decoy[:40]]
    flat = np.concatenate(sets)
    out = verify_candidates(fq.keypoints, flat, offsets_from_counts(np.array([len(s) for s in sets])),
                            fp.keypoints[flat[:, 1]], np.array([(320, 320)] * 3), model=model)
    assert out[1].inliers >= 30
    for c, pairs in enumerate(sets):
        inliers, _, inlier_pairs = dense_verification(fq.keypoints, fp.keypoints, pairs,
                                                      (320, 320), model)
        assert out[c].inliers == inliers
        np.testing.assert_array_equal(out[c].pairs, inlier_pairs)
        single = verify_pair(fq.keypoints, fp.keypoints, pairs, db_size=(320, 320), model=model)
        assert single.inliers == inliers


@given(seed=st.integers(0, 2**32 - 1), m=st.integers(1, 300), on_edges=st.booleans())
def test_bin_neighbourhoods_bound_every_hypothesis_support(seed, m, on_edges):
    """Whatever agrees with a hypothesis in scale and rotation is inside its neighbourhood,
    also for values right at bin edges and at the 0/360° wrap."""
    rng = np.random.default_rng(seed)
    group = np.sort(rng.integers(0, 3, m))
    if on_edges:
        ratio = rng.integers(-6, 6, m) * SCALE_TOLERANCE * rng.choice([1.0, 1.01, 0.99], m)
        rotation = rng.integers(-12, 12, m) * np.deg2rad(30.0) + rng.choice([0, 1e-12, -1e-12], m)
    else:
        ratio = rng.normal(0, 1.0, m)
        rotation = rng.uniform(-4 * np.pi, 4 * np.pi, m)
    bins = ScaleRotationBins(group, ratio, rotation)
    turn = np.abs(np.mod(rotation[None, :] - rotation[:, None] + np.pi, 2 * np.pi) - np.pi)
    agree = (np.abs(ratio[None, :] - ratio[:, None]) < SCALE_TOLERANCE) & \
        (turn < ANGLE_TOLERANCE) & (group[None, :] == group[:, None])
    counts = bins.neighbourhood_counts(np.arange(m))
    assert np.all(agree.sum(axis=1) <= counts)
    sizes, member = bins.neighbours(np.arange(m))
    assert np.array_equal(sizes, counts) and np.all(sizes >= 1)
    row = np.repeat(np.arange(m), sizes)
    listed = np.zeros((m, m), bool)
    listed[row, member] = True
    assert not np.any(agree & ~listed)               # every agreeing pair is compared
    assert np.all(group[member] == group[row])       # and only within its candidate


@given(values=st.lists(st.floats(-1e6, 1e6), min_size=0, max_size=200),
       cuts=st.lists(st.integers(0, 200), max_size=8))
def test_segment_medians_equal_numpy_median_per_segment(values, cuts):
    v = np.array(values, np.float64)
    edges = sorted({0, len(v), *[c for c in cuts if c <= len(v)]})
    segment = np.zeros(len(v), np.int64)
    for i, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
        segment[a:b] = i * 7 + 3                     # labels need not be consecutive
    got = segment_medians(v, segment)
    for a, b in zip(edges[:-1], edges[1:]):
        if b > a:
            assert np.all(got[a:b] == np.median(v[a:b]))


@given(nq=st.integers(0, 25), k=st.integers(1, 3), n_words=st.integers(1, 40),
       max_fanout=st.integers(1, 6), sizes=st.lists(st.integers(0, 20), max_size=6),
       seed=st.integers(0, 2**32 - 1))
def test_pairs_with_many_equal_the_double_loop_per_image(nq, k, n_words, max_fanout, sizes, seed):
    rng = np.random.default_rng(seed)
    qw = query_words(rng, nq, k, n_words)
    images = [rng.integers(0, n_words + 5, s) for s in sizes]    # some words beyond the query's
    offsets = offsets_from_counts(np.array(sizes, np.int64))
    flat = np.concatenate(images) if images else np.zeros(0, np.int64)
    pairs, pair_offsets = QueryWords(qw, max_fanout=max_fanout).pairs_with_many(offsets, flat)
    assert pair_offsets.shape == (len(sizes) + 1,) and pair_offsets[-1] == len(pairs)
    for i, dw in enumerate(images):
        got = pairs[pair_offsets[i]:pair_offsets[i + 1]]
        assert sorted(map(tuple, got.tolist())) == ref_correspondences(qw, dw, max_fanout)
        np.testing.assert_array_equal(got, QueryWords(qw, max_fanout=max_fanout).pairs_with(dw))


def test_store_gather_equals_get_per_image_across_blocks():
    rng = np.random.default_rng(0)
    store = KeypointStore(1000)
    for _ in range(3):                                  # three blocks
        counts = rng.integers(0, 12, 5)
        words = [rng.integers(0, 1000, c) for c in counts]
        kps = [np.c_[rng.random((c, 2)) * 500, rng.uniform(1, 40, c), rng.random(c) * 360]
               .astype(np.float32) for c in counts]
        store.add(words, kps)
    ids = np.array([14, 0, 7, 7, 3, 12])
    offsets, words, kp = store.gather(ids)
    for i, image in enumerate(ids.tolist()):
        w, k = store.get(image)
        np.testing.assert_array_equal(words[offsets[i]:offsets[i + 1]], w)
        np.testing.assert_array_equal(kp[offsets[i]:offsets[i + 1]], k)
    with pytest.raises(InvalidInputError):
        store.gather(np.array([15]))


def test_verify_shortlist_keeps_only_candidates_that_verified():
    prod = product(3)
    fp, fq = SIFT.extract(prod), SIFT.extract(warp(prod, CASES["similarity"]))
    words_q = nn_words(fq.descriptors, fp.descriptors)
    other = SIFT.extract(product(9))
    store = KeypointStore(20_000)
    store.add([np.arange(len(other)) + 10_000], [other.keypoints])   # no word shared
    store.add([np.arange(len(fp))], [fp.keypoints])                  # its own words: all shared
    found = verify_shortlist(fq.keypoints, QueryWords(words_q), store, np.array([0, 1]),
                             np.array([(320, 320)] * 2))
    assert list(found) == [1] and found[1].inliers >= 30
    single = verify_pair(fq.keypoints, fp.keypoints, QueryWords(words_q).pairs_with(np.arange(len(fp))),
                         db_size=(320, 320))
    assert found[1].inliers == single.inliers
    np.testing.assert_array_equal(found[1].pairs, single.pairs)


def test_a_tie_with_an_earlier_hypothesis_of_a_smaller_bin_goes_to_the_earlier_one():
    """Two consistent groups of 10 pairs: A (pairs 0-9, unrotated) and B (pairs 10-19, turned
    90°, sharing its bin with 5 stray pairs). B's bin is larger, so B is probed first, but A
    ties it and comes first: the winner must be A, as in the dense form."""
    rng = np.random.default_rng(4)
    d = np.c_[rng.random((25, 2)) * 250 + 25, np.full(25, 4.0), np.zeros(25)]
    q = d.copy()
    turn = np.array([[0.0, -1.0], [1.0, 0.0]])
    q[10:20, :2] = d[10:20, :2] @ turn.T + [400, 0]
    q[10:25, 3] = 90.0
    q[20:25, :2] = [[900, 900], [1200, 700], [700, 1300], [1500, 1500], [1000, 1800]]
    pairs = np.c_[np.arange(25), np.arange(25)]
    got = verify_pair(q.astype(np.float32), d.astype(np.float32), pairs, db_size=(300, 300),
                      model="similarity")
    inliers, _, inlier_pairs = dense_verification(q.astype(np.float32), d.astype(np.float32),
                                                  pairs, (300, 300), "similarity")
    assert inliers == 10 and set(inlier_pairs[:, 0].tolist()) == set(range(10))
    assert got.inliers == inliers
    np.testing.assert_array_equal(got.pairs, inlier_pairs)


@given(seed=st.integers(0, 2**32 - 1), m=st.integers(1, 200))
def test_sparse_and_dense_bin_tables_agree(seed, m):
    """Bins are looked up in a dense table up to a size, else by binary search: same answers."""
    import vbow.verify.hypotheses as hypotheses
    rng = np.random.default_rng(seed)
    group = np.sort(rng.integers(0, 5, m))
    ratio, rotation = rng.normal(0, 1.5, m), rng.uniform(-7, 7, m)
    dense = ScaleRotationBins(group, ratio, rotation)
    limit = hypotheses._DENSE_CELLS
    try:
        hypotheses._DENSE_CELLS = 0
        sparse = ScaleRotationBins(group, ratio, rotation)
    finally:
        hypotheses._DENSE_CELLS = limit
    idx = np.arange(m)
    for a, b in zip(dense.neighbours(idx), sparse.neighbours(idx)):
        np.testing.assert_array_equal(a, b)


def test_a_search_verifies_its_shortlist_as_verify_pair_does_one_by_one(sift_index, catalog):
    """The query plan's batched verification of every catalog image against real shopper
    photos gives, image by image, what verify_pair gives (and the true product verifies)."""
    verified_true = 0
    with sift_index.reading() as plan:
        cfg, store, size = plan.config, plan.state.store, plan.state.catalog.size
        for photo in catalog.photos[::3]:
            query = sift_index.describe(photo.image)
            bag = plan.quantise(query.features)
            matcher = QueryWords(bag.assignments, max_fanout=cfg.max_fanout)
            docs = np.arange(len(sift_index))
            batched = plan.verify(query.features, matcher, docs)
            for doc in docs.tolist():
                words, kp = store.get(doc)
                single = verify_pair(query.features.keypoints, kp, matcher.pairs_with(words),
                                     db_size=tuple(int(x) for x in size[doc]), model=cfg.model,
                                     threshold=cfg.ransac_threshold, min_inliers=cfg.min_inliers,
                                     seed=cfg.random_state)
                got = batched.get(doc)
                assert (got.inliers if got else 0) == single.inliers
                if got:
                    np.testing.assert_array_equal(got.pairs, single.pairs)
                    np.testing.assert_array_equal(got.transform, single.transform)
            verified_true += int(photo.product in batched)
    assert verified_true >= len(catalog.photos[::3]) - 1
