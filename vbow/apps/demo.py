"""The built-in demo: a synthetic catalog, shopper photos of it, an index, and a report."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TextIO

import cv2
import numpy as np

from vbow.apps.draw import draw_match, project_outline
from vbow.index import ImageIndex
from vbow.synthetic import make_catalog

__all__ = ["run_demo"]

logger = logging.getLogger(__name__)


def run_demo(*, n_products: int = 100, photos_per_product: int = 2, preset: str = "sift",
             seed: int = 0, out: str | Path | None = "vbow-demo", stream: TextIO | None = None,
             progress: bool | None = None) -> dict:
    """Generate a catalog and shopper photos, index, query, and report how well it did.

    Parameters
    ----------
    n_products, photos_per_product : int
        Size of the synthetic catalog and of the query set.
    preset : str
        Engine preset.
    seed : int
        Seed of the synthetic data.
    out : path or None
        Folder for pictures of a few matches and the saved index (None: write nothing).
    stream : text stream, optional
        Where to print the report (default: standard output).

    Returns
    -------
    dict
        ``recall_at_1``, ``verified`` (fraction of photos whose top match was verified),
        ``corner_error_px`` (median reprojection error of the catalog corners for correct
        verified top matches), timings.
    """
    import sys

    stream = stream or sys.stdout
    t0 = time.perf_counter()
    catalog = make_catalog(n_products, photos_per_product, seed=seed)
    t_data = time.perf_counter() - t0
    print(f"Generated {len(catalog.products)} catalog images and {len(catalog.photos)} shopper "
          f"photos in {t_data:.1f}s", file=stream)
    index = ImageIndex(preset)
    t = time.perf_counter()
    index.build(catalog.products, keys=catalog.names,
                metadata=[{"category": c} for c in catalog.categories], progress=progress)
    t_build = time.perf_counter() - t
    print(f"Indexed them ({preset}, {index.vocabulary.n_words_} visual words) in {t_build:.1f}s",
          file=stream)
    t = time.perf_counter()
    results = index.search_many([p.image for p in catalog.photos], top_k=5, progress=progress)
    t_query = time.perf_counter() - t
    hits, verified, errors = 0, 0, []
    for photo, result in zip(catalog.photos, results):
        best = result.best
        if best is None:
            continue
        correct = best.key == catalog.names[photo.product]
        hits += correct
        verified += best.verified
        if correct and best.transform is not None:
            h, w = catalog.products[photo.product].shape[:2]
            err = np.linalg.norm(project_outline(best.transform, w, h) -
                                 project_outline(photo.homography, w, h), axis=1)
            errors.append(float(err.max()))
    n = len(catalog.photos)
    summary = {"n_products": n_products, "n_photos": n, "recall_at_1": hits / n,
               "verified": verified / n,
               "corner_error_px": float(np.median(errors)) if errors else None,
               "seconds": {"data": round(t_data, 2), "build": round(t_build, 2),
                           "query": round(t_query, 2),
                           "per_query_ms": round(1000 * t_query / max(n, 1), 1)}}
    print(f"Searched {n} photos in {t_query:.1f}s ({summary['seconds']['per_query_ms']} ms each)",
          file=stream)
    print("", file=stream)
    print(f"{'photo':<8} {'truth':<10} {'top match':<10} {'inliers':>7} {'score':>8}", file=stream)
    for i, (photo, result) in enumerate(zip(catalog.photos, results)):
        if i >= 8:
            break
        best = result.best
        print(f"{i:<8} {catalog.names[photo.product]:<10} {best.key if best else '-':<10} "
              f"{best.inliers if best else 0:>7} {best.score if best else 0:>8.2f}", file=stream)
    print("", file=stream)
    print(f"recall@1: {summary['recall_at_1']:.3f}   top match verified: {summary['verified']:.3f}"
          f"   median outline error: "
          f"{summary['corner_error_px'] if summary['corner_error_px'] is None else round(summary['corner_error_px'], 2)} px",
          file=stream)
    category = catalog.categories[catalog.photos[0].product]
    filtered = index.search(catalog.photos[0].image, top_k=3, where={"category": category})
    print(f"Filtered search (category={category!r}): {filtered.keys}", file=stream)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        for i, (photo, result) in enumerate(zip(catalog.photos[:6], results[:6])):
            if result.best is None:
                continue
            product = catalog.products[catalog.names.index(result.best.key)]
            cv2.imwrite(str(out / f"match-{i}.jpg"), draw_match(photo.image, product, result.best))
        index.save(out / "index.vbow")
        print(f"Wrote pictures of 6 matches and the saved index to {out}/", file=stream)
    print(f"Total {time.perf_counter() - t0:.1f}s", file=stream)
    return summary
