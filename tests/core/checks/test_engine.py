"""The engine: a stored run with every department's results and the layer versions used,
reproduction as of an older version, set-based re-check, overrides, overlaps reported to both
projects, added departments, and the spatial index behind every check query."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
import shapely
import sqlalchemy as sa
from rasterio.transform import from_origin

from gisapproval.checks import zonal
from gisapproval.checks.engine import (
    latest_run,
    override_result,
    recheck_affected,
    reproduce_run,
    resolve_layers,
    run_project_checks,
    run_results,
    vector_statement,
)
from gisapproval.checks.evaluators import Context, LayerRef
from gisapproval.checks.rules import default_rules
from gisapproval.errors import InputError, PermissionDeniedError
from gisapproval.models import (
    Event,
    Layer,
    LayerFeature,
    LayerVersion,
)

X0, Y0 = 431500.0, 2536500.0
RULES = default_rules()


def box(x, y, w, h):
    return shapely.box(x, y, x + w, y + h)


def zone(world, geom, **kw):
    attrs = {"zone_code": "TZ-1", "use_code": "R2", "max_far": 2.5, "max_coverage": 0.3, "height_limit_m": 54.0,
             "min_green_ratio": 0.3}
    attrs.update(kw)
    return world.feature("zoning", shapely.MultiPolygon([geom]), attrs.pop("zone_code"), zone_code=attrs.get(
        "zone_code", "TZ-1"), **attrs)


def small_project(world, buildings=2):
    world.cover()
    parcel = world.parcel(box(X0, Y0, 200, 200))
    project = world.project([parcel])
    zone(world, box(X0 - 50, Y0 - 50, 300, 300))
    made = [world.building(project, box(X0 + 30 + 60 * i, Y0 + 60, 30, 30)) for i in range(buildings)]
    return project, made


def test_a_run_stores_every_departments_results_with_numbers_and_versions(world, session):
    project, buildings = small_project(world)
    run = run_project_checks(session, world.user("applicant1"), project)
    results = [r for r, _ in run_results(session, run)]
    per_building = [r for r in RULES.values() if r.type not in ("zoning_ratio",)]
    assert len(results) == len(per_building) * len(buildings) + 3  # three project-level ratios
    assert {r.rule_id for r in results} == set(RULES)
    departments = {session.get(Layer, 1).department.__class__}  # noqa: F841 (loaded)
    assert {RULES[r.rule_id].department for r in results} >= {"land", "planning", "construction", "fire"}
    assert run.layer_versions["zoning"] == world.number("zoning")
    far = next(r for r in results if r.rule_id == "floor_area_ratio")
    assert far.measured == pytest.approx(sum(b.gfa_m2 for b in buildings) / 40000.0)
    assert far.limit_value == 2.5 and far.unit == "" and "容积率" in far.message_zh and "ratio" in far.message_en
    zoning_version = session.get(Layer, world.layers["zoning"].id).current_version_id
    assert zoning_version in far.layer_version_ids
    # raster rules outside the sample rasters: no data, never pass
    assert {r.outcome for r in results if r.rule_id in ("slope", "flood_depth")} == {"no_data"}
    assert session.scalar(sa.select(sa.func.count()).select_from(Event).where(
        Event.type == "check_run.completed", Event.project_id == project.id)) == 1


def test_a_project_without_buildings_cannot_be_checked(world, session):
    world.cover()
    project = world.project([world.parcel(box(X0, Y0, 100, 100))])
    with pytest.raises(InputError, match="no buildings"):
        run_project_checks(session, None, project)


def test_another_applicant_cannot_self_check_my_project(world, session):
    project, _ = small_project(world, 1)
    with pytest.raises(PermissionDeniedError):
        run_project_checks(session, world.user("applicant2"), project)


def _new_version(world, session, layer_name, changed_feature, **new_attrs):
    """Publish the next version of a layer by hand: the feature changes, everything else stays."""
    layer = session.get(Layer, world.layers[layer_name].id)
    old = session.get(LayerVersion, layer.current_version_id)
    version = LayerVersion(layer_id=layer.id, number=old.number + 1, state="live", source_name="test",
                           checksum="t", count_changed=1)
    session.add(version)
    session.flush()
    changed_feature.valid_to = version.number
    session.add(LayerFeature(layer_id=layer.id, feature_key=changed_feature.feature_key, valid_from=version.number,
                             attrs={**changed_feature.attrs, **new_attrs}, geom=changed_feature.geom,
                             centre_web=changed_feature.centre_web, geom_web=changed_feature.geom_web))
    layer.current_version_id = version.id
    session.flush()
    return old, version


def test_results_reproduce_as_of_an_older_layer_version(world, session):
    world.cover()
    parcel = world.parcel(box(X0, Y0, 100, 100))
    project = world.project([parcel])
    z = zone(world, box(X0 - 50, Y0 - 50, 300, 300), max_far=2.5)
    world.building(project, box(X0 + 20, Y0 + 20, 30, 30), gfa=20000.0, floors=20, height=60)  # FAR 2.0
    first = run_project_checks(session, None, project, purpose="review")
    old, _new = _new_version(world, session, "zoning", z, max_far=1.5)
    now = run_project_checks(session, None, project, purpose="review")
    far = {run.id: next(r for r, _ in run_results(session, run) if r.rule_id == "floor_area_ratio")
           for run in (first, now)}
    assert (far[first.id].outcome, far[first.id].limit_value) == ("pass", 2.5)
    assert (far[now.id].outcome, far[now.id].limit_value) == ("fail", 1.5)
    assert now.changes and any(c["rule_id"] == "floor_area_ratio" and c["after"] == "fail" for c in now.changes)
    again = reproduce_run(session, None, first)
    far_again = next(r for r, _ in run_results(session, again) if r.rule_id == "floor_area_ratio")
    assert (far_again.outcome, far_again.limit_value) == ("pass", 2.5)
    assert again.layer_versions == first.layer_versions
    assert old.id in far_again.layer_version_ids


def test_recheck_affected_is_set_based_and_records_what_changed(world, session):
    world.cover()
    z = zone(world, box(X0 - 50, Y0 - 50, 700, 300), max_far=2.5, height_limit_m=54.0)
    projects = []
    for i in range(3):
        parcel = world.parcel(box(X0 + 200 * i, Y0, 100, 100))
        p = world.project([parcel], status="in_review")
        world.building(p, box(X0 + 200 * i + 20, Y0 + 20, 30, 30), height=50.0, floors=16)
        run_project_checks(session, None, p, purpose="review")
        projects.append(p)
    done = world.project([world.parcel(box(X0 + 600, Y0, 50, 50))], status="approved")
    world.building(done, box(X0 + 610, Y0 + 10, 20, 20))
    _, version = _new_version(world, session, "zoning", z, height_limit_m=45.0)
    version.affected_project_ids = [p.id for p in projects] + [done.id]
    session.flush()
    statements = []
    sa.event.listen(session.connection(), "before_cursor_execute",
                    lambda *a: statements.append(a[2]) if "UNION ALL" in a[2] else None)
    run_ids = recheck_affected(session, version.id)
    assert len(run_ids) == 3 and len(statements) == 1  # one statement evaluates all three projects
    for p in projects:
        run = latest_run(session, p.id)
        assert run.purpose == "recheck" and run.trigger_version_id == version.id
        change = next(c for c in run.changes if c["rule_id"] == "height_limit")
        assert (change["before"], change["after"]) == ("pass", "fail")
        # raster results carried from the previous run
        assert {r.rule_id for r, _ in run_results(session, run)} == set(RULES)
        ev = session.scalar(sa.select(Event).where(Event.type == "check_run.rechecked", Event.project_id == p.id))
        assert ev.payload["layer"] == "zoning" and ev.payload["changed"] >= 1
    assert latest_run(session, done.id) is None  # not in flight: not re-checked


def test_reviewer_override_keeps_the_original(world, session):
    project, _buildings = small_project(world, 1)
    run = run_project_checks(session, None, project, purpose="review")
    result = next(r for r, _ in run_results(session, run) if r.rule_id == "height_limit")
    planner = world.user("planning_reviewer")
    with pytest.raises(InputError, match="reason"):
        override_result(session, planner, result.id, "fail", "  ")
    with pytest.raises(PermissionDeniedError, match="planning"):
        override_result(session, world.user("fire_reviewer"), result.id, "fail", "不同意")
    with pytest.raises(PermissionDeniedError):
        override_result(session, world.user("applicant1"), result.id, "fail", "x")
    o = override_result(session, planner, result.id, "fail", "经现场核实，限高应按新批控规执行")
    (orig, overrides), = [(r, ov) for r, ov in run_results(session, run) if r.id == result.id]
    assert orig.outcome == "pass" and overrides == [o]
    assert o.outcome == "fail" and o.overrides_result_id == orig.id and o.overridden_by_id == planner.id
    assert session.scalar(sa.select(Event.payload).where(Event.type == "check_result.overridden"))["from"] == "pass"


def test_heritage_zone_brings_in_the_heritage_department(world, session):
    project, (b, _) = small_project(world)
    world.feature("heritage_zones", shapely.MultiPolygon([box(X0 + 40, Y0 + 70, 5, 5)]), zone_code="WB-T",
                  name="测试祠堂")
    run = run_project_checks(session, None, project)
    assert run.extra_departments == ["heritage"]
    hit = next(r for r, _ in run_results(session, run) if r.rule_id == "heritage_zone" and r.building_id == b.id)
    assert hit.adds_department == "heritage" and hit.outcome == "warn" and "测试祠堂" in hit.message_zh


def test_overlap_with_another_project_in_flight_is_reported_to_both(world, session):
    world.cover()
    a = world.project([world.parcel(box(X0, Y0, 100, 100))], applicant="applicant1")
    b = world.project([world.parcel(box(X0 + 100, Y0, 100, 100))], applicant="applicant2", status="in_review")
    ba = world.building(a, box(X0 + 80, Y0 + 20, 30, 20))
    bb = world.building(b, box(X0 + 100, Y0 + 20, 30, 20))
    run_a = run_project_checks(session, None, a)
    hit = next(r for r, _ in run_results(session, run_a) if r.rule_id == "project_overlap" and r.building_id == ba.id)
    assert hit.outcome == "warn" and hit.measured == pytest.approx(200.0) and b.code in hit.message_zh
    told = session.scalar(sa.select(Event).where(Event.type == "project.overlap_found", Event.project_id == b.id))
    assert told.payload["with_project"] == a.code
    run_b = run_project_checks(session, None, b, purpose="review")
    hit_b = next(r for r, _ in run_results(session, run_b) if r.rule_id == "project_overlap" and r.building_id == bb.id)
    assert hit_b.outcome == "warn" and a.code in hit_b.message_en


def _plan(session, stmt):
    sql = str(stmt.compile(dialect=session.bind.dialect,
                           compile_kwargs={"render_postcompile": True, "literal_binds": True}))
    session.execute(sa.text("SET LOCAL enable_seqscan = off"))
    session.execute(sa.text("SET LOCAL enable_sort = off"))  # a KNN ORDER BY is answered by the index
    try:
        plan = json.dumps(session.connection().exec_driver_sql("EXPLAIN (FORMAT JSON) " + sql.replace("%", "%%"))
                          .scalar())
        # a layer's partition index stands for the partitioned index of layer_features it belongs to
        for child, parent in session.execute(sa.text(
                "SELECT c.relname, p.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "JOIN pg_class p ON p.oid = i.inhparent WHERE c.relkind = 'i' AND p.relkind = 'I'")):
            plan = plan.replace(f'"{child}"', f'"{parent}"')
        return plan
    finally:
        session.execute(sa.text("SET LOCAL enable_seqscan = on"))
        session.execute(sa.text("SET LOCAL enable_sort = on"))


SPATIAL = {"idx_layer_features_geom", "idx_buildings_geom"}


@pytest.mark.parametrize("rule_id", [r.id for r in RULES.values() if r.kind == "vector"])
def test_every_check_query_can_use_its_index(world, session, rule_id):
    """With sequential scans discouraged, each rule's query reaches layer features through the
    GiST index (spatial search) or, for the project's own parcels, through the key index."""
    project, _ = small_project(world, 2)
    rules = {rule_id: RULES[rule_id]}
    layers = resolve_layers(session, {n for r in RULES.values() for n in r.layers})
    plan = _plan(session, vector_statement(rules.values(), Context([project.id], layers)))
    by_key = RULES[rule_id].type in ("outside_parcels", "boundary_setback")
    if by_key:
        assert "ix_layer_features_key" in plan or "ix_layer_features_live" in plan, plan
    else:
        assert any(ix in plan for ix in SPATIAL), plan


