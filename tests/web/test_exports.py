"""Downloads: a layer version, a project's footprints and its check results, as GeoPackage and GeoJSON."""

from __future__ import annotations

import pyogrio
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from gisapproval.models import (
    SRID,
    Building,
    CheckResult,
    CheckRun,
    Department,
    Event,
    Layer,
    LayerFeature,
    LayerVersion,
    Project,
    User,
)


def _read(tmp_path, response, suffix):
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    path = tmp_path / f"download.{suffix}"
    path.write_bytes(response.data)
    return pyogrio.read_dataframe(path)


def _live_count(conn, name):
    return conn.scalar(sa.select(sa.func.count(LayerFeature.id)).join(Layer, Layer.id == LayerFeature.layer_id)
                       .where(Layer.name == name, LayerFeature.valid_to.is_(None)))


@pytest.mark.parametrize("fmt,epsg", [("gpkg", SRID), ("geojson", 4326)])
def test_a_layer_version_downloads_with_its_attributes(client, web, web_db, tmp_path, fmt, epsg):
    web.login(client, "land_editor")
    with web_db.connect() as conn:
        count = _live_count(conn, "zoning")
        number = conn.scalar(sa.select(LayerVersion.number).join(Layer, Layer.current_version_id == LayerVersion.id)
                             .where(Layer.name == "zoning"))
        keys = set(conn.scalars(sa.text("SELECT DISTINCT jsonb_object_keys(attrs) FROM layer_features f "
                                        "JOIN layers l ON l.id = f.layer_id WHERE l.name = 'zoning'")))
        events_before = conn.scalar(sa.select(sa.func.count()).select_from(Event)
                                    .where(Event.type == "layer_version.exported"))
    for query in ("", f"?version={number}"):
        response = client.get(f"/exports/layers/zoning.{fmt}{query}")
        assert f'filename="zoning_v{number}.{fmt}"' in response.headers["Content-Disposition"]
        frame = _read(tmp_path, response, fmt)
        assert len(frame) == count
        assert frame.crs.to_epsg() == epsg
        assert {"feature_key", *keys} <= set(frame.columns)
        assert frame.geometry.notna().all() and frame.geometry.is_valid.all()
    with web_db.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(Event)
                           .where(Event.type == "layer_version.exported")) == events_before + 2


def test_layer_downloads_are_refused_clearly(client, web):
    assert client.get("/exports/layers/zoning.gpkg").status_code == 401
    web.login(client, "applicant1")
    assert client.get("/exports/layers/zoning.gpkg").status_code == 403
    web.login(client, "land_editor")
    assert client.get("/exports/layers/zoning.shp").status_code == 422
    assert client.get("/exports/layers/zoning.gpkg?version=999").status_code == 404
    assert client.get("/exports/layers/nosuch.gpkg").status_code == 404
    assert client.get("/exports/layers/dem.gpkg").status_code == 422


def _project_with_buildings(conn, username):
    return conn.execute(
        sa.select(Project.id, Project.code).join(User, User.id == Project.applicant_id)
        .where(User.username == username, Project.id.in_(sa.select(Building.project_id)))
        .order_by(Project.id).limit(1)).one()


@pytest.mark.parametrize("fmt", ["gpkg", "geojson"])
def test_a_project_footprints_download(client, web, web_db, tmp_path, fmt):
    with web_db.connect() as conn:
        project_id, code = _project_with_buildings(conn, "applicant1")
        names = set(conn.scalars(sa.select(Building.name).where(Building.project_id == project_id)))
        other_code = _project_with_buildings(conn, "applicant2")[1]
    web.login(client, "applicant1")
    frame = _read(tmp_path, client.get(f"/exports/projects/{code}/footprints.{fmt}"), fmt)
    assert set(frame["name"]) == names and len(frame) == len(names)
    assert set(frame["project_code"]) == {code}
    assert set(frame.geometry.geom_type) == {"MultiPolygon"}
    assert client.get(f"/exports/projects/{other_code}/footprints.{fmt}").status_code == 404  # not theirs
    web.login(client, "planning_reviewer")
    assert client.get(f"/exports/projects/{other_code}/footprints.{fmt}").status_code == 200


@pytest.fixture
def check_results(web_db):
    """A check run with a failing result carrying evidence and a passing one without."""
    with Session(web_db) as s:
        project_id, code = _project_with_buildings(s.connection(), "applicant1")
        dept = s.scalar(sa.select(Department.id).where(Department.is_reviewing.is_(True)).limit(1))
        building = s.scalar(sa.select(Building).where(Building.project_id == project_id).limit(1))
        run = CheckRun(project_id=project_id, purpose="self_check")
        s.add(run)
        s.flush()
        s.add_all([
            CheckResult(check_run_id=run.id, building_id=building.id, rule_id="test_setback", department_id=dept,
                        outcome="fail", measured=3.0, limit_value=5.0, unit="m", message_zh="退线不足",
                        message_en="setback too small",
                        evidence=sa.func.ST_Buffer(sa.func.ST_Centroid(sa.select(Building.geom).where(
                            Building.id == building.id).scalar_subquery()), 2)),
            CheckResult(check_run_id=run.id, rule_id="test_far", department_id=dept, outcome="pass",
                        message_zh="容积率符合", message_en="FAR complies"),
        ])
        s.commit()
        run_id = run.id
    yield code
    with Session(web_db) as s:
        s.execute(sa.delete(CheckRun).where(CheckRun.id == run_id))
        s.commit()


@pytest.mark.parametrize("fmt", ["gpkg", "geojson"])
def test_a_project_check_results_download(client, web, tmp_path, check_results, fmt):
    web.login(client, "applicant1")
    frame = _read(tmp_path, client.get(f"/exports/projects/{check_results}/checks.{fmt}"), fmt)
    rows = {r["rule_id"]: r for _, r in frame.iterrows()}
    assert {"test_setback", "test_far"} <= set(rows)
    assert rows["test_setback"]["outcome"] == "fail" and rows["test_setback"]["message_en"] == "setback too small"
    assert rows["test_setback"].geometry is not None and rows["test_setback"].geometry.area > 0
    assert rows["test_far"].geometry is None


def test_a_project_without_check_results_downloads_an_empty_table(client, web, web_db, tmp_path):
    with web_db.connect() as conn:
        code = conn.scalar(sa.select(Project.code).where(~Project.id.in_(sa.select(CheckRun.project_id)),
                                                         Project.status != "draft").limit(1))
    web.login(client, "supervisor")
    for fmt in ("gpkg", "geojson"):
        response = client.get(f"/exports/projects/{code}/checks.{fmt}")
        assert response.status_code == 200 and response.headers["X-Feature-Count"] == "0"
        assert len(_read(tmp_path, response, fmt)) == 0
