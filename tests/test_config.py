"""vbow.config: presets, overrides and validation."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

import vbow
from vbow.config import PRESETS, Config, get_config
from vbow.errors import InvalidInputError, UnknownOptionError


def test_presets():
    assert set(PRESETS) == {"sift", "sift-he", "orb", "edge"}
    assert get_config("sift-he") == get_config("sift", hamming_embedding=True)
    assert get_config("edge").method == "teblid" and get_config("edge").max_keypoints < get_config("orb").max_keypoints
    assert get_config() == PRESETS["sift"] and get_config("orb").method == "teblid"
    assert get_config(PRESETS["orb"]) is PRESETS["orb"]


def test_overrides_and_unknown_names():
    cfg = get_config("sift", n_words=1024, rerank=False)
    assert cfg.n_words == 1024 and cfg.rerank is False and PRESETS["sift"].n_words != 1024
    with pytest.raises(UnknownOptionError) as info:
        get_config("sift", nwords=10)
    valid = [f.name for f in dataclasses.fields(Config)]
    assert all(repr(name) in str(info.value) for name in valid)
    with pytest.raises(UnknownOptionError, match="'orb'"):
        get_config("fast")


@pytest.mark.parametrize("bad", [
    {"method": "surf"}, {"burstiness": "cube"}, {"idf_source": "web"}, {"model": "projective"},
])
def test_unknown_option_values(bad):
    with pytest.raises(UnknownOptionError):
        get_config("sift", **bad)


@pytest.mark.parametrize("bad", [
    {"n_words": 0}, {"max_keypoints": 0}, {"probes": 0}, {"max_side": 5000}, {"shortlist": 0},
    {"colour_weight": -1}, {"assignment_sigma": 0}, {"ransac_threshold": 0}, {"min_inliers": 0},
])
def test_invalid_values(bad):
    with pytest.raises(InvalidInputError):
        get_config("sift", **bad)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_to_dict_round_trip(preset):
    cfg = get_config(preset, shortlist=30)
    data = json.loads(json.dumps(cfg.to_dict()))
    assert Config(**data) == cfg


@given(n=st.integers(0, 10**7))
def test_shortlist_rule(n):
    expected = min(200, max(20, round(2 * math.sqrt(max(n, 1)))))
    assert get_config().shortlist_for(n) == expected
    assert get_config(shortlist=7).shortlist_for(n) == 7


@pytest.mark.parametrize("setting, value", [
    ("n_words", "many"), ("n_words", 2.5), ("n_words", True), ("max_postings", "1"),
    ("colour_weight", "x"), ("colour_weight", float("nan")), ("colour_weight", float("inf")),
    ("rerank", 1), ("method", 3), ("shortlist", 0), ("shortlist", -1), ("shortlist", 2.0)])
def test_wrong_types_raise_typed_errors(setting, value):
    with pytest.raises(vbow.InvalidInputError, match=setting):
        vbow.get_config("sift", **{setting: value})


@pytest.mark.parametrize("top_k", ["5", 2.5, None, float("nan"), float("inf"), 0, -3, True])
def test_search_rejects_a_bad_top_k_before_any_work(sift_index, catalog, top_k):
    with pytest.raises(vbow.InvalidInputError, match="top_k"):
        sift_index.search(catalog.photos[0].image, top_k=top_k)


@pytest.mark.parametrize("shortlist", [0, -1, "3", 1.5])
def test_search_rejects_a_bad_shortlist(sift_index, catalog, shortlist):
    with pytest.raises(vbow.InvalidInputError, match="shortlist"):
        sift_index.search(catalog.photos[0].image, shortlist=shortlist)
