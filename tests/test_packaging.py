"""Packaging: the files a wheel ships, the dependency bounds, and what the core imports."""

from __future__ import annotations

import ast
import configparser
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def setup_cfg() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg", encoding="utf-8")
    return cfg


def requirements(cfg: configparser.ConfigParser) -> dict[str, Requirement]:
    lines = [ln.strip() for ln in cfg["options"]["install_requires"].splitlines()]
    reqs = [Requirement(ln) for ln in lines if ln and not ln.startswith("#")]
    return {r.name.lower(): r for r in reqs}


def lower_bound(req: Requirement) -> Version:
    bounds = [Version(s.version) for s in req.specifier if s.operator in (">=", "==")]
    assert bounds, f"{req} has no lower bound"
    return max(bounds)


def test_license_file_matches_the_metadata(setup_cfg):
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert setup_cfg["metadata"]["license"] == "MIT"
    assert text.startswith("MIT License") and "vbow developers" in text
    assert "License :: OSI Approved :: MIT License" in setup_cfg["metadata"]["classifiers"]


def test_py_typed_ships(setup_cfg):
    assert (ROOT / "vbow" / "py.typed").is_file()
    package_data = {k: v.split() for k, v in setup_cfg["options.package_data"].items()}
    assert "py.typed" in package_data.get("vbow", [])
    assert "Typing :: Typed" in setup_cfg["metadata"]["classifiers"]


def test_python_classifiers_agree_with_python_requires(setup_cfg):
    floor = Version(setup_cfg["options"]["python_requires"].strip().lstrip(">="))
    versions = sorted(Version(line.rsplit("::", 1)[1].strip())
                      for line in setup_cfg["metadata"]["classifiers"].splitlines()
                      if line.strip().startswith("Programming Language :: Python :: 3.")
                      and line.count("::") == 2)
    assert versions and versions[0] == floor
    assert Version(f"{sys.version_info.major}.{sys.version_info.minor}") in versions


def test_bounds_exclude_wheels_that_do_not_import_under_numpy_2(setup_cfg):
    reqs = requirements(setup_cfg)
    assert lower_bound(reqs["numpy"]) >= Version("2.0")
    # OpenCV wheels before 4.10.0.84 and scipy before 1.13 were compiled against numpy 1;
    # OpenCV reads GIF (which the folder scan includes) from 4.12.0.88 on
    assert lower_bound(reqs["opencv-contrib-python-headless"]) >= Version("4.12.0.88")
    assert lower_bound(reqs["scipy"]) >= Version("1.13")
    assert "tqdm" in reqs


def test_the_installed_opencv_reads_gif(tmp_path):
    import cv2
    import numpy as np

    # a 1x1 GIF89a, hand-assembled: 2-colour global table (black, white), one LZW-coded pixel
    gif = bytes.fromhex("474946383961" "01000100" "800000" "000000ffffff"
                        "2c000000000100010000" "0202440100" "3b")
    path = tmp_path / "one.gif"
    path.write_bytes(gif)
    image = cv2.imread(str(path))
    assert image is not None, f"OpenCV {cv2.__version__} cannot read GIF"
    assert image.shape == (1, 1, 3) and image.ravel().tolist() == [0, 0, 0]
    assert image.dtype == np.uint8


def test_only_the_contrib_headless_opencv_is_required(setup_cfg):
    opencv = [name for name in requirements(setup_cfg) if name.startswith("opencv")]
    assert opencv == ["opencv-contrib-python-headless"]


def test_this_environment_satisfies_the_bounds(setup_cfg):
    for name, req in requirements(setup_cfg).items():
        installed = metadata.version(name)
        assert req.specifier.contains(installed, prereleases=True), f"{name} {installed} vs {req}"


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_scikit_learn_is_for_tests_only(setup_cfg):
    assert "scikit-learn" not in requirements(setup_cfg)
    assert "scikit-learn" in setup_cfg["options.extras_require"]["test"]
    users = [p.relative_to(ROOT).as_posix() for p in sorted((ROOT / "vbow").rglob("*.py"))
             if "sklearn" in _imported_modules(p)]
    assert users == [], f"the library imports scikit-learn: {users}"


def test_import_vbow_loads_no_progress_or_test_libraries():
    code = ("import sys, vbow, vbow.index; "
            "print(sorted(m for m in ('tqdm', 'sklearn', 'IPython') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ROOT).stdout
    assert out.strip() == "[]"


def test_changelog_names_this_version():
    import vbow

    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert f"## {vbow.__version__}" in text
