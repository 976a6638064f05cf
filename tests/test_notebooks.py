"""The notebooks in notebooks/: valid nbformat 4, every code cell compiles, no dataset images saved.

Nothing is executed here (that is `python3 notebooks/run_notebooks.py`, which needs the
``notebooks`` extra). The structural checks use only the standard library, so they run wherever
the tests do; the full nbformat schema check runs where nbformat is installed.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import types
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
EXPECTED = ("accuracy.ipynb", "scale.ipynb")
IMAGES_TAG = "dataset-images"
# a cell that calls any of these shows dataset images, so it must carry IMAGES_TAG
SHOWS_IMAGES = {"draw_match", "draw_example", "imshow", "thumbnail"}


def _paths() -> list[Path]:
    return sorted(NOTEBOOKS.glob("*.ipynb"))


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def python_source(source: str) -> str:
    """A cell's source with IPython magics and shell escapes turned into blank lines.

    Line magics (``%matplotlib inline``), shell escapes (``!pip ...``) and ``x = !cmd`` are blanked
    (line numbers kept); a cell magic (``%%time``) makes the whole cell non-Python, so it is empty.
    """
    lines = source.splitlines()
    if lines and lines[0].lstrip().startswith("%%"):
        return ""
    out = []
    for line in lines:
        stripped = line.lstrip()
        if stripped.startswith(("%", "!")) or re.match(r"^\s*[\w, ]+=\s*[!%]", line):
            out.append("")
        else:
            out.append(line)
    return "\n".join(out)


def code_cells(nb: dict) -> list[tuple[int, dict]]:
    return [(i, c) for i, c in enumerate(nb["cells"]) if c.get("cell_type") == "code"]


def test_expected_notebooks_exist():
    names = [p.name for p in _paths()]
    for name in EXPECTED:
        assert name in names, f"notebooks/{name} is missing"


@pytest.mark.parametrize("path", _paths(), ids=lambda p: p.name)
def test_notebook_structure(path):
    nb = _load(path)
    assert nb.get("nbformat") == 4, f"{path.name}: not nbformat 4"
    assert isinstance(nb.get("metadata"), dict)
    assert nb["metadata"].get("kernelspec", {}).get("language") == "python"
    cells = nb.get("cells")
    assert isinstance(cells, list) and cells, f"{path.name}: no cells"
    for i, cell in enumerate(cells):
        assert cell.get("cell_type") in ("code", "markdown", "raw"), f"{path.name} cell {i}"
        assert isinstance(cell.get("source"), (str, list)), f"{path.name} cell {i}: no source"
        if cell["cell_type"] == "code":
            assert isinstance(cell.get("outputs"), list), f"{path.name} cell {i}: no outputs list"
    assert code_cells(nb), f"{path.name}: no code cells"


@pytest.mark.skipif(importlib.util.find_spec("nbformat") is None,
                    reason="nbformat not installed (pip install -e '.[notebooks]')")
@pytest.mark.parametrize("path", _paths(), ids=lambda p: p.name)
def test_notebook_validates_against_nbformat_schema(path):
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)


@pytest.mark.parametrize("path", _paths(), ids=lambda p: p.name)
def test_every_code_cell_compiles(path):
    nb = _load(path)
    for i, cell in code_cells(nb):
        source = python_source(_source(cell))
        try:
            compile(source, f"{path.name}[cell {i}]", "exec")
        except SyntaxError as exc:
            pytest.fail(f"{path.name} cell {i} does not compile: {exc}")


@pytest.mark.parametrize("path", _paths(), ids=lambda p: p.name)
def test_no_dataset_images_saved(path):
    """Cells that show dataset images are tagged, and the saved notebook holds none of their output."""
    nb = _load(path)
    for i, cell in code_cells(nb):
        source = python_source(_source(cell))
        tags = cell.get("metadata", {}).get("tags", [])
        calls = {n.func.attr if isinstance(n.func, ast.Attribute) else getattr(n.func, "id", "")
                 for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Call)}
        if calls & SHOWS_IMAGES:
            assert IMAGES_TAG in tags, f"{path.name} cell {i} shows images but is not tagged {IMAGES_TAG!r}"
        if IMAGES_TAG in tags:
            assert cell["outputs"] == [], (f"{path.name} cell {i} ({IMAGES_TAG}) has saved outputs: "
                                           "run notebooks/run_notebooks.py, which clears them")


def test_python_source_blanks_magics_only():
    src = "%matplotlib inline\nx = 1\n!ls\nfiles = !ls\ny = x % 2\n"
    assert python_source(src).splitlines() == ["", "x = 1", "", "", "y = x % 2"]
    assert python_source("%%time\nx = 1\n") == ""
    with pytest.raises(SyntaxError):  # a real error is still caught after magics are blanked
        compile(python_source("%matplotlib inline\ndef f(:\n"), "cell", "exec")


def test_run_script_clears_tagged_outputs():
    spec = importlib.util.spec_from_file_location("run_notebooks", NOTEBOOKS / "run_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    nb = types.SimpleNamespace(cells=[
        {"cell_type": "code", "metadata": {"tags": [IMAGES_TAG]}, "execution_count": 3,
         "outputs": [{"output_type": "display_data", "data": {"image/png": "x"}}]},
        {"cell_type": "code", "metadata": {}, "execution_count": 4,
         "outputs": [{"output_type": "stream", "text": "kept"}]},
    ])
    assert module.clear_dataset_images(nb) == 1
    assert nb.cells[0]["outputs"] == [] and nb.cells[0]["execution_count"] is None
    assert nb.cells[1]["outputs"] == [{"output_type": "stream", "text": "kept"}]
