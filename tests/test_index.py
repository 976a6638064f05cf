"""vbow.ImageIndex end to end on a synthetic catalog with exact ground truth."""

from __future__ import annotations

import json
from collections import Counter

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from conftest import N_PRODUCTS, SIFT_SETTINGS, corner_errors, project

import vbow
from vbow.search.postings import TF_CAP
from vbow.errors import ImageError, InvalidInputError, NotFittedError, UnknownOptionError
from vbow.results import ImageFailure
from vbow.search.weighting import bag_of_words

SIZE = 320  # catalog image side


def true_key(catalog, photo) -> str:
    return catalog.names[photo.product]


# --------------------------------------------------------------------------- retrieval quality


def test_right_product_is_ranked_first(catalog, sift_results):
    hits = [r.best is not None and r.best.key == true_key(catalog, p)
            for p, r in zip(catalog.photos, sift_results)]
    assert np.mean(hits) >= 0.9, [r.keys[:3] for r in sift_results]
    for r in sift_results:
        assert len(r) == N_PRODUCTS
        assert len(set(r.keys)) == len(r.keys)
        assert [m.rank for m in r] == list(range(len(r)))
        scores = [m.score for m in r]
        assert scores == sorted(scores, reverse=True)


def test_returned_transform_maps_catalog_corners(catalog, sift_results):
    errors = []
    for p, r in zip(catalog.photos, sift_results):
        best = r.best
        if best.key != true_key(catalog, p) or not best.verified:
            continue
        err = corner_errors(best.transform, p.homography, SIZE, SIZE)
        assert err.max() <= 15, (best.key, err)
        errors.append(err)
    assert len(errors) >= 0.9 * len(catalog.photos)       # nearly every right match is verified
    assert np.median(np.concatenate(errors)) <= 8


def test_inlier_points_follow_the_transform(catalog, sift_results):
    for p, r in zip(catalog.photos, sift_results):
        best = r.best
        if not best.verified:
            continue
        pts = best.inlier_points
        assert pts.shape == (best.inliers, 4) and pts.dtype == np.float32
        # query points are where the true homography sends the catalog points
        err = np.linalg.norm(project(p.homography, pts[:, 2:]) - pts[:, :2], axis=1)
        assert np.median(err) < 4
        assert np.all((pts[:, 2:] >= -1) & (pts[:, 2:] <= SIZE + 1))


def test_fused_score_rule(sift_index, sift_results):
    """score = z(bow) + w * z(colour) + inliers, z standardising over the candidate images
    (here every image: top_k covers the catalog); bow and colour scores are in [0, 1]."""
    w = sift_index.config.colour_weight
    for r in sift_results:
        assert len(r) == len(sift_index)
        bow = np.array([m.bow_score for m in r])
        colour = np.array([m.colour_score for m in r])
        assert np.all((bow >= 0) & (bow <= 1 + 1e-6)) and np.all((colour >= 0) & (colour <= 1 + 1e-6))
        z_bow = (bow - bow.mean()) / (bow.std() + 1e-9)
        z_colour = (colour - colour.mean()) / (colour.std() + 1e-9)
        inliers = np.array([m.inliers for m in r])
        np.testing.assert_allclose([m.score for m in r], z_bow + w * z_colour + inliers,
                                   rtol=1e-6, atol=1e-6)
        for m in r:
            assert (m.transform is None) == (m.inliers == 0)
            assert m.inliers == 0 or m.inliers >= sift_index.config.min_inliers


@pytest.mark.parametrize("photo_index", [0, 7])
def test_transform_is_in_original_pixels_for_a_scaled_query(sift_index, catalog, photo_index):
    """A 2x upscaled photo is processed at max_side (scale 1.5); the transform must map catalog
    pixels to the upscaled photo's pixels."""
    p = catalog.photos[photo_index]
    big = cv2.resize(p.image, None, fx=2, fy=2, interpolation=cv2.INTER_LINEAR)
    r = sift_index.search(big, top_k=3, shortlist=3)
    assert r.best.key == true_key(catalog, p) and r.best.verified
    h_big = np.diag([2.0, 2.0, 1.0]) @ p.homography
    err = corner_errors(r.best.transform, h_big, SIZE, SIZE)
    assert err.max() <= 20, err
    pts = r.best.inlier_points
    assert np.median(np.linalg.norm(project(h_big, pts[:, 2:]) - pts[:, :2], axis=1)) < 8


