"""The tiled map in headless Chromium: parcels drawn in colour from vector tiles, nothing loaded
from elsewhere, a click on a parcel opens its details (Leaflet.VectorGrid's click works with
Leaflet 1.9), markup in names stays text."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from gisapproval.models import Project, User, project_parcels
from web.mapview import CATEGORY_COLOURS

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
PASSWORD = "gisdemo2026"

# Counts, over every canvas the tile layers drew, the pixels of each given colour.
COUNT_COLOURS = """(colours) => {
  const want = colours.map(h => [1, 3, 5].map(i => parseInt(h.slice(i, i + 2), 16)));
  const counts = colours.map(() => 0);
  for (const canvas of document.querySelectorAll('.leaflet-tile-container canvas')) {
    if (!canvas.width || !canvas.height) continue;
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 0; i < data.length; i += 16) {
      want.forEach((c, k) => {
        if (Math.abs(data[i] - c[0]) < 3 && Math.abs(data[i + 1] - c[1]) < 3 && Math.abs(data[i + 2] - c[2]) < 3
            && data[i + 3] > 0) counts[k] += 1;
      });
    }
  }
  return counts;
}"""


def _watch(page):
    seen = {"requests": [], "errors": [], "dialogs": []}
    page.on("request", lambda request: seen["requests"].append(request.url))
    page.on("console", lambda msg: seen["errors"].append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: seen["errors"].append(str(exc)))
    page.on("dialog", lambda dialog: (seen["dialogs"].append(dialog.message), dialog.dismiss()))
    return seen


def _login(page, live_server, username, lang=""):
    page.goto(f"{live_server.url}/login{lang}")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("form.form button[type=submit]")
    page.wait_for_url(f"{live_server.url}/map")
    _wait_for_tiles(page)


def _wait_for_tiles(page):
    page.wait_for_function("() => window.gisMapView && window.gisMapView.state.tilesLoaded > 0",
                           timeout=30_000, polling=100)
    page.wait_for_load_state("networkidle")


def _foreign_requests(urls: list[str]) -> list[str]:
    return [u for u in urls if urlsplit(u).scheme in ("http", "https", "ws", "wss")
            and urlsplit(u).hostname not in LOCAL_HOSTS]


@pytest.mark.browser
def test_supervisor_sees_the_coloured_map_and_nothing_leaves_localhost(browser_page, live_server):
    page = browser_page
    seen = _watch(page)
    ARTIFACTS.mkdir(exist_ok=True)
    _login(page, live_server, "supervisor")

    grey, blue = CATEGORY_COLOURS["none"], CATEGORY_COLOURS["in_review"]
    plain, in_review = page.evaluate(COUNT_COLOURS, [grey, blue])
    assert plain > 1000, "parcels without a project are drawn (grey)"
    assert in_review > 0, "parcels in review are drawn in their colour"
    assert any("/tiles/parcels/" in u for u in seen["requests"])
    assert page.locator("#map-legend").is_visible()
    assert page.locator(".leaflet-control-layers").is_visible()
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert page.locator(".leaflet-control-attribution a").count() == 0  # no link to another site
    page.screenshot(path=str(ARTIFACTS / "map.png"))

    page.click("a.lang-switch")
    page.wait_for_url("**/map?lang=en")
    _wait_for_tiles(page)
    assert page.locator("html").get_attribute("lang") == "en"
    assert "Legend: approval status" in page.locator("#map-legend").inner_text()
    assert "Parcels (by approval status)" in page.locator(".leaflet-control-layers").inner_text()
    page.screenshot(path=str(ARTIFACTS / "map_en.png"))

    # switch a layer on: its tiles load from here and draw
    page.locator(".leaflet-control-layers label", has_text="Regulatory zoning plan").locator("input").check()
    page.wait_for_load_state("networkidle")
    assert any("/tiles/layers/zoning/" in u for u in seen["requests"])

    assert seen["requests"], "the listener saw no requests"
    assert _foreign_requests(seen["requests"]) == []
    assert seen["errors"] == []


def _parcel_point(engine, where_sql: str, **params) -> tuple[float, float]:
    with engine.connect() as conn:
        return conn.execute(sa.text(
            "SELECT ST_Y(p), ST_X(p) FROM (SELECT ST_Transform(ST_PointOnSurface(pa.geom), 4326) p FROM parcels pa "
            f"WHERE {where_sql} ORDER BY pa.area_m2 DESC LIMIT 1) s"), params).one()


def _click_at(page, lat: float, lng: float):
    page.evaluate("([lat, lng]) => gisMap.setView([lat, lng], 17, {animate: false})", [lat, lng])
    _wait_for_tiles(page)
    page.wait_for_timeout(200)
    x, y = page.evaluate("""([lat, lng]) => {
        const p = gisMap.latLngToContainerPoint([lat, lng]);
        const r = gisMap.getContainer().getBoundingClientRect();
        return [p.x + r.left, p.y + r.top];
    }""", [lat, lng])
    page.mouse.click(x, y)
    popup = page.locator(".leaflet-popup-content .gis-popup dl").first
    popup.wait_for(state="visible", timeout=10_000)
    return page.locator(".leaflet-popup-content").inner_text()


@pytest.mark.browser
def test_clicking_a_parcel_opens_its_details(browser_page, live_server, engine):
    page = browser_page
    seen = _watch(page)
    with engine.connect() as conn:
        code, parcel_code = conn.execute(sa.text(
            "SELECT p.code, pa.parcel_code FROM projects p JOIN project_parcels pp ON pp.project_id = p.id "
            "JOIN parcels pa ON pa.id = pp.parcel_id WHERE p.status = 'in_review' "
            "ORDER BY pa.area_m2 DESC LIMIT 1")).one()
    lat, lng = _parcel_point(engine, "pa.parcel_code = :c", c=parcel_code)
    _login(page, live_server, "planning_reviewer", "?lang=en")
    assert page.evaluate("L.version") == "1.9.4"
    text = _click_at(page, lat, lng)
    assert parcel_code in text and code in text
    for label in ("Parcel", "Stage", "Status", "Department reviews", "Working days left"):
        assert label in text
    assert seen["errors"] == []  # VectorGrid's click did not throw (fakeStop)


@pytest.fixture
def hostile_parcel(engine):
    with engine.begin() as conn:
        applicant_id = conn.scalar(sa.select(User.id).where(User.username == "applicant2"))
        parcel_id = conn.scalar(sa.text(
            "SELECT id FROM parcels p WHERE NOT EXISTS (SELECT 1 FROM project_parcels pp WHERE pp.parcel_id = p.id) "
            "ORDER BY area_m2 DESC LIMIT 1"))
        project_id = conn.scalar(sa.insert(Project).values(
            code="TEST-XSS-BROWSER", name="<img src=x onerror=alert(1)>", name_en="<script>alert(2)</script>",
            applicant_id=applicant_id, applicant_org="<b>Evil & Co</b>", current_stage=1, status="in_review",
        ).returning(Project.id))
        conn.execute(sa.insert(project_parcels).values(project_id=project_id, parcel_id=parcel_id))
    yield parcel_id
    with engine.begin() as conn:
        conn.execute(sa.delete(Project).where(Project.id == project_id))


@pytest.mark.browser
def test_markup_in_a_popup_stays_text(browser_page, live_server, engine, hostile_parcel):
    page = browser_page
    seen = _watch(page)
    lat, lng = _parcel_point(engine, "pa.id = :i", i=hostile_parcel)
    _login(page, live_server, "supervisor")
    text = _click_at(page, lat, lng)
    assert "<img src=x onerror=alert(1)>" in text and "<b>Evil & Co</b>" in text
    assert page.locator(".leaflet-popup-content img, .leaflet-popup-content b, .leaflet-popup-content script").count() == 0
    page.wait_for_timeout(300)
    assert seen["dialogs"] == []
