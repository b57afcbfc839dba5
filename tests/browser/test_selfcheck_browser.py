"""The self-check in headless Chromium: the applicant draws a footprint with Leaflet.draw,
saves it, runs the self-check and sees each department's results beside the map with the
failing evidence highlighted; nothing is loaded from elsewhere; names stay text."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from geoalchemy2.shape import from_shape

from gisapproval.db import make_engine, make_session_factory, session_scope
from gisapproval.models import SRID, Building, Parcel, Project, User

PASSWORD = "gisdemo2026"


@pytest.fixture(scope="module")
def own_db_url(own_sample_db):
    """A database of this module's own (migrated, sample loaded): the drafts this test commits
    must not show up in the shared test database, whose sample projects were all submitted."""
    with own_sample_db("selfcheck") as url:
        yield url


@pytest.fixture(scope="module")
def web_db(own_db_url):
    engine = make_engine(own_db_url, poolclass=sa.pool.NullPool)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def own_live_server(own_db_url, serve):
    from web import create_app

    app = create_app({"TESTING": True, "DATABASE_URL": own_db_url, "SECRET_KEY": "test", "WTF_CSRF_ENABLED": True})
    with serve(app) as server:
        yield server


def _prepare(web_db) -> int:
    """A draft project of applicant1 with one footprint that sticks out of its parcel (a fail)."""
    with session_scope(make_session_factory(web_db)) as s:
        user = s.scalar(sa.select(User).where(User.username == "applicant1"))
        parcel = s.scalar(sa.text(
            "SELECT id FROM parcels p WHERE land_use = 'R2' AND area_m2 > 4000 AND NOT is_retired AND NOT EXISTS "
            "(SELECT 1 FROM project_parcels pp WHERE pp.parcel_id = p.id) ORDER BY holder = :org DESC, id DESC "
            "LIMIT 1"), {"org": user.organisation})
        parcel = s.get(Parcel, parcel)
        # a square centred on the parcel's boundary: about half of it lies outside the parcel
        edge_point = sa.func.ST_ClosestPoint(sa.func.ST_Boundary(Parcel.geom), sa.func.ST_PointOnSurface(Parcel.geom))
        geom = s.scalar(sa.select(sa.func.ST_AsText(sa.func.ST_Buffer(edge_point, 12, "endcap=square")))
                        .where(Parcel.id == parcel.id))
        import shapely

        project = Project(code="BR-SELFCHECK-1", name="<b>自检</b>示范项目", applicant=user,
                          applicant_org=user.organisation, status="draft", parcels=[parcel])
        s.add(project)
        s.flush()
        s.add(Building(project_id=project.id, name="1#楼", height_m=33.0, floors=11, gfa_m2=5000.0, use="residential",
                       geom=from_shape(shapely.MultiPolygon([shapely.from_wkt(geom)]), srid=SRID)))
        return project.id


def test_self_check_on_the_map(browser_page, own_live_server, web_db, artifacts_dir):
    live_server = own_live_server
    pid = _prepare(web_db)
    page = browser_page
    requests, errors = [], []
    page.on("request", lambda r: requests.append(r.url))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{live_server.url}/login")
    page.fill("#username", "applicant1")
    page.fill("#password", PASSWORD)
    page.click("form.form button[type=submit]")
    page.wait_for_load_state("networkidle")
    page.goto(f"{live_server.url}/projects/{pid}")
    assert page.locator("h1").first.inner_text() == "<b>自检</b>示范项目"  # text, not markup
    # draw a second building with Leaflet.draw's rectangle tool
    page.click("#draw-box summary")
    page.click(".leaflet-draw-draw-rectangle")
    box = page.locator("#projects-map").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx - 120, cy - 20)
    page.mouse.down()
    page.mouse.move(cx - 80, cy + 20, steps=5)
    page.mouse.up()
    form = page.locator("#draw-form")
    form.locator("input[name=name]").fill("2#楼")
    form.locator("input[name=height_m]").fill("18")
    form.locator("input[name=floors]").fill("6")
    form.locator("input[name=gfa_m2]").fill("600")
    form.locator("select[name=use]").select_option("residential")
    with page.expect_navigation():
        form.locator("button[type=submit]").click()
    page.wait_for_load_state("networkidle")
    assert page.locator("tr[data-building]").count() == 2, page.locator("#draw-status").inner_text()
    with page.expect_navigation():
        page.click("#run-check")
    page.wait_for_load_state("networkidle")
    for dept in ("land", "planning", "construction", "fire"):
        assert page.locator(f'section[data-department="{dept}"]').count() == 1
    assert page.locator('tr.result[data-rule="parcel_containment"][data-outcome="fail"]').count() >= 1
    assert page.locator("path.evidence-fail").count() >= 1  # failing evidence drawn on the map
    page.screenshot(path=str(artifacts_dir / "selfcheck_results.png"), full_page=False)
    page.goto(f"{live_server.url}/projects/{pid}?lang=en")
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(artifacts_dir / "selfcheck_results_en.png"), full_page=False)
    assert not errors, errors
    hosts = {urlsplit(u).hostname for u in requests if u.startswith("http")}
    assert hosts <= {"127.0.0.1", "localhost"}, hosts
