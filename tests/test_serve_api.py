"""The HTTP API through FastAPI's TestClient (in process): answers, writes, cache, errors, limits.

Each test serves its own copy of the session bundle, so writes never leak between tests.
"""

from __future__ import annotations

import json
import shutil
import struct
import threading
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, strategies as st

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[test]'")
from fastapi.testclient import TestClient  # noqa: E402

import vbow  # noqa: E402
from conftest import N_PRODUCTS, corners, project  # noqa: E402
from vbow.apps.serve import ServeSettings, create_app  # noqa: E402
from vbow.apps.serve.cache import QueryCache  # noqa: E402
from vbow.apps.serve.service import CatalogService, validate_key  # noqa: E402
from vbow.apps.serve.problems import Problem  # noqa: E402
from vbow.apps.serve.writelog import WriteLog  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:starlette.*",
                                        "ignore::DeprecationWarning:fastapi.*")

TOKEN = "correct horse battery staple"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def png(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", image)
    assert ok
    return buf.tobytes()


def upload(data: bytes, name: str = "photo.png", ctype: str = "image/png") -> dict:
    return {"image": (name, data, ctype)}


def problem_type(response) -> str:
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    body = response.json()
    assert body["status"] == response.status_code
    assert body["detail"]
    return body["type"].rsplit(":", 1)[-1]


def png_bomb(width: int, height: int) -> bytes:
    """A valid 8-bit grey PNG of zeros: a few hundred KB that decodes to width x height bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    comp = zlib.compressobj(9)
    row = b"\x00" * (width + 1)
    body = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", body) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def images_dir(catalog, tmp_path_factory) -> Path:
    """The catalog images as files named by key (for thumbnails and outlines)."""
    root = tmp_path_factory.mktemp("serve-images")
    for key, image in zip(catalog.names, catalog.products):
        cv2.imwrite(str(root / f"{key}.png"), image)
    return root


@pytest.fixture
def bundle(index_bundle, tmp_path) -> Path:
    return Path(shutil.copytree(index_bundle, tmp_path / "catalog.vbow"))


@pytest.fixture
def settings(bundle, images_dir) -> ServeSettings:
    return ServeSettings(index=bundle, token=TOKEN, images_dir=images_dir)


@pytest.fixture
def client(settings):
    with TestClient(create_app(settings)) as c:
        yield c


# ------------------------------------------------------------------------------------ search
def test_search_answers_like_the_library(client, sift_index, catalog):
    """Differential: the service's keys, scores and inliers equal in-process search on the same bytes."""
    hits = 0
    for photo in catalog.photos[::6]:
        data = png(photo.image)
        r = client.post("/search", files=upload(data), data={"top_k": "5"})
        assert r.status_code == 200, r.text
        body = r.json()
        local = sift_index.search(data, top_k=5)
        assert [m["key"] for m in body["results"]] == local.keys
        assert [m["inliers"] for m in body["results"]] == [m.inliers for m in local]
        np.testing.assert_allclose([m["score"] for m in body["results"]],
                                   [m.score for m in local], rtol=1e-5, atol=1e-5)
        assert [m["verified"] for m in body["results"]] == [m.verified for m in local]
        assert {"features", "total", "service", "request"} <= set(body["timings"])
        hits += body["results"][0]["key"] == catalog.names[photo.product]
    assert hits >= 0.75 * len(catalog.photos[::6])


def test_outline_is_the_catalog_corners_through_the_true_homography(client, catalog):
    checked = 0
    for photo in catalog.photos[:6]:
        body = client.post("/search", files=upload(png(photo.image))).json()
        best = body["results"][0]
        if best["key"] != catalog.names[photo.product] or not best["verified"]:
            continue
        h, w = catalog.products[photo.product].shape[:2]
        assert best["catalog_size"] == [w, h]
        truth = project(photo.homography, corners(w, h))
        err = np.linalg.norm(np.array(best["outline"]) - truth, axis=1)
        assert err.max() < 12.0, (best["key"], err)
        checked += 1
    assert checked >= 4


def test_filter_restricts_results_and_top_k_is_obeyed(client, catalog):
    photo = catalog.photos[0]
    wanted = catalog.categories[(photo.product + 1) % N_PRODUCTS]
    r = client.post("/search", files=upload(png(photo.image)),
                    data={"where": json.dumps({"category": wanted}), "top_k": "3"})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    expected = {k for k, c in zip(catalog.names, catalog.categories) if c == wanted}
    assert results and len(results) <= 3
    assert {m["key"] for m in results} <= expected
    assert all(m["metadata"]["category"] == wanted for m in results)


def test_rerank_false_verifies_nothing(client, catalog):
    body = client.post("/search", files=upload(png(catalog.photos[0].image)),
                       data={"rerank": "false"}).json()
    assert body["results"] and not any(m["verified"] for m in body["results"])
    assert all(m["outline"] is None for m in body["results"])
    assert body["verified_match"] is False


def test_repeated_query_is_cached_until_a_write(client, catalog, held_out):
    data = png(catalog.photos[1].image)
    first = client.post("/search", files=upload(data)).json()
    second = client.post("/search", files=upload(data)).json()
    assert first["cached"] is False and second["cached"] is True
    assert second["results"] == first["results"]
    fresh = client.post("/search", files=upload(data), headers={"Cache-Control": "no-cache"}).json()
    assert fresh["cached"] is False and fresh["results"] == first["results"]
    other = client.post("/search", files=upload(data), data={"top_k": "2"}).json()
    assert other["cached"] is False and len(other["results"]) == 2
    (key, image, category), = held_out[0][:1]
    assert client.put(f"/items/{key}", files=upload(png(image)), headers=AUTH).status_code == 200
    third = client.post("/search", files=upload(data)).json()
    assert third["cached"] is False
    stats = client.get("/stats").json()
    assert stats["cache"]["hits"] == 1 and stats["queries_served"] == 5


# ------------------------------------------------------------------------------------ writes
def test_put_get_replace_delete(client, held_out):
    products, photos = held_out
    key, image, category = products[0]
    query = png(next(p.image for p in photos if p.product == N_PRODUCTS))
    before = client.post("/search", files=upload(query)).json()
    assert key not in [m["key"] for m in before["results"]]

    r = client.put(f"/items/{key}", files=upload(png(image)),
                   data={"metadata": json.dumps({"category": category, "price": 3.5})}, headers=AUTH)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["key"], body["replaced"], body["images"]) == (key, False, N_PRODUCTS + 1)
    assert body["timings"]["total"] >= body["timings"]["describe"] + body["timings"]["apply"]
    found = client.post("/search", files=upload(query)).json()["results"][0]
    assert found["key"] == key and found["verified"] and found["metadata"]["price"] == 3.5

    item = client.get(f"/items/{key}").json()
    assert item["metadata"] == {"category": category, "price": 3.5}
    assert item["catalog_size"] == [image.shape[1], image.shape[0]]
    thumb = cv2.imdecode(np.frombuffer(client.get(item["thumbnail"]).content, np.uint8), cv2.IMREAD_COLOR)
    assert max(thumb.shape[:2]) == 160
    small = cv2.resize(image, thumb.shape[1::-1], interpolation=cv2.INTER_AREA)
    assert np.abs(small.astype(int) - thumb.astype(int)).mean() < 12

    r = client.put(f"/items/{key}", files=upload(png(image)), data={"metadata": '{"price": 4}'},
                   headers=AUTH)
    assert r.json()["replaced"] is True and r.json()["images"] == N_PRODUCTS + 1
    assert client.get(f"/items/{key}").json()["metadata"] == {"price": 4}

    r = client.delete(f"/items/{key}", headers=AUTH)
    assert r.status_code == 200 and r.json()["images"] == N_PRODUCTS
    assert problem_type(client.get(f"/items/{key}")) == "unknown-key"
    assert problem_type(client.get(f"/thumbnails/{key}")) == "unknown-key"
    after = client.post("/search", files=upload(query)).json()
    assert key not in [m["key"] for m in after["results"]]