def test_rerank_only_reorders_the_shortlist(sift_index, catalog, monkeypatch):
    # query expansion may bring in images from outside the shortlist; this is about rerank alone.
    # With colour fused in, the shortlist alternates the best by fused score and by words alone
    # (QueryPlan.verification_order), so the verified images come from those two rankings.
    base = sift_index.config.replace(query_expansion=0)
    s = 5
    for p in catalog.photos[::8]:
        q = sift_index.describe(p.image)
        monkeypatch.setattr(sift_index, "config", base.replace(colour_weight=0.0))
        by_words = sift_index.search_features(q, top_k=s, rerank=False)
        words_reranked = sift_index.search_features(q, top_k=s, rerank=True, shortlist=s)
        assert set(by_words.keys) == set(words_reranked.keys)
        monkeypatch.setattr(sift_index, "config", base)
        plain = sift_index.search_features(q, top_k=s, rerank=False)
        reranked = sift_index.search_features(q, top_k=s, rerank=True, shortlist=s)
        assert len(plain) == len(reranked) == s
        assert set(reranked.keys) <= set(plain.keys) | set(by_words.keys)
        assert all(m.inliers == 0 and m.transform is None for m in plain)
        assert any(m.inliers > 0 for m in reranked)
        # the bag-of-words and colour scores do not depend on re-ranking
        every = sift_index.search_features(q, top_k=len(sift_index), rerank=False)
        bow = {m.key: (m.bow_score, m.colour_score) for m in every}
        for m in reranked:
            assert m.bow_score == bow[m.key][0] and m.colour_score == bow[m.key][1]


def _dense_catalog_tfidf(index, catalog) -> np.ndarray:
    """(products, n_words) L2-normalised TF-IDF rows built densely from the vocabulary's words
    (stored counts are capped at TF_CAP, burstiness sqrt)."""
    vocab = index.vocabulary
    idf = vocab.idf_.astype(np.float64)
    db = np.zeros((N_PRODUCTS, vocab.n_words_))
    for i, img in enumerate(catalog.products):
        words = vocab.quantise(index.describe(img).features.descriptors)
        for w, c in Counter(words.tolist()).items():
            db[i, w] = np.sqrt(min(c, TF_CAP)) * idf[w]
    return db / np.linalg.norm(db, axis=1, keepdims=True)


def _dense_query_tfidf(index, q) -> np.ndarray:
    """(n_words,) L2-normalised soft-assigned TF-IDF vector of a described query."""
    vocab, cfg = index.vocabulary, index.config
    words, weights = vocab.quantise_multi(q.features.descriptors, cfg.query_assignments,
                                          sigma=cfg.assignment_sigma)
    qv = np.zeros(vocab.n_words_)
    np.add.at(qv, words[words >= 0], weights[words >= 0].astype(np.float64))
    qv = np.sqrt(qv) * vocab.idf_.astype(np.float64)
    return qv / np.linalg.norm(qv)


def test_results_agree_with_a_dense_tfidf_recomputation(sift_index, catalog):
    """bow_score equals the cosine of TF-IDF vectors built here from the vocabulary's words."""
    db = _dense_catalog_tfidf(sift_index, catalog)
    for p in catalog.photos[::6]:
        q = sift_index.describe(p.image)
        qv = _dense_query_tfidf(sift_index, q)
        expected = db @ qv
        r = sift_index.search(p.image, top_k=N_PRODUCTS, rerank=False)
        got = {m.key: m.bow_score for m in r}
        for i, key in enumerate(catalog.names):
            assert got[key] == pytest.approx(expected[i], abs=2e-5), key


def test_query_expansion_scores_the_average_of_query_and_verified_results(sift_index, catalog,
                                                                         monkeypatch):
    """With expansion, bow_score is the cosine with the normalised sum of the query's TF-IDF
    vector and those of its best verified results (computed here densely), and every verified
    result keeps its inliers."""
    cfg = sift_index.config
    n_expand = 2
    db = _dense_catalog_tfidf(sift_index, catalog)
    row = {k: i for i, k in enumerate(catalog.names)}
    checked = 0
    for p in catalog.photos[::5]:
        q = sift_index.describe(p.image)
        monkeypatch.setattr(sift_index, "config", cfg.replace(query_expansion=0))
        plain = sift_index.search_features(q, top_k=N_PRODUCTS, shortlist=N_PRODUCTS)
        monkeypatch.setattr(sift_index, "config", cfg.replace(query_expansion=n_expand))
        expanded = sift_index.search_features(q, top_k=N_PRODUCTS, shortlist=N_PRODUCTS)
        chosen = [m.key for m in plain if m.verified][:n_expand]
        if not chosen:
            continue
        qv = _dense_query_tfidf(sift_index, q)
        total = qv + sum(db[row[k]] for k in chosen)
        expected = db @ (total / np.linalg.norm(total))
        got = {m.key: m.bow_score for m in expanded}
        for key, i in row.items():
            assert got[key] == pytest.approx(expected[i], abs=5e-5), key
        assert {m.key: m.inliers for m in expanded if m.verified} == \
            {m.key: m.inliers for m in plain if m.verified}
        checked += 1
    assert checked >= 3


