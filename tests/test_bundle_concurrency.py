"""Saves under load: reader processes during a writer's saves, and saves killed at random moments.

* 4 reader processes load the bundle and search in a loop while the writer saves it 20 times,
  alternating between two indexes with different answers: every round must load and answer
  exactly as one of the two (0 reader errors).
* Two processes saving at once take turns (none fails, no save lost); an index saved into the
  bundle it is memory-mapped from keeps answering the same.
* A child process saving the bundle in a loop is SIGKILLed at a random moment 50 times: after
  each kill the bundle loads (default settings: checksums and structural checks) and answers
  as the old or the new index; the next save then clears what the killed ones left.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import random
import signal
import time
import traceback
from pathlib import Path

import pytest

import vbow
from vbow.persist.bundle import MANIFEST
from vbow.synthetic import make_catalog

N_PRODUCTS = 5
N_READERS = 4
N_SAVES = 20
N_KILLS = 50


def answers(index: vbow.ImageIndex, queries) -> list:
    out: list = [index.keys]
    for q in queries:
        r = index.search_features(q, top_k=N_PRODUCTS)
        out.append([(m.key, m.score, m.inliers) for m in r.matches])
    return out


@pytest.fixture(scope="module")
def two_indexes():
    """Two indexes of one vocabulary with different contents (B lacks A's last product), the
    described queries, and each one's answers."""
    cat = make_catalog(N_PRODUCTS, 1, seed=5, size=192, difficulty=0.3)
    a = vbow.ImageIndex("sift", n_words=256, n_jobs=1)
    a.build(cat.products, keys=cat.names)
    queries = [a.describe(p.image) for p in cat.photos[:2]]
    b = vbow.ImageIndex("sift", n_words=256, n_jobs=1)
    b.build(cat.products, keys=cat.names)
    b.remove([cat.names[-1]])
    expected = [answers(a, queries), answers(b, queries)]
    assert expected[0] != expected[1]
    return a, b, queries, expected


# ------------------------------------------------------------------------------- readers
def _reader(path: str, queries, expected, ready, stop, results) -> None:
    """Load and search until told to stop; report rounds and every failure."""
    rounds, errors = 0, []
    try:
        while True:
            try:
                index = vbow.ImageIndex.load(path)
                got = answers(index, queries)
                if got not in expected:
                    errors.append("answered like neither index")
            except Exception as exc:   # any failure is a reader error, typed or not
                errors.append(f"{type(exc).__name__}: {exc}")
            rounds += 1
            if rounds == 1:
                ready.release()
            if stop.is_set() and rounds >= 3:
                break
    except BaseException:
        errors.append(traceback.format_exc())
    results.put((rounds, errors))


def test_readers_keep_working_while_a_writer_saves(two_indexes, tmp_path):
    a, b, queries, expected = two_indexes
    path = tmp_path / "b"
    a.save(path)
    ctx = mp.get_context("spawn")   # no fork: the parent holds OpenCV's thread pool
    ready, stop, results = ctx.Semaphore(0), ctx.Event(), ctx.Queue()
    readers = [ctx.Process(target=_reader, args=(str(path), queries, expected, ready, stop,
                                                 results), daemon=True)
               for _ in range(N_READERS)]
    for p in readers:
        p.start()
    try:
        for _ in readers:
            assert ready.acquire(timeout=240), "a reader did not start"
        rng = random.Random(0)
        for i in range(N_SAVES):
            (b if i % 2 == 0 else a).save(path)
            time.sleep(rng.uniform(0, 0.05))
        stop.set()
        reports = [results.get(timeout=240) for _ in readers]
    finally:
        stop.set()
        for p in readers:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
    rounds = sum(r for r, _ in reports)
    errors = [e for _, errs in reports for e in errs]
    assert rounds >= N_READERS * 3
    assert errors == [], f"{len(errors)} reader errors in {rounds} rounds: {errors[:5]}"
    assert vbow.ImageIndex.load(path).keys == a.keys   # the last save (i = 19) wrote A


# ---------------------------------------------------------------------------------- kills
def _saving_child(indexes, path: Path) -> None:
    """In a forked child: save alternately forever (until killed), B first. Never returns."""
    try:
        i = 1
        while True:
            indexes[i % 2].save(path)
            i += 1
    finally:
        os._exit(1)


def _manifest_stamp(path: Path) -> tuple[int, int]:
    st = os.stat(path / MANIFEST)
    return st.st_ino, st.st_mtime_ns


def _wait_for_commit(path: Path, before: tuple[int, int], timeout_s: float = 60.0) -> None:
    """Until the manifest is replaced (a save committed); a save replaces it by rename."""
    deadline = time.monotonic() + timeout_s
    while _manifest_stamp(path) == before and time.monotonic() < deadline:
        time.sleep(0.002)


def bundle_files(path: Path) -> set[str]:
    return {p.name for p in path.iterdir()}


def test_kills_mid_save_leave_the_old_or_the_new_index(two_indexes, tmp_path):
    a, b, queries, expected = two_indexes
    path = tmp_path / "b"
    a.save(path)
    t = time.perf_counter()
    b.save(path)
    a.save(path)
    save_s = (time.perf_counter() - t) / 2
    rng = random.Random(1)
    seen = set()
    for k in range(N_KILLS):
        before = _manifest_stamp(path)
        pid = os.fork()
        if pid == 0:   # the child only writes files (numpy): no OpenCV after the fork
            _saving_child((a, b), path)
        if k % 2:   # let at least one save commit first, however slow the machine is today
            _wait_for_commit(path, before)
        time.sleep(rng.uniform(0, 2.5 * save_s))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status), f"kill {k}: the saving child ended by itself"
        got = answers(vbow.ImageIndex.load(path), queries)
        assert got in expected, f"kill {k}: the bundle answers like neither index"
        seen.add(expected.index(got))
    assert seen == {0, 1}, "the kills never landed between two saves' commits"
    a.save(path)   # the next save clears what the killed ones left
    left = bundle_files(path)
    assert not [n for n in left if n.endswith(".tmp")], left
    generations = {n.rsplit(".g", 1)[1].split(".")[0] for n in left if n.endswith(".npy")}
    assert len(generations) <= 2, left   # the new one and the one before it
    assert answers(vbow.ImageIndex.load(path), queries) == expected[0]


