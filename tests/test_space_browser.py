"""The Space in a real headless Chromium: upload, Predict, read the answer, refuse a non-image.

Drives Debian's /usr/bin/chromium through Playwright's sync API (no `playwright install`, no browser
download) with a fresh profile; every request that does not go to the app on 127.0.0.1 is aborted and
recorded, so the test also proves the page works offline and phones nobody. Skips only outside CI
when Chromium or Playwright is missing (`make browser` installs Chromium); in CI it must run.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import _space_helpers as helpers
import pytest
from _space_helpers import text_file
from PIL import Image

from cancernet_hf.constants import in_ci
from cancernet_hf.taxonomy import MULTI_CANCER

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
EXAMPLE = Path(__file__).resolve().parents[1] / "spaces" / "cancernet" / "examples" / "synthetic_lung_aca.jpg"
TIMEOUT_MS = 60_000

space = helpers.space
tiny_ensemble = helpers.tiny_ensemble
tiny_pipeline = helpers.tiny_pipeline
real_app = helpers.real_app


def _missing() -> str | None:
    if not CHROMIUM.is_file():
        return f"{CHROMIUM} is missing (run `make browser` or `apt-get install -y chromium`)"
    if importlib.util.find_spec("playwright") is None:
        return "the playwright Python package is missing (pip install playwright; no `playwright install`)"
    return None


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, list[str]]]:
    """A persistent context on a fresh profile; yields (context, aborted non-loopback URLs)."""
    missing = _missing()
    if missing:
        if in_ci():
            pytest.fail(f"browser tests must run in CI, but {missing}")
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    aborted: list[str] = []

    def only_loopback(route) -> None:
        url = route.request.url
        host = urlparse(url).hostname
        if url.startswith(("data:", "blob:")) or host in {"127.0.0.1", "localhost"}:
            route.continue_()
        else:
            aborted.append(url)
            route.abort()

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            context.route("**/*", only_loopback)
            yield context, aborted
        finally:
            context.close()
    shutil.rmtree(profile, ignore_errors=True)


def test_upload_predict_and_read_the_main_class(browser_context, real_app, tiny_pipeline, tmp_path):
    context, aborted = browser_context
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(real_app)
    assert "Research use only: not a medical device." in page.locator("#disclaimer").inner_text()

    page.locator("#input-image input[type=file]").set_input_files(str(EXAMPLE))
    page.locator("#input-image img").first.wait_for()  # the upload is shown before we predict
    page.click("#predict-btn")
    value = page.locator("#main-class [data-testid='label-output-value']")
    value.wait_for()
    page.locator("#heatmap img").first.wait_for()

    expected = tiny_pipeline(Image.open(EXAMPLE).convert("RGB"))
    main_text = value.inner_text().strip()
    assert main_text in MULTI_CANCER.main_names and main_text == expected["main_class"][0]["label"]
    sub_text = page.locator("#sub-class [data-testid='label-output-value']").inner_text().strip()
    assert sub_text == expected["sub_class"][0]["name"]
    assert "Uncertain / not a recognised image type" in page.locator("#status").inner_text()
    assert "vit-tiny" in page.locator("#members").inner_text()

    screenshot = tmp_path / "space.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000
    assert not aborted, f"the page tried to reach the network: {aborted}"
    page.close()


def test_a_text_file_gets_the_friendly_message_in_the_page(browser_context, real_app, tmp_path):
    context, aborted = browser_context
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(real_app)
    page.locator("#input-image input[type=file]").set_input_files(str(text_file(tmp_path / "notes.png")))
    page.click("#predict-btn")
    page.get_by_text("notes.png is not an image this app can read").first.wait_for()
    assert page.locator("#main-class [data-testid='label-output-value']").count() == 0  # no answer shown
    assert "Traceback" not in page.content()
    page.screenshot(path=str(tmp_path / "refused.png"), full_page=True)
    assert not aborted
    page.close()


def test_an_example_from_the_gallery_predicts(browser_context, real_app, tiny_pipeline):
    context, aborted = browser_context
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(real_app)
    page.get_by_text("synthetic: lung_aca").first.click()
    page.locator("#input-image img").first.wait_for()
    page.click("#predict-btn")
    value = page.locator("#main-class [data-testid='label-output-value']")
    value.wait_for()
    expected = tiny_pipeline(Image.open(EXAMPLE).convert("RGB"))
    assert value.inner_text().strip() == expected["main_class"][0]["label"]
    assert not aborted
    page.close()
