"""Benchmarks of the applications beyond search: detect, classify, more-like-this, duplicates.

Sections (``--sections``), each side by side with its baseline on the same images:

* ``detect``: 30 synthetic shelf scenes of 2-8 products, made at run time from the real catalog
  images of smvs_dvd (50 DVD covers) and grocery_packages (31 packages) with known placement
  (:func:`vbow.synthetic.make_shelf_scene`), searched in an index of those 81 images plus the
  2,006 distractors. SKU precision and recall (a detection is right when its key is a placed
  product and its outline has IoU > 0.5 with that placement), and outline IoU. Targets: recall
  >= 0.9 at precision >= 0.95, median IoU >= 0.8.
* ``classify``: the 781 grocery_packages shelf photos against the same index; the label is the
  ``category`` of classes.csv (only grocery catalog images carry one). Accuracy at full coverage
  and against coverage with abstention, by product (the decision's key) and by category,
  against a k-NN (k = 5, cosine-weighted votes) on the CNN baseline's Lite0 descriptors.
* ``similar``: "more like this" for each of the 31 grocery catalog items over the other 30: mAP
  with the same category as relevant, vbow (words + colour, same instance left out) against CNN
  cosine ranking.
* ``duplicates``: a re-listing set made at run time from 100 distractors_products images, 10 per
  kind of edit (:func:`vbow.synthetic.make_relisting`), plus 50 ukbench groups of 4 photos
  ("same product, different photo"), all in one index; :func:`vbow.apps.duplicates.find_duplicates`
  against pHash (imagehash, 64 bits, Hamming distance <= 10). Pair precision and recall per kind
  and seconds per image; the time for 10k images is extrapolated from the measured per-image
  time (one search per image, two with mirrors) and says so.
* ``duplicates_growth`` (not in the default run): the same relisting sets at 98, 200 and 400
  images, each in a fresh index, for find_duplicates' time against the catalog size.

Writes benchmarks/results/apps.md and apps.json. Run: ``python3 benchmarks/apps_bench.py``.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import vbow  # noqa: E402
from vbow.apps.classify import accuracy_coverage, vote  # noqa: E402
from vbow.apps.detect import detect_features  # noqa: E402
from vbow.apps.duplicates import find_duplicates  # noqa: E402
from vbow.apps.geometry import polygon_iou  # noqa: E402
from vbow.apps.similar import more_like_this  # noqa: E402
from vbow.synthetic import EDIT_KINDS, make_relisting, make_shelf_scene  # noqa: E402

COMMAND = "python3 benchmarks/apps_bench.py"
ROOT = Path(os.environ.get("VBOW_DATASETS", HERE.parents[1] / "shared" / "datasets"))
RESULTS = HERE / "results"
CACHE = HERE / ".cache" / "apps"
DISTRACTORS = ("distractors_products", "distractors_photos")
logger = logging.getLogger("apps_bench")


def rows(name: str) -> list[dict[str, str]]:
    with open(ROOT / name / "groundtruth.csv", newline="", encoding="utf-8") as f:
        return [dict(r, path=str(ROOT / name / r["image"])) for r in csv.DictReader(f)]


def grocery_classes() -> dict[str, tuple[str, str]]:
    with open(ROOT / "grocery_packages" / "classes.csv", newline="", encoding="utf-8") as f:
        return {r["group"]: (r["name"], r["category"]) for r in csv.DictReader(f)}


def product_index() -> tuple[vbow.ImageIndex, list[tuple[str, str, dict]]]:
    """smvs_dvd + grocery_packages catalog images and the distractors (cached bundle)."""
    from feature_cache import cached_features

    classes = grocery_classes()
    items: list[tuple[str, str, dict]] = []
    for r in rows("smvs_dvd"):
        if r["role"] == "db":
            items.append((r["path"], f"smvs-{r['group']}", {"dataset": "smvs_dvd"}))
    for r in rows("grocery_packages"):
        if r["role"] == "db":
            items.append((r["path"], f"grocery-{r['group']}",
                          {"dataset": "grocery", "category": classes[r["group"]][1]}))
    for d in DISTRACTORS:
        items.extend((r["path"], f"{d}-{i}", {"dataset": d}) for i, r in enumerate(rows(d)))
    bundle = CACHE / "products.vbow"
    if bundle.exists():
        return vbow.ImageIndex.load(bundle), items
    feats, _ = cached_features([p for p, _, _ in items], vbow.get_config("sift"), n_jobs=2)
    ok = [i for i, f in enumerate(feats) if f is not None]
    index = vbow.ImageIndex("sift")
    index.fit_features([feats[i] for i in ok])
    index.add_features([feats[i] for i in ok], [items[i][1] for i in ok],
                       [items[i][2] for i in ok])
    CACHE.mkdir(parents=True, exist_ok=True)
    index.save(bundle)
    return index, items


# ------------------------------------------------------------------------------------ detect
def run_detect(index: vbow.ImageIndex, items: list, n_scenes: int = 30) -> dict[str, Any]:
    products = [(p, k) for p, k, m in items if m["dataset"] in ("smvs_dvd", "grocery")]
    imgs = [vbow.read_image(p) for p, _ in products]
    # shelf products are shown at a common size: the long side 400 px
    import cv2
    imgs = [cv2.resize(im, None, fx=400 / max(im.shape[:2]), fy=400 / max(im.shape[:2]),
                       interpolation=cv2.INTER_AREA) for im in imgs]
    tp = fp = n_true = 0
    ious: list[float] = []
    lat = []
    per_scene = []
    for s in range(n_scenes):
        rng = np.random.default_rng(1000 + s)
        scene = make_shelf_scene(imgs, rng, difficulty=0.6)
        t = time.perf_counter()
        q = index.describe(scene.image)
        dets = detect_features(index, q, max_objects=10)
        lat.append(time.perf_counter() - t)
        truth = [(products[p.product][1], p.outline) for p in scene.placements]
        used: set[int] = set()
        s_tp = 0
        for d in dets:
            cands = [(polygon_iou(d.outline, o), j) for j, (k, o) in enumerate(truth)
                     if k == d.key and j not in used]
            best = max(cands) if cands else (0.0, -1)
            if best[0] > 0.5:
                used.add(best[1]); ious.append(best[0]); s_tp += 1
        tp += s_tp
        fp += len(dets) - s_tp
        n_true += len(truth)
        per_scene.append({"placed": len(truth), "found": s_tp, "false": len(dets) - s_tp})
    return {"scenes": n_scenes, "placed": n_true, "true_positives": tp, "false_positives": fp,
            "recall": tp / max(n_true, 1), "precision": tp / max(tp + fp, 1),
            "median_iou": float(np.median(ious)) if ious else None,
            "iou_p10": float(np.percentile(ious, 10)) if ious else None,
            "seconds_per_scene_p50": round(float(np.median(lat)), 2)}


# ---------------------------------------------------------------------------------- classify
def _cnn(paths: list[str]) -> np.ndarray | None:
    try:
        from accuracy_bench import _cnn_cached, cnn_available
    except ImportError:
        return None
    if cnn_available():
        return None
    return _cnn_cached(paths, "lite0")


def run_classify(index: vbow.ImageIndex, items: list) -> dict[str, Any]:
    from feature_cache import cached_features

    classes = grocery_classes()
    queries = [r for r in rows("grocery_packages") if r["role"] == "query"]
    feats, _ = cached_features([r["path"] for r in queries], vbow.get_config("sift"), n_jobs=2)
    truth_cat = [classes[r["group"]][1] for r in queries]
    truth_key = [f"grocery-{r['group']}" for r in queries]
    conf, right_cat, right_prod, prod_conf = [], [], [], []
    from vbow.apps.decision import decide
    from vbow.apps.catalog_view import catalog_size
    for f, cat, key in zip(feats, truth_cat, truth_key):
        res = index.search_features(f, 10, rerank=True)
        c = vote(index, res, f, min_confidence=0.0)
        conf.append(c.confidence)
        right_cat.append(c.label == cat)
        w, h = f.features.image_size
        d = decide(res, n_query_features=len(f.features), photo_size=(w * f.scale, h * f.scale),
                   catalog_size_of=lambda k: catalog_size(index, k))
        prod_conf.append(d.confidence)
        right_prod.append(d.evidence is not None and d.evidence.key == key)
    out: dict[str, Any] = {"queries": len(queries)}
    for name, cf, ok in (("vbow_category", conf, right_cat), ("vbow_product", prod_conf,
                                                                right_prod)):
        curve = accuracy_coverage(np.array(cf), np.array(ok))
        out[name] = {"accuracy_full": float(np.mean(ok)), **_coverage_points(curve)}
    # CNN k-NN over the grocery catalog images and the distractors (no label: no vote)
    cat_paths = [p for p, _, _ in items]
    cat_labels = [m.get("category") for _, _, m in items]
    cat_keys = [k for _, k, _ in items]
    cd = _cnn(cat_paths)
    qd = _cnn([r["path"] for r in queries])
    if cd is not None and qd is not None:
        sims = qd @ cd.T
        k = 5
        top = np.argsort(-sims, axis=1)[:, :k]
        c_conf, c_ok, p_ok, p_conf = [], [], [], []
        for i, row in enumerate(top):
            votes: dict[str, float] = {}
            for j in row:
                if cat_labels[j] is not None:
                    votes[cat_labels[j]] = votes.get(cat_labels[j], 0.0) + float(sims[i, j])
            total = float(sum(max(sims[i, j], 0) for j in row))
            lab = max(votes, key=votes.get) if votes else None
            c_conf.append(votes.get(lab, 0.0) / total if lab and total > 0 else 0.0)
            c_ok.append(lab == truth_cat[i])
            p_ok.append(cat_keys[row[0]] == truth_key[i])
            p_conf.append(float(sims[i, row[0]]))
        out["cnn_knn_category"] = {"accuracy_full": float(np.mean(c_ok)),
                                   **_coverage_points(accuracy_coverage(np.array(c_conf),
                                                                        np.array(c_ok)))}
        out["cnn_product"] = {"accuracy_full": float(np.mean(p_ok)),
                              **_coverage_points(accuracy_coverage(np.array(p_conf),
                                                                   np.array(p_ok)))}
    return out


def _coverage_points(curve: dict[str, np.ndarray]) -> dict[str, Any]:
    pts = {}
    for cov in (0.25, 0.5, 0.75):
        i = max(0, int(np.ceil(cov * len(curve["coverage"]))) - 1)
        pts[f"accuracy_at_coverage_{cov}"] = float(curve["accuracy"][i])
    idx = np.unique(np.linspace(0, len(curve["coverage"]) - 1, 40).astype(int))
    pts["curve"] = {"coverage": [round(float(v), 4) for v in curve["coverage"][idx]],
                    "accuracy": [round(float(v), 4) for v in curve["accuracy"][idx]]}
    return pts


# ----------------------------------------------------------------------------------- similar
def _average_precision(relevant: np.ndarray) -> float:
    hits = np.cumsum(relevant)
    if hits[-1] == 0:
        return 0.0
    ranks = np.flatnonzero(relevant) + 1
    return float(np.mean(hits[relevant.astype(bool)] / ranks))


def run_similar(index: vbow.ImageIndex, items: list) -> dict[str, Any]:
    groc = [(p, k, m["category"]) for p, k, m in items if m["dataset"] == "grocery"]
    cat_of = {k: c for _, k, c in groc}
    aps = []
    for p, k, c in groc:
        ranked = more_like_this(index, p, top_k=len(index), exclude=k,
                                where={"dataset": "grocery"}, drop_same_instance=False)
        rel = np.array([cat_of[m.key] == c for m in ranked if m.key in cat_of], float)
        aps.append(_average_precision(rel))
    out = {"items": len(groc), "vbow_map": float(np.mean(aps))}
    d = _cnn([p for p, _, _ in groc])
    if d is not None:
        sims = d @ d.T
        aps_c = []
        cats = np.array([c for _, _, c in groc])
        for i in range(len(groc)):
            order = [j for j in np.argsort(-sims[i]) if j != i]
            aps_c.append(_average_precision((cats[order] == cats[i]).astype(float)))
        out["cnn_map"] = float(np.mean(aps_c))
    rng = np.random.default_rng(0)
    cats = [c for _, _, c in groc]
    chance = []
    for _ in range(200):
        perm = rng.permutation(len(groc))
        for i in range(len(groc)):
            order = [cats[j] for j in perm if j != i]
            chance.append(_average_precision(np.array([o == cats[i] for o in order], float)))
    out["chance_map"] = float(np.mean(chance))
    return out


# -------------------------------------------------------------------------------- duplicates
#: a same-geometry edit is visible when at least this share of the pixels changed by more than
#: 20 levels in some channel after a 1.2 px blur (see :func:`changed_fraction`)
VISIBLE_FRACTION = 0.005


def changed_fraction(src: np.ndarray, copy: np.ndarray) -> float:
    """Share of the pixels that a same-geometry copy changed by more than 20 levels in some
    channel, after a 1.2 px blur of both (so that JPEG ringing counts little); 1.0 when the
    sizes differ (a geometric edit).

    A hue rotation leaves black, white and grey garments as they were, and a white watermark
    vanishes on a white background: such copies are, pixel for pixel, a re-compressed
    re-upload, and no classifier can name their edit. The report gives the largest share among
    the re-compressed copies beside the threshold :data:`VISIBLE_FRACTION`.
    """
    if src.shape != copy.shape:
        return 1.0
    blur = [cv2.GaussianBlur(x, (0, 0), 1.2).astype(np.float32) for x in (src, copy)]
    return float((np.abs(blur[0] - blur[1]).max(-1) > 20).mean())


def relisting_set(n_sources: int, n_groups: int) -> tuple[dict[str, np.ndarray],
                                                         dict[frozenset, str],
                                                         dict[frozenset, float]]:
    """The duplicates benchmark's images: ``n_sources`` distractors_products images, each with
    one re-listed copy (the edits in turn), and the first ``n_groups`` ukbench groups.

    Returns ``key -> BGR image``, ``pair -> kind`` and, for each copy,
    ``pair -> changed_fraction``.
    """
    rng = np.random.default_rng(7)
    prod = rows("distractors_products")
    # one draw of 100 (or more), cut to n_sources: a smaller set is part of the larger
    pick = rng.choice(len(prod), size=max(n_sources, 100), replace=False)[:n_sources]
    images: dict[str, np.ndarray] = {}
    truth: dict[frozenset, str] = {}
    changed: dict[frozenset, float] = {}
    kinds = EDIT_KINDS
    for j, i in enumerate(pick.tolist()):
        src = vbow.read_image(prod[i]["path"])
        key = f"src-{j:03d}"
        images[key] = src
        kind = kinds[j % len(kinds)]
        copy = make_relisting(src, kind, np.random.default_rng(10_000 + j))
        ck = f"copy-{j:03d}-{kind}"
        images[ck] = copy.image
        truth[frozenset((key, ck))] = kind
        changed[frozenset((key, ck))] = changed_fraction(src, copy.image)
    uk = rows("ukbench")
    groups: dict[str, list[str]] = {}
    for r in uk:
        groups.setdefault(r["group"], []).append(r["path"])
    for g in sorted(groups, key=int)[:n_groups]:
        keys = []
        for n, p in enumerate(sorted(groups[g])):
            k = f"uk-{g}-{n}"
            images[k] = vbow.read_image(p)
            keys.append(k)
        for a in range(len(keys)):
            for b in range(a + 1, len(keys)):
                truth[frozenset((keys[a], keys[b]))] = "same_product"
    return images, truth, changed


def run_duplicates(n_sources: int = 100, n_groups: int = 50) -> dict[str, Any]:
    import imagehash
    from PIL import Image

    images, truth, changed = relisting_set(n_sources, n_groups)

    def visible(pair: frozenset) -> bool:  # only colour shifts and watermarks can vanish
        return truth[pair] not in ("colour_shift", "watermark") or \
            changed[pair] >= VISIBLE_FRACTION

    kinds = EDIT_KINDS
    keys = list(images)
    t = time.perf_counter()
    bundle = CACHE / f"duplicates-{n_sources}-{n_groups}.vbow"
    if bundle.exists():
        index = vbow.ImageIndex.load(bundle)
    else:
        index = vbow.ImageIndex("sift", n_jobs=2)
        index.build([images[k] for k in keys], keys=keys, progress=False)
        CACHE.mkdir(parents=True, exist_ok=True)
        index.save(bundle)
    build_s = time.perf_counter() - t
    report = find_duplicates(index, images, progress=False)
    found = {frozenset((p.a, p.b)): p for p in report.pairs}
    # pHash on the same images
    t = time.perf_counter()
    hashes = {k: imagehash.phash(Image.fromarray(np.ascontiguousarray(v[..., ::-1])))
              for k, v in images.items()}
    bits = np.array([h.hash.flatten() for h in hashes.values()], bool)     # (n, 64)
    dist = (bits[:, None, :] != bits[None, :, :]).sum(-1)
    phash_s = time.perf_counter() - t
    hk = list(hashes)
    ii, jj = np.nonzero(np.triu(dist <= 10, 1))
    ph_found = {frozenset((hk[a], hk[b])) for a, b in zip(ii.tolist(), jj.tolist())}
    per_kind = {}
    for kind in list(kinds) + ["same_product"]:
        tk = [t_ for t_, k in truth.items() if k == kind]
        per_kind[kind] = {
            "pairs": len(tk),
            "vbow_recall": float(np.mean([t_ in found for t_ in tk])) if tk else None,
            "vbow_kind_right": float(np.mean([found[t_].kind == kind for t_ in tk
                                              if t_ in found])) if any(t_ in found for t_ in tk)
            else None,
            "phash_recall": float(np.mean([t_ in ph_found for t_ in tk])) if tk else None}
        seen = [t_ for t_ in tk if t_ in found and visible(t_)]
        per_kind[kind]["visible_found"] = len(seen)
        per_kind[kind]["vbow_kind_right_visible"] = (
            float(np.mean([found[t_].kind == kind for t_ in seen])) if seen else None)
    cf = [found[t_] for t_, k in truth.items() if k == "counterfeit" and t_ in found]
    false_cf = [p for t_, p in found.items() if p.counterfeit and truth.get(t_) != "counterfeit"]
    n = len(images)
    per_image = report.seconds / n
    recompressed = [changed[t_] for t_, k in truth.items() if k == "recompress"]
    return {"images": n, "true_pairs": len(truth),
            "visible_fraction": VISIBLE_FRACTION,
            "recompress_changed_fraction_max": round(max(recompressed), 5)
            if recompressed else None,
            "vbow": {"pairs": len(found),
                     "precision": float(np.mean([t_ in truth for t_ in found])) if found else None,
                     "recall": float(np.mean([t_ in found for t_ in truth])),
                     "seconds": round(report.seconds, 1), "build_seconds": round(build_s, 1),
                     "seconds_per_image": round(per_image, 3),
                     "extrapolated_10k_seconds": round(per_image * 10_000, 0),
                     "counterfeit_flagged": f"{sum(p.counterfeit for p in cf)}/{len(cf)}",
                     "counterfeit_false_flags": len(false_cf)},
            "phash": {"pairs": len(ph_found),
                      "precision": float(np.mean([t_ in truth for t_ in ph_found]))
                      if ph_found else None,
                      "recall": float(np.mean([t_ in ph_found for t_ in truth])),
                      "seconds": round(phash_s, 2),
                      "extrapolated_10k_seconds": round(phash_s / n * 10_000
                                                        + (dist.size and 0), 1)},
            "per_kind": per_kind}


def run_duplicates_growth(sizes: Sequence[tuple[int, int]] = ((25, 12), (50, 25), (100, 50))
                          ) -> dict[str, Any]:
    """find_duplicates' time against the catalog size: a fresh index of each relisting set
    (each larger set holds the smaller one), the same settings, one run each."""
    rows_ = []
    for n_sources, n_groups in sizes:
        images, truth, _ = relisting_set(n_sources, n_groups)
        keys = list(images)
        index = vbow.ImageIndex("sift", n_jobs=2)
        t = time.perf_counter()
        index.build([images[k] for k in keys], keys=keys, progress=False)
        build_s = time.perf_counter() - t
        report = find_duplicates(index, images, progress=False)
        found = {frozenset((p.a, p.b)) for p in report.pairs}
        rows_.append({"images": len(images), "build_seconds": round(build_s, 1),
                      "seconds": round(report.seconds, 1),
                      "seconds_per_image": round(report.seconds / len(images), 3),
                      "recall": float(np.mean([t_ in found for t_ in truth]))})
        logger.info("duplicates growth: %s", rows_[-1])
    return {"rows": rows_}


def write_report(out: dict[str, Any], seconds: float, out_name: str = "apps") -> None:
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, " \
              f"load average {load} (1/5/15 min) when this file was written"
    command = COMMAND if out_name == "apps" else \
        f"{COMMAND} --sections {' '.join(out)} --out {out_name}"
    payload = {"command": command, "machine": machine, "seconds": round(seconds, 1), **out}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{out_name}.json").write_text(json.dumps(payload, indent=1) + "\n")

    def f(v: Any) -> str:
        return "–" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))

    L = ["# Applications: detect, classify, more like this, duplicates", "",
         f"Command: `{command}`  ", f"Machine: {machine}; {seconds:.0f} s.", ""]
    if "detect" in out:
        d = out["detect"]
        L += ["## detect (shelf scenes from real catalog images)", "",
              "| scenes | placed | recall | precision | median IoU | IoU p10 | s/scene |",
              "|---|---|---|---|---|---|---|",
              f"| {d['scenes']} | {d['placed']} | {f(d['recall'])} | {f(d['precision'])} | "
              f"{f(d['median_iou'])} | {f(d['iou_p10'])} | {d['seconds_per_scene_p50']} |", "",
              "Targets: recall >= 0.9 at precision >= 0.95, median IoU >= 0.8.", ""]
    if "classify" in out:
        c = out["classify"]
        L += ["## classify (grocery_packages shelf photos)", "",
              "| method | accuracy (full coverage) | at 75 % | at 50 % | at 25 % |",
              "|---|---|---|---|---|"]
        for name in ("vbow_category", "cnn_knn_category", "vbow_product", "cnn_product"):
            if name in c:
                r = c[name]
                L.append(f"| {name} | {f(r['accuracy_full'])} | "
                         f"{f(r['accuracy_at_coverage_0.75'])} | "
                         f"{f(r['accuracy_at_coverage_0.5'])} | "
                         f"{f(r['accuracy_at_coverage_0.25'])} |")
        L.append("")
    if "similar" in out:
        s = out["similar"]
        L += ["## more like this (mAP by category, 31 grocery items)", "",
              "| vbow | CNN lite0 | chance |", "|---|---|---|",
              f"| {f(s['vbow_map'])} | {f(s.get('cnn_map'))} | {f(s['chance_map'])} |", ""]
    if "duplicates" in out:
        d = out["duplicates"]
        L += ["## duplicates (re-listings of distractors_products + ukbench groups)", "",
              f"{d['images']} images, {d['true_pairs']} true pairs.", "",
              "| method | pairs | precision | recall | seconds | 10k images (extrapolated) |",
              "|---|---|---|---|---|---|",
              f"| vbow find_duplicates | {d['vbow']['pairs']} | {f(d['vbow']['precision'])} | "
              f"{f(d['vbow']['recall'])} | {d['vbow']['seconds']} | "
              f"{d['vbow']['extrapolated_10k_seconds']} s |",
              f"| pHash (d <= 10) | {d['phash']['pairs']} | {f(d['phash']['precision'])} | "
              f"{f(d['phash']['recall'])} | {d['phash']['seconds']} | "
              f"{d['phash']['extrapolated_10k_seconds']} s (hashing only) |", "",
              "| kind | pairs | vbow recall | vbow kind right | found with a visible edit | "
              "kind right on those | pHash recall |",
              "|---|---|---|---|---|---|---|"]
        for k, r in d["per_kind"].items():
            L.append(f"| {k} | {r['pairs']} | {f(r['vbow_recall'])} | "
                     f"{f(r['vbow_kind_right'])} | {r.get('visible_found', '–')} | "
                     f"{f(r.get('vbow_kind_right_visible'))} | {f(r['phash_recall'])} |")
        L += ["", f"A visible edit changes at least {d['visible_fraction']:.1%} of the pixels "
                  "by more than 20 levels (after a 1.2 px blur); the re-compressed copies change "
                  f"at most {d.get('recompress_changed_fraction_max', float('nan')):.2%}. "
                  "A hue rotation of a black, white or grey product, or a "
                  "white watermark on a white background, leaves the copy a re-compressed "
                  "re-upload pixel for pixel: its edit cannot be named, and it is read as "
                  "`recompress`."]
        L += ["", f"Counterfeits flagged: {d['vbow']['counterfeit_flagged']}; "
                  f"false counterfeit flags: {d['vbow']['counterfeit_false_flags']}.", ""]
    if "duplicates_growth" in out:
        L += ["## duplicates: time against the catalog size", "",
              "A fresh index of each relisting set (each set holds the smaller ones), "
              "find_duplicates with its defaults (two searches per image: as is and mirrored). "
              f"Regenerate with `{COMMAND} --sections duplicates_growth` (the default run "
              "keeps this section as it is).", "",
              "| images | find_duplicates s | s per image | recall | build s |",
              "|---|---|---|---|---|"]
        for r in out["duplicates_growth"]["rows"]:
            L.append(f"| {r['images']} | {r['seconds']} | {r['seconds_per_image']} | "
                     f"{f(r['recall'])} | {r['build_seconds']} |")
        L.append("")
    (RESULTS / f"{out_name}.md").write_text("\n".join(L))


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sections", nargs="+",
                    default=["detect", "classify", "similar", "duplicates"])
    ap.add_argument("--out", default="apps", help="results name (benchmarks/results/OUT.md)")
    ap.add_argument("--build-only", action="store_true",
                    help="only build and cache the product index")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    if args.build_only:
        product_index()
        return 0
    t0 = time.perf_counter()
    out: dict[str, Any] = {}
    old = RESULTS / f"{args.out}.json"
    if old.exists():  # keep the sections not re-run
        prev = json.loads(old.read_text())
        out = {k: v for k, v in prev.items() if k in ("detect", "classify", "similar",
                                                        "duplicates", "duplicates_growth")}
    need_index = {"detect", "classify", "similar"} & set(args.sections)
    index, items = product_index() if need_index else (None, [])
    for name in args.sections:
        logger.info("section %s", name)
        if name == "detect":
            out["detect"] = run_detect(index, items)
        elif name == "classify":
            out["classify"] = run_classify(index, items)
        elif name == "similar":
            out["similar"] = run_similar(index, items)
        elif name == "duplicates":
            out["duplicates"] = run_duplicates()
        elif name == "duplicates_growth":
            out["duplicates_growth"] = run_duplicates_growth()
        logger.info("%s: %s", name, json.dumps(out[name])[:600])
        write_report(out, time.perf_counter() - t0, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