def test_acknowledged_writes_survive_a_crash_without_close(settings, held_out, catalog):
    """The service is dropped without close() (no save): the log alone brings the writes back."""
    products, _ = held_out
    service = CatalogService(settings)
    service.put(products[0][0], png(products[0][1]), {"n": 1})
    service.put(products[1][0], png(products[1][1]), {"n": 2})
    service.delete(catalog.names[0])
    service.put(products[0][0], png(products[0][1]), {"n": 3})
    assert service.log.records == 4
    reopened = CatalogService(settings)
    assert reopened.replayed == 4
    assert set(reopened.index.keys) == set(catalog.names[1:]) | {products[0][0], products[1][0]}
    assert reopened.index.metadata(products[0][0]) == {"n": 3}
    assert reopened.log.records == 0  # replayed, saved, emptied
    again = CatalogService(settings)  # from the saved bundle alone
    assert again.replayed == 0 and set(again.index.keys) == set(reopened.index.keys)


def test_compaction_saves_the_bundle_and_empties_the_log(settings, held_out):
    products, _ = held_out
    service = CatalogService(settings.with_(compact_every=2))
    service.put(products[0][0], png(products[0][1]))
    assert service.log.records == 1 and service.saves == 0
    service.put(products[1][0], png(products[1][1]))
    assert service.log.records == 0 and service.saves == 1
    loaded = vbow.ImageIndex.load(settings.index)
    assert products[0][0] in loaded and products[1][0] in loaded


