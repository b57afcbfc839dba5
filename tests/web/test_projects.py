"""The applicant's journey through the pages and the JSON API: create a project on parcels,
add buildings (upload, drawn), self-check with numbers beside the limits per department,
submit; reviewers override with a reason; nothing leaks between applicants; names stay text."""

from __future__ import annotations

import json
import re

import shapely
import sqlalchemy as sa
from pyproj import Transformer

from gisapproval.models import Building, CheckResult, CheckRun, Project, User

TO_WGS84 = Transformer.from_crs("EPSG:4547", "EPSG:4326", always_xy=True)
ATTRS = {"name": "1#楼", "height_m": 30.0, "floors": 10, "gfa_m2": 3000.0, "use": "residential"}


def free_parcel(web_db, username="applicant1"):
    """A parcel of the applicant's organisation with no project on it."""
    with web_db.connect() as c:
        org = c.execute(sa.select(User.organisation).where(User.username == username)).scalar()
        return c.execute(sa.text(
            "SELECT parcel_code, ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) FROM parcels p "
            "WHERE land_use = 'R2' AND NOT is_retired AND area_m2 > 2000 AND NOT EXISTS (SELECT 1 FROM project_parcels pp "
            "WHERE pp.parcel_id = p.id) ORDER BY holder = :org DESC, id LIMIT 1"), {"org": org}).one()


def square(x, y, size=20.0, crs="4326"):
    g = shapely.box(x - size / 2, y - size / 2, x + size / 2, y + size / 2)
    if crs == "4326":
        g = shapely.transform(g, lambda xy: __import__("numpy").column_stack(TO_WGS84.transform(xy[:, 0], xy[:, 1])))
    return shapely.geometry.mapping(g)


def create(client, web, code, name="测试项目"):
    page = client.get("/projects/new")
    assert page.status_code == 200
    token = web.csrf_token(page.get_data(as_text=True))
    r = client.post("/projects/new", data={"name": name, "name_en": "", "parcel_codes": code, "csrf_token": token})
    assert r.status_code == 302, r.get_data(as_text=True)[:500]
    return int(r.headers["Location"].rstrip("/").split("/")[-1])


def test_applicant_journey_upload_self_check_and_results_by_department(client, web, web_db, tmp_path):
    web.login(client, "applicant1")
    code, x, y = free_parcel(web_db)
    pid = create(client, web, code, name="<script>alert(1)</script>小区")
    page = client.get(f"/projects/{pid}").get_data(as_text=True)
    assert "<script>alert(1)</script>小区" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;小区" in page
    token = web.csrf_token(page)
    doc = {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": ATTRS,
                                                      "geometry": square(x, y)}]}
    path = tmp_path / "fp.geojson"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with open(path, "rb") as f:
        r = client.post(f"/projects/{pid}/upload", data={"file": (f, "fp.geojson"), "csrf_token": token},
                        content_type="multipart/form-data")
    assert r.status_code == 302
    # a bad file: clear error per building, nothing stored
    bad = {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {**ATTRS, "height_m": 9000},
                                                      "geometry": square(x, y)}]}
    path.write_text(json.dumps(bad), encoding="utf-8")
    with open(path, "rb") as f:
        r = client.post(f"/projects/{pid}/upload", data={"file": (f, "bad.geojson"), "csrf_token": token},
                        content_type="multipart/form-data")
    assert r.status_code == 422
    assert "feature #1 (1#楼), field &#39;height_m&#39;" in r.get_data(as_text=True)
    with web_db.connect() as c:
        assert c.execute(sa.select(sa.func.count()).select_from(Building).where(Building.project_id == pid)).scalar() == 1
    r = client.post(f"/projects/{pid}/check", data={"csrf_token": token})
    assert r.status_code == 302
    html = client.get(f"/projects/{pid}?lang=en").get_data(as_text=True)
    for dept in ('data-department="land"', 'data-department="planning"', 'data-department="construction"',
                 'data-department="fire"'):
        assert dept in html
    with web_db.connect() as c:
        far = c.execute(sa.select(CheckResult.measured, CheckResult.limit_value).join(CheckRun).where(
            CheckRun.project_id == pid, CheckResult.rule_id == "floor_area_ratio")).one()
    # the numbers beside the limits
    row = re.search(r'data-rule="floor_area_ratio".*?</tr>', html, re.DOTALL).group(0)
    assert f"{far.measured:.3f}" in row and f"{far.limit_value:.3f}" in row
    config = json.loads(re.search(r'id="projects-config">(.*?)</script>', html, re.DOTALL).group(1))
    assert config["data"]["buildings"]["features"][0]["properties"]["name"] == "1#楼"
    assert config["editable"] is True
    # another applicant sees nothing of it
    web.login(client, "applicant2")
    assert client.get(f"/projects/{pid}").status_code == 404
    assert client.get(f"/api/projects/{pid}").status_code == 404


