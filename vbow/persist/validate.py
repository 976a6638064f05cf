"""Structural checks of a saved index, run on the raw manifest and arrays before any object is built.

:func:`vbow.persist.bundle.load_bundle` guarantees files that agree with their manifest (names,
regular files, ``.npy`` headers, sizes, CRC-32 by default). This module checks what the index
itself relies on, so that a bundle that passes cannot make a query read out of range, raise an
untyped error, or answer from inconsistent parts, whether or not checksums were verified:

* the manifest's types: ``format_version`` 1 or 2, ``n_images``, the ``config`` and
  ``vocabulary`` tables (ints are ints, not bools; strings are strings), the feature method
  agreeing with the vocabulary kind;
* the array names (every required array present; extra arrays are accepted because the
  manifest lists them, for formats that add arrays), dtypes and shapes;
* counts agreeing: the vocabulary's words, cells, IDF and ``n_words``; one slot per image in
  the postings norms, keypoint offsets, keys, metadata, colour, scale and size arrays;
* CSR offsets starting at 0, non-decreasing and ending at their array's length (vocabulary cells,
  postings per word, keypoints per image, key and metadata strings);
* postings: document ids in range and strictly ascending within each word; keypoint word ids
  below ``n_words`` (read only when the word dtype can hold larger values: a ``uint16`` array
  under a 65,536-word vocabulary cannot);
* strings: offsets on UTF-8 character boundaries of a valid UTF-8 blob, keys unique (a
  vectorised hash, collisions compared exactly), every metadata entry running from ``{`` to
  ``}`` and, for tables up to :data:`FULL_JSON_CHECK_BYTES`, parsing as one JSON object;
* floats finite where the index divides by or ranks on them (IDF, norms, scales, centroids).

Every reduction over a large array runs in bounded chunks (no temporary the size of the
postings). Failures raise :class:`vbow.errors.BundleFormatError` naming the array's file and
the values found and expected. numpy only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from vbow.describe.colour import ColourHistogram
from vbow.errors import BundleFormatError

__all__ = ["validate_index_bundle", "KNOWN_FORMAT_VERSIONS", "CHUNK", "FULL_JSON_CHECK_BYTES"]

#: Format versions of ``vbow-index`` this module knows the arrays of.
KNOWN_FORMAT_VERSIONS = (1, 2)
#: Elements per chunk of a reduction over a large array.
CHUNK = 1 << 22
#: Metadata tables up to this many bytes are parsed as JSON in full at open (about 0.1 s per
#: MiB); larger ones are checked entry by entry to run from "{" to "}" and are parsed as read.
FULL_JSON_CHECK_BYTES = 4 << 20
_HASH_BASE = 0x100000001B3
_MANIFEST = "manifest.json"
_TF_BITS = 2
_MAX_DOCS = 1 << (32 - _TF_BITS)
_VOCAB_KINDS = {"kmeans": ("<f4", 128), "hamming": ("|u1", 32)}
_METHOD_KIND = {"sift": "kmeans", "orb": "hamming", "teblid": "hamming"}
_VOCAB_PARAMS = ("n_words", "probes", "min_points_per_word", "random_state",
                 "coarse_sample_per_cell")
_PER_IMAGE = ("kp_offsets", "keys_offsets", "meta_offsets")   # (n + 1,) offsets
_COMMON = ("vocab_coarse", "vocab_words", "vocab_cell_offsets", "vocab_idf",
           "postings_word_offsets", "postings_norms", "kp_offsets", "kp_words", "kp_xy",
           "kp_log_scale", "kp_angle", "keys_blob", "keys_offsets", "meta_blob", "meta_offsets",
           "colour", "scale", "image_size")
_POSTINGS = {1: ("postings_docs", "postings_tf"), 2: ("postings_postings",)}


class _Checker:
    def __init__(self, manifest: Mapping[str, Any], arrays: Mapping[str, np.ndarray],
                 path: str | os.PathLike) -> None:
        self.manifest = manifest
        self.arrays = arrays
        self.path = Path(path)
        self.manifest_path = self.path / _MANIFEST

    # ------------------------------------------------------------------------------ helpers
    def where(self, name: str) -> Path:
        spec = self.manifest.get("arrays", {}).get(name)
        file_name = spec.get("file") if isinstance(spec, dict) else None
        return self.path / file_name if isinstance(file_name, str) else self.manifest_path

    def fail(self, name: str | None, message: str) -> None:
        where = self.manifest_path if name is None else self.where(name)
        prefix = "" if name is None else f"array {name!r}: "
        raise BundleFormatError(f"{prefix}{message}", where)

    def array(self, name: str, dtype: str, shape: tuple[int | None, ...]) -> np.ndarray:
        """The array, checked to be ``dtype`` (a little-endian dtype string) and ``shape``
        (None: any length on that axis)."""
        a = self.arrays[name]
        ok = a.dtype.str == dtype and a.ndim == len(shape) and \
            all(want is None or got == want for got, want in zip(a.shape, shape))
        if not ok:
            wanted = "(" + ", ".join("n" if s is None else str(s) for s in shape) + \
                ("," if len(shape) == 1 else "") + ")"
            self.fail(name, f"is {a.shape} {a.dtype.str}, expected {wanted} {dtype}")
        return a

    def offsets(self, name: str, length: int | None, end: int, what: str) -> np.ndarray:
        """CSR offsets: ``(length,) int64`` (None: any), 0 first, non-decreasing, ``end`` last."""
        a = self.array(name, "<i8", (length,))
        if a.shape[0] < 1:
            self.fail(name, "offsets are empty, expected at least one (0)")
        first, last = int(a[0]), int(a[-1])
        if first != 0 or last != end:
            self.fail(name, f"offsets run from {first} to {last}, expected 0 to {end} ({what})")
        for s in range(0, a.shape[0] - 1, CHUNK):
            block = np.asarray(a[s:s + CHUNK + 1])
            if block.shape[0] > 1 and bool((block[1:] < block[:-1]).any()):
                at = s + int(np.flatnonzero(block[1:] < block[:-1])[0])
                self.fail(name, f"offsets decrease at {at}: {int(block[at - s])} then "
                                f"{int(block[at - s + 1])}")
        return a

    def max_below(self, name: str, values: np.ndarray, bound: int, what: str,
                  shift: int = 0) -> None:
        for s in range(0, values.shape[0], CHUNK):
            block = np.asarray(values[s:s + CHUNK])
            if shift:
                block = block >> np.uint32(shift)
            top = int(block.max()) if block.size else -1
            if top >= bound:
                self.fail(name, f"{what} {top} is out of range 0..{bound - 1}")

    def finite(self, name: str, a: np.ndarray, low: float | None = None,
               strictly: bool = False) -> None:
        flat = a.reshape(-1)
        for s in range(0, flat.shape[0], CHUNK):
            block = np.asarray(flat[s:s + CHUNK])
            if not bool(np.isfinite(block).all()):
                self.fail(name, "holds NaN or infinite values")
            if low is not None and block.size:
                bad = (block <= low) if strictly else (block < low)
                if bool(bad.any()):
                    self.fail(name, f"holds {float(block[bad][0])}, expected values "
                                    f"{'>' if strictly else '>='} {low}")

    def field(self, table: Mapping[str, Any], key: str, kind: type, label: str,
              minimum: int | None = None) -> Any:
        value = table.get(key) if isinstance(table, Mapping) else None
        ok = type(value) is int if kind is int else isinstance(value, kind)
        if ok and minimum is not None and value < minimum:
            ok = False
        if not ok:
            bound = "" if minimum is None else f" >= {minimum}"
            self.fail(None, f"{label} is {value!r}, expected {kind.__name__}{bound}")
        return value

    # ------------------------------------------------------------------------------- checks
    def run(self) -> None:
        m = self.manifest
        version = self.field(m, "format_version", int, "format_version")
        if version not in KNOWN_FORMAT_VERSIONS:
            self.fail(None, f"format_version is {version!r}, expected one of "
                            f"{KNOWN_FORMAT_VERSIONS}")
        n_images = self.field(m, "n_images", int, "n_images", 0)
        config = self.field(m, "config", dict, "config")
        kind, n_words = self.check_manifest_vocabulary(config)
        n_bins = self.check_config(config)
        listed = m.get("arrays")
        if not isinstance(listed, Mapping) or set(listed) != set(self.arrays):
            self.fail(None, "the arrays loaded are not the arrays the manifest lists")
        required = _COMMON + _POSTINGS[version]
        missing = [n for n in required if n not in self.arrays]
        if missing:
            self.fail(None, f"arrays {missing} are missing (format version {version} needs "
                            f"{list(required)})")
        self.check_vocabulary(kind, n_words)
        n = self.check_postings(version, n_words)
        if n != n_images:
            self.fail("postings_norms", f"holds {n} images, the manifest's n_images is {n_images}")
        self.check_keypoints(n, n_words)
        self.check_strings("keys", n, keys=True)
        self.check_strings("meta", n, keys=False)
        self.array("colour", "|u1", (n, n_bins))
        self.finite("scale", self.array("scale", "<f4", (n,)), 0.0, strictly=True)
        size = self.array("image_size", "<i4", (n, 2))
        if n and int(np.asarray(size).min()) < 1:
            self.fail("image_size", f"holds {int(np.asarray(size).min())}, expected sizes >= 1")

    def check_config(self, config: Mapping[str, Any]) -> int:
        """Types of the config table (the Config constructor checks ranges); returns the
        number of colour bins."""
        from vbow.config import Config
        defaults = Config().to_dict()
        for table, reference, label in ((config, defaults, "config"),
                                        (config.get("colour"), defaults["colour"], "config.colour")):
            if not isinstance(table, Mapping):
                self.fail(None, f"{label} is {table!r}, expected a table")
            for key, value in table.items():
                if key not in reference or isinstance(reference[key], Mapping):
                    continue   # unknown keys: the Config constructor refuses them
                want = reference[key]
                if isinstance(want, bool):
                    ok = type(value) is bool
                elif isinstance(want, int) or want is None:
                    ok = type(value) is int or (value is None and (want is None or key ==
                                                                   "max_postings"))
                elif isinstance(want, float):
                    ok = type(value) in (int, float) and np.isfinite(value)
                else:
                    ok = isinstance(value, type(want))
                if not ok:
                    self.fail(None, f"{label}.{key} is {value!r}, expected a value like "
                                    f"{want!r}")
        colour = config["colour"]
        parts = {key: self.field(colour, key, int, f"config.colour.{key}", 0)
                 for key in ("hue_bins", "saturation_bins", "value_bins", "grey_bins")}
        # bundles from before banded signatures have no "bands": one histogram
        parts["bands"] = self.field(colour, "bands", int, "config.colour.bands", 0) \
            if "bands" in colour else 0
        return ColourHistogram(**parts).n_bins

    def check_manifest_vocabulary(self, config: Mapping[str, Any]) -> tuple[str, int]:
        vinfo = self.field(self.manifest, "vocabulary", dict, "vocabulary")
        params = self.field(vinfo, "params", dict, "vocabulary.params")
        for key in _VOCAB_PARAMS:
            if key in params:
                self.field(params, key, int, f"vocabulary.params.{key}")
        state = self.field(vinfo, "state", dict, "vocabulary.state")
        kind = state.get("kind")
        if kind not in _VOCAB_KINDS:
            self.fail(None, f"vocabulary.state.kind is {kind!r}, expected one of "
                            f"{sorted(_VOCAB_KINDS)}")
        if "n_training_images" in state:
            self.field(state, "n_training_images", int, "vocabulary.state.n_training_images", 0)
        n_words = self.field(vinfo, "n_words", int, "vocabulary.n_words", 1)
        method = config.get("method")
        if _METHOD_KIND.get(method) != kind:
            self.fail(None, f"config.method {method!r} does not go with a {kind!r} vocabulary "
                            f"(sift: kmeans, orb: hamming)")
        return kind, n_words

    def check_vocabulary(self, kind: str, n_words: int) -> None:
        dtype, dim = _VOCAB_KINDS[kind]
        coarse = self.array("vocab_coarse", dtype, (None, dim))
        words = self.array("vocab_words", dtype, (n_words, dim))
        if coarse.shape[0] < 1:
            self.fail("vocab_coarse", "has no cells")
        self.offsets("vocab_cell_offsets", coarse.shape[0] + 1, n_words, "words per cell")
        if kind == "kmeans":
            self.finite("vocab_coarse", coarse)
            self.finite("vocab_words", words)
        self.finite("vocab_idf", self.array("vocab_idf", "<f4", (n_words,)), 0.0)

    def check_postings(self, version: int, n_words: int) -> int:
        norms = self.array("postings_norms", "<f4", (None,))
        n = norms.shape[0]
        if n > _MAX_DOCS:
            self.fail("postings_norms", f"holds {n} images, at most {_MAX_DOCS} fit")
        self.finite("postings_norms", norms, 0.0)
        if version == 1:
            docs = self.array("postings_docs", "<u4", (None,))
            self.array("postings_tf", "|u1", (docs.shape[0],))
            name, shift = "postings_docs", 0
        else:
            docs = self.array("postings_postings", "<u4", (None,))
            name, shift = "postings_postings", _TF_BITS
        offsets = self.offsets("postings_word_offsets", n_words + 1, docs.shape[0],
                               "postings per word")
        self.postings_in_order(name, docs, np.asarray(offsets), n, shift)
        return n

    def postings_in_order(self, name: str, postings: np.ndarray, offsets: np.ndarray, n: int,
                          shift: int) -> None:
        """Document ids strictly ascending within each word's postings (one chunked pass of
        comparisons, no shifted copy), then below ``n``: with the order checked, each word's
        largest id is its last posting, so the range check reads one posting per word."""
        total = postings.shape[0]
        starts = offsets[1:-1]   # the first posting of every word but word 0
        low = np.uint32((1 << shift) - 1)   # the term-count bits below the document id
        for s in range(0, max(total - 1, 0), CHUNK):
            block = np.asarray(postings[s:s + CHUNK + 1])
            # pair (s + j, s + j + 1) not ascending by document: doc[j+1] <= doc[j], i.e.
            # block[j+1] <= block[j] with the count bits set
            bad = block[1:] <= (block[:-1] | low if shift else block[:-1])
            # ... which is allowed only where a new word starts at s + j + 1
            local = starts[(starts > s) & (starts < s + block.shape[0])] - s - 1
            bad[local] = False
            if bad.any():
                i = s + 1 + int(np.flatnonzero(bad)[0])
                self.fail(name, f"postings {i - 1} and {i} of one word are not in ascending "
                                f"document order")
        ends = offsets[1:][np.diff(offsets) > 0] - 1
        if ends.size:
            top = int(np.asarray(postings)[ends].max()) >> shift
            if top >= n:
                self.fail(name, f"document id {top} is out of range 0..{n - 1}")

    def check_keypoints(self, n: int, n_words: int) -> None:
        words = self.arrays["kp_words"]
        f = words.shape[0] if words.ndim == 1 else -1
        self.array("kp_words", "<u2" if n_words <= 65536 else "<u4", (None,))
        self.offsets("kp_offsets", n + 1, f, "keypoints per image")
        self.array("kp_xy", "<u2", (f, 2))
        self.array("kp_log_scale", "|u1", (f,))
        self.array("kp_angle", "|u1", (f,))
        if np.iinfo(words.dtype).max >= n_words:   # else every value of the dtype is a word
            self.max_below("kp_words", words, n_words, "word id")

    def check_strings(self, prefix: str, n: int, *, keys: bool) -> None:
        blob_name, offsets_name = f"{prefix}_blob", f"{prefix}_offsets"
        blob = self.array(blob_name, "|u1", (None,))
        offsets = np.asarray(self.offsets(offsets_name, n + 1, blob.shape[0],
                                          f"bytes of the {prefix} strings"))
        data = bytes(np.asarray(blob))
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.fail(blob_name, f"is not UTF-8 ({exc})")
        inner = offsets[1:-1]
        inner = inner[inner < blob.shape[0]]
        if inner.size and bool(((np.asarray(blob)[inner] & 0xC0) == 0x80).any()):
            self.fail(offsets_name, "an offset falls inside a UTF-8 character")
        if keys:
            self.unique_strings(blob_name, np.asarray(blob), offsets)
            return
        if n == 0:
            return
        # every metadata entry must be one JSON object: "{" ... "}" always; fully parsed (all at
        # once, as one JSON list) when the table is small enough to cost little
        lengths = np.diff(offsets)
        if bool((lengths < 2).any()):
            self.fail(offsets_name, f"entry {int(np.flatnonzero(lengths < 2)[0])} has "
                                    f"{int(lengths[lengths < 2][0])} bytes, expected a JSON object")
        raw = np.asarray(blob)
        opened, closed = raw[offsets[:-1]] == ord("{"), raw[offsets[1:] - 1] == ord("}")
        if not (opened.all() and closed.all()):
            i = int(np.flatnonzero(~(opened & closed))[0])
            self.fail(blob_name, f"entry {i} is not a JSON object (it does not run from '{{' "
                                 f"to '}}')")
        if blob.shape[0] > FULL_JSON_CHECK_BYTES:
            return
        joined = np.insert(raw, offsets[1:-1], ord(","))
        del text
        try:
            parsed = json.loads(b"[" + joined.tobytes() + b"]",
                                parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            self.fail(blob_name, f"is not a list of JSON objects ({type(exc).__name__}: "
                                 f"{str(exc)[:120]})")
        if len(parsed) != n or not all(type(v) is dict for v in parsed):
            self.fail(blob_name, f"holds {len(parsed)} JSON values for {n} images, expected one "
                                 f"JSON object each")

    def unique_strings(self, name: str, blob: np.ndarray, offsets: np.ndarray) -> None:
        """No string twice: a vectorised 64-bit polynomial hash of every string, then an exact
        comparison of the strings whose hashes collide."""
        n = offsets.shape[0] - 1
        if n < 2:
            return
        lengths = np.diff(offsets)
        position = np.arange(blob.shape[0], dtype=np.int64) - np.repeat(offsets[:-1], lengths)
        longest = int(lengths.max())
        with np.errstate(over="ignore"):
            powers = np.cumprod(np.full(max(longest, 1), _HASH_BASE, np.uint64))
            terms = (blob.astype(np.uint64) + np.uint64(1)) * powers[position]
            sums = np.zeros(n, np.uint64)
            nonempty = lengths > 0
            if terms.size:
                sums[nonempty] = np.add.reduceat(terms, offsets[:-1][nonempty])
            sums ^= lengths.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        ranked = np.sort(sums)
        same = ranked[1:][ranked[1:] == ranked[:-1]]   # hash values seen more than once
        if same.size == 0:
            return
        seen: dict[bytes, int] = {}
        for i in np.flatnonzero(np.isin(sums, same)).tolist():
            value = bytes(blob[offsets[i]:offsets[i + 1]])
            if value in seen:
                self.fail(name, f"key {value.decode('utf-8', 'replace')!r} appears more than "
                                f"once (images {seen[value]} and {i})")
            seen[value] = i


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def validate_index_bundle(manifest: Mapping[str, Any], arrays: Mapping[str, np.ndarray],
                          path: str | os.PathLike) -> None:
    """Check a loaded ``vbow-index`` bundle's structure before any object is built from it.

    Parameters
    ----------
    manifest : dict
        The manifest, as returned by :func:`vbow.persist.bundle.load_bundle`.
    arrays : mapping of str to np.ndarray
        Its arrays (memory maps or in memory), as returned by ``load_bundle``.
    path : str or os.PathLike
        The bundle directory (for error messages).

    Raises
    ------
    BundleFormatError
        The first violated invariant (see the module docstring), naming the array's file (or
        the manifest) and the values found and expected.
    """
    try:
        _Checker(manifest, arrays, path).run()
    except BundleFormatError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as exc:
        # a shape the checks above did not foresee; still a corrupt bundle, never a crash
        raise BundleFormatError(f"inconsistent bundle: {type(exc).__name__}: {exc}",
                                Path(path) / _MANIFEST) from None