# --------------------------------------------------------------------------- persistence


@pytest.mark.parametrize("mmap", [True, False])
def test_save_load_gives_identical_results(sift_index, sift_results, index_bundle, catalog, mmap):
    loaded = vbow.ImageIndex.load(index_bundle, mmap=mmap, verify_checksums=True)
    assert len(loaded) == len(sift_index) and loaded.keys == sift_index.keys
    assert loaded.config == sift_index.config
    for i in (1, 7, 13, 19):
        a = sift_results[i]
        b = loaded.search(catalog.photos[i].image, top_k=N_PRODUCTS)
        assert a.keys == b.keys
        assert [m.score for m in a] == [m.score for m in b]
        assert [m.inliers for m in a] == [m.inliers for m in b]
        for x, y in zip(a, b):
            assert x.metadata == y.metadata
            if x.transform is not None:
                np.testing.assert_array_equal(x.transform, y.transform)


def test_loaded_index_is_memory_mapped_read_only(index_bundle):
    loaded = vbow.ImageIndex.load(index_bundle, mmap=True)
    with loaded.reading() as plan:
        seg = plan.state.postings.segments[0]
    assert isinstance(seg.postings, np.memmap) and not seg.postings.flags.writeable


def test_saving_twice_and_reloading(index_bundle, tmp_path, catalog):
    index = vbow.ImageIndex.load(index_bundle, mmap=True)
    out = index.save(tmp_path / "again.vbow")
    again = vbow.ImageIndex.load(out)
    p = catalog.photos[3]
    assert again.search(p.image, top_k=4).keys == index.search(p.image, top_k=4).keys


