"""A corpus of bundle mutations, generated here: each must be refused with a typed vbow error,
or (a mutation that changes nothing the index reads) load and answer exactly as the original.

Kinds: byte flips in every array file and across the manifest; truncations; dtype and shape
changes in ``.npy`` headers (with the file's CRC fixed, so the header checks are what is
tested); manifest field edits (with the manifest's CRC fixed); swapped, renamed and missing
files; symbolic links out of the bundle; structurally invalid arrays written with correct
checksums (out-of-range postings, decreasing offsets, word ids past the vocabulary, broken
strings, NaN). Edits that leave another valid index (e.g. two arrays of the same dtype,
shape and range swapped and the manifest rewritten to match) are not corruption and are not
in the corpus: whoever can rewrite every checksum can write any index. Every case runs under a time limit (a hang fails it) with default load settings.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

import vbow
from vbow.errors import VbowError
from vbow.persist.bundle import MANIFEST, MANIFEST_CHECKSUM, manifest_checksum
from vbow.synthetic import make_catalog

TIME_LIMIT_S = 20
ARRAYS = ("vocab_coarse", "vocab_words", "vocab_cell_offsets", "vocab_idf",
          "postings_word_offsets", "postings_postings", "postings_norms", "kp_offsets",
          "kp_words", "kp_xy", "kp_log_scale", "kp_angle", "keys_blob", "keys_offsets",
          "meta_blob", "meta_offsets", "colour", "scale", "image_size")
N_PRODUCTS = 5


# ------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def original(tmp_path_factory):
    """A small SIFT index saved once, its described queries and its answers."""
    cat = make_catalog(N_PRODUCTS, 1, seed=3, size=192, difficulty=0.3)
    index = vbow.ImageIndex("sift", n_words=256, n_jobs=1)
    report = index.build(cat.products, keys=cat.names,
                         metadata=[{"category": c, "n": i} for i, c in enumerate(cat.categories)])
    assert len(report.added) == N_PRODUCTS
    path = index.save(tmp_path_factory.mktemp("orig") / "b")
    loaded = vbow.ImageIndex.load(path)
    queries = [loaded.describe(p.image) for p in cat.photos[:3]]
    return path, queries, answers(loaded, queries)


def answers(index: vbow.ImageIndex, queries) -> list:
    out = [index.keys, [index.metadata(k) for k in index.keys]]
    for q in queries:
        for rerank in (True, False):
            r = index.search_features(q, top_k=N_PRODUCTS, rerank=rerank)
            out.append([(m.key, m.score, m.inliers, m.metadata) for m in r.matches])
    return out


@contextmanager
def time_limit(seconds: float):
    def on_alarm(signum, frame):
        raise TimeoutError(f"no answer within {seconds} s: a hang")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# ------------------------------------------------------------------------- bundle edits
def manifest_of(path: Path) -> dict:
    return json.loads((path / MANIFEST).read_text())


def write_manifest(path: Path, manifest: dict, fix: bool = True) -> None:
    if fix and MANIFEST_CHECKSUM in manifest:
        manifest = {**manifest, MANIFEST_CHECKSUM: manifest_checksum(manifest)}
    (path / MANIFEST).write_text(json.dumps(manifest, indent=1))


def file_of(path: Path, name: str) -> Path:
    return path / manifest_of(path)["arrays"][name]["file"]


def fix_entry(path: Path, name: str, *, shape=None, dtype=None) -> None:
    """Record a rewritten array file's size and CRC (and shape, dtype) in the manifest."""
    manifest = manifest_of(path)
    spec = manifest["arrays"][name]
    target = path / spec["file"]
    spec["bytes"] = target.stat().st_size
    spec["crc32"] = zlib.crc32(target.read_bytes())
    if shape is not None:
        spec["shape"] = list(shape)
    if dtype is not None:
        spec["dtype"] = dtype
    write_manifest(path, manifest)


def rewrite_array(path: Path, name: str, change: Callable[[np.ndarray], np.ndarray]) -> None:
    """Write ``change(array)`` as a well-formed .npy with correct checksums."""
    target = file_of(path, name)
    new = np.asarray(change(np.load(target)))
    new = new.astype(new.dtype.newbyteorder("<"))
    target.unlink()
    with open(target, "wb") as fh:
        np.lib.format.write_array(fh, new, allow_pickle=False)
    fix_entry(path, name, shape=new.shape, dtype=new.dtype.str)