def test_two_writers_take_turns(two_indexes, tmp_path):
    """Two processes saving the same bundle at once are serialised (flock): none fails, and
    the bundle ends as one of the two indexes with at most two generations on disk."""
    a, b, queries, expected = two_indexes
    path = tmp_path / "b"
    a.save(path)
    pids = []
    for index in (a, b):
        pid = os.fork()
        if pid == 0:   # the children only write files (numpy): no OpenCV after the fork
            code = 1
            try:
                for _ in range(5):
                    index.save(path)
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, "a writer failed"
    assert answers(vbow.ImageIndex.load(path), queries) in expected
    assert json.loads((path / MANIFEST).read_text())["generation"] == 11   # 1 + 2 x 5 saves
    generations = {n.rsplit(".g", 1)[1].split(".")[0] for n in bundle_files(path)
                   if n.endswith(".npy")}
    assert generations <= {"10", "11"}, generations


def test_saving_over_the_bundle_an_index_was_loaded_from(two_indexes, tmp_path):
    """A memory-mapped index saved again and again into its own bundle keeps answering the
    same: the files it maps are replaced, never rewritten in place."""
    a, _, queries, expected = two_indexes
    path = tmp_path / "b"
    a.save(path)
    loaded = vbow.ImageIndex.load(path)
    for _ in range(3):
        loaded.save(path)
        assert answers(loaded, queries) == expected[0]
        assert answers(vbow.ImageIndex.load(path), queries) == expected[0]