def test_loading_a_corrupt_bundle_names_the_file(index_bundle, tmp_path):
    import shutil

    copy = tmp_path / "broken.vbow"
    shutil.copytree(index_bundle, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    victim = copy / manifest["arrays"]["colour"]["file"]
    victim.write_bytes(victim.read_bytes()[:-5])
    with pytest.raises(vbow.BundleFormatError) as info:
        vbow.ImageIndex.load(copy)
    assert str(victim) in str(info.value)
    (copy / "manifest.json").write_text("{")
    with pytest.raises(vbow.BundleFormatError, match="manifest.json"):
        vbow.ImageIndex.load(copy)


# --------------------------------------------------------------------------- add / remove


@pytest.fixture
def index_copy(index_bundle):
    """A private, mutable copy of the session index (memory-mapped: copy on write)."""
    return vbow.ImageIndex.load(index_bundle, mmap=True)


def test_add_then_remove(index_copy, held_out, catalog, sift_index, tmp_path):
    index = index_copy
    products, photos = held_out
    n0 = len(index)
    report = index.add([img for _, img, _ in products], keys=[k for k, _, _ in products],
                       metadata=[{"category": c} for _, _, c in products])
    assert report.ok and report.added == tuple(k for k, _, _ in products)
    assert len(index) == n0 + len(products)
    for p in photos:                                  # the new products are found
        key = products[p.product - N_PRODUCTS][0]
        r = index.search(p.image, top_k=3, shortlist=4)
        assert r.best.key == key and r.best.verified
    removed = [products[0][0], catalog.names[0]]
    assert index.remove(removed) == 2
    assert len(index) == n0 + len(products) - 2
    assert all(k not in index for k in removed)
    queries = [photos[0], catalog.photos[0], catalog.photos[5]]
    for p in queries:
        r = index.search(p.image, top_k=len(index) + 5)
        assert not set(r.keys) & set(removed)
        assert len(r) == len(index)
    # a removed product's own photo now finds something else, without error
    assert index.search(catalog.photos[0].image, top_k=3).best.key != catalog.names[0]
    # removed images stay gone through save and load (compaction renumbers the rest)
    before = [index.search(p.image, top_k=5) for p in queries]
    reloaded = vbow.ImageIndex.load(index.save(tmp_path / "after-remove.vbow"))
    assert sorted(reloaded.keys) == sorted(index.keys)
    for p, b in zip(queries, before):
        a = reloaded.search(p.image, top_k=5)
        assert a.keys == b.keys and [m.inliers for m in a] == [m.inliers for m in b]
        np.testing.assert_allclose([m.score for m in a], [m.score for m in b], rtol=1e-6)
    # the original session index is untouched (the copy was memory-mapped copy-on-write)
    assert len(sift_index) == N_PRODUCTS and catalog.names[0] in sift_index


def test_remove_unknown_key_raises_and_removes_nothing(index_copy, catalog):
    n0 = len(index_copy)
    with pytest.raises(KeyError, match="NOT-A-KEY"):
        index_copy.remove([catalog.names[1], "NOT-A-KEY"])
    assert len(index_copy) == n0 and catalog.names[1] in index_copy
    assert catalog.names[1] in index_copy.search(catalog.photos[2].image, top_k=N_PRODUCTS).keys
    with pytest.raises(KeyError):
        index_copy.remove("NOT-A-KEY")
    assert index_copy.remove([]) == 0


def test_duplicate_keys_are_refused(index_copy, held_out, catalog):
    key, img, _ = held_out[0][0]
    n0 = len(index_copy)
    with pytest.raises(InvalidInputError, match=catalog.names[3]):
        index_copy.add([img], keys=[catalog.names[3]])
    with pytest.raises(InvalidInputError, match="duplicate"):
        index_copy.add([img, img], keys=[key, key])
    assert len(index_copy) == n0 and key not in index_copy
    index_copy.add([img], keys=[key])
    with pytest.raises(InvalidInputError):
        index_copy.add([img], keys=[key])
    assert len(index_copy) == n0 + 1
    # after removal the key can be used again
    index_copy.remove(key)
    index_copy.add([img], keys=[key])
    assert len(index_copy) == n0 + 1


def test_catalog_image_scale_is_accounted_for(index_copy, held_out):
    """A catalog image larger than max_side is downscaled; transforms stay in its original pixels."""
    products, photos = held_out
    key, img, _ = products[1]
    big = cv2.resize(img, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)   # 960 px > 640
    index_copy.add([big], keys=[key])
    p = [ph for ph in photos if ph.product == N_PRODUCTS + 1][0]
    r = index_copy.search(p.image, top_k=2, shortlist=3)
    assert r.best.key == key and r.best.verified
    h = p.homography @ np.diag([1 / 3, 1 / 3, 1.0])        # big-catalog pixels -> photo pixels
    assert corner_errors(r.best.transform, h, 3 * SIZE, 3 * SIZE).max() <= 15
    assert r.best.inlier_points[:, 2:].max() > SIZE          # catalog points in original pixels


def test_batch_add_reports_bad_files_and_indexes_good_ones(index_copy, held_out, tmp_path):
    products, _ = held_out
    good = []
    for key, img, _ in products:
        path = tmp_path / f"{key}.png"
        path.write_bytes(cv2.imencode(".png", img)[1].tobytes())
        good.append(path)
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good[0].read_bytes()[:500])
    missing = tmp_path / "missing.jpg"
    images = [good[0], corrupt, missing, good[1], truncated]
    n0 = len(index_copy)
    report = index_copy.add(images)
    assert set(report.added) == {str(good[0]), str(good[1])}
    assert len(index_copy) == n0 + 2 and not report.ok
    bad = {str(corrupt), str(missing), str(truncated)}
    assert {f.source for f in report.failed} == bad
    for f in report.failed:
        assert isinstance(f, ImageFailure)
        assert f.source in f.error                       # the message names the file
        assert f.error_type in ("ImageError", "ImageDecodeError")


def test_failed_files_are_named_when_keys_are_given(index_copy, tmp_path):
    missing = tmp_path / "no_such_photo.jpg"
    report = index_copy.add([missing], keys=["SKU-MISSING"])
    assert report.added == () and len(report.failed) == 1
    assert str(missing) in report.failed[0].error


def test_on_error_raise_indexes_nothing(index_copy, held_out, tmp_path):
    products, _ = held_out
    missing = tmp_path / "gone.png"
    n0 = len(index_copy)
    with pytest.raises(ImageError) as info:
        index_copy.add([products[0][1], missing], keys=["A", "B"], on_error="raise")
    assert isinstance(info.value, ValueError)
    assert len(index_copy) == n0 and "A" not in index_copy
    with pytest.raises(UnknownOptionError, match="skip"):
        index_copy.add([products[0][1]], on_error="ignore")


def test_default_keys_and_metadata(index_copy, held_out, tmp_path):
    products, _ = held_out
    path = tmp_path / "p.png"
    path.write_bytes(cv2.imencode(".png", products[0][1])[1].tobytes())
    report = index_copy.add([path, products[1][1]], metadata=[{"shelf": 3}, None])
    assert report.added[0] == str(path) and report.added[1].startswith("image-")
    assert index_copy.metadata(str(path)) == {"shelf": 3}
    assert index_copy.metadata(report.added[1]) == {}
    with pytest.raises(InvalidInputError):
        index_copy.add([products[0][1]], keys=["k"], metadata=[{"bad": object()}])
    with pytest.raises(InvalidInputError):
        index_copy.add([products[0][1]], keys=["k1", "k2"])