def flip(path: Path, target: Path, fraction: float, xor: int = 0xFF) -> None:
    data = bytearray(target.read_bytes())
    at = min(int(fraction * len(data)), len(data) - 1)
    data[at] ^= xor
    target.write_bytes(bytes(data))


def header_len(target: Path) -> int:
    data = target.read_bytes()
    return 10 + int.from_bytes(data[8:10], "little")


def set_header(path: Path, name: str, descr=None, shape=None, fortran=False,
               fix: bool = True) -> None:
    """Rewrite an .npy header in place (same length), optionally fixing the CRCs."""
    target = file_of(path, name)
    data = target.read_bytes()
    hl = header_len(target)
    arr = np.load(target, mmap_mode="r")
    header = {"descr": descr if descr is not None else arr.dtype.str,
              "fortran_order": fortran, "shape": tuple(arr.shape if shape is None else shape)}
    text = repr(header).encode("latin1")
    if len(text) + 1 > hl - 10:
        pytest.skip("header does not fit in place")
    text += b" " * (hl - 10 - len(text) - 1) + b"\n"
    target.write_bytes(data[:10] + text + data[hl:])
    if fix:
        fix_entry(path, name)


# ------------------------------------------------------------------------ the corpus
MUTATIONS: dict[str, Callable[[Path], None]] = {}


def mutation(name: str):
    def register(fn):
        MUTATIONS[name] = fn
        return fn
    return register


def _add(name: str, fn: Callable[[Path], None]) -> None:
    MUTATIONS[name] = fn


# 1. byte flips in every array file: in the header, the data's first, middle and last bytes
for _name in ARRAYS:
    for _where in ("magic", "header", "data0", "mid", "last"):
        def _flip_array(p, n=_name, w=_where):
            t = file_of(p, n)
            size = t.stat().st_size
            hl = header_len(t)
            at = {"magic": 2, "header": 20, "data0": hl, "mid": (hl + size) // 2,
                  "last": size - 1}[w]
            if at >= size:
                at = size - 1
            flip(p, t, at / size + 1e-9)
        _add(f"flip-{_name}-{_where}", _flip_array)

# 2. byte flips across the manifest (and single-bit flips)
for _i in range(40):
    _add(f"flip-manifest-{_i}", lambda p, f=_i / 40: flip(p, p / MANIFEST, f))
for _i in range(10):
    _add(f"bitflip-manifest-{_i}", lambda p, f=(_i + 0.5) / 10: flip(p, p / MANIFEST, f, 0x01))

# 3. truncations
for _name in ARRAYS:
    for _keep in ("empty", "magic", "header", "minus1"):
        def _truncate(p, n=_name, k=_keep):
            t = file_of(p, n)
            data = t.read_bytes()
            cut = {"empty": 0, "magic": 6, "header": header_len(t) - 1,
                   "minus1": len(data) - 1}[k]
            t.write_bytes(data[:cut])
        _add(f"truncate-{_name}-{_keep}", _truncate)
for _f in (0.0, 0.3, 0.7, 0.99):
    _add(f"truncate-manifest-{_f}",
         lambda p, f=_f: (p / MANIFEST).write_bytes((p / MANIFEST).read_bytes()[:int(f * (p / MANIFEST).stat().st_size)]))

# 4. dtype and shape changes in .npy headers, with the file CRC fixed (and once not fixed)
_SAME_SIZE = {1: "|i1", 2: "<i2", 4: "<i4", 8: "<f8"}
for _name in ARRAYS:
    def _dtype(p, n=_name):
        t = file_of(p, n)
        dt = np.load(t, mmap_mode="r").dtype
        other = _SAME_SIZE[dt.itemsize] if _SAME_SIZE[dt.itemsize] != dt.str else "<u" + str(dt.itemsize) if dt.itemsize > 1 else "|b1"
        set_header(p, n, descr=other)
    _add(f"header-dtype-{_name}", _dtype)

    def _huge(p, n=_name):
        shape = np.load(file_of(p, n), mmap_mode="r").shape
        set_header(p, n, shape=(2 ** 40,) + tuple(shape[1:]))
    _add(f"header-huge-{_name}", _huge)

    def _reshape(p, n=_name):
        shape = np.load(file_of(p, n), mmap_mode="r").shape
        total = int(np.prod(shape))
        set_header(p, n, shape=(total,) if len(shape) > 1 else (1, total))
    _add(f"header-shape-{_name}", _reshape)

    _add(f"header-fortran-{_name}", lambda p, n=_name: set_header(p, n, fortran=True))
    _add(f"header-dtype-unfixed-{_name}",
         lambda p, n=_name: set_header(p, n, descr="<f8", fix=False))


