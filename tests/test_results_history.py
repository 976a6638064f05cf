"""Benchmark result files keep the runs they replace (``benchmarks/results_history.py``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from results_history import carry_history, earlier_runs  # noqa: E402


@given(latencies=st.lists(st.floats(1, 500, allow_nan=False), min_size=1, max_size=6))
@settings(deadline=None, max_examples=25)
def test_every_replaced_run_is_kept_newest_first(tmp_path_factory, latencies):
    path = tmp_path_factory.mktemp("results") / "bench.json"
    for i, ms in enumerate(latencies):
        run = {"command": "bench", "p50_ms": ms, "run": i}
        data = carry_history(path, run)
        assert "earlier_runs" not in run  # the new run's dict is left alone
        path.write_text(json.dumps(data))
    stored = json.loads(path.read_text())
    assert stored["run"] == len(latencies) - 1
    older = earlier_runs(stored)
    assert [r["run"] for r in older] == list(range(len(latencies) - 2, -1, -1))
    assert [r["p50_ms"] for r in older] == latencies[-2::-1]
    assert all("earlier_runs" not in r for r in older)


def test_hand_kept_history_becomes_labelled_runs(tmp_path):
    path = tmp_path / "bench.json"
    path.write_text(json.dumps({"run": 2, "earlier_runs": {
        "before_the_change": {"run": 1}, "first_run": {"run": 0, "label": "the first"}}}))
    older = earlier_runs(carry_history(path, {"run": 3}))
    assert [(r["run"], r.get("label")) for r in older] == \
        [(2, None), (1, "before the change"), (0, "the first")]


def test_no_file_means_no_history(tmp_path):
    assert carry_history(tmp_path / "absent.json", {"run": 0}) == {"run": 0, "earlier_runs": []}


def test_a_reading_written_into_a_file_survives_the_next_run(tmp_path, monkeypatch, capsys):
    """dask_bench's build / resume / hop files keep the file they replace as it stood,
    including what was written into it by hand after its run."""
    import dask_bench

    monkeypatch.setattr(dask_bench, "RESULTS", tmp_path)
    dask_bench.write_keeping_history("bench", "# Bench\n\nfirst run: 10 s\n", {"seconds": 10})
    md = tmp_path / "bench.md"
    md.write_text(md.read_text().replace("first run: 10 s", "first run: 10 s\n\nREADING: slow disk"))
    dask_bench.write_keeping_history("bench", "# Bench\n\nsecond run: 8 s\n", {"seconds": 8})
    dask_bench.write_keeping_history("bench", "# Bench\n\nthird run: 9 s\n", {"seconds": 9})
    text = md.read_text()
    assert text.startswith("# Bench\n\nthird run: 9 s")
    assert text.index("second run: 8 s") < text.index("first run: 10 s") < text.index("READING: slow disk")
    stored = json.loads((tmp_path / "bench.json").read_text())
    assert [r["seconds"] for r in earlier_runs(stored)] == [8, 10]
    assert "READING: slow disk" in earlier_runs(stored)[1]["markdown"]
    capsys.readouterr()