# --------------------------------------------------------------------------- filtering


def test_metadata_filter_only_returns_that_category(sift_index, catalog):
    n = N_PRODUCTS
    for p in catalog.photos[::4]:
        q = sift_index.describe(p.image)
        full = {m.key: m for m in sift_index.search_features(q, top_k=n, rerank=False)}
        for category in sorted(set(catalog.categories)):
            r = sift_index.search_features(q, top_k=n, where={"category": category}, rerank=False)
            members = {k for k, c in zip(catalog.names, catalog.categories) if c == category}
            assert set(r.keys) == members and len(r) == len(members)
            assert all(m.metadata["category"] == category for m in r)
            for m in r:      # the raw similarities do not depend on the filter
                assert m.bow_score == full[m.key].bow_score
                assert m.colour_score == full[m.key].colour_score


def test_metadata_filter_equals_filtering_the_full_ranking(sift_index, catalog):
    """where= only restricts: the filtered ranking is the full ranking with the other
    categories left out (bag-of-words and colour scores unchanged)."""
    n = N_PRODUCTS
    for p in catalog.photos[::2]:
        q = sift_index.describe(p.image)
        full = sift_index.search_features(q, top_k=n, rerank=False)
        for category in sorted(set(catalog.categories)):
            r = sift_index.search_features(q, top_k=n, where={"category": category}, rerank=False)
            assert all(m.metadata["category"] == category for m in r)
            expected = [m for m in full if m.metadata["category"] == category]
            assert r.keys == [m.key for m in expected]
            assert [m.bow_score for m in r] == [m.bow_score for m in expected]
            assert [m.colour_score for m in r] == [m.colour_score for m in expected]


def test_metadata_filter_with_reranking(sift_index, catalog, monkeypatch):
    """With every candidate verified, filtering keeps the inliers and the order of the full
    re-ranked list (without query expansion, which expands from the allowed results only)."""
    monkeypatch.setattr(sift_index, "config", sift_index.config.replace(query_expansion=0))
    n = N_PRODUCTS
    for p in catalog.photos[::8]:
        q = sift_index.describe(p.image)
        full = sift_index.search_features(q, top_k=n, shortlist=n)
        for category in sorted(set(catalog.categories)):
            r = sift_index.search_features(q, top_k=n, where={"category": category}, shortlist=n)
            expected = [m for m in full if m.metadata["category"] == category]
            assert r.keys == [m.key for m in expected]
            assert [m.inliers for m in r] == [m.inliers for m in expected]


def test_filter_forms(sift_index, catalog):
    p = catalog.photos[4]
    cats = sorted(set(catalog.categories))[:2]
    allowed = {k for k, c in zip(catalog.names, catalog.categories) if c in cats}
    r = sift_index.search(p.image, top_k=N_PRODUCTS, where={"category": cats}, rerank=False)
    assert set(r.keys) == allowed
    r2 = sift_index.search(p.image, top_k=N_PRODUCTS, rerank=False,
                           where=lambda meta: meta["category"] in cats)
    assert r2.keys == r.keys
    assert len(sift_index.search(p.image, where={"category": "no-such"})) == 0
    with pytest.raises(vbow.InvalidInputError, match="missing_field"):  # a typo is not "no match"
        sift_index.search(p.image, where={"missing_field": 1})
    with pytest.raises(vbow.InvalidInputError, match="JSON value"):
        sift_index.search(p.image, where={"category": object()})
    r3 = sift_index.search(p.image, top_k=N_PRODUCTS, where={"category": cats[0], "n": [0, 1, 2, 3]},
                           rerank=False)
    assert all(m.metadata["category"] == cats[0] and m.metadata["n"] < 4 for m in r3)
    with pytest.raises(InvalidInputError):
        sift_index.search(p.image, where=["category"])


# --------------------------------------------------------------------------- errors and edge cases


def test_unknown_preset_and_setting_list_the_valid_ones():
    with pytest.raises(UnknownOptionError) as info:
        vbow.ImageIndex("surf")
    assert "sift" in str(info.value) and "orb" in str(info.value)
    assert isinstance(info.value, ValueError)
    with pytest.raises(UnknownOptionError) as info:
        vbow.ImageIndex("sift", n_word=1024)
    assert "n_words" in str(info.value) and "n_word" in str(info.value)
    with pytest.raises(UnknownOptionError, match="homography"):
        vbow.ImageIndex("sift", model="projective")
    with pytest.raises(InvalidInputError):
        vbow.ImageIndex("sift", n_words=0)