def test_no_search_sees_half_a_replace(settings, held_out, catalog):
    """Replace the same key over and over while searching: the key is always present, exactly once."""
    products, photos = held_out
    key, image, _ = products[0]
    service = CatalogService(settings.with_(cache_entries=0))
    service.put(key, png(image))
    query = png(next(p.image for p in photos if p.product == N_PRODUCTS))
    stop, seen, errors = threading.Event(), [], []

    def searcher() -> None:
        while not stop.is_set():
            try:
                keys = [m["key"] for m in service.search(query, top_k=N_PRODUCTS + 1)["results"]]
                seen.append(keys.count(key))
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

    threads = [threading.Thread(target=searcher) for _ in range(2)]
    for t in threads:
        t.start()
    for i in range(3):
        service.put(key, png(image), {"round": i})
    stop.set()
    for t in threads:
        t.join()
    assert not errors and seen and set(seen) == {1}


# ------------------------------------------------------------------------------ bad requests
def test_bad_requests_get_problem_details_and_the_server_keeps_serving(bundle, images_dir, catalog):
    settings = ServeSettings(index=bundle, token=TOKEN, images_dir=images_dir,
                             max_upload_bytes=300_000, max_pixels=4_000_000)
    good = png(catalog.photos[0].image)
    with TestClient(create_app(settings)) as c:
        cases = [
            (c.post("/search", data={"top_k": "3"}), 422, "missing-image"),
            (c.post("/search", files={"other": ("x.png", good, "image/png")}), 422, "missing-image"),
            (c.post("/search", data={"image": "http://127.0.0.1:9/photo.jpg"}), 422, "missing-image"),
            (c.post("/search", files=upload(b"")), 422, "empty-image"),
            (c.post("/search", files=upload(b"%PDF-1.4 not an image at all" * 10)), 422, "not-an-image"),
            (c.post("/search", files=upload(good[: len(good) // 3])), 422, "image-decode-error"),
            (c.post("/search", files=upload(b"\x00" * 400_000)), 413, "upload-too-large"),
            (c.post("/search", files=upload(png_bomb(3000, 3000))), 422, "image-too-many-pixels"),
            (c.post("/search", content=good, headers={"content-type": "image/png"}), 415,
             "unsupported-media-type"),
            (c.post("/search", content=b"--x\r\nbroken", headers={"content-type": "multipart/form-data; boundary=x"}),
             None, None),
            (c.post("/search", files=upload(good), data={"where": "{category: tea"}), 422, "invalid-filter"),
            (c.post("/search", files=upload(good), data={"where": '["tea"]'}), 422, "invalid-filter"),
            (c.post("/search", files=upload(good), data={"where": '{"category": {"$ne": 1}}'}), 422,
             "invalid-filter"),
            (c.post("/search", files=upload(good), data={"top_k": "0"}), 422, "invalid-parameter"),
            (c.post("/search", files=upload(good), data={"top_k": "ten"}), 422, "invalid-parameter"),
            (c.post("/search", files=upload(good), data={"rerank": "maybe"}), 422, "invalid-parameter"),
            (c.delete("/items/SKU-9999", headers=AUTH), 404, "unknown-key"),
            (c.delete("/items/SKU-0001"), 401, "unauthorized"),
            (c.delete("/items/SKU-0001", headers={"Authorization": "Bearer wrong"}), 401, "unauthorized"),
            (c.delete("/items/SKU-0001", headers={"Authorization": f"Basic {TOKEN}"}), 401, "unauthorized"),
            (c.put("/items/SKU-NEW", files=upload(good), headers={"Authorization": f"Bearer {TOKEN}x"}),
             401, "unauthorized"),
            (c.put("/items/bad key!", files=upload(good), headers=AUTH), 422, "invalid-key"),
            (c.put("/items/" + "k" * 300, files=upload(good), headers=AUTH), 422, "invalid-key"),
            (c.put("/items/SKU-NEW", files=upload(good), data={"metadata": "[1, 2]"}, headers=AUTH), 422,
             "invalid-metadata"),
            (c.put("/items/SKU-NEW", files=upload(b"GIF89a..."), headers=AUTH), 422, "not-an-image"),
            (c.get("/items/SKU-9999"), 404, "unknown-key"),
            (c.get("/no/such/route"), 404, "not-found"),
            (c.patch("/search"), 405, "method-not-allowed"),
        ]
        for response, status, name in cases:
            if status is None:  # malformed multipart: any 4xx problem
                assert 400 <= response.status_code < 500 and problem_type(response)
                continue
            assert (response.status_code, problem_type(response)) == (status, name), response.text
            assert c.get("/health").json()["status"] == "ok"
        assert c.get("/items/SKU-0001").status_code == 200  # the unauthorised deletes did nothing
        assert "SKU-NEW" not in c.app.state.service.index
        assert c.post("/search", files=upload(good)).status_code == 200


def test_read_only_without_token(bundle, catalog):
    with TestClient(create_app(ServeSettings(index=bundle))) as c:
        assert c.get("/health").json()["read_only"] is True
        r = c.delete("/items/SKU-0001", headers=AUTH)
        assert (r.status_code, problem_type(r)) == (403, "read-only")
        r = c.put("/items/SKU-0001", files=upload(png(catalog.products[0])), headers=AUTH)
        assert (r.status_code, problem_type(r)) == (403, "read-only")
        assert c.post("/search", files=upload(png(catalog.photos[0].image))).status_code == 200


def test_request_timeout_answers_504(bundle, catalog):
    with TestClient(create_app(ServeSettings(index=bundle, request_timeout=0.001))) as c:
        r = c.post("/search", files=upload(png(catalog.photos[0].image)))
        assert (r.status_code, problem_type(r)) == (504, "timeout")


def test_stats_health_page_and_docs(client, catalog):
    client.post("/search", files=upload(png(catalog.photos[0].image)))
    stats = client.get("/stats").json()
    assert stats["images"] == N_PRODUCTS and stats["words"] > 0 and stats["queries_served"] == 1
    assert stats["bundle_bytes"] == sum(p.stat().st_size for p in Path(client.app.state.service.settings.index).iterdir())
    assert stats["search_latency_ms"]["p50"] > 0
    page = client.get("/")
    assert page.status_code == 200 and 'type="file"' in page.text and "capture" in page.text
    for src in ("/static/app.js", "/static/style.css"):
        assert client.get(src).status_code == 200
    assert "http://" not in page.text.replace("http://www.w3.org", "") and "https://" not in page.text
    spec = client.get("/openapi.json").json()
    assert {"/search", "/items/{key}", "/health", "/stats"} <= set(spec["paths"])
    assert "multipart/form-data" in spec["paths"]["/search"]["post"]["requestBody"]["content"]
    assert client.get("/docs").status_code == 200


# ------------------------------------------------------------------------------------- parts
def test_bomb_is_refused_before_decoding(bundle):
    bomb = png_bomb(12000, 12000)  # 144 megapixels in a few hundred KB
    assert len(bomb) < 1_000_000
    service = CatalogService(ServeSettings(index=bundle))
    with pytest.raises(Problem) as info:
        service.search(bomb)
    assert info.value.status == 422 and info.value.name == "image-too-many-pixels"


@given(st.lists(st.tuples(st.text(max_size=20), st.binary(max_size=300)), max_size=8),
       st.binary(max_size=40))
def test_write_log_replays_complete_records_and_drops_a_torn_tail(tmp_path_factory, records, tail):
    path = tmp_path_factory.mktemp("wal") / "writes.log"
    log = WriteLog(path)
    for key, payload in records:
        log.append({"op": "put", "key": key}, payload)
    log.close()
    with open(path, "ab") as fh:
        fh.write(tail)  # a record cut short by a crash (or garbage after the last fsync)
    size_before = path.stat().st_size
    replayed = [(r.header["key"], r.payload) for r in WriteLog(path).replay()]
    assert replayed[: len(records)] == records
    if tail:
        assert path.stat().st_size < size_before or len(replayed) > len(records)


def test_write_log_reset_empties_it(tmp_path):
    log = WriteLog(tmp_path / "w.log")
    log.append({"op": "delete", "key": "a"})
    log.reset()
    log.append({"op": "delete", "key": "b"})
    log.close()
    assert [r.header["key"] for r in WriteLog(tmp_path / "w.log").replay()] == ["b"]


@given(st.integers(0, 5), st.lists(st.tuples(st.sampled_from(["get", "put", "invalidate"]),
                                             st.integers(0, 7)), max_size=60))
def test_query_cache_matches_a_reference_lru(capacity, ops):
    cache, model = QueryCache(capacity), []  # model: keys, least recent first
    for op, k in ops:
        key = f"k{k}"
        if op == "get":
            got = cache.get(key)
            assert (got is not None) == (key in model)
            if key in model:
                assert got == {"v": key}
                model.remove(key)
                model.append(key)
        elif op == "put":
            stored = cache.put(key, {"v": key}, cache.generation)
            assert stored == (capacity > 0)
            if capacity:
                if key in model:
                    model.remove(key)
                model.append(key)
                del model[:-capacity]
        else:
            cache.invalidate()
            model.clear()
        assert len(cache) == len(model) <= capacity


def test_query_cache_refuses_an_answer_from_before_a_write():
    cache = QueryCache(4)
    generation = cache.generation
    cache.invalidate()  # a write lands while the search runs
    assert cache.put("k", {"stale": True}, generation) is False and cache.get("k") is None


@pytest.mark.parametrize("key,ok", [("SKU-0001", True), ("db/shelf/img_01.jpg", True), ("a", True),
                                    ("", False), ("-lead", False), ("a b", False), ("a//b", False),
                                    ("a/../b", False), ("a/./b", False), ("/abs", False),
                                    ("x" * 257, False), ("ключ", False), ("a\nb", False)])
def test_key_validation(key, ok):
    if ok:
        assert validate_key(key) == key
    else:
        with pytest.raises(Problem) as info:
            validate_key(key)
        assert info.value.name == "invalid-key"


def test_settings_from_environment(tmp_path):
    s = ServeSettings.from_env({"VBOW_SERVE_INDEX": str(tmp_path / "i.vbow"), "VBOW_SERVE_TOKEN": "t",
                                "VBOW_SERVE_MAX_PIXELS": "1234", "VBOW_SERVE_REQUEST_TIMEOUT": "2.5"})
    assert (s.token, s.max_pixels, s.request_timeout, s.read_only) == ("t", 1234, 2.5, False)
    assert s.state_dir == Path(f"{tmp_path / 'i.vbow'}.serve")
    with pytest.raises(vbow.InvalidInputError, match="MAX_PIXELS"):
        ServeSettings.from_env({"VBOW_SERVE_INDEX": "x", "VBOW_SERVE_MAX_PIXELS": "many"})
    with pytest.raises(vbow.InvalidInputError, match="INDEX"):
        ServeSettings.from_env({})
