"""keep_large_allocations: large temporaries stop page-faulting in afresh on every allocation."""

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning is Linux-only")

_CHILD = textwrap.dedent("""
    import resource, sys
    import numpy as np
    from vbow.distributed.allocator import keep_large_allocations

    def faults_per_round(rounds=20):
        start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(rounds):
            a = np.ones(1 << 18, np.float32)  # 1 MiB, written through: every page touched
            del a
        return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start) / rounds

    faults_per_round(3)
    before = faults_per_round()
    applied = keep_large_allocations()
    faults_per_round(3)
    after = faults_per_round()
    print(applied, before, after)
""")


def _run(env_extra):
    env = dict(os.environ, **env_extra)
    out = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    return out[0] == "True", float(out[1]), float(out[2])


def test_large_arrays_are_reused_after_tuning_under_dasks_trim_setting():
    applied, before, after = _run({"MALLOC_TRIM_THRESHOLD_": "65536"})
    if not applied:
        pytest.skip("this C library has no mallopt")
    pages = (1 << 20) // os.sysconf("SC_PAGE_SIZE")
    assert before >= pages / 2  # Dask's setting: each 1 MiB array is mapped and faulted in anew
    assert after < pages / 10


def test_shard_server_leaves_malloc_alone_when_asked(tmp_path, monkeypatch):
    from vbow.distributed import shard_server
    from vbow.errors import BundleError

    calls = []
    monkeypatch.setattr(shard_server, "keep_large_allocations", lambda: calls.append(1) or True)
    with pytest.raises(BundleError):
        shard_server.ShardServer(tmp_path / "missing", keep_allocations=False)
    assert calls == []
    with pytest.raises(BundleError):
        shard_server.ShardServer(tmp_path / "missing")
    assert calls == [1]