def test_use_before_fit_raises_not_fitted(catalog):
    index = vbow.ImageIndex("sift", n_jobs=1)
    assert not index.is_fitted and len(index) == 0
    for call in (lambda: index.search(catalog.photos[0].image),
                 lambda: index.add([catalog.products[0]], keys=["a"]),
                 lambda: index.search_many([catalog.photos[0].image]),
                 lambda: index.save("/tmp/never-written.vbow")):
        with pytest.raises(NotFittedError) as info:
            call()
        assert isinstance(info.value, ValueError)


def test_query_without_keypoints_gives_zero_bow_scores(sift_index):
    grey = np.full((300, 400, 3), 128, np.uint8)
    r = sift_index.search(grey, top_k=5)
    assert len(r) == 5
    assert all(m.bow_score == 0 and m.inliers == 0 and m.transform is None for m in r)


def test_catalog_image_without_keypoints_can_be_indexed(index_copy, catalog):
    index_copy.add([np.full((200, 200, 3), 200, np.uint8)], keys=["FLAT"])
    r = index_copy.search(catalog.photos[0].image, top_k=N_PRODUCTS + 1)
    flat = [m for m in r if m.key == "FLAT"][0]
    assert flat.bow_score == 0 and flat.inliers == 0
    assert r.best.key == catalog.names[0]


def test_bad_query_raises_image_error_naming_it(sift_index, tmp_path):
    path = tmp_path / "query.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0 not really")
    with pytest.raises(ImageError, match="query.jpg"):
        sift_index.search(path)
    with pytest.raises(InvalidInputError):
        sift_index.search(np.zeros((10, 10, 3), np.uint8), top_k=0)


def test_query_described_with_other_colour_settings_is_refused(sift_index, catalog):
    import dataclasses
    q = sift_index.describe(catalog.photos[0].image)
    other = dataclasses.replace(q, colour=np.full(q.colour.size + 8, 0.1, np.float32))
    with pytest.raises(InvalidInputError, match="colour signature"):
        sift_index.search_features(other)
    assert sift_index.search_features(q).best is not None


def test_search_many_answers_good_queries_and_reports_bad_ones(sift_index, catalog, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"nope")
    photos = [catalog.photos[0], catalog.photos[9]]
    out = sift_index.search_many([photos[0].image, bad, photos[1].image], top_k=2, progress=False)
    assert len(out) == 3
    assert isinstance(out[1], ImageFailure) and str(bad) in out[1].error
    for res, p in zip((out[0], out[2]), photos):
        assert res.best.key == true_key(catalog, p)


def test_results_serialise_to_json(sift_results):
    d = json.loads(json.dumps(sift_results[0].to_dict()))
    assert d["results"][0]["key"] == sift_results[0].best.key
    assert d["results"][0]["inliers"] == sift_results[0].best.inliers


# --------------------------------------------------------------------------- other configurations


@pytest.mark.parametrize("method", ["orb", "teblid"])
def test_orb_preset_finds_the_right_product(catalog, method, tmp_path):
    index = vbow.ImageIndex("orb", method=method, n_words=1024, n_jobs=1)
    index.build(catalog.products, keys=catalog.names)
    assert isinstance(index.vocabulary, vbow.HammingVocabulary)
    photos = catalog.photos[::2]
    hits = [index.search(p.image, top_k=3, shortlist=4).best.key == true_key(catalog, p)
            for p in photos]
    assert np.mean(hits) >= 0.75
    index.save(tmp_path / "binary.vbow")  # a binary method's bundle loads and answers alike
    again = vbow.ImageIndex.load(tmp_path / "binary.vbow")
    assert again.config.method == method
    assert [again.search(p.image, top_k=3, shortlist=4).best.key for p in photos[:3]] == \
        [index.search(p.image, top_k=3, shortlist=4).best.key for p in photos[:3]]


def test_database_idf_matches_a_dense_recomputation(catalog):
    index = vbow.ImageIndex("sift", idf_source="database", **SIFT_SETTINGS)
    index.build(catalog.products, keys=catalog.names)
    vocab, cfg = index.vocabulary, index.config
    doc_words = {k: vocab.quantise(index.describe(img).features.descriptors)
                 for k, img in zip(catalog.names, catalog.products)}

    def check(live_keys, photo):
        n = len(live_keys)
        df = np.zeros(vocab.n_words_)
        for k in live_keys:
            df[np.unique(doc_words[k])] += 1
        idf = np.log(n / np.maximum(df, 0.5))          # unseen words: as if in half an image
        q = index.describe(photo.image)
        words, weights = vocab.quantise_multi(q.features.descriptors, cfg.query_assignments,
                                              sigma=cfg.assignment_sigma)
        uq, tf = bag_of_words(words, weights)
        qv = np.zeros(vocab.n_words_)
        qv[uq] = np.sqrt(tf.astype(np.float64)) * idf[uq]
        qv /= np.linalg.norm(qv)
        r = index.search(photo.image, top_k=n, rerank=False)
        assert sorted(r.keys) == sorted(live_keys)
        for m in r:
            dv = np.zeros(vocab.n_words_)
            for w, c in Counter(doc_words[m.key].tolist()).items():
                dv[w] = np.sqrt(min(c, TF_CAP)) * idf[w]
            expected = float(dv @ qv / np.linalg.norm(dv))
            assert m.bow_score == pytest.approx(expected, abs=5e-5), m.key

    check(list(catalog.names), catalog.photos[0])
    # the IDF follows the live images: remove some and compare again
    index.remove(catalog.names[:4])
    check(list(catalog.names[4:]), catalog.photos[10])


