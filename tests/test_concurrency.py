"""Thread safety: concurrent searches equal serial ones; a writer never shows half a change."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import vbow
from vbow.concurrency import ReadWriteLock


def _summary(result: vbow.SearchResult) -> list[tuple]:
    return [(m.key, m.score, m.inliers, None if m.transform is None else m.transform.tobytes(),
             m.bow_score, m.colour_score) for m in result]


def test_eight_threads_equal_serial(index_bundle, catalog):
    """A freshly loaded index (cold caches: filter tables, key map) searched by 8 threads at
    once gives exactly the serial results, with and without filters and re-ranking."""
    jobs = [(p.image, kw) for p in catalog.photos[:8]
            for kw in ({}, {"rerank": False}, {"where": {"category": catalog.categories[0]}})]
    serial_index = vbow.ImageIndex.load(index_bundle)
    serial = [_summary(serial_index.search(img, top_k=5, **kw)) for img, kw in jobs]
    index = vbow.ImageIndex.load(index_bundle)
    barrier = threading.Barrier(8)

    def run(i: int) -> list[tuple[int, list[tuple]]]:
        barrier.wait()
        order = list(range(len(jobs)))[i::8] + list(range(len(jobs)))[:i:8]
        return [(j, _summary(index.search(jobs[j][0], top_k=5, **jobs[j][1]))) for j in order]

    with ThreadPoolExecutor(8) as pool:
        parallel = [r for chunk in pool.map(run, range(8)) for r in chunk]
    assert len(parallel) >= len(jobs)
    for j, got in parallel:
        assert got == serial[j], f"job {j} differs from serial search"


def _close(a: list[tuple], b: list[tuple]) -> bool:
    return [x[0] for x in a] == [y[0] for y in b] and \
        np.allclose([x[1] for x in a], [y[1] for y in b], rtol=0, atol=1e-6)


def test_writer_during_searches_sees_before_or_after(index_bundle, catalog, held_out):
    """While one thread adds and removes a product again and again, every concurrent search
    equals the serial result with the product absent or with it present: never a mix."""
    name, product, category = held_out[0][0]
    first_held_out = len(catalog.names)  # product number of held_out[0][0]
    photos = [p.image for p in catalog.photos[:4]] + \
        [p.image for p in held_out[1] if p.product == first_held_out][:1]
    index = vbow.ImageIndex.load(index_bundle)
    without = [_summary(index.search(img, top_k=5)) for img in photos]
    index.add(product, keys=name, metadata={"category": category})
    with_it = [_summary(index.search(img, top_k=5)) for img in photos]
    assert any(not _close(a, b) for a, b in zip(without, with_it))  # the change is visible
    index.remove(name)
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for _ in range(6):
                index.add(product, keys=name, metadata={"category": category})
                index.remove([name, name])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            stop.set()

    seen: list[tuple[int, list[tuple]]] = []

    def reader(offset: int) -> None:
        k = offset
        while not stop.is_set() or k < offset + len(photos):
            j = k % len(photos)
            seen.append((j, _summary(index.search(photos[j], top_k=5))))
            k += 1

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader, args=(i,))
                                                   for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors, errors
    assert seen
    for j, got in seen:
        assert _close(got, without[j]) or _close(got, with_it[j]), f"photo {j}: a mixed state"
    assert name not in index and len(index) == len(catalog.names)


def test_rw_lock_excludes_writers_from_readers():
    lock = ReadWriteLock()
    inside = {"readers": 0, "writers": 0, "bad": 0}
    guard = threading.Lock()

    def enter(kind: str) -> None:
        for _ in range(200):
            with (lock.read() if kind == "readers" else lock.write()):
                with guard:
                    inside[kind] += 1
                    if inside["writers"] > 1 or (inside["writers"] and inside["readers"]):
                        inside["bad"] += 1
                with guard:
                    inside[kind] -= 1

    threads = [threading.Thread(target=enter, args=(k,)) for k in ["readers"] * 4 + ["writers"] * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert inside == {"readers": 0, "writers": 0, "bad": 0}


def test_remove_with_an_unknown_key_removes_nothing(index_bundle, catalog):
    index = vbow.ImageIndex.load(index_bundle)
    key = catalog.names[0]
    with pytest.raises(KeyError):
        index.remove([key, "no-such-key"])
    assert key in index and len(index) == len(catalog.names)
    assert key in index.search(catalog.photos[0].image, top_k=len(catalog.names)).keys


def test_remove_of_a_repeated_key_is_consistent(index_bundle, catalog):
    index = vbow.ImageIndex.load(index_bundle)
    key = catalog.names[0]
    assert index.remove([key, key]) == 1
    assert key not in index and len(index) == len(catalog.names) - 1
    assert key not in index.search(catalog.photos[0].image, top_k=len(catalog.names)).keys
