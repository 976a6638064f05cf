"""Execute the notebooks in place, then clear the outputs of cells that show dataset images.

    python3 notebooks/run_notebooks.py                      # every notebook in this folder
    python3 notebooks/run_notebooks.py notebooks/scale.ipynb
    python3 notebooks/run_notebooks.py --keep-images /tmp/nb # also save full copies, pictures kept

The benchmark images are not ours to redistribute, so a notebook saved in this folder must not
hold them: every cell that shows dataset images carries the cell tag ``dataset-images`` and its
outputs are cleared before the notebook is written back. Plots of numbers keep their outputs.
``--keep-images DIR`` writes a second, complete copy into DIR (keep DIR outside the repository).

Needs the ``notebooks`` extra: ``pip install -e ".[notebooks]"``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
IMAGES_TAG = "dataset-images"


def clear_dataset_images(nb) -> int:
    """Clear outputs and execution counts of cells tagged ``dataset-images``; returns how many."""
    n = 0
    for cell in nb.cells:
        if cell.get("cell_type") == "code" and IMAGES_TAG in cell.get("metadata", {}).get("tags", []):
            cell["outputs"] = []
            cell["execution_count"] = None
            n += 1
    return n


def run(path: Path, keep_images: Path | None, timeout: int) -> None:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    t = time.perf_counter()
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    seconds = time.perf_counter() - t
    if keep_images is not None:
        keep_images.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, keep_images / path.name)
    cleared = clear_dataset_images(nb)
    nbformat.validate(nb)
    nbformat.write(nb, path)
    print(f"{path}: executed in {seconds:.0f}s, cleared the outputs of {cleared} "
          f"dataset-image cell(s)" + (f"; full copy in {keep_images / path.name}" if keep_images else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="notebooks to run (default: every *.ipynb beside this script)")
    parser.add_argument("--keep-images", type=Path, metavar="DIR",
                        help="also write complete executed copies (with pictures) into DIR")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(HERE.glob("*.ipynb"))
    if args.keep_images is not None:
        inside = args.keep_images.resolve()
        if inside == HERE.parent or HERE.parent in inside.parents:
            parser.error("--keep-images must be outside the repository (dataset images)")
    for path in paths:
        run(path.resolve(), args.keep_images, args.timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