def test_two_jobs_give_the_same_index_as_one(catalog, sift_index):
    settings = dict(SIFT_SETTINGS, n_jobs=2)
    index = vbow.ImageIndex("sift", **settings)
    index.build(catalog.products, keys=catalog.names,
                metadata=[{"category": c, "n": i} for i, c in enumerate(catalog.categories)])
    np.testing.assert_array_equal(index.vocabulary.words_, sift_index.vocabulary.words_)
    np.testing.assert_array_equal(index.vocabulary.idf_, sift_index.vocabulary.idf_)
    queries = [catalog.photos[2].image, catalog.photos[13].image]
    many = index.search_many(queries, top_k=4)          # queries described in two processes too
    for q, r2 in zip(queries, many):
        r1 = sift_index.search(q, top_k=4)
        assert r1.keys == r2.keys
        assert [m.score for m in r1] == [m.score for m in r2]
        assert [m.inliers for m in r1] == [m.inliers for m in r2]


def test_fit_then_add_equals_build(catalog, sift_index, sift_results):
    index = vbow.ImageIndex("sift", **SIFT_SETTINGS)
    index.fit(catalog.products)
    assert len(index) == 0 and index.is_fitted
    np.testing.assert_array_equal(index.vocabulary.words_, sift_index.vocabulary.words_)
    np.testing.assert_array_equal(index.vocabulary.idf_, sift_index.vocabulary.idf_)
    index.add(catalog.products, keys=catalog.names,
              metadata=[{"category": c, "n": i} for i, c in enumerate(catalog.categories)])
    for i in (0, 11):
        r = index.search(catalog.photos[i].image, top_k=N_PRODUCTS)
        assert r.keys == sift_results[i].keys
        assert [m.score for m in r] == [m.score for m in sift_results[i]]


def test_one_batched_add_equals_many_small_adds(index_bundle, held_out, catalog):
    products, photos = held_out
    batched = vbow.ImageIndex.load(index_bundle)
    single = vbow.ImageIndex.load(index_bundle)
    batched.add([img for _, img, _ in products], keys=[k for k, _, _ in products])
    for key, img, _ in products:
        single.add(img, keys=[key])
    assert batched.keys == single.keys
    for p in (photos[0], catalog.photos[3]):
        q = batched.describe(p.image)
        a = batched.search_features(q, top_k=N_PRODUCTS + 2)
        b = single.search_features(q, top_k=N_PRODUCTS + 2)
        assert a.keys == b.keys
        np.testing.assert_allclose([m.score for m in a], [m.score for m in b], rtol=1e-6)


def test_empty_and_emptied_indexes(index_bundle, catalog, tmp_path):
    index = vbow.ImageIndex.load(index_bundle)
    report = index.add([], keys=[])
    assert report.added == () and report.ok
    index.remove(list(index.keys))
    assert len(index) == 0 and index.keys == []
    assert len(index.search(catalog.photos[0].image)) == 0
    reloaded = vbow.ImageIndex.load(index.save(tmp_path / "empty.vbow"))
    assert len(reloaded) == 0 and len(reloaded.search(catalog.photos[0].image)) == 0
    reloaded.add([catalog.products[2]], keys=["again"])
    assert reloaded.search(catalog.photos[4].image, top_k=1).best.key == "again"


def test_fitted_index_without_images_saves_and_loads(catalog, tmp_path):
    index = vbow.ImageIndex("sift", n_words=256, n_jobs=1).fit(catalog.products[:3])
    loaded = vbow.ImageIndex.load(index.save(tmp_path / "vocab-only.vbow"))
    assert loaded.is_fitted and len(loaded) == 0
    np.testing.assert_array_equal(loaded.vocabulary.words_, index.vocabulary.words_)
    loaded.add(catalog.products[:3], keys=["a", "b", "c"])
    assert loaded.search(catalog.photos[2].image, top_k=1).best.key == "b"