# 5. manifest field edits, CRC recomputed
def _edit(path_fn: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(p: Path) -> None:
        m = manifest_of(p)
        path_fn(m)
        write_manifest(p, m)
    return apply


def _set(*keys, value):
    def fn(m):
        t = m
        for k in keys[:-1]:
            t = t[k]
        t[keys[-1]] = value
    return fn


def _delete(*keys):
    def fn(m):
        t = m
        for k in keys[:-1]:
            t = t[k]
        del t[keys[-1]]
    return fn


_FIELD_EDITS = {
    "version-0": _set("format_version", value=0), "version--1": _set("format_version", value=-1),
    "version-true": _set("format_version", value=True), "version-str": _set("format_version", value="2"),
    "version-3": _set("format_version", value=3), "version-float": _set("format_version", value=2.0),
    "version-1": _set("format_version", value=1), "version-none": _set("format_version", value=None),
    "format-name": _set("format", value="vbow-vocab"), "format-missing": _delete("format"),
    "generation-0": _set("generation", value=0), "generation-true": _set("generation", value=True),
    "generation-2": _set("generation", value=2), "generation-str": _set("generation", value="1"),
    "n_images-plus1": lambda m: m.__setitem__("n_images", m["n_images"] + 1),
    "n_images-true": _set("n_images", value=True), "n_images-neg": _set("n_images", value=-1),
    "n_images-missing": _delete("n_images"),
    "method-orb": _set("config", "method", value="orb"),
    "method-teblid": _set("config", "method", value="teblid"),
    "method-int": _set("config", "method", value=3),
    "max_keypoints-bool": _set("config", "max_keypoints", value=True),
    "n_words-bool": _set("config", "n_words", value=False),
    "rerank-int": _set("config", "rerank", value=1),
    "colour_weight-str": _set("config", "colour_weight", value="5"),
    "hue_bins-plus1": lambda m: m["config"]["colour"].__setitem__(
        "hue_bins", m["config"]["colour"]["hue_bins"] + 1),
    "hue_bins-bool": _set("config", "colour", "hue_bins", value=True),
    "colour-list": _set("config", "colour", value=[1, 2]),
    "config-missing": _delete("config"), "config-list": _set("config", value=[]),
    "config-unknown-key": _set("config", "warp_drive", value=1),
    "kind-hamming": _set("vocabulary", "state", "kind", value="hamming"),
    "kind-bogus": _set("vocabulary", "state", "kind", value="faiss"),
    "vocab-n_words-plus1": lambda m: m["vocabulary"].__setitem__(
        "n_words", m["vocabulary"]["n_words"] + 1),
    "vocab-n_words-str": _set("vocabulary", "n_words", value="256"),
    "vocab-params-bool": _set("vocabulary", "params", "probes", value=True),
    "vocab-missing": _delete("vocabulary"),
    "arrays-list": _set("arrays", value=[]),
    "array-missing-entry": _delete("arrays", "kp_xy"),
    "array-missing-postings": _delete("arrays", "postings_postings"),
    "array-shape-str": _set("arrays", "scale", "shape", value="5"),
    "array-shape-bool": lambda m: m["arrays"]["scale"].__setitem__("shape", [True]),
    "array-dtype-object": _set("arrays", "scale", "dtype", value="|O"),
    "array-dtype-bigendian": _set("arrays", "scale", "dtype", value=">f4"),
    "array-dtype-bogus": _set("arrays", "scale", "dtype", value="float32x"),
    "array-bytes-bool": _set("arrays", "scale", "bytes", value=True),
    "array-bytes-plus1": lambda m: m["arrays"]["scale"].__setitem__(
        "bytes", m["arrays"]["scale"]["bytes"] + 1),
    "array-crc-plus1": lambda m: m["arrays"]["scale"].__setitem__(
        "crc32", (m["arrays"]["scale"]["crc32"] + 1) % 2 ** 32),
    "array-crc-str": _set("arrays", "scale", "crc32", value="0"),
    "array-file-abs": _set("arrays", "scale", "file", value="/etc/passwd"),
    "array-file-dotdot": _set("arrays", "scale", "file", value="../scale.g1.npy"),
    "array-file-other": lambda m: m["arrays"]["scale"].__setitem__(
        "file", m["arrays"]["colour"]["file"]),
    "array-entry-int": _set("arrays", "scale", value=7),
    "array-name-bad": lambda m: m["arrays"].__setitem__("../x", m["arrays"].pop("scale")),
}
for _k, _fn in _FIELD_EDITS.items():
    _add(f"field-{_k}", _edit(_fn))
_add("field-unfixed-crc-plus1", lambda p: (lambda m: (
    m.__setitem__(MANIFEST_CHECKSUM, m[MANIFEST_CHECKSUM] + 1), write_manifest(p, m, fix=False)))(manifest_of(p)))
_add("field-unfixed-crc-bool", lambda p: (lambda m: (
    m.__setitem__(MANIFEST_CHECKSUM, True), write_manifest(p, m, fix=False)))(manifest_of(p)))
_add("field-unfixed-colour_weight", lambda p: (lambda m: (
    m["config"].__setitem__("colour_weight", 0.0), write_manifest(p, m, fix=False)))(manifest_of(p)))
_add("field-unfixed-rerank", lambda p: (lambda m: (
    m["config"].__setitem__("rerank", False), write_manifest(p, m, fix=False)))(manifest_of(p)))


# 6. swapped, renamed, missing files
_PAIRS = [("kp_log_scale", "kp_angle"), ("keys_offsets", "meta_offsets"), ("scale", "postings_norms"),
          ("vocab_coarse", "vocab_words"), ("keys_blob", "meta_blob"), ("kp_words", "kp_xy")]
# swapping these and fixing the manifest makes another valid bundle (same dtype, shape and
# range): an edit, not corruption, so only their plain swap (caught by the checksums) is here
_SAME_LAYOUT = {("kp_log_scale", "kp_angle"), ("scale", "postings_norms")}
for _a, _b in _PAIRS:
    def _swap(p, a=_a, b=_b):
        fa, fb = file_of(p, a), file_of(p, b)
        tmp = p / "swap.tmp"
        os.replace(fa, tmp)
        os.replace(fb, fa)
        os.replace(tmp, fb)
    _add(f"swap-{_a}-{_b}", _swap)
    if (_a, _b) in _SAME_LAYOUT:
        continue

    def _swap_fixed(p, a=_a, b=_b):      # contents swapped and the manifest made to agree
        _swap(p, a, b)
        m = manifest_of(p)
        ea, eb = m["arrays"][a], m["arrays"][b]
        for key in ("dtype", "shape", "bytes", "crc32"):
            ea[key], eb[key] = eb[key], ea[key]
        write_manifest(p, m)
    _add(f"swap-fixed-{_a}-{_b}", _swap_fixed)
for _name in ARRAYS:
    _add(f"missing-{_name}", lambda p, n=_name: file_of(p, n).unlink())
    _add(f"symlink-out-{_name}", lambda p, n=_name: _symlink_out(p, n))
_add("missing-manifest", lambda p: (p / MANIFEST).unlink())
_add("symlink-out-manifest", lambda p: _symlink_out(p, None))
_add("renamed-generation", lambda p: [os.replace(f, p / f.name.replace(".g1.", ".g2."))
                                      for f in p.glob("*.g1.npy")])
_add("renamed-one", lambda p: os.replace(file_of(p, "colour"), p / "colour.npy"))
_add("manifest-is-dir", lambda p: ((p / MANIFEST).unlink(), (p / MANIFEST).mkdir()))
_add("array-is-dir", lambda p: (file_of(p, "scale").unlink(), (p / "scale.g1.npy").mkdir()))
_add("array-is-fifo", lambda p: (file_of(p, "scale").unlink(), os.mkfifo(p / "scale.g1.npy")))
_add("manifest-is-fifo", lambda p: ((p / MANIFEST).unlink(), os.mkfifo(p / MANIFEST)))


def _symlink_out(p: Path, name: str | None) -> None:
    target = p / MANIFEST if name is None else file_of(p, name)
    outside = p.parent / f"outside-{target.name}"
    shutil.copyfile(target, outside)                    # identical bytes: size and CRC agree
    target.unlink()
    target.symlink_to(outside)


# 7. structurally invalid arrays written with correct checksums
def _postings_out_of_range(a):
    a = a.copy()
    a[len(a) // 2] = np.uint32(N_PRODUCTS + 3) << np.uint32(2)
    return a


def _postings_unsorted(a):
    a = a.copy()
    # find a word with two postings and swap them
    return a[::-1].copy() if len(a) < 2 else np.concatenate([a[1:2], a[0:1], a[2:]])


def _duplicate_first_key(p):
    m = manifest_of(p)
    keys = np.load(file_of(p, "keys_blob"))
    offs = np.load(file_of(p, "keys_offsets"))
    strings = [bytes(keys[offs[i]:offs[i + 1]]) for i in range(len(offs) - 1)]
    strings[1] = strings[0]
    blob = np.frombuffer(b"".join(strings), np.uint8)
    rewrite_array(p, "keys_blob", lambda a: blob)
    new_offs = np.concatenate([[0], np.cumsum([len(s) for s in strings])]).astype(np.int64)
    rewrite_array(p, "keys_offsets", lambda a: new_offs)


def _meta_entry(p, text: bytes):
    blob = np.load(file_of(p, "meta_blob"))
    offs = np.load(file_of(p, "meta_offsets"))
    strings = [bytes(blob[offs[i]:offs[i + 1]]) for i in range(len(offs) - 1)]
    strings[0] = text
    rewrite_array(p, "meta_blob", lambda a: np.frombuffer(b"".join(strings), np.uint8))
    rewrite_array(p, "meta_offsets", lambda a: np.concatenate(
        [[0], np.cumsum([len(s) for s in strings])]).astype(np.int64))


_STRUCTURAL = {
    "postings-doc-out-of-range": ("postings_postings", _postings_out_of_range),
    "postings-max-doc": ("postings_postings", lambda a: np.where(np.arange(len(a)) == 0,
                                                                 np.uint32(0xFFFFFFFF), a)),
    "postings-unsorted": ("postings_postings", _postings_unsorted),
    "postings-shorter": ("postings_postings", lambda a: a[:-1]),
    "postings-as-int64": ("postings_postings", lambda a: a.astype(np.int64)),
    "word-offsets-decrease": ("postings_word_offsets", lambda a: np.where(
        np.arange(len(a)) == 5, a[-1], a)),
    "word-offsets-last": ("postings_word_offsets", lambda a: np.append(a[:-1], a[-1] - 1)),
    "word-offsets-first": ("postings_word_offsets", lambda a: np.concatenate([[1], a[1:]])),
    "word-offsets-short": ("postings_word_offsets", lambda a: a[:-1]),
    "word-offsets-float": ("postings_word_offsets", lambda a: a.astype(np.float64)),
    "norms-nan": ("postings_norms", lambda a: np.where(np.arange(len(a)) == 0, np.nan, a).astype(np.float32)),
    "norms-short": ("postings_norms", lambda a: a[:-1]),
    "norms-negative": ("postings_norms", lambda a: -a),
    "kp-words-past-vocabulary": ("kp_words", lambda a: np.where(np.arange(len(a)) == 3, 60000, a).astype(np.uint16)),
    "kp-words-uint32": ("kp_words", lambda a: a.astype(np.uint32)),
    "kp-offsets-decrease": ("kp_offsets", lambda a: np.where(np.arange(len(a)) == 1, a[-1] + 5, a)),
    "kp-offsets-last": ("kp_offsets", lambda a: np.append(a[:-1], a[-1] + 1)),
    "kp-xy-short": ("kp_xy", lambda a: a[:-1]),
    "kp-angle-short": ("kp_angle", lambda a: a[:-1]),
    "kp-xy-3cols": ("kp_xy", lambda a: np.c_[a, a[:, :1]]),
    "vocab-idf-nan": ("vocab_idf", lambda a: np.where(np.arange(len(a)) == 0, np.nan, a).astype(np.float32)),
    "vocab-idf-short": ("vocab_idf", lambda a: a[:-1]),
    "vocab-words-short": ("vocab_words", lambda a: a[:-1]),
    "vocab-words-64d": ("vocab_words", lambda a: a[:, :64]),
    "vocab-words-inf": ("vocab_words", lambda a: np.where(np.arange(a.size).reshape(a.shape) == 0, np.inf, a).astype(np.float32)),
    "vocab-coarse-f64": ("vocab_coarse", lambda a: a.astype(np.float64)),
    "vocab-cells-last": ("vocab_cell_offsets", lambda a: np.append(a[:-1], a[-1] + 3)),
    "vocab-cells-decrease": ("vocab_cell_offsets", lambda a: a[::-1].copy()),
    "keys-offsets-past-blob": ("keys_offsets", lambda a: np.append(a[:-1], a[-1] + 10)),
    "keys-offsets-decrease": ("keys_offsets", lambda a: np.where(np.arange(len(a)) == 1, a[2] + 1, a)),
    "keys-blob-not-utf8": ("keys_blob", lambda a: np.where(np.arange(len(a)) == 0, 0xFF, a).astype(np.uint8)),
    "meta-offsets-past-blob": ("meta_offsets", lambda a: np.append(a[:-1], a[-1] + 1)),
    "meta-blob-garbage": ("meta_blob", lambda a: np.full_like(a, ord("x"))),
    "colour-short": ("colour", lambda a: a[:-1]),
    "colour-bins": ("colour", lambda a: a[:, :-1]),
    "colour-float": ("colour", lambda a: a.astype(np.float32)),
    "scale-zero": ("scale", lambda a: np.zeros_like(a)),
    "scale-nan": ("scale", lambda a: np.full_like(a, np.nan)),
    "scale-short": ("scale", lambda a: a[:-1]),
    "size-negative": ("image_size", lambda a: -a),
    "size-int64": ("image_size", lambda a: a.astype(np.int64)),
    "size-3cols": ("image_size", lambda a: np.c_[a, a[:, :1]]),
}
for _k, (_name, _fn) in _STRUCTURAL.items():
    _add(f"structural-{_k}", lambda p, n=_name, f=_fn: rewrite_array(p, n, f))
_add("structural-duplicate-key", _duplicate_first_key)


def _offset_mid_char(p: Path) -> None:
    """The first key starts with a two-byte character and the second key's offset points
    between its bytes."""
    rewrite_array(p, "keys_blob", lambda a: np.concatenate([[0xC3, 0xA9], a]).astype(np.uint8))
    rewrite_array(p, "keys_offsets", lambda a: np.concatenate([[0, 1], a[1:] + 2]))


_add("structural-keys-offset-mid-char", _offset_mid_char)
for _k, _text in {"meta-not-json": b"{oops", "meta-list": b"[1, 2]", "meta-two-objects": b"{},{}",
                  "meta-nan": b'{"a": NaN}', "meta-deep": b"[" * 5000 + b"]" * 5000,
                  "meta-number": b"7"}.items():
    _add(f"structural-{_k}", lambda p, t=_text: _meta_entry(p, t))
_add("structural-extra-array-unlisted", lambda p: shutil.copyfile(file_of(p, "scale"),
                                                                  p / "extra.g1.npy"))


def _extra_listed(p: Path) -> None:
    target = p / "hamming_extra.g1.npy"
    with open(target, "wb") as fh:
        np.lib.format.write_array(fh, np.arange(4, dtype=np.uint8), allow_pickle=False)
    m = manifest_of(p)
    m["arrays"]["hamming_extra"] = {"file": target.name, "dtype": "|u1", "shape": [4],
                                    "bytes": target.stat().st_size,
                                    "crc32": zlib.crc32(target.read_bytes())}
    write_manifest(p, m)


_add("structural-extra-array-listed", _extra_listed)   # allowed: answers must not change


def test_the_corpus_is_large_enough():
    assert len(MUTATIONS) >= 300, len(MUTATIONS)


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_mutation_is_refused_or_harmless(original, tmp_path, name):
    path, queries, expected = original
    bundle = tmp_path / "b"
    shutil.copytree(path, bundle)
    MUTATIONS[name](bundle)
    with time_limit(TIME_LIMIT_S):
        try:
            index = vbow.ImageIndex.load(bundle)
        except VbowError as exc:
            assert str(bundle) in str(exc), f"the error does not name the bundle: {exc}"
            return
        got = answers(index, queries)
    assert got == expected, f"{name}: loaded and answered differently"


#: kinds the structural checks alone must catch (no byte flips: without checksums, a flipped
#: bit inside a float is a valid different value, which is what the fast open trades away)
FAST_OPEN_KINDS = ("structural-", "header-", "field-", "truncate-", "missing-", "symlink-",
                   "swap-fixed-", "array-is-", "manifest-is-", "renamed-")


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=() if n.startswith(("structural-", "header-")) else pytest.mark.slow)
    for n in sorted(MUTATIONS) if n.startswith(FAST_OPEN_KINDS) and "unfixed" not in n])
def test_mutation_is_refused_or_harmless_without_checksums(original, tmp_path, name):
    path, queries, expected = original
    bundle = tmp_path / "b"
    shutil.copytree(path, bundle)
    MUTATIONS[name](bundle)
    with time_limit(TIME_LIMIT_S):
        try:
            index = vbow.ImageIndex.load(bundle, verify_checksums=False)
        except VbowError as exc:
            assert str(bundle) in str(exc), f"the error does not name the bundle: {exc}"
            return
        got = answers(index, queries)
    assert got == expected, f"{name}: loaded and answered differently"
