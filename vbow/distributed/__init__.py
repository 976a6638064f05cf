"""Catalogs past one machine: a resumable segmented build, the same build on Dask, and
sharded search.

``pip install "vbow[dask]"`` brings ``dask.distributed``; only the Dask paths import it.

Modules
-------
``catalog_source``  manifest CSV / dataset / folder -> ordered entries, fixed batches, fingerprint
``segments``        the work directory's layout, and the task that builds one segment
``build``           :func:`build_index`: train once, build missing segments (locally or on Dask), merge
``shard_layout``    splitting a saved index into shards by key hash (``shards.json``)
``allocator``       keep glibc from unmapping each query's large arrays (Dask workers' setting)
``shard_server``    one shard answering the scatter steps (a Dask actor or in process)
``shards``          sharded search: shards on Dask workers, global fusion and merge
"""

from vbow.distributed.build import SegmentedBuildReport, build_index, merge_segments
from vbow.distributed.catalog_source import CatalogEntry, load_entries, read_manifest

__all__ = ["build_index", "merge_segments", "SegmentedBuildReport", "CatalogEntry",
           "load_entries", "read_manifest"]
