"""vbow.config: presets, overrides and validation."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vbow.config import PRESETS, Config, get_config
from vbow.errors import InvalidInputError, UnknownOptionError


def test_presets():
    assert set(PRESETS) == {"sift", "orb", "edge"}
    assert get_config("edge").method == "orb" and get_config("edge").max_keypoints < get_config("orb").max_keypoints
    assert get_config() == PRESETS["sift"] and get_config("orb").method == "orb"
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