def test_submit_hands_the_project_to_intake(client, web, web_db):
    web.login(client, "applicant1")
    code, x, y = free_parcel(web_db)
    pid = create(client, web, code)
    token = web.csrf_token(client.get(f"/projects/{pid}").get_data(as_text=True))
    r = client.post(f"/api/projects/{pid}/buildings", json={"geometry": square(x, y), **ATTRS},
                    headers={"X-CSRFToken": token})
    assert r.status_code == 201, r.get_json()
    assert client.post(f"/projects/{pid}/check", data={"csrf_token": token}).status_code == 302
    r = client.post(f"/projects/{pid}/submit", data={"csrf_token": token})
    try:
        import gisapproval.workflow.intake  # noqa: F401
    except ImportError:
        assert r.status_code == 503
        return
    assert r.status_code == 302, r.get_data(as_text=True)[:800]
    with web_db.connect() as c:
        assert c.execute(sa.select(Project.status).where(Project.id == pid)).scalar() != "draft"


def test_api_draw_check_and_reviewer_override(client, web, web_db):
    web.login(client, "applicant1")
    code, x, y = free_parcel(web_db)
    token = web.csrf_token(client.get("/projects/new").get_data(as_text=True))
    h = {"X-CSRFToken": token}
    r = client.post("/api/projects", json={"name": "API 项目", "parcel_codes": [code]}, headers=h)
    assert r.status_code == 201
    pid = r.get_json()["id"]
    r = client.post(f"/api/projects/{pid}/buildings", json={"geometry": {"type": "Point", "coordinates": [113.4, 23]},
                                                            **ATTRS}, headers=h)
    assert r.status_code == 422 and "a footprint must be a polygon" in r.get_json()["error"]["message"]
    assert client.post(f"/api/projects/{pid}/buildings", json={"geometry": square(x, y), **ATTRS},
                       headers=h).status_code == 201
    run = client.post(f"/api/projects/{pid}/checks", headers=h).get_json()
    assert {r["department"] for r in run["results"]} >= {"land", "planning", "construction", "fire"}
    assert run["layer_versions"]["cadastre"] >= 1
    height = next(r for r in run["results"] if r["rule_id"] == "height_limit")
    assert height["measured"] == 30.0 and height["limit"] is not None and height["unit"] == "m"
    # a fire reviewer may not override a planning result; the planning reviewer may, with a reason
    web.login(client, "fire_reviewer")
    token = web.csrf_token(client.get(f"/projects/{pid}").get_data(as_text=True))
    r = client.post(f"/api/projects/check-results/{height['id']}/override", json={"outcome": "fail", "reason": "x"},
                    headers={"X-CSRFToken": token})
    assert r.status_code == 403
    web.login(client, "planning_reviewer")
    page = client.get(f"/projects/{pid}").get_data(as_text=True)
    token = web.csrf_token(page)
    assert f'/projects/results/{height["id"]}/override' in page  # the form shows for the planning reviewer
    r = client.post(f"/projects/results/{height['id']}/override", data={"outcome": "fail", "reason": "",
                                                                       "csrf_token": token})
    assert r.status_code == 422 and "reason" in r.get_data(as_text=True)
    r = client.post(f"/projects/results/{height['id']}/override",
                    data={"outcome": "fail", "reason": "规划条件另有规定", "csrf_token": token})
    assert r.status_code == 302
    latest = client.get(f"/api/projects/{pid}/checks/latest").get_json()
    h2 = next(r for r in latest["results"] if r["id"] == height["id"])
    assert h2["outcome"] == height["outcome"]  # the original stays
    assert h2["overrides"][0]["outcome"] == "fail" and h2["overrides"][0]["reason"] == "规划条件另有规定"


def test_parcels_in_view_for_picking(client, web, web_db):
    web.login(client, "applicant1")
    code, x, y = free_parcel(web_db)
    lon, lat = TO_WGS84.transform(x, y)
    r = client.get(f"/api/projects/parcels?bbox={lon - 0.001},{lat - 0.001},{lon + 0.001},{lat + 0.001}")
    assert code in {f["properties"]["code"] for f in r.get_json()["features"]}
    assert client.get("/api/projects/parcels?bbox=nonsense").status_code == 422


def test_create_with_unknown_parcel_is_refused_with_the_reason(client, web):
    web.login(client, "applicant1")
    token = web.csrf_token(client.get("/projects/new").get_data(as_text=True))
    r = client.post("/projects/new", data={"name": "x", "parcel_codes": "NOPE-1", "csrf_token": token})
    assert r.status_code == 422 and "NOPE-1" in r.get_data(as_text=True)
    web.login(client, "clerk")
    assert client.get("/projects/new").status_code == 403