def test_index_inspection(index_copy, catalog):
    assert len(index_copy) == N_PRODUCTS and index_copy.keys == list(catalog.names)
    assert catalog.names[5] in index_copy and "nope" not in index_copy and 5 not in index_copy
    assert index_copy.metadata(catalog.names[5]) == {"category": catalog.categories[5], "n": 5}
    index_copy.remove(catalog.names[5])
    with pytest.raises(KeyError):
        index_copy.metadata(catalog.names[5])
    assert "12 images" not in repr(index_copy) and "11 images" in repr(index_copy)


# --------------------------------------------------------------------------- verification shortlist


def test_without_colour_the_fused_list_is_verified_as_it_is():
    """With colour off in the config, the shortlist is verified in fused order; with it on, the
    best by words alone are interleaved (here they differ from the fused order)."""
    from types import SimpleNamespace

    from vbow.query import QueryPlan
    from vbow.search.fusion import FusedScores

    rng = np.random.default_rng(0)
    bow = rng.random(40).astype(np.float32)
    fusion = FusedScores(bow, np.ones(40, bool), 40, np.arange(40), rng.random(40), 5.0, True)
    top = fusion.best(12)
    by_words = np.argsort(-bow)[:3]
    assert not set(by_words.tolist()) <= set(top[:6].tolist())  # the case is not trivial
    off = SimpleNamespace(config=vbow.get_config("sift", colour_weight=0))
    np.testing.assert_array_equal(QueryPlan.verification_order(off, fusion, top, 6), top)
    on = SimpleNamespace(config=vbow.get_config("sift"))
    order = QueryPlan.verification_order(on, fusion, top, 6)
    assert set(by_words.tolist()) <= set(order[:6].tolist())


@pytest.mark.parametrize("colour_candidates", [3, 10_000])
def test_fused_scores_agree_with_a_dense_recomputation(sift_index, catalog, monkeypatch,
                                                       colour_candidates):
    """Without re-ranking, every image's score is z(bow) + w * z(colour) with the statistics
    of both over the colour pool (every image, or the best `colour_candidates` by words),
    recomputed densely here; the ranking is by that score. colour_candidates=3 exercises the
    large-catalog path that ranks only candidates."""
    cfg = sift_index.config.replace(colour_candidates=colour_candidates)
    monkeypatch.setattr(sift_index, "config", cfg)
    n = len(sift_index)
    for p in catalog.photos[::4]:
        q = sift_index.describe(p.image)
        r = sift_index.search_features(q, top_k=n, rerank=False)
        assert len(r.matches) == n
        bow = np.array([m.bow_score for m in sorted(r.matches, key=lambda m: sift_index.keys.index(m.key))])
        best = np.sort(bow)[::-1][:colour_candidates]
        z_b = (bow - best.mean()) / (best.std() + 1e-9)
        if colour_candidates >= n:
            pool = np.arange(n)
        else:
            pool = np.flatnonzero(bow > 0)
            pool = pool[np.argsort(-bow[pool], kind="stable")][:colour_candidates]
        qc = np.clip(np.rint(q.colour * 255), 0, 255).astype(np.float64)
        with sift_index.reading() as plan:
            stored_colour = plan.state.catalog.colour
        c = stored_colour[pool].astype(np.float64) @ qc / 255.0 ** 2
        z_c = (c - c.mean()) / (c.std() + 1e-9)
        expected = z_b + cfg.colour_weight * z_c.min()
        expected[pool] = z_b[pool] + cfg.colour_weight * z_c
        got = {m.key: m.score for m in r.matches}
        for i, key in enumerate(sift_index.keys):
            assert got[key] == pytest.approx(expected[i], abs=1e-4), key
        scores = [m.score for m in r.matches]
        assert scores == sorted(scores, reverse=True)


def test_banded_colour_index_saves_loads_and_answers_the_same(catalog, tmp_path):
    """An index whose colour signatures have bands stores the longer signatures, and its
    bundle passes the structural checks (which size the colour array from the settings)."""
    index = vbow.ImageIndex("sift", n_words=256, n_jobs=1, colour={"bands": 3})
    index.build(catalog.products[:4], keys=["a", "b", "c", "d"])
    loaded = vbow.ImageIndex.load(index.save(tmp_path / "banded.vbow"), verify_checksums=True)
    assert loaded.config.colour.bands == 3
    assert loaded.describe(catalog.photos[0].image).colour.shape == (4 * 224,)
    for photo in catalog.photos[:6]:
        a, b = index.search(photo.image, top_k=4), loaded.search(photo.image, top_k=4)
        assert a.keys == b.keys
        np.testing.assert_allclose([m.colour_score for m in a], [m.colour_score for m in b],
                                   atol=1e-6)
