"""The sample district loads whole, in the storage CRS, with valid geometries and every
stage and status represented."""

import datetime as dt

import pytest
import rasterio
import sqlalchemy as sa

from gisapproval.models import (SRID, Building, ClockEvent, Event, Layer, LayerFeature, LayerVersion, Parcel,
                                Project, ReviewTask, StageInstance, User)
from gisapproval.sample import SAMPLE_USERS, load_sample
from gisapproval.workdays import Calendar
from gisapproval.workflow.clock import compute_deadline

EXTENT_SQL = "ST_MakeEnvelope(430000, 2535000, 448000, 2553000, 4547)"


def _count(session, model, *where):
    return session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))


def _live_count(session, layer_name):
    return session.scalar(
        sa.select(sa.func.count()).select_from(LayerFeature).join(Layer, Layer.id == LayerFeature.layer_id)
        .where(Layer.name == layer_name, LayerFeature.valid_to.is_(None)))


@pytest.mark.parametrize("layer, minimum", [
    ("cadastre", 3000), ("existing_buildings", 1500), ("fire_stations", 4), ("zoning", 20), ("roads", 10),
    ("road_redlines", 10), ("basic_farmland", 1), ("eco_redline", 1), ("hazard_zones", 1), ("heritage_zones", 1),
])
def test_each_vector_layer_is_loaded_as_its_first_live_version(session, layer, minimum):
    assert _live_count(session, layer) >= minimum
    version = session.scalar(sa.select(LayerVersion).join(Layer, Layer.current_version_id == LayerVersion.id)
                             .where(Layer.name == layer))
    assert version.number == 1 and version.state == "live" and version.count_added == _live_count(session, layer)
    assert len(version.checksum) == 64


def test_parcels_have_codes_holders_and_land_use(session):
    assert _count(session, Parcel) >= 3000
    assert _count(session, Parcel) == _live_count(session, "cadastre")
    blank = _count(session, Parcel, sa.or_(Parcel.holder == "", Parcel.land_use == "", Parcel.parcel_code == ""))
    assert blank == 0
    uses = set(session.scalars(sa.select(sa.func.left(Parcel.land_use, 1)).distinct()))
    assert {"R", "B", "M", "G"} <= uses


@pytest.mark.parametrize("table, column", [
    ("parcels", "geom"), ("layer_features", "geom"), ("buildings", "geom"), ("layers", "coverage")])
def test_geometries_are_valid_in_the_storage_crs_inside_the_jurisdiction(session, table, column):
    row = session.execute(sa.text(
        f"SELECT count(*), count(*) FILTER (WHERE NOT ST_IsValid({column})),"
        f" count(*) FILTER (WHERE ST_SRID({column}) <> :srid),"
        f" count(*) FILTER (WHERE NOT ST_Within({column}, {EXTENT_SQL}))"
        f" FROM {table} WHERE {column} IS NOT NULL"), {"srid": SRID}).one()
    total, invalid, wrong_srid, outside = row
    assert total > 0 and invalid == 0 and wrong_srid == 0 and outside == 0


def test_the_district_lies_near_113_4E_23_0N(session):
    lon, lat = session.execute(sa.text(
        "SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_Transform(ST_Centroid(ST_Collect(geom)), 4326) c FROM parcels) s")).one()
    assert abs(lon - 113.4) < 0.1 and abs(lat - 23.0) < 0.1


def test_parcels_do_not_overlap(session):
    overlaps = session.execute(sa.text(
        "SELECT count(*) FROM parcels a JOIN parcels b ON a.id < b.id AND a.geom && b.geom"
        " AND ST_Area(ST_Intersection(a.geom, b.geom)) > 0.01")).scalar()
    assert overlaps == 0


def test_rasters_cover_the_district_in_the_storage_crs(session):
    for name in ("dem", "flood_depth"):
        version = session.scalar(sa.select(LayerVersion).join(Layer, Layer.current_version_id == LayerVersion.id)
                                 .where(Layer.name == name))
        with rasterio.open(version.raster_path) as src:
            assert src.crs.to_epsg() == SRID
            parcels = session.execute(sa.text("SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
                                              "(SELECT ST_Extent(geom)::geometry e FROM parcels) s")).one()
            b = src.bounds
            assert b.left <= parcels[0] and b.bottom <= parcels[1] and b.right >= parcels[2] and b.top >= parcels[3]


def test_one_user_per_role_and_two_applicants(session):
    roles = session.execute(sa.text("SELECT role, count(*) FROM user_roles GROUP BY role")).all()
    counts = dict(roles)
    assert set(counts) == {"applicant", "clerk", "reviewer", "leader", "layer_editor", "supervisor", "admin"}
    assert counts["applicant"] == 2
    assert _count(session, User) == len(SAMPLE_USERS)


def test_projects_span_every_stage_and_status(session):
    assert _count(session, Project) >= 30
    stages = dict(session.execute(sa.select(Project.current_stage, sa.func.count()).group_by(Project.current_stage)).all())
    assert set(stages) == {1, 2, 3, 4} and min(stages.values()) >= 5
    statuses = set(session.scalars(sa.select(Project.status).distinct()))
    assert {"in_review", "in_correction", "approved", "rejected", "completed", "submitted"} <= statuses
    task_states = set(session.scalars(sa.select(ReviewTask.status).distinct()))
    assert {"deemed_approved", "correction_requested", "rejected", "in_review", "approved"} <= task_states
    assert _count(session, Building) >= _count(session, Project)


def test_some_projects_in_review_are_overdue(session):
    calendar, today = Calendar(), dt.date(2026, 11, 23)
    rows = session.execute(
        sa.select(ReviewTask, StageInstance.accepted_on).join(StageInstance)
        .where(ReviewTask.status == "in_review", StageInstance.accepted_on.is_not(None))).all()
    overdue = {t.stage_instance_id for t, accepted in rows
               if compute_deadline(calendar, accepted, t.committed_limit_days, []).days_left(calendar, today) < 0}
    assert len(overdue) >= 3


def test_every_sample_project_has_its_history(session):
    without = session.scalar(sa.text(
        "SELECT count(*) FROM projects p WHERE p.code LIKE 'SP-%' AND NOT EXISTS (SELECT 1 FROM events e"
        " WHERE e.project_id = p.id AND e.type = 'stage.submitted')"))
    assert without == 0
    decided = _count(session, Event, Event.type == "review_task.decided")
    assert decided > 0
    assert _count(session, ClockEvent, ClockEvent.kind == "accepted") > 0


def test_project_footprints_stand_on_their_parcels(session):
    far_off = session.scalar(sa.text(
        "SELECT count(*) FROM buildings b JOIN project_parcels pp ON pp.project_id = b.project_id"
        " GROUP BY b.id HAVING NOT bool_or(ST_DWithin(b.geom, (SELECT geom FROM parcels WHERE id = pp.parcel_id), 0))"
        " LIMIT 1"))
    assert not far_off


def test_loading_again_changes_nothing(session, settings):
    before = _count(session, LayerFeature), _count(session, Project), _count(session, Event)
    assert load_sample(session, settings) == {"skipped": True}
    assert (_count(session, LayerFeature), _count(session, Project), _count(session, Event)) == before
