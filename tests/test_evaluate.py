"""vbow.eval.evaluate: the scoring protocol, checked against hand-computed values."""

from __future__ import annotations

import pytest

from vbow.eval.datasets import read_groundtruth
from vbow.eval.evaluate import catalog_of, score_rankings


def test_query_only_protocol():
    catalog = {"a1": "A", "a2": "A", "b1": "B", "x": None}
    rankings = [["a1", "x", "a2"], ["a1", "b1"], ["x"]]
    scores = score_rankings(rankings, ["", "", ""], ["A", "B", "B"], catalog, False)
    assert scores["ns"] is None
    assert scores["recall_at_1"] == pytest.approx(1 / 3)
    ap = [(1 / 1 + 2 / 3) / 2, (1 / 2) / 1, 0.0]
    assert scores["map"] == pytest.approx(sum(ap) / 3)


def test_both_protocol_counts_the_query_for_ns_only():
    # UKBench style: groups of 4, every image is a catalog image and a query
    catalog = {f"{g}{i}": g for g in "AB" for i in range(4)}
    rankings = [["A0", "A1", "B0", "A2", "A3"],        # query A0: itself, then A1, B0, A2
                ["B0", "A1", "B1", "B2", "B3"]]        # query B1 (not first): B0, A1, B1, B2
    scores = score_rankings(rankings, ["A0", "B1"], ["A", "B"], catalog, True)
    assert scores["ns"] == pytest.approx((3 + 3) / 2)
    # without the query itself: A0 -> [A1, B0, A2, A3]; B1 -> [B0, A1, B2, B3]
    assert scores["recall_at_1"] == 1.0
    ap_a = (1 / 1 + 2 / 3 + 3 / 4) / 3
    ap_b = (1 / 1 + 2 / 3 + 3 / 4) / 3
    assert scores["map"] == pytest.approx((ap_a + ap_b) / 2)


def test_catalog_of_adds_distractors_but_never_their_queries(tmp_path):
    (tmp_path / "main").mkdir()
    (tmp_path / "main" / "groundtruth.csv").write_text(
        "image,group,role\nc/a.jpg,1,db\nq/a.jpg,1,query\nc/n.jpg,,distractor\n")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "groundtruth.csv").write_text(
        "image,group,role\nx.jpg,7,db\ny.jpg,7,query\n")
    (tmp_path / "plain" / "sub").mkdir(parents=True)
    (tmp_path / "plain" / "sub" / "z.png").write_bytes(b"")
    ds = read_groundtruth(tmp_path / "main" / "groundtruth.csv")
    paths, keys, groups = catalog_of(ds, [tmp_path / "other", tmp_path / "plain"])
    assert keys == ["main/c/a.jpg", "main/c/n.jpg", "other/x.jpg", "plain/sub/z.png"]
    assert groups == ["1", None, None, None]
    assert paths[0] == str(tmp_path / "main" / "c" / "a.jpg")
