"""Write the golden index bundle used by tests/test_golden.py.

Run once per bundle format version, from the repository root, and commit the output:

    python3 tests/data/make_golden.py

The bundle must then never be rewritten for that version: newer vbow releases must keep
loading it (see DESIGN.md, "Tests").
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import vbow
from vbow.index import FORMAT_VERSION
from vbow.synthetic import make_catalog

#: How the golden catalog is made (tests/test_golden.py regenerates its photos from this).
GOLDEN_CATALOG = dict(n_products=3, photos_per_product=1, seed=7, size=192, difficulty=0.3)
GOLDEN_SETTINGS = dict(n_words=64, max_keypoints=300, n_jobs=1)


def main() -> None:
    out = Path(__file__).resolve().parent / f"golden-index-v{FORMAT_VERSION}"
    cat = make_catalog(**GOLDEN_CATALOG)
    index = vbow.ImageIndex("sift", **GOLDEN_SETTINGS)
    index.build(cat.products, keys=cat.names, metadata=[{"category": c} for c in cat.categories])
    if out.exists():
        shutil.rmtree(out)
    index.save(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
