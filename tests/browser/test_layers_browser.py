"""The layers pages in headless Chromium: a layer editor uploads through the page (progress bar,
then the report), sees a refusal listed feature by feature, opens the diff map in three colours,
and rolls back after confirming. Screenshots: tests/artifacts/layers_*.png."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import geopandas as gpd
import pytest
import shapely
import sqlalchemy as sa
from playwright.sync_api import expect

from gisapproval.db import make_engine

from web import layers as web_layers
from web.layers import DIFF_COLOURS

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
X0, Y0 = 436000.0, 2542000.0
LOCAL_HOSTS = {"127.0.0.1", "localhost"}


@pytest.fixture(scope="module")
def layers_db(own_sample_db):
    with own_sample_db("layersbrowser") as url:
        yield url


@pytest.fixture(scope="module")
def layers_server(layers_db, serve):
    """A live server on a database of its own (these tests publish layer versions)."""
    from web import create_app

    app = create_app({"TESTING": True, "DATABASE_URL": layers_db, "SECRET_KEY": "test", "WTF_CSRF_ENABLED": True})
    with serve(app) as server:
        yield server.url
    app.extensions["gisapproval"].engine.dispose()


def a_project_in_review(url):
    """(code, name, centre x, centre y) of a building of a project in review."""
    engine = make_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(
                "SELECT p.code, p.name, ST_X(ST_Centroid(b.geom)), ST_Y(ST_Centroid(b.geom)) FROM buildings b "
                "JOIN projects p ON p.id = b.project_id WHERE p.status = 'in_review' ORDER BY p.id LIMIT 1")).one()
    finally:
        engine.dispose()


def farmland(keys, shift=0.0, area=6400.0):
    return gpd.GeoDataFrame(
        {"farmland_code": keys, "area_m2": [area] * len(keys)},
        geometry=[shapely.box(X0 + i * 120 + shift, Y0, X0 + i * 120 + 90 + shift, Y0 + 90) for i in range(len(keys))],
        crs="EPSG:4547")


def login(page, base, username):
    page.goto(f"{base}/login")
    page.fill("#username", username)
    page.fill("#password", "gisdemo2026")
    page.click("form.form button[type=submit]")
    page.wait_for_url(f"{base}/map")


def upload(page, base, layer, path, repair=False):
    page.goto(f"{base}/layers/{layer}/upload")
    page.set_input_files("#layers-file", str(path))
    if repair:
        page.check("#layers-repair")
    page.click("#layers-submit")
    page.locator("#layers-report").wait_for(timeout=60_000)
    return page.locator("#layers-report").get_attribute("data-outcome")


@pytest.mark.browser
def test_layer_editor_uploads_sees_the_report_and_the_diff_map(browser_page, layers_server, layers_db, tmp_path,
                                                               monkeypatch):
    page, base = browser_page, layers_server
    ARTIFACTS.mkdir(exist_ok=True)
    requests, errors = [], []
    page.on("request", lambda r: requests.append(r.url))
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    login(page, base, "land_editor")

    page.goto(f"{base}/layers")
    assert page.locator("#layers-catalogue tbody tr").count() >= 12
    assert page.locator('tr[data-layer="cadastre"] a[href$="/upload"]').count() == 1
    page.screenshot(path=str(ARTIFACTS / "layers_catalogue.png"), full_page=True)

    # a first version of our own features, then a second with one added, one removed, one changed
    first = farmland(["BT-A", "BT-B", "BT-C"])
    first.to_file(tmp_path / "first.gpkg")
    assert upload(page, base, "basic_farmland", tmp_path / "first.gpkg") == "published"
    assert page.locator("#layers-progress").get_attribute("data-progress") == "100"
    second = farmland(["BT-A", "BT-B", "BT-D"])
    second.loc[1, "area_m2"] = 1.0
    second.loc[1, "geometry"] = shapely.box(X0 + 120, Y0, X0 + 200, Y0 + 60)
    code, name, x, y = a_project_in_review(layers_db)  # BT-C removed, BT-D added on a project's building
    second.loc[2, "geometry"] = shapely.box(x - 30, y - 30, x + 30, y + 30)
    second.to_file(tmp_path / "second.gpkg")
    assert upload(page, base, "basic_farmland", tmp_path / "second.gpkg") == "published"
    report = page.locator("#layers-report")
    assert "发布为版本" in report.inner_text()
    counts = report.locator(".layers-counts li strong").all_inner_texts()
    assert counts[:2] == ["1", "1"]  # added, changed
    # the project under BT-D by its code and name (a layer editor opens no project's page: no link)
    affected = report.locator(".layers-affected")
    assert affected.locator(".layers-project").all_inner_texts() == [code]
    assert name in affected.inner_text() and affected.locator("a").count() == 0
    page.screenshot(path=str(ARTIFACTS / "layers_upload_report.png"), full_page=True)

    # a refused upload lists each problem with its feature and field; <script> stays text
    bad = farmland(["<img src=x onerror=alert(1)>", "BT-E"])
    bad.loc[1, "geometry"] = shapely.Polygon([(X0, Y0), (X0 + 50, Y0 + 50), (X0 + 50, Y0), (X0, Y0 + 50)])
    bad["area_m2"] = bad["area_m2"].astype(object)
    bad.loc[0, "area_m2"] = "many"
    bad.to_file(tmp_path / "bad.gpkg")
    assert upload(page, base, "basic_farmland", tmp_path / "bad.gpkg") == "refused"
    rows = page.locator("#layers-report table.layers-problems tbody tr")
    assert rows.count() == 2
    texts = rows.all_inner_texts()
    assert any("<img src=x onerror=alert(1)>" in t and "area_m2" in t for t in texts)
    assert any("BT-E" in t and "geometry" in t and "Self-intersection" in t for t in texts)
    assert page.locator("#layers-report img").count() == 0
    page.screenshot(path=str(ARTIFACTS / "layers_upload_refused.png"), full_page=True)

    # the diff map of the second upload
    upload(page, base, "basic_farmland", tmp_path / "second.gpkg")  # unchanged: a version with 0 changes
    page.goto(f"{base}/layers/basic_farmland")
    latest = int(page.locator("#layers-versions tbody tr").first.get_attribute("data-version"))
    page.goto(f"{base}/layers/basic_farmland/diff?from={latest - 2}&to={latest - 1}")
    page.locator("#layers-diff-map[data-ready]").wait_for(state="attached", timeout=30_000)
    page.wait_for_load_state("networkidle")
    paths = page.locator("#layers-diff-map path.leaflet-interactive")
    strokes = {paths.nth(i).get_attribute("stroke") for i in range(paths.count())}
    assert {DIFF_COLOURS["added"], DIFF_COLOURS["removed"], DIFF_COLOURS["changed"]} <= strokes
    legend = page.locator("#layers-diff-legend")
    assert legend.is_visible()
    for kind, n in (("added", "1"), ("removed", "1"), ("changed", "1")):
        assert legend.locator(f'li[data-kind="{kind}"] .count').inner_text() == n
    # under the map, each feature that differs and how; its key finds it on the map
    table = page.locator("#layers-changes-table tbody tr")
    assert [table.nth(i).get_attribute("data-key") for i in range(table.count())] == ["BT-B", "BT-C", "BT-D"]
    assert [table.nth(i).get_attribute("data-kind") for i in range(3)] == ["changed", "removed", "added"]
    assert "area_m2: 6400 → 1" in table.nth(0).inner_text().replace(" :", ":")
    page.screenshot(path=str(ARTIFACTS / "layers_diff.png"), full_page=True)
    paths.first.click(force=True)
    popup = page.locator(".layers-popup")
    popup.wait_for(timeout=5_000)
    page.locator(".leaflet-popup-close-button").click()
    popup.wait_for(state="detached", timeout=5_000)
    page.locator('#layers-changes-table a.layers-zoom[data-key="BT-D"]').click()
    popup.wait_for(timeout=5_000)
    assert popup.locator("strong").inner_text() == "新增 · BT-D"
    # close in, the layer's other features of the later version are drawn faintly around the changes
    page.locator('#layers-changes-table a.layers-zoom[data-key="BT-B"]').click()
    # (the features drawn for this view: BT-A and BT-B at least; the view before drew BT-D alone)
    expect(page.locator("#layers-diff-map")).to_have_attribute("data-context", re.compile(r"^([2-9]|\d{2,})$"),
                                                               timeout=10_000)
    assert page.locator("#layers-diff-context-more").is_hidden()  # all of them are drawn
    drawn = page.locator("#layers-diff-map path")
    assert DIFF_COLOURS["context"] in {drawn.nth(i).get_attribute("stroke") for i in range(drawn.count())}
    page.screenshot(path=str(ARTIFACTS / "layers_diff_close.png"))
    # where the view holds more of them than the map asks for, it draws none and says to zoom in
    with monkeypatch.context() as m:
        m.setattr(web_layers, "DIFF_CONTEXT_LIMIT", 1)
        page.reload()
        page.locator("#layers-diff-map[data-ready]").wait_for(state="attached", timeout=30_000)
        page.locator('#layers-changes-table a.layers-zoom[data-key="BT-B"]').click()
        page.locator("#layers-diff-context-more").wait_for(timeout=10_000)
        expect(page.locator("#layers-diff-map")).to_have_attribute("data-context", "0")
        assert page.locator("#layers-diff-map path").count() == page.locator(
            "#layers-diff-map path.leaflet-interactive").count()  # only the changes

    # roll back, after confirming
    page.goto(f"{base}/layers/basic_farmland")
    page.locator(f'#layers-versions tr[data-version="{latest - 2}"] a.button-danger').click()
    page.locator("#layers-rollback-confirm").wait_for()
    page.screenshot(path=str(ARTIFACTS / "layers_rollback_confirm.png"), full_page=True)
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#layers-rollback-confirm")
    page.wait_for_url(f"{base}/layers/basic_farmland?rolled={latest + 1}")
    rolled = page.locator(f'#layers-versions tr[data-version="{latest + 1}"].layers-current')
    assert rolled.count() == 1
    assert rolled.locator(".layers-source").inner_text() == f"回退到版本 {latest - 2} 的内容"
    assert page.locator(f'#layers-versions tr[data-version="{latest - 1}"] .layers-project').all_inner_texts() == [
        code]
    page.screenshot(path=str(ARTIFACTS / "layers_history.png"), full_page=True)

    assert not errors, errors
    foreign = [u for u in requests if urlsplit(u).scheme in ("http", "https")
               and urlsplit(u).hostname not in LOCAL_HOSTS]
    assert not foreign, foreign
