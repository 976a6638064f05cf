"""Fit the built-in decision model (vbow.apps.decision.DecisionModel.default) on synthetic data.

A synthetic catalog of 120 products (seed 0) is indexed with the ``sift`` preset and
:func:`vbow.apps.decision.calibrate` runs on all of its catalog images (synthetic shopper photos,
catalog side only). Prints the parameters as JSON, to paste into ``_DEFAULT`` in
vbow/apps/decision.py, and writes benchmarks/results/decision_default.json.

Run: ``python3 benchmarks/decision_default.py``
"""

from __future__ import annotations

import json
import platform
import os
from pathlib import Path

import vbow
import numpy as np

from vbow.apps.decision import DecisionModel, calibration_samples
from vbow.synthetic import make_catalog

HERE = Path(__file__).resolve().parent


def main() -> int:
    cat = make_catalog(120, 0, seed=0)
    index = vbow.ImageIndex("sift", n_jobs=2)
    index.build(cat.products, keys=cat.names, progress=False)
    pos, neg, n_unv = calibration_samples(index, cat.products, cat.names, seed=0,
                                          progress=False)
    model = DecisionModel.fit(pos, neg, max_far=0.01, negatives_unverified=n_unv)
    out = {"command": "python3 benchmarks/decision_default.py",
           "machine": f"{platform.machine()}, {os.cpu_count()} cores, shared",
           "model": model.to_dict(), "positives": np.round(pos, 6).tolist(),
           "negatives": np.round(neg, 6).tolist(), "negatives_unverified": n_unv}
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "decision_default.json").write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(model.to_dict()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
