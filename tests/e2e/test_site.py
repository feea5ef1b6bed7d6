"""The catalog site in a real browser: headless Chromium (Debian's, driven by its chromedriver)
loads the pages `monogres-oci site` wrote from the published layout, a person's typing and
choosing narrows the catalog, and the snippets on an extension page work as written against the
registry the images were published to (oras pulls, cosign verifies, CloudNativePG's CRD takes
the stanza).

Screenshots are kept under $MONOGRES_TEST_ARTIFACTS (default: test-artifacts/ in the repository).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
import yaml
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from tests.e2e.conftest import REPO, Built, Published, cli
from tests.unit.consume.test_cnpg import crd_schema

pytestmark = pytest.mark.e2e

ARTIFACTS = Path(os.environ.get("MONOGRES_TEST_ARTIFACTS", REPO / "test-artifacts")) / "site"


@pytest.fixture(scope="module")
def site(built: Built, published: Published, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site") / "site"
    cli("site", "--layout", str(built.layout), "--out", str(out), "--registry",
        f"{published.registry.host}/{published.namespace}", "--key", str(published.keys.public))
    return out


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.fail("the site's tests need Debian's chromium and chromium-driver: run "
                    "`bash scripts/test.sh` (.ci/setup-host.sh installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(arg)
    session = webdriver.Chrome(service=Service(driver), options=options)
    try:
        yield session
    finally:
        session.quit()


def shown(browser: WebDriver) -> list[str]:
    return [row.get_attribute("data-name") or "" for row in
            browser.find_elements(By.CSS_SELECTOR, "#catalog tbody tr.artifact")
            if row.is_displayed()]


def screenshot(browser: WebDriver, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def test_the_catalog_page_narrows_as_one_types_and_chooses(site: Path, browser: WebDriver) -> None:
    browser.get((site / "index.html").as_uri())
    everything = shown(browser)
    assert {"pgaudit", "rum", "hello"} <= set(everything)
    assert browser.find_element(By.ID, "count").text == f"{len(everything)} of {len(everything)} images"
    screenshot(browser, "catalog")
    search = browser.find_element(By.ID, "search")
    search.send_keys("ru")
    assert shown(browser) == ["rum"]
    assert browser.find_element(By.ID, "count").text == f"1 of {len(everything)} images"
    screenshot(browser, "catalog-search-ru")
    search.clear()
    search.send_keys(" ")  # an input event with nothing to match: everything again
    assert shown(browser) == everything
    Select(browser.find_element(By.CSS_SELECTOR, "select[data-facet=preload]")).select_by_value("yes")
    assert shown(browser) == ["pgaudit"]  # the only one that needs shared_preload_libraries
    Select(browser.find_element(By.CSS_SELECTOR, "select[data-facet=arch]")).select_by_value("amd64")
    assert shown(browser) == ["pgaudit"]
    # the filters are in the address, so a link reproduces them
    assert "preload=yes" in browser.current_url and "arch=amd64" in browser.current_url
    browser.get(browser.current_url)
    assert shown(browser) == ["pgaudit"]
    browser.find_element(By.LINK_TEXT, "pgaudit").click()
    assert browser.current_url.endswith("/extensions/pgaudit.html")
    assert "pgaudit" in browser.find_element(By.TAG_NAME, "h1").text


def test_an_extension_pages_snippets_work_as_written(site: Path, browser: WebDriver,
                                                     published: Published,
                                                     tmp_path: Path) -> None:
    browser.get((site / "extensions" / "pgaudit.html").as_uri())
    screenshot(browser, "pgaudit")
    page = browser.find_element(By.TAG_NAME, "main").text
    assert "upstream tests: PASSED 1/1" in page and "needs shared_preload_libraries: pgaudit" in (
        browser.find_element(By.TAG_NAME, "header").text)

    def snippet(kind: str) -> str:
        pre = browser.find_element(By.CSS_SELECTOR, f"pre[data-snippet={kind}]")
        text = pre.text
        return text.removesuffix("copy").strip()  # the copy button is inside the block

    stanza = yaml.safe_load(snippet("cnpg-extensions"))
    (item,) = stanza["extensions"]
    pinned = published.ref("pgaudit:18-18.0-bookworm")
    assert item == {"name": "pgaudit", "image": {"reference": pinned}}
    catalog = yaml.safe_load(snippet("cnpg-imagecatalog"))
    jsonschema.validate(catalog, crd_schema("postgresql.cnpg.io_imagecatalogs.yaml"))
    assert catalog["spec"]["images"][0]["extensions"] == stanza["extensions"]
    # oras and cosign, run exactly as the page writes them
    oras = subprocess.run(snippet("oras").split(), cwd=tmp_path, capture_output=True, text=True)
    assert oras.returncode == 0, oras.stderr
    assert (tmp_path / "pgaudit" / "share" / "extension" / "pgaudit.control").is_file()
    cosign = subprocess.run(snippet("cosign").split(), capture_output=True, text=True)
    assert cosign.returncode == 0, cosign.stderr
    assert "The signatures were verified against the specified public key" in cosign.stderr


def test_the_site_read_back_from_the_registry_is_the_site_of_the_layout(
        site: Path, published: Published, tmp_path: Path) -> None:
    """What `site REF...` reads from the registry (indexes, manifests, attached documents and
    signatures, no layers) makes the very pages the layout made."""
    out = tmp_path / "site"
    cli("site", *published.refs.values(), "--out", str(out), "--registry",
        f"{published.registry.host}/{published.namespace}", "--key", str(published.keys.public))
    pages = sorted(str(p.relative_to(site)) for p in site.rglob("*") if p.is_file())
    assert pages == sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert "extensions/pgaudit.html" in pages
    for page in pages:
        assert (out / page).read_bytes() == (site / page).read_bytes(), page