def _raster(tmp_path, values, name):
    path = tmp_path / f"{name}.tif"
    h, w = values.shape
    with rasterio.open(path, "w", driver="GTiff", height=h, width=w, count=1, dtype="float32", crs="EPSG:4547",
                       transform=from_origin(X0, Y0 + h, 1.0, 1.0), nodata=-9999) as dst:
        dst.write(values.astype("float32"), 1)
    zonal.clear_cache()
    return str(path)


@pytest.mark.parametrize("depth,outcome", [(0.49, "pass"), (0.51, "fail")])
def test_flood_depth_zonal_maximum_both_sides(tmp_path, depth, outcome):
    rule = RULES["flood_depth"]
    limit = rule.params["max_value"]
    grid = np.zeros((100, 100))
    grid[40:45, 40:45] = limit + (depth - 0.5)
    ref = LayerRef("flood_depth", 1, 1, 1, _raster(tmp_path, grid, "flood"))
    inside = box(X0 + 30, Y0 + 30, 30, 30)
    (row,) = zonal.raster_max(rule, ref, [(1, 1, inside, True)])
    assert row["measured"] == pytest.approx(limit + depth - 0.5, abs=1e-5)
    assert row["outcome"] == outcome
    assert (row["evidence"] is not None) == (outcome == "fail")


@pytest.mark.parametrize("degrees,outcome", [(24.9, "pass"), (25.1, "fail")])
def test_slope_from_the_dem_both_sides(tmp_path, degrees, outcome):
    rule = RULES["slope"]
    assert rule.params["max_value"] == 25.0
    x = np.arange(100, dtype=float)
    grid = np.tile(x * np.tan(np.radians(degrees)), (100, 1))  # a plane rising eastwards
    ref = LayerRef("dem", 1, 1, 1, _raster(tmp_path, grid, "dem"))
    (row,) = zonal.raster_max(rule, ref, [(1, 1, box(X0 + 30, Y0 + 30, 30, 30), True)])
    assert row["measured"] == pytest.approx(degrees, abs=0.01)
    assert row["outcome"] == outcome
    (outside,) = zonal.raster_max(rule, ref, [(1, 1, box(X0 + 300, Y0 + 30, 30, 30), True)])
    assert outside["outcome"] == "no_data"
