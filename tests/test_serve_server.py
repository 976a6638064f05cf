"""A real ``vbow serve`` process (uvicorn on 127.0.0.1): bad requests over real sockets, a slow
client cut off by the request timeout, parallel searches, and acknowledged writes surviving
``kill -9``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest

httpx = pytest.importorskip("httpx", reason="the test extra is not installed: pip install -e '.[test]'")
pytest.importorskip("uvicorn", reason="the serve extra is not installed: pip install -e '.[test]'")

from conftest import N_PRODUCTS  # noqa: E402
from test_serve_api import png, png_bomb  # noqa: E402

TOKEN = "s3rver-t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m vbow.apps.cli serve BUNDLE ...`` in a child process."""

    def __init__(self, bundle: Path, *extra: str, env_token: bool = False) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        args = [sys.executable, "-m", "vbow.apps.cli", "serve", str(bundle), "--port", str(self.port),
                *extra]
        if env_token:
            env["VBOW_SERVE_TOKEN"] = TOKEN
        else:
            args += ["--token", TOKEN]
        self.log = open(Path(f"{bundle}.server.log"), "ab")
        self.proc = subprocess.Popen(args, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: "
                                   f"{Path(self.log.name).read_text()[-2000:]}")
            try:
                if httpx.get(self.base + "/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("server did not come up in 120 s")

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        self.log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        self.log.close()


@pytest.fixture(scope="module")
def images_dir(catalog, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("server-images")
    for key, image in zip(catalog.names, catalog.products):
        cv2.imwrite(str(root / f"{key}.png"), image)
    return root


@pytest.fixture(scope="module")
def server(index_bundle, images_dir, tmp_path_factory):
    bundle = Path(shutil.copytree(index_bundle, tmp_path_factory.mktemp("server") / "catalog.vbow"))
    srv = Server(bundle, "--images", str(images_dir), "--max-upload-mb", "1", "--max-pixels", "4000000",
                 env_token=True)
    yield srv
    srv.stop()


def problem(response) -> tuple[int, str]:
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    return response.status_code, response.json()["type"].rsplit(":", 1)[-1]


def listening_addresses(port: int) -> set[str]:
    """Local IPv4 addresses with a socket listening on ``port``, from /proc/net/tcp."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        addr, p = local.split(":")
        if int(p, 16) == port and state == "0A":
            found.add(socket.inet_ntoa(bytes.fromhex(addr)[::-1]))
    return found


def test_binds_loopback_only_by_default(server):
    assert listening_addresses(server.port) == {"127.0.0.1"}


def test_searches_in_parallel_over_http(server, catalog):
    photos = catalog.photos[:6]
    with httpx.Client(base_url=server.base, timeout=120) as c:
        def one(photo):
            r = c.post("/search", files={"image": ("p.png", png(photo.image), "image/png")})
            return r.status_code, r.json()["results"][0]["key"]
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(one, photos))
    assert all(status == 200 for status, _ in answers)
    right = sum(key == catalog.names[p.product] for (_, key), p in zip(answers, photos))
    assert right >= 4


def test_bad_requests_over_real_sockets(server, catalog):
    good = png(catalog.photos[0].image)

    def chunks():
        yield (b'--zz\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
               b"Content-Type: image/png\r\n\r\n\x89PNG")
        for _ in range(40):
            yield b"\x00" * 65536  # 2.5 MB with no Content-Length: counted as it streams

    with httpx.Client(base_url=server.base, timeout=120) as c:
        cases = [
            (c.post("/search", data={"top_k": "3"}), (422, "missing-image")),
            (c.post("/search", files={"image": ("e.png", b"", "image/png")}), (422, "empty-image")),
            (c.post("/search", files={"image": ("t.txt", b"hello, I am text" * 20, "text/plain")}),
             (422, "not-an-image")),
            (c.post("/search", files={"image": ("big.png", b"\x00" * 3_000_000, "image/png")}),
             (413, "upload-too-large")),
            (c.post("/search", content=chunks(),
                    headers={"content-type": "multipart/form-data; boundary=zz"}), (413, "upload-too-large")),
            (c.post("/search", files={"image": ("bomb.png", png_bomb(5000, 5000), "image/png")}),
             (422, "image-too-many-pixels")),
            (c.post("/search", content=good, headers={"content-type": "image/png"}),
             (415, "unsupported-media-type")),
            (c.post("/search", files={"image": ("p.png", good, "image/png")}, data={"where": "{oops"}),
             (422, "invalid-filter")),
            (c.delete("/items/SKU-4242", headers=AUTH), (404, "unknown-key")),
            (c.delete("/items/SKU-0001"), (401, "unauthorized")),
            (c.delete("/items/SKU-0001", headers={"Authorization": "Bearer nope"}), (401, "unauthorized")),
        ]
        for response, expected in cases:
            assert problem(response) == expected
            assert c.get("/health").status_code == 200
        assert c.get("/items/SKU-0001").status_code == 200
        r = c.post("/search", files={"image": ("p.png", good, "image/png")})
        assert r.status_code == 200 and r.json()["results"][0]["key"] == catalog.names[0]
        stats = c.get("/stats").json()
        assert stats["images"] == N_PRODUCTS and stats["read_only"] is False


def test_slow_client_is_cut_off_by_the_request_timeout(index_bundle, tmp_path):
    bundle = Path(shutil.copytree(index_bundle, tmp_path / "catalog.vbow"))
    srv = Server(bundle, "--timeout", "1.5")
    try:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as s:
            s.sendall(b"POST /search HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
                      b"boundary=b\r\nContent-Length: 100000\r\n\r\n--b\r\n")  # ... and then nothing
            t0 = time.monotonic()
            reply = b""
            while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
                data = s.recv(65536)
                if not data:
                    break
                reply += data
            waited = time.monotonic() - t0
        assert reply.startswith(b"HTTP/1.1 504"), reply[:200]
        assert json.loads(reply.split(b"\r\n\r\n", 1)[1])["type"].endswith(":timeout")
        assert 1.0 < waited < 20
        assert httpx.get(srv.base + "/health", timeout=30).status_code == 200
    finally:
        srv.stop()


def test_acknowledged_writes_survive_kill_9(index_bundle, held_out, catalog, tmp_path):
    bundle = Path(shutil.copytree(index_bundle, tmp_path / "catalog.vbow"))
    products, photos = held_out
    srv = Server(bundle)
    acked_puts, acked_deletes = {}, []
    with httpx.Client(base_url=srv.base, timeout=120) as c:
        for i, (key, image, category) in enumerate(products):
            r = c.put(f"/items/{key}", files={"image": ("c.png", png(image), "image/png")},
                      data={"metadata": json.dumps({"category": category, "i": i})}, headers=AUTH)
            assert r.status_code == 200, r.text
            acked_puts[key] = {"category": category, "i": i}
        # a copy of a catalog image under a new key, and a replace of an existing key
        for key, meta, image in (("copy/SKU-0003", {"copy": True}, catalog.products[3]),
                                 (catalog.names[4], {"replaced": True}, catalog.products[4])):
            r = c.put(f"/items/{key}", files={"image": ("c.png", png(image), "image/png")},
                      data={"metadata": json.dumps(meta)}, headers=AUTH)
            assert r.status_code == 200, r.text
            acked_puts[key] = meta
        for key in catalog.names[5:7]:
            assert c.delete(f"/items/{key}", headers=AUTH).status_code == 200
            acked_deletes.append(key)
    srv.kill9()  # no shutdown handler runs: only the write log has these writes

    srv = Server(bundle)
    try:
        with httpx.Client(base_url=srv.base, timeout=120) as c:
            for key, meta in acked_puts.items():
                r = c.get(f"/items/{key}")
                assert r.status_code == 200, (key, r.text)
                assert r.json()["metadata"] == meta
            for key in acked_deletes:
                assert problem(c.get(f"/items/{key}")) == (404, "unknown-key")
            stats = c.get("/stats").json()
            assert stats["writes_replayed_at_start"] == len(acked_puts) + len(acked_deletes)
            assert stats["images"] == N_PRODUCTS + len(products) + 1 - len(acked_deletes)
            photo = next(p for p in photos if p.product == N_PRODUCTS)
            r = c.post("/search", files={"image": ("p.png", png(photo.image), "image/png")})
            assert r.json()["results"][0]["key"] == products[0][0]
    finally:
        srv.stop()
