"""Sharded search (vbow.distributed.shards) against one index over the whole catalog: in process,
and on a real dask.distributed LocalCluster with 2 worker processes holding the shards as
actors (add/remove routing, a stopped worker giving a partial result)."""

from __future__ import annotations

import dataclasses
import os
import signal
import time

import numpy as np
import pytest
from hypothesis import given, strategies as st

from vbow import ImageIndex
from vbow.distributed.shards import ShardedIndex, read_layout, shard_of, split_index
from vbow.errors import InvalidInputError
from vbow.synthetic import make_catalog

distributed = pytest.importorskip("distributed", reason="vbow[dask] extra not installed")

N_PRODUCTS = 20
N_SHARDS = 4


@pytest.fixture(scope="module")
def catalog():
    return make_catalog(N_PRODUCTS + 1, 1, seed=11, difficulty=0.6)


@pytest.fixture(scope="module")
def layout(catalog, tmp_path_factory):
    """One index over the first 20 products, and the same split into 4 shards."""
    root = tmp_path_factory.mktemp("shards")
    index = ImageIndex("sift", n_words=512, n_jobs=1)
    index.build(list(catalog.products[:N_PRODUCTS]), keys=[f"sku-{i:02d}" for i in range(N_PRODUCTS)],
                metadata=[{"category": c} for c in catalog.categories[:N_PRODUCTS]], progress=False)
    full = index.save(root / "full.vbow")
    split_index(full, root / "split", N_SHARDS)
    return full, root / "split"


@pytest.fixture(scope="module")
def cluster():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as lc, Client(lc) as client:
        yield client


def assert_same_results(single, sharded, query, **kwargs) -> None:
    a = single.search_features(query, 5, **kwargs)
    out = sharded.search_features(query, 5, **kwargs)
    assert out.complete and out.missing == ()
    b = out.result
    assert a.keys == b.keys, kwargs
    assert a.n_verified == b.n_verified, kwargs
    np.testing.assert_allclose([m.score for m in a], [m.score for m in b], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose([m.bow_score for m in a], [m.bow_score for m in b], rtol=1e-5,
                               atol=1e-7)
    np.testing.assert_allclose([m.colour_score for m in a], [m.colour_score for m in b],
                               rtol=1e-6, atol=1e-9)
    assert [m.inliers for m in a] == [m.inliers for m in b]
    assert [m.metadata for m in a] == [m.metadata for m in b]
    assert [getattr(m, "catalog_size", None) for m in a] == [getattr(m, "catalog_size", None) for m in b]
    for ma, mb in zip(a, b):
        assert (ma.transform is None) == (mb.transform is None)
        if ma.transform is not None:
            np.testing.assert_allclose(ma.transform, mb.transform, rtol=1e-6, atol=1e-6)
            np.testing.assert_allclose(ma.inlier_points, mb.inlier_points)


@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=50, unique=True),
       st.integers(1, 9))
def test_shard_of_is_a_stable_partition(keys, n):
    owner = shard_of(keys, n)
    assert owner.shape == (len(keys),) and owner.min() >= 0 and owner.max() < n
    np.testing.assert_array_equal(owner, shard_of(list(reversed(keys)), n)[::-1])
    with pytest.raises(InvalidInputError):
        shard_of(keys, 0)


def test_split_partitions_the_keys_in_order(layout):
    full, split = layout
    keys = ImageIndex.load(full).keys
    info = read_layout(split)
    parts = [ImageIndex.load(split / name).keys for name in info["shards"]]
    assert sorted(k for p in parts for k in p) == sorted(keys)
    owner = dict(zip(keys, shard_of(keys, N_SHARDS).tolist()))
    for s, part in enumerate(parts):
        assert all(owner[k] == s for k in part)
        assert part == [k for k in keys if owner[k] == s]  # original order kept
    assert sum(1 for p in parts if p) >= 3
    assert len(ImageIndex.load(split / "vocabulary")) == 0


