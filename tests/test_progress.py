"""vbow.progress: when bars are drawn, where they go, and the fallbacks."""

from __future__ import annotations

import io
import logging
import sys
import types

import numpy as np
import pytest

from vbow.progress import Progress, progress_enabled


class FakeTerminal(io.StringIO):
    """A stderr stand-in that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def no_env_setting(monkeypatch):
    monkeypatch.delenv("VBOW_PROGRESS", raising=False)


def run_phase(n: int, enabled: bool | None, description: str = "phase") -> Progress:
    with Progress(n, description, enabled) as bar:
        for _ in range(n):
            bar.update()
    return bar


def test_forced_bar_goes_to_stderr_only(capsys):
    bar = run_phase(7, True, "extracting")
    out, err = capsys.readouterr()
    assert out == ""
    assert "extracting" in err and "7/7" in err
    assert bar.count == 7 and bar.enabled


def test_off_by_default_when_stderr_is_not_a_terminal(capsys):
    bar = run_phase(5, None)
    assert capsys.readouterr() == ("", "")
    assert not bar.enabled and bar.count == 5


def test_disabled_bar_draws_nothing_even_on_a_terminal(monkeypatch):
    fake = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", fake)
    run_phase(3, False)
    assert fake.getvalue() == ""


def test_on_by_default_when_stderr_is_a_terminal(monkeypatch):
    fake = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", fake)
    bar = run_phase(4, None, "indexing")
    assert bar.enabled
    assert "indexing" in fake.getvalue() and "4/4" in fake.getvalue()


@pytest.mark.parametrize("value, expected", [("1", True), ("on", True), ("0", False),
                                             ("off", False), ("", False)])
def test_environment_setting(monkeypatch, value, expected):
    monkeypatch.setenv("VBOW_PROGRESS", value)
    assert progress_enabled(None) is expected
    # an explicit argument wins over the environment
    assert progress_enabled(True) is True and progress_enabled(False) is False


def test_environment_off_wins_over_a_terminal(monkeypatch):
    monkeypatch.setattr(sys, "stderr", FakeTerminal())
    assert progress_enabled(None) is True
    monkeypatch.setenv("VBOW_PROGRESS", "0")
    assert progress_enabled(None) is False


def test_on_by_default_in_a_jupyter_kernel(monkeypatch):
    """A kernel's stderr is no terminal; the IPython shell with a ``kernel`` says Jupyter."""
    shell = types.SimpleNamespace(kernel=object())
    fake_ipython = types.ModuleType("IPython")
    fake_ipython.get_ipython = lambda: shell
    monkeypatch.setitem(sys.modules, "IPython", fake_ipython)
    assert progress_enabled(None) is True
    fake_ipython.get_ipython = lambda: types.SimpleNamespace()   # terminal IPython: no kernel
    assert progress_enabled(None) is False
    fake_ipython.get_ipython = lambda: None                       # IPython imported, not running
    assert progress_enabled(None) is False


def test_text_bar_without_tqdm(monkeypatch, capsys):
    for name in ("tqdm", "tqdm.auto", "tqdm.std"):
        monkeypatch.setitem(sys.modules, name, None)              # import raises ImportError
    bar = run_phase(12, True, "searching")
    out, err = capsys.readouterr()
    assert out == ""
    assert "searching" in err and "12/12" in err and err.endswith("\n")
    assert "[" + "#" * 28 + "]" in err                            # vbow's own bar, full
    assert bar.count == 12


def test_a_failing_notebook_widget_falls_back_to_text(monkeypatch, capsys):
    """tqdm.auto's widget raises ImportError when ipywidgets is missing; the phase goes on."""
    pytest.importorskip("tqdm")

    def broken(**kwargs):
        raise ImportError("IProgress not found. Please update jupyter and ipywidgets.")

    fake_auto = types.ModuleType("tqdm.auto")
    fake_auto.tqdm = broken
    monkeypatch.setitem(sys.modules, "tqdm.auto", fake_auto)
    bar = run_phase(3, True, "training")
    out, err = capsys.readouterr()
    assert out == "" and "training" in err and "3/3" in err
    assert bar.count == 3


def test_summary_is_logged_whether_or_not_a_bar_is_drawn(caplog, capsys):
    with caplog.at_level(logging.INFO, logger="vbow.progress"):
        run_phase(6, False, "evaluating")
        run_phase(2, True, "drawing")
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("evaluating: 6 in") for m in messages)
    assert any(m.startswith("drawing: 2 in") for m in messages)


def test_close_twice_is_harmless(capsys):
    bar = Progress(2, "twice", True)
    bar.update(2)
    bar.close()
    bar.close()
    assert capsys.readouterr().err.count("twice") >= 1


def test_vocabulary_training_reports_progress_over_its_cells(capsys):
    from vbow.vocab.training import make_vocabulary

    rng = np.random.default_rng(0)
    x = rng.random((3000, 128), dtype=np.float32)
    vocab = make_vocabulary("sift", n_words=64, random_state=0)
    vocab.fit(x, progress=True)
    out, err = capsys.readouterr()
    n_cells = vocab.coarse_.shape[0]
    assert out == ""
    assert "vocabulary" in err and f"{n_cells}/{n_cells}" in err
    quiet = make_vocabulary("sift", n_words=64, random_state=0).fit(x, progress=False)
    assert capsys.readouterr().err == ""
    np.testing.assert_array_equal(quiet.words_, vocab.words_)    # progress changes nothing


def test_progress_scope_sets_the_default_for_nested_phases(monkeypatch, capsys):
    from vbow.progress import progress_scope

    fake = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", fake)
    with progress_scope(False):
        assert progress_enabled(None) is False          # a terminal, but the scope says no
        assert progress_enabled(True) is True           # an explicit argument still wins
        run_phase(3, None, "quiet")
        with progress_scope(None):                      # None changes nothing
            assert progress_enabled(None) is False
    assert progress_enabled(None) is True               # restored on exit
    assert "quiet" not in fake.getvalue()
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    monkeypatch.setenv("VBOW_PROGRESS", "0")
    with progress_scope(True):
        assert progress_enabled(None) is True           # the scope wins over the environment


def test_cli_no_progress_silences_phases_that_were_not_told(monkeypatch):
    """``--no-progress`` reaches phases that get ``progress=None`` (e.g. vocabulary training)."""
    from vbow.apps import cli

    seen = []

    def fake_run(args):
        seen.append(progress_enabled(None))
        return 0

    monkeypatch.setattr(sys, "stderr", FakeTerminal())
    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    parser._subparsers._group_actions[0].choices["demo"].set_defaults(func=fake_run)
    assert cli.main(["demo", "--no-progress"]) == 0
    assert cli.main(["demo"]) == 0
    assert cli.main(["demo", "--progress"]) == 0
    assert seen == [False, True, True]                  # stderr is a (fake) terminal
