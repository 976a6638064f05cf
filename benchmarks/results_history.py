"""Earlier runs of a benchmark command, kept when a new run rewrites its result file.

A result JSON may hold ``earlier_runs``: the runs it replaced, newest first, each the JSON of that
run (without its own ``earlier_runs``) plus optional ``label`` (what distinguished the run, such
as the code change it measured) and ``reading`` (Markdown: what the run showed, written after
looking at it). :func:`carry_history` moves the file's current run into that list before a new
run replaces it, so no run is lost and nobody has to copy history by hand.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

__all__ = ["carry_history", "run_stamp", "earlier_runs"]


def run_stamp(repo: Path) -> dict:
    """``{"run_at": local time, "commit": short hash}`` of the checkout at ``repo``; the commit
    ends in ``+changes`` when tracked files other than ``benchmarks/results`` (which runs
    rewrite) differ from it, and is ``None`` outside git."""
    stamp = {"run_at": time.strftime("%Y-%m-%d %H:%M"), "commit": None}
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "diff", "--quiet", "HEAD", "--", ".",
                                ":(exclude)benchmarks/results"],
                               capture_output=True).returncode != 0
        stamp["commit"] = head + ("+changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        pass
    return stamp


def earlier_runs(data: dict) -> list[dict]:
    """The ``earlier_runs`` of a result, newest first, as a list. Files kept by hand stored
    them as a mapping from a name to the run; the name becomes the run's ``label``."""
    older = data.get("earlier_runs") or []
    if isinstance(older, dict):
        older = [dict(run, label=run.get("label", name.replace("_", " ")))
                 for name, run in older.items()]
    return [dict(run) for run in older]


def carry_history(path: Path, data: dict, replaced: dict | None = None) -> dict:
    """``data`` with ``earlier_runs``: the run stored in ``path`` (if any) followed by that
    run's own earlier runs.

    Parameters
    ----------
    path : Path
        The result JSON that the new run is about to replace.
    data : dict
        The new run's result; not modified.
    replaced : dict, optional
        Fields to set on the replaced run as it is kept (e.g. its Markdown as it stands).
    """
    out = {k: v for k, v in data.items() if k != "earlier_runs"}
    history: list[dict] = []
    if path.exists():
        previous = json.loads(path.read_text())
        kept = {k: v for k, v in previous.items() if k != "earlier_runs"}
        history = [{**kept, **(replaced or {})}] + earlier_runs(previous)
    out["earlier_runs"] = history
    return out