@pytest.mark.parametrize("settings", [
    {},                                             # the whole catalog is the colour pool
    {"colour_candidates": 6, "max_postings": 2500},  # global pool and global postings budget
    # verification in rounds of 2 across the shards, stopping at a clear winner
    {"early_stop_inliers": 8, "early_stop_ratio": 2.0, "early_stop_round": 2},
])
def test_in_process_shards_equal_one_index(layout, catalog, settings):
    full, split = layout
    single = ImageIndex.load(full)
    sharded = ShardedIndex.local(split)
    if settings:
        single.config = dataclasses.replace(single.config, **settings)
        sharded.config = dataclasses.replace(sharded.config, **settings)
    assert len(sharded) == len(single) == N_PRODUCTS
    for photo in catalog.photos[:5]:
        query = single.describe(photo.image)
        assert_same_results(single, sharded, query)
        assert_same_results(single, sharded, query, rerank=False)
        assert_same_results(single, sharded, query, where={"category": catalog.categories[photo.product]})


def test_a_filter_that_keeps_nothing_gives_an_empty_result(layout, catalog):
    full, split = layout
    sharded = ShardedIndex.local(split)
    query = sharded.describe(catalog.photos[0].image)
    out = sharded.search_features(query, 5, where={"category": "no such category"})
    single = ImageIndex.load(full).search_features(query, 5, where={"category": "no such category"})
    assert out.complete and len(out.result) == len(single) == 0
    assert out.result.n_verified == single.n_verified == 0


def test_budget_really_limits_postings(layout, catalog):
    """The budgeted setting above must change which words are read (else it tests nothing)."""
    full, _ = layout
    single = ImageIndex.load(full)
    query = single.describe(catalog.photos[0].image)
    with single.reading() as plan:
        bag = plan.quantise(query.features)
        chosen = plan.state.postings.select_words(bag.words, bag.weights, plan.state.idf, 2500)
    assert 0 < chosen.size < bag.words.size


def test_dask_shards_equal_one_index_and_route_changes(cluster, layout, catalog, tmp_path):
    full, split = layout
    single = ImageIndex.load(full)
    sharded = ShardedIndex.open(cluster, split, timeout=60)
    pids = {st_["pid"] for st_ in sharded._stats.values()}
    assert len(pids) == 2, "the 4 shards should live on both worker processes"
    for photo in catalog.photos[:3]:
        assert_same_results(single, sharded, single.describe(photo.image))

    new_key = "sku-new"
    owner = int(shard_of([new_key], N_SHARDS)[0])
    before = {s: st_["n_live"] for s, st_ in sharded._stats.items()}
    report = sharded.add([catalog.products[N_PRODUCTS]], [new_key], [{"category": "new"}])
    assert report["added"] == [new_key] and report["failed"] == []
    after = {s: st_["n_live"] for s, st_ in sharded._stats.items()}
    assert {s for s in after if after[s] != before[s]} == {owner}
    assert after[owner] == before[owner] + 1
    single.add([catalog.products[N_PRODUCTS]], keys=[new_key], metadata=[{"category": "new"}],
               progress=False)
    held_out = [p for p in catalog.photos if p.product == N_PRODUCTS][0]
    query = single.describe(held_out.image)
    assert_same_results(single, sharded, query)
    assert sharded.search_features(query, 1).result.best.key == new_key

    assert sharded.remove([new_key]) == 1
    single.remove([new_key])
    assert_same_results(single, sharded, query)
    assert new_key not in sharded.search_features(query, 20).keys
    with pytest.raises(KeyError):
        sharded.remove(["no-such-key"])


def test_a_stopped_worker_gives_a_partial_result_naming_its_shards(cluster, layout, catalog):
    full, split = layout
    sharded = ShardedIndex.open(cluster, split, timeout=60)
    query = sharded.describe(catalog.photos[0].image)
    complete = sharded.search_features(query, 10)
    assert complete.complete
    info = cluster.scheduler_info()["workers"]
    pid_of = cluster.run(os.getpid)
    victim = sorted(info)[0]  # holds shards 0 and 2 (shard i on worker i mod 2)
    os.kill(pid_of[victim], signal.SIGSTOP)
    try:
        t = time.monotonic()
        partial = sharded.search_features(query, 10, timeout=3.0)
        elapsed = time.monotonic() - t
    finally:
        os.kill(pid_of[victim], signal.SIGCONT)
    assert partial.missing == (0, 2)
    assert elapsed < 20
    assert "shards [0, 2]" in partial.result.warnings[0]
    owner = dict(zip(ImageIndex.load(full).keys, shard_of(ImageIndex.load(full).keys, N_SHARDS).tolist()))
    assert partial.keys and all(owner[k] in (1, 3) for k in partial.keys)
    again = sharded.search_features(query, 10, timeout=60)
    assert again.complete and again.keys == complete.keys
