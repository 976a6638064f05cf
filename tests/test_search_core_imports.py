"""The search core (postings, weighting, fusion, catalog) imports without OpenCV."""

import subprocess
import sys
import textwrap
from pathlib import Path

#: every module of vbow/search, so a new one is covered the day it is added
SEARCH_CORE = sorted(f"vbow.search.{p.stem}"
                     for p in (Path(__file__).resolve().parents[1] / "vbow" / "search").glob("*.py")
                     if p.stem != "__init__")


def test_search_core_list_is_the_package():
    """The glob found the package (an empty list would make the blocked import vacuous)."""
    for name in ("catalog", "inverted_index", "postings", "weighting", "embedding", "fusion"):
        assert f"vbow.search.{name}" in SEARCH_CORE

BLOCK_CV2 = textwrap.dedent("""
    import importlib, importlib.abc, sys

    class BlockCv2(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "cv2" or name.startswith("cv2."):
                raise ImportError("cv2 is blocked in this test")
            return None

    sys.meta_path.insert(0, BlockCv2())
""")


def _run_blocked(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK_CV2 + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=120)


def test_search_core_imports_with_cv2_blocked():
    done = _run_blocked(f"""
        for name in {SEARCH_CORE!r}:
            importlib.import_module(name)
        loaded = sorted(m for m in sys.modules if m == "cv2" or m.startswith("cv2."))
        print("cv2 modules:", loaded)
        sys.exit(1 if loaded else 0)
    """)
    assert done.returncode == 0, done.stderr + done.stdout


def test_blocking_really_blocks():
    """The blocker itself works: importing the describe layer with cv2 blocked fails."""
    done = _run_blocked("import vbow.describe.features")
    assert done.returncode != 0 and "cv2 is blocked" in done.stderr
