"""The map in headless Chromium: it draws every parcel in colour and loads nothing from elsewhere."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from web.mapview import CATEGORY_COLOURS

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
MIN_PARCEL_PATHS = 1000


def _watch(page):
    """Record every request the page makes and every console error (CSP violations among them)."""
    seen = {"requests": [], "errors": []}
    page.on("request", lambda request: seen["requests"].append(request.url))
    page.on("console", lambda msg: seen["errors"].append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: seen["errors"].append(str(exc)))
    return seen


def _wait_for_parcels(page):
    parcels = page.locator("path.leaflet-interactive")
    parcels.nth(MIN_PARCEL_PATHS - 1).wait_for(state="attached", timeout=30_000)
    page.wait_for_load_state("networkidle")
    return parcels.count()


def _foreign_requests(urls: list[str]) -> list[str]:
    return [u for u in urls if urlsplit(u).scheme in ("http", "https", "ws", "wss")
            and urlsplit(u).hostname not in LOCAL_HOSTS]


@pytest.mark.browser
def test_supervisor_sees_the_coloured_map_and_nothing_leaves_localhost(browser_page, live_server):
    page = browser_page
    seen = _watch(page)
    ARTIFACTS.mkdir(exist_ok=True)

    page.goto(f"{live_server.url}/login")
    page.fill("#username", "supervisor")
    page.fill("#password", "gisdemo2026")
    page.click("form.form button[type=submit]")
    page.wait_for_url(f"{live_server.url}/map")

    assert _wait_for_parcels(page) >= MIN_PARCEL_PATHS
    grey = CATEGORY_COLOURS["none"]
    coloured = page.locator(f'path.leaflet-interactive:not([fill="{grey}"])')
    assert coloured.count() > 0, "project parcels must be drawn in their status colour"
    assert page.locator("#map-legend").is_visible()
    assert page.locator(".leaflet-control-layers").is_visible()
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert page.locator(".leaflet-control-attribution a").count() == 0  # no link to another site
    page.screenshot(path=str(ARTIFACTS / "map.png"))

    page.click("a.lang-switch")
    page.wait_for_url("**/map?lang=en")
    assert _wait_for_parcels(page) >= MIN_PARCEL_PATHS
    assert page.locator("html").get_attribute("lang") == "en"
    assert "Legend: approval status" in page.locator("#map-legend").inner_text()
    assert "Parcels (by approval status)" in page.locator(".leaflet-control-layers").inner_text()
    page.screenshot(path=str(ARTIFACTS / "map_en.png"))

    assert seen["requests"], "the listener saw no requests"
    assert _foreign_requests(seen["requests"]) == []
    assert seen["errors"] == []


@pytest.mark.browser
def test_clicking_a_parcel_opens_its_details(browser_page, live_server):
    page = browser_page
    page.goto(f"{live_server.url}/login?lang=en")
    page.fill("#username", "planning_reviewer")
    page.fill("#password", "gisdemo2026")
    page.click("form.form button[type=submit]")
    page.wait_for_url(f"{live_server.url}/map")
    _wait_for_parcels(page)

    popup = page.locator(".leaflet-popup-content")
    for x, y in _clear_points_on_coloured_parcels(page):
        page.mouse.click(x, y)
        try:
            popup.wait_for(state="visible", timeout=2_000)
            break
        except PlaywrightTimeoutError:
            continue  # the centre of a concave parcel may fall outside it: try the next one
    else:
        pytest.fail("clicking coloured parcels opened no popup")
    text = popup.inner_text()
    assert "Parcel" in text and "Status" in text and "Project" in text


def _clear_points_on_coloured_parcels(page):
    """Centres of coloured parcels that no control (legend, layer switcher, zoom) covers."""
    covers = [page.locator(sel).bounding_box() for sel in ("#map-legend", ".leaflet-control-layers",
                                                           ".leaflet-control-zoom", ".site-header")]
    grey = CATEGORY_COLOURS["none"]
    paths = page.locator(f'path.leaflet-interactive:not([fill="{grey}"])')
    for i in range(paths.count()):
        box = paths.nth(i).bounding_box()
        if not box or box["width"] < 4 or box["height"] < 4:
            continue
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        if not any(c and c["x"] <= x <= c["x"] + c["width"] and c["y"] <= y <= c["y"] + c["height"] for c in covers):
            yield x, y
