"""The upload page in a real browser: Debian's headless Chromium driven by Selenium.

A shopper photo is uploaded through the page's file input; the right SKU must come first,
marked verified, with the product's outline drawn on the photo where the true homography puts
it. A photo with nothing to find must say "No match found". Screenshots go to
``test-artifacts/`` (or ``$VBOW_TEST_ARTIFACTS``). Chromium and chromedriver come from
``.ci/install-browser.sh``; in CI a missing browser fails the test instead of skipping it.
"""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} or {CHROMEDRIVER} missing: run .ci/install-browser.sh", pytrace=False)
    pytest.skip(f"{CHROMIUM} / {CHROMEDRIVER} not installed (bash .ci/install-browser.sh)",
                allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in the test extra")
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from conftest import corners, project  # noqa: E402
from test_serve_server import Server  # noqa: E402

ARTIFACTS = Path(os.environ.get("VBOW_TEST_ARTIFACTS",
                                Path(__file__).resolve().parents[1] / "test-artifacts"))


@pytest.fixture(scope="module")
def server(index_bundle, catalog, tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    images = root / "images"
    images.mkdir()
    for key, image in zip(catalog.names, catalog.products):
        cv2.imwrite(str(images / f"{key}.png"), image)
    bundle = Path(shutil.copytree(index_bundle, root / "catalog.vbow"))
    srv = Server(bundle, "--images", str(images))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser():
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager look for downloads
    profile = tempfile.mkdtemp(prefix="vbow-chromium-")
    options = Options()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,1000", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def upload_through_page(browser, server, path: Path) -> None:
    browser.get(server.base + "/")
    field = browser.find_element(By.ID, "photo")
    assert field.get_attribute("accept") == "image/*" and field.get_attribute("capture") is not None
    field.send_keys(str(path))
    WebDriverWait(browser, 180).until(
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "done")


def canvas_pixels(browser) -> np.ndarray:
    url = browser.execute_script("return document.getElementById('canvas').toDataURL('image/png');")
    data = base64.b64decode(url.split(",", 1)[1])
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def outline_hits(pixels: np.ndarray, quad: np.ndarray, radius: int = 4) -> tuple[int, int]:
    """(samples near which the outline colour is drawn, samples inside the canvas) along ``quad``."""
    h, w = pixels.shape[:2]
    b, g, r = (pixels[..., i].astype(int) for i in range(3))
    magenta = (r > 190) & (b > 190) & (g < 90)
    hits = total = 0
    for a, c in zip(quad, np.roll(quad, -1, axis=0)):
        for t in np.linspace(0.05, 0.95, 15):
            x, y = a + t * (c - a)
            if not (radius <= x < w - radius and radius <= y < h - radius):
                continue
            total += 1
            xi, yi = int(round(x)), int(round(y))
            hits += bool(magenta[yi - radius:yi + radius + 1, xi - radius:xi + radius + 1].any())
    return hits, total


def test_page_finds_the_product_and_draws_its_outline(server, browser, catalog, tmp_path):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    photo = catalog.photos[2]
    expected = catalog.names[photo.product]
    path = tmp_path / "shopper.png"
    cv2.imwrite(str(path), photo.image)
    upload_through_page(browser, server, path)
    browser.save_screenshot(str(ARTIFACTS / "serve_page_match.png"))

    items = browser.find_elements(By.CSS_SELECTOR, "#results li")
    assert items, browser.find_element(By.ID, "status").text
    assert items[0].get_attribute("data-key") == expected
    assert items[0].get_attribute("data-verified") == "true" and "verified" in items[0].get_attribute("class")
    thumb_ok = browser.execute_script(
        "const i = document.querySelector('#results li img'); return i.complete && i.naturalWidth > 0;")
    assert thumb_ok, "the catalog thumbnail did not load"
    assert expected in browser.find_element(By.ID, "status").text
    assert browser.find_element(By.ID, "canvas").get_attribute("data-outline") == expected

    pixels = canvas_pixels(browser)
    scale = pixels.shape[1] / photo.image.shape[1]
    h, w = catalog.products[photo.product].shape[:2]
    truth = project(photo.homography, corners(w, h)) * scale
    hits, total = outline_hits(pixels, truth)
    assert total >= 10 and hits >= 0.8 * total, (hits, total)
    # control: the same check on the photo as uploaded (no outline) finds (almost) nothing
    plain = cv2.resize(photo.image, pixels.shape[1::-1], interpolation=cv2.INTER_AREA)
    assert outline_hits(plain, truth)[0] <= 0.2 * total


def test_page_says_no_match_found(server, browser, tmp_path):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    flat = np.tile(np.linspace(90, 160, 360, dtype=np.uint8)[None, :, None], (480, 1, 3))
    path = tmp_path / "nothing.png"
    cv2.imwrite(str(path), flat)
    upload_through_page(browser, server, path)
    browser.save_screenshot(str(ARTIFACTS / "serve_page_no_match.png"))
    status = browser.find_element(By.ID, "status")
    assert status.text == "No match found" and "nomatch" in status.get_attribute("class")
    assert not browser.find_elements(By.CSS_SELECTOR, "#results li.verified")
