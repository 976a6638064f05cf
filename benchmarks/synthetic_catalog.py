"""Synthetic catalogs of any size built from the *real* word statistics of indexed images.

Used by ``benchmarks/scale_bench.py`` and ``benchmarks/edge_bench.py``.

1. :func:`real_stats` extracts (through the shared feature cache) the features of the real
   catalog-side images of every dataset under ``../shared/datasets`` (ukbench, smvs_dvd db,
   grocery_packages db, coil100 and both distractor sets), trains a vocabulary on them with the
   public API (:meth:`vbow.ImageIndex.fit_features`) and quantises every image. The result (the
   vocabulary as a saved, empty index bundle, and each image's words, keypoints, colour and size)
   is cached under ``benchmarks/.cache/scale/<preset>/``.
2. :class:`SyntheticCatalog` makes any number of new images from those: image ``i`` copies the
   features (geometry, colour, size, feature count) of a seeded random real image and remaps its
   word ids. Words are ranked by how many real images contain them and cut into bands of
   ``band`` consecutive ranks; each synthetic image applies its own random bijection inside every
   band (``rank -> (a * rank + b) mod band`` with odd ``a``). A frequent word therefore stays a
   frequent word, so document frequencies keep their real (Zipf-like) skew, while two synthetic
   images made from one real image share only about ``1/band`` of their words. About
   ``resample`` of each image's features are re-drawn (with replacement, from the same image),
   which resamples the term counts. Each feature keeps its source feature's Hamming-embedding
   signature (computed for the source word), so an index with ``hamming_embedding=True`` can be
   built too: where the word was remapped, that signature is unrelated to the new word's
   query signatures, as an unrelated image's would be.

The real catalog images themselves are indexed first, unmodified, so real query images have
their true matches inside every synthetic catalog.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import vbow  # noqa: E402
from vbow.vocab.training import feature_signatures, quantise_images  # noqa: E402

logger = logging.getLogger(__name__)

DATASETS = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets"
CACHE = Path(__file__).resolve().parent / ".cache" / "scale"
CATALOG_SETS = ("ukbench", "smvs_dvd", "grocery_packages", "coil100", "distractors_products",
                "distractors_photos")


@dataclass
class RealStats:
    """Quantised real catalog images (flat CSR over features)."""

    offsets: np.ndarray    # (n + 1,) int64
    words: np.ndarray      # (F,) int32
    keypoints: np.ndarray  # (F, 4) float32
    colours: np.ndarray    # (n, n_bins) float32
    sizes: np.ndarray      # (n, 2) int32
    scales: np.ndarray     # (n,) float32
    keys: list[str]
    groups: list[str]
    vocab_bundle: Path
    signatures: np.ndarray  # (F,) uint64 Hamming-embedding signature per feature, for its word

    @property
    def n_images(self) -> int:
        return int(self.offsets.shape[0] - 1)

    def empty_index(self, preset: str = "sift", **overrides) -> "vbow.ImageIndex":
        """An empty index with the real vocabulary and the preset's *current* settings.

        The cached vocabulary bundle is keyed by the extraction settings only, so it keeps the
        search settings (colour weight, inliers, ...) of the day it was made; they are replaced.
        """
        index = vbow.ImageIndex.load(self.vocab_bundle, mmap=False)
        index.config = vbow.get_config(preset, **overrides)
        return index


def catalog_paths() -> tuple[list[str], list[str], list[str]]:
    """Catalog-side image paths, keys (``dataset/relative``) and groups ("" for distractors)."""
    from vbow.eval.datasets import load_source
    paths, keys, groups = [], [], []
    for name in CATALOG_SETS:
        ds = load_source(DATASETS / name)
        for im in ds.catalog:
            paths.append(str(im.path))
            keys.append(f"{ds.name}/{im.relative}")
            groups.append(f"{ds.name}/{im.group}" if im.group and im.role != "distractor" else "")
    return paths, keys, groups


def query_paths(names: tuple[str, ...] = ("smvs_dvd", "grocery_packages")) -> tuple[list[str], list[str]]:
    """Real query photos (role ``query``) and their groups (``dataset/group``)."""
    from vbow.eval.datasets import load_source
    paths, groups = [], []
    for name in names:
        ds = load_source(DATASETS / name)
        for im in ds.images:
            if im.role == "query":
                paths.append(str(im.path))
                groups.append(f"{ds.name}/{im.group}")
    return paths, groups


def real_stats(preset: str = "sift", *, progress: bool | None = None, **overrides) -> RealStats:
    """Quantised real catalog images and their vocabulary (cached; see the module docstring)."""
    from feature_cache import cached_features, settings_key
    config = vbow.get_config(preset, **overrides)
    # keyed by the extraction settings too: a change of them (e.g. colour bins) rebuilds it
    tag = preset + "".join(f"-{k}{v}" for k, v in sorted(overrides.items())) + \
        f"-{settings_key(config)}"
    folder = CACHE / tag
    stats_file = folder / "real_stats.npz"
    bundle = folder / "vocab.vbow"
    with_signatures = False
    if stats_file.exists():
        with np.load(stats_file, allow_pickle=False) as z:
            with_signatures = "signatures" in z.files
    if not with_signatures or not (bundle / "manifest.json").exists():
        folder.mkdir(parents=True, exist_ok=True)
        paths, keys, groups = catalog_paths()
        t = time.perf_counter()
        feats, _ = cached_features(paths, config, n_jobs=1, progress=progress)
        logger.info("features: %.1fs", time.perf_counter() - t)
        good = [i for i, f in enumerate(feats) if f is not None]
        if (bundle / "manifest.json").exists():  # a cache from before signatures: same vocabulary
            index = vbow.ImageIndex.load(bundle, mmap=False)
        else:
            index = vbow.ImageIndex(config).fit_features([feats[i] for i in good])
            index.save(bundle)
        logger.info("vocabulary: %d words, %.1fs", index.vocabulary.n_words_, time.perf_counter() - t)
        words = quantise_images(index.vocabulary, [feats[i].features for i in good])
        signatures = [feature_signatures(index.vocabulary, feats[i].features, w, True)
                      for i, w in zip(good, words)]
        counts = np.array([w.shape[0] for w in words], np.int64)
        offsets = np.zeros(len(words) + 1, np.int64)
        np.cumsum(counts, out=offsets[1:])
        np.savez(stats_file, offsets=offsets, words=np.concatenate(words).astype(np.int32),
                 signatures=np.concatenate(signatures).astype(np.uint64),
                 keypoints=np.concatenate([feats[i].features.keypoints for i in good]).astype(np.float32),
                 colours=np.stack([feats[i].colour for i in good]).astype(np.float32),
                 sizes=np.array([feats[i].features.image_size for i in good], np.int32),
                 scales=np.array([feats[i].scale for i in good], np.float32),
                 keys=np.array([keys[i] for i in good]), groups=np.array([groups[i] for i in good]))
    with np.load(stats_file, allow_pickle=False) as z:
        return RealStats(z["offsets"], z["words"], z["keypoints"], z["colours"], z["sizes"],
                         z["scales"], z["keys"].tolist(), z["groups"].tolist(), bundle,
                         z["signatures"])


class SyntheticCatalog:
    """Generator of synthetic images from :class:`RealStats` (see the module docstring).

    Parameters
    ----------
    stats : RealStats
        The real images.
    n_words : int
        Vocabulary size.
    band : int
        Width of the frequency-rank bands inside which word ids are remapped (a power of two).
    resample : float
        Fraction of each image's features re-drawn with replacement.
    seed : int
        Base seed; image ``i`` of the catalog is always the same.
    """

    def __init__(self, stats: RealStats, n_words: int, *, band: int = 128, resample: float = 0.2,
                 seed: int = 0) -> None:
        if band & (band - 1):
            raise ValueError("band must be a power of two")
        self.stats = stats
        self.band = band
        self.resample = resample
        self.seed = seed
        img_of_feature = np.repeat(np.arange(stats.n_images), np.diff(stats.offsets))
        pairs = np.unique(img_of_feature.astype(np.int64) * n_words + stats.words)
        df = np.bincount(pairs % n_words, minlength=n_words)
        order = np.argsort(-df, kind="stable")        # word ids by decreasing df
        self.word_at_rank = order.astype(np.int64)
        self.rank_of_word = np.empty(n_words, np.int64)
        self.rank_of_word[order] = np.arange(n_words)
        self.n_full = (n_words // band) * band        # ranks beyond this keep their word

    def batch(self, start: int, stop: int) -> dict:
        """Synthetic images ``start .. stop - 1`` as ``add_quantised`` arguments."""
        st = self.stats
        n = stop - start
        rng = np.random.default_rng([self.seed, start, stop])
        src = rng.integers(0, st.n_images, n)
        counts = np.diff(st.offsets)[src]
        offsets = np.zeros(n + 1, np.int64)
        np.cumsum(counts, out=offsets[1:])
        total = int(offsets[-1])
        local = np.arange(total) - np.repeat(offsets[:-1], counts)
        feat = np.repeat(st.offsets[src], counts) + local
        redraw = rng.random(total) < self.resample
        # redraw a feature: another feature of the same source image
        alt = np.repeat(st.offsets[src], counts) + \
            (rng.random(total) * np.repeat(counts, counts)).astype(np.int64)
        feat = np.where(redraw, alt, feat)
        words = st.words[feat].astype(np.int64)
        img = np.repeat(np.arange(n), counts)
        a = rng.integers(0, self.band // 2, n) * 2 + 1
        b = rng.integers(0, self.band, n)
        rank = self.rank_of_word[words]
        in_band = rank < self.n_full
        base = rank - rank % self.band
        new_rank = np.where(in_band, base + (a[img] * (rank % self.band) + b[img]) % self.band, rank)
        words = self.word_at_rank[new_rank].astype(np.int32)
        kp = st.keypoints[feat]
        colours = st.colours[src]
        return {"words": np.split(words, offsets[1:-1]), "keypoints": np.split(kp, offsets[1:-1]),
                "colours": colours, "image_sizes": st.sizes[src], "scales": st.scales[src],
                "keys": [f"synthetic/{i}" for i in range(start, stop)],
                "signatures": np.split(st.signatures[feat], offsets[1:-1])}


def real_batch(stats: RealStats) -> dict:
    """The real catalog images as ``add_quantised`` arguments."""
    cut = stats.offsets[1:-1]
    return {"words": np.split(stats.words, cut), "keypoints": np.split(stats.keypoints, cut),
            "colours": stats.colours, "image_sizes": stats.sizes, "scales": stats.scales,
            "keys": list(stats.keys), "signatures": np.split(stats.signatures, cut)}


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    preset = sys.argv[1] if len(sys.argv) > 1 else "sift"
    s = real_stats(preset, progress=False)
    print(json.dumps({"preset": preset, "images": s.n_images, "features": int(s.words.shape[0]),
                      "features_per_image": float(s.words.shape[0] / s.n_images)}))
