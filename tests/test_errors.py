"""vbow.errors: one hierarchy, each error also the builtin a caller would catch."""

from __future__ import annotations

import pytest

import vbow
from vbow import errors


@pytest.mark.parametrize("cls, builtin", [
    (errors.InvalidInputError, ValueError),
    (errors.UnknownOptionError, ValueError),
    (errors.ImageError, ValueError),
    (errors.ImageDecodeError, ValueError),
    (errors.NotFittedError, ValueError),
    (errors.NotFittedError, AttributeError),
    (errors.BundleError, OSError),
    (errors.BundleFormatError, OSError),
    (errors.BundleVersionError, OSError),
    (errors.DatasetError, ValueError),
])
def test_every_error_is_a_vbow_error_and_a_builtin(cls, builtin):
    assert issubclass(cls, errors.VbowError) and issubclass(cls, builtin)
    assert getattr(vbow, cls.__name__) is cls


def test_subclass_relations():
    assert issubclass(errors.ImageDecodeError, errors.ImageError)
    assert issubclass(errors.UnknownOptionError, errors.InvalidInputError)
    assert issubclass(errors.BundleFormatError, errors.BundleError)
    assert issubclass(errors.BundleVersionError, errors.BundleError)


def test_messages_name_the_source():
    e = errors.ImageDecodeError("truncated", "/data/x.jpg")
    assert str(e) == "/data/x.jpg: truncated" and e.source == "/data/x.jpg"
    assert str(errors.ImageError("bad")) == "bad"
    b = errors.BundleFormatError("corrupt", "/b/manifest.json")
    assert str(b).startswith("/b/manifest.json") and b.path == "/b/manifest.json"
    u = errors.UnknownOptionError("preset", "surf", ("sift", "orb"))
    assert "'surf'" in str(u) and "'sift'" in str(u) and "'orb'" in str(u)
    assert u.valid == ("sift", "orb") and u.got == "surf"
