"""The catalog: keys, metadata and per-image arrays of the indexed images, and metadata filters.

Image ``i`` of an index is row ``i`` of every array here and document ``i`` of the postings.
Which rows are live (not removed) is the postings' ``alive`` mask, passed in where it matters,
so there is one truth for it.

Metadata is stored as one JSON text per image (sorted keys). A ``where`` filter on a field is
answered from a per-field table ``json(value) -> ids``, built on first use and kept until the
catalog changes; building it is guarded by a lock, so concurrent readers see one table.

numpy only.
"""

from __future__ import annotations

import json
import threading
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from vbow.errors import BundleFormatError, InvalidInputError
from vbow.search.string_table import StringTable, encode_strings

__all__ = ["Catalog", "Where", "encode_metadata"]

#: A metadata filter: ``{field: value}``, ``{field: [values]}`` (any of), or a predicate.
Where = Mapping[str, Any] | Callable[[Mapping[str, Any]], bool] | None

_MAX_METADATA_BYTES = 1 << 20


def encode_metadata(metadata: Mapping[str, Any] | None, key: str) -> str:
    """One image's metadata as canonical JSON (sorted keys).

    Raises
    ------
    InvalidInputError
        Not a mapping, not JSON-serialisable (e.g. an object, NaN), nested too deeply, or over 1 MiB.
    """
    if metadata is None:
        return "{}"
    if not isinstance(metadata, Mapping):
        raise InvalidInputError(f"metadata of {key!r} must be a mapping; got {type(metadata).__name__}")
    try:
        text = json.dumps(dict(metadata), sort_keys=True, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidInputError(f"metadata of {key!r} is not JSON-serialisable: "
                                f"{type(exc).__name__}: {str(exc)[:200]}") from None
    if len(text) > _MAX_METADATA_BYTES:
        raise InvalidInputError(f"metadata of {key!r} is {len(text)} bytes of JSON; the limit is "
                                f"{_MAX_METADATA_BYTES}")
    return text


def _filter_value_json(field: str, value: Any) -> str:
    try:
        return json.dumps(value, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        raise InvalidInputError(f"where[{field!r}]: {type(value).__name__} value {str(value)[:80]!r} "
                                "is not a JSON value (str, number, bool, None, list, dict)") from None


class Catalog:
    """Keys, metadata and per-image arrays, row ``i`` for image ``i``.

    Parameters
    ----------
    n_bins : int
        Length of a colour signature.

    Attributes
    ----------
    colour : np.ndarray
        ``(n, n_bins) uint8`` colour signatures (sqrt histograms scaled to 0..255).
    scale : np.ndarray
        ``(n,) float32`` original pixels per processed pixel.
    size : np.ndarray
        ``(n, 2) int32`` processed image (width, height).
    """

    def __init__(self, n_bins: int) -> None:
        self.n_bins = int(n_bins)
        self._keys: list[str] | StringTable = []
        self._meta: list[str] | StringTable = []
        self.colour = np.zeros((0, self.n_bins), np.uint8)
        self.scale = np.zeros(0, np.float32)
        self.size = np.zeros((0, 2), np.int32)
        self._key_to_id: dict[str, int] | None = None
        self._fields: dict[str, dict[str, np.ndarray]] = {}
        self._lock = threading.Lock()

    # ---------------------------------------------------------------------------- reading
    def __len__(self) -> int:
        return len(self._keys)

    def key(self, i: int) -> str:
        """Key of row ``i``."""
        return self._keys[i]

    def metadata(self, i: int) -> dict[str, Any]:
        """Metadata of row ``i``."""
        return self._parsed(i)

    def _parsed(self, i: int) -> dict[str, Any]:
        """Row ``i``'s metadata dict; stored text that is not a JSON object (a corrupt bundle
        opened without checksums) raises :class:`BundleFormatError`."""
        try:
            value = json.loads(self._meta[i])
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise BundleFormatError(f"the metadata of image {i} is not valid JSON: "
                                    f"{type(exc).__name__}: {str(exc)[:120]}") from None
        if not isinstance(value, dict):
            raise BundleFormatError(f"the metadata of image {i} is not a JSON object")
        return value

    def metadata_json(self, i: int) -> str:
        """Metadata of row ``i`` as stored (canonical JSON)."""
        return self._meta[i]

    def keys_list(self) -> list[str]:
        """Every row's key (removed rows included)."""
        return self._keys.to_list() if isinstance(self._keys, StringTable) else list(self._keys)

    def key_map(self, alive: np.ndarray) -> dict[str, int]:
        """``{key: row}`` over the live rows (built once per catalog state)."""
        mapping = self._key_to_id
        if mapping is None:
            with self._lock:
                if self._key_to_id is None:
                    keys = self.keys_list()
                    self._key_to_id = {keys[i]: i for i in np.flatnonzero(alive).tolist()}
                mapping = self._key_to_id
        return mapping

    # ---------------------------------------------------------------------------- writing
    def append(self, keys: Sequence[str], meta_json: Sequence[str], colours: np.ndarray,
               scales: np.ndarray, sizes: np.ndarray) -> None:
        """Append rows; arrays must already be validated.

        Parameters
        ----------
        keys, meta_json : sequence of str
            New keys and their canonical metadata JSON.
        colours : np.ndarray
            ``(m, n_bins) float32`` sqrt colour histograms (stored as uint8).
        scales : np.ndarray
            ``(m,) float32``.
        sizes : np.ndarray
            ``(m, 2) int32``.
        """
        first = len(self._keys)
        self.colour = np.concatenate(
            [self.colour, np.clip(np.rint(np.asarray(colours, np.float32) * 255), 0, 255).astype(np.uint8)])
        self.scale = np.concatenate([self.scale, np.asarray(scales, np.float32)])
        self.size = np.concatenate([self.size, np.asarray(sizes, np.int32).reshape(-1, 2)])
        if isinstance(self._keys, StringTable):
            self._keys = self._keys.to_list()
        if isinstance(self._meta, StringTable):
            self._meta = self._meta.to_list()
        self._keys.extend(keys)
        self._meta.extend(meta_json)
        if self._key_to_id is not None:
            self._key_to_id.update({k: first + i for i, k in enumerate(keys)})
        self._fields = {}

    def forget(self, keys: Sequence[str]) -> None:
        """Drop removed keys from the key map and the filter tables (rows stay until :meth:`select`)."""
        if self._key_to_id is not None:
            for k in keys:
                self._key_to_id.pop(k, None)
        self._fields = {}

    def select(self, keep: np.ndarray) -> None:
        """Keep only the rows where ``keep`` (``(n,) bool``) is True, renumbering them."""
        ids = np.flatnonzero(keep).tolist()
        keys = self.keys_list()
        meta = self._meta.to_list() if isinstance(self._meta, StringTable) else self._meta
        self._keys = [keys[i] for i in ids]
        self._meta = [meta[i] for i in ids]
        self.colour = self.colour[keep]
        self.scale = self.scale[keep]
        self.size = self.size[keep]
        self._key_to_id = None
        self._fields = {}

    # ---------------------------------------------------------------------------- filters
    def filter_mask(self, where: Where, alive: np.ndarray) -> np.ndarray:
        """Rows allowed by ``where``.

        Parameters
        ----------
        where : mapping, callable or None
            ``{field: value}`` or ``{field: [values]}`` (any of; every field must match), or a
            predicate on the metadata dict. A field that no live image has raises, naming the
            fields that exist (a typo would otherwise silently match nothing).
        alive : np.ndarray
            ``(n,) bool`` live rows.

        Returns
        -------
        np.ndarray
            ``(n,) bool``, a subset of ``alive``.
        """
        if where is None:
            return alive
        if callable(where):
            mask = np.zeros(alive.shape[0], bool)
            for i in np.flatnonzero(alive).tolist():
                mask[i] = bool(where(self._parsed(i)))
            return mask
        if not isinstance(where, Mapping):
            raise InvalidInputError("where must be a mapping {field: value or [values]} or a "
                                    f"callable(metadata) -> bool; got {type(where).__name__}")
        mask = alive.copy()
        for field, wanted in where.items():
            if not isinstance(field, str):
                raise InvalidInputError(f"where: field names are strings; got {field!r}")
            values = wanted if isinstance(wanted, (list, tuple, set, frozenset)) else [wanted]
            wanted_json = [_filter_value_json(field, v) for v in values]
            table = self._field_table(field, alive)
            if not table and alive.any():
                raise InvalidInputError(
                    f"where: no image has the metadata field {field!r}; fields present: "
                    f"{sorted(self._present_fields(alive))[:20]}")
            allowed = np.zeros(alive.shape[0], bool)
            for text in wanted_json:
                ids = table.get(text)
                if ids is not None:
                    allowed[ids] = True
            mask &= allowed
        return mask

    def _present_fields(self, alive: np.ndarray) -> set[str]:
        fields: set[str] = set()
        for i in np.flatnonzero(alive).tolist():
            fields.update(self._parsed(i))
        return fields

    def _field_table(self, field: str, alive: np.ndarray) -> dict[str, np.ndarray]:
        """``json(value) -> (m,) int64 rows`` for one metadata field, built once per catalog state."""
        tables = self._fields
        table = tables.get(field)
        if table is None:
            with self._lock:
                table = self._fields.get(field)
                if table is None:
                    groups: dict[str, list[int]] = {}
                    for i in np.flatnonzero(alive).tolist():
                        meta = self._parsed(i)
                        if field in meta:
                            groups.setdefault(json.dumps(meta[field], sort_keys=True), []).append(i)
                    table = {k: np.array(v, np.int64) for k, v in groups.items()}
                    self._fields[field] = table
        return table

    # ---------------------------------------------------------------------------- arrays
    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays for persistence: ``keys_blob``/``keys_offsets``, ``meta_blob``/
        ``meta_offsets`` (UTF-8 text and ``(n + 1,) int64`` offsets), ``colour``, ``scale``,
        ``image_size``."""
        meta = self._meta.to_list() if isinstance(self._meta, StringTable) else self._meta
        out: dict[str, np.ndarray] = {}
        out["keys_blob"], out["keys_offsets"] = encode_strings(self.keys_list())
        out["meta_blob"], out["meta_offsets"] = encode_strings(meta)
        out["colour"] = self.colour
        out["scale"] = self.scale
        out["image_size"] = self.size
        return out

    @classmethod
    def from_arrays(cls, n_bins: int, arrays: Mapping[str, np.ndarray]) -> "Catalog":
        """The inverse of :meth:`to_arrays` (string tables stay memory-mapped)."""
        catalog = cls(n_bins)
        catalog._keys = StringTable(arrays["keys_blob"], arrays["keys_offsets"])
        catalog._meta = StringTable(arrays["meta_blob"], arrays["meta_offsets"])
        # plain ndarray views of memory maps: per-image lookups on them are hot paths
        catalog.colour = np.asarray(arrays["colour"])
        catalog.scale = np.asarray(arrays["scale"])
        catalog.size = np.asarray(arrays["image_size"])
        if not (len(catalog._keys) == len(catalog._meta) == catalog.colour.shape[0] ==
                catalog.scale.shape[0] == catalog.size.shape[0]):
            raise ValueError("per-image arrays disagree in length")
        return catalog
