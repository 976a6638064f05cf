"""Slow end-to-end checks on small subsets of the real benchmark datasets (skipped when absent).

Run with ``python3 -m pytest -m slow``.
"""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import pytest
from conftest import SHARED_DATASETS

from vbow.eval.evaluate import evaluate

pytestmark = pytest.mark.slow


def subset(name: str, groups: int, tmp_path: Path) -> Path:
    """A groundtruth.csv with the first ``groups`` groups of a dataset, the images linked (or
    copied) beside it: a groundtruth.csv may only name files inside its own folder."""
    folder = SHARED_DATASETS / name
    if not (folder / "groundtruth.csv").is_file():
        pytest.skip(f"dataset {name} not present at {folder}")
    with open(folder / "groundtruth.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    chosen = []
    for row in rows:
        if row["group"] and row["group"] not in chosen:
            chosen.append(row["group"])
    keep = set(chosen[:groups])
    out = tmp_path / name
    out.mkdir()
    with open(out / "groundtruth.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image", "group", "role"])
        for row in rows:
            if row["group"] in keep:
                target = out / row["image"]
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(folder / row["image"], target)
                except OSError:
                    shutil.copyfile(folder / row["image"], target)
                writer.writerow([row["image"], row["group"], row["role"]])
    return out


def test_smvs_dvd_covers(tmp_path):
    report = evaluate(subset("smvs_dvd", 12, tmp_path), n_words=4096, n_jobs=2, progress=False)
    assert report.n_db == 12 and report.n_queries == 48 and not report.failed
    assert report.recall_at_1 >= 0.85


def test_ukbench_objects(tmp_path):
    report = evaluate(subset("ukbench", 25, tmp_path), n_words=4096, n_jobs=2, progress=False)
    assert report.n_db == 100 and report.n_queries == 100 and not report.failed
    assert report.ns is not None and report.ns >= 3.0
    assert report.recall_at_1 >= 0.8
