"""Every rule on both sides of its limit, with hand-built geometries on an empty test site.
Limits are read from the rule sets (layers/rules/*.toml), never repeated here."""

from __future__ import annotations

import pytest
import shapely

from gisapproval.checks.rules import default_rules

X0, Y0 = 431500.0, 2536500.0  # inside the empty test site of conftest.py (SITE)


def box(x, y, w, h):
    return shapely.box(x, y, x + w, y + h)


RULES = default_rules()


def tier(tiers, height):
    return next(t["setback_m"] for t in tiers if height <= t["up_to_height_m"])


def site_with_parcel(world, size=200.0, **kw):
    world.cover()
    parcel = world.parcel(box(X0, Y0, size, size), **kw)
    return parcel, world.project([parcel])


# --- planning: road red line setback ---------------------------------------------------------

@pytest.mark.parametrize("delta,outcome", [(-0.1, "fail"), (0.0, "pass"), (0.1, "pass")])
def test_road_setback_both_sides_of_the_required_distance(world, delta, outcome):
    _, project = site_with_parcel(world)
    height = 30.0
    required = tier(RULES["road_setback"].params["setbacks"]["arterial"], height)
    # the red line's edge runs along y = Y0; the building stands `required + delta` north of it
    world.feature("road_redlines", shapely.MultiPolygon([box(X0 - 50, Y0 - 40, 400, 40)]), road_id="TR1",
                  road_class="arterial", width_m=40.0)
    b = world.building(project, box(X0 + 20, Y0 + required + delta, 30, 20), height=height, floors=10)
    row = world.one(project, "road_setback", b)
    assert row["outcome"] == outcome
    assert row["measured"] == pytest.approx(required + delta, abs=1e-6)
    assert row["limit_value"] == required
    assert row["evidence"] is not None  # the shortest line to the red line


def test_road_setback_depends_on_height_and_class(world):
    _, project = site_with_parcel(world)
    world.feature("road_redlines", shapely.MultiPolygon([box(X0 - 50, Y0 - 20, 400, 20)]), road_id="TR2",
                  road_class="branch", width_m=20.0)
    low = world.building(project, box(X0 + 10, Y0 + 4, 20, 20), height=12.0, floors=4)
    tall = world.building(project, box(X0 + 100, Y0 + 4, 20, 20), height=60.0, floors=20)
    rows = world.check(project, "road_setback")
    tiers = RULES["road_setback"].params["setbacks"]["branch"]
    assert rows[("road_setback", low.id)]["limit_value"] == tier(tiers, 12.0)
    assert rows[("road_setback", tall.id)]["limit_value"] == tier(tiers, 60.0)
    assert tier(tiers, 60.0) > 4 >= tier(tiers, 12.0) or tier(tiers, 12.0) > 4
    assert rows[("road_setback", tall.id)]["outcome"] == "fail"


# --- planning: parcel boundary setback ------------------------------------------------------

@pytest.mark.parametrize("delta,outcome", [(-0.1, "fail"), (0.1, "pass")])
def test_boundary_setback_both_sides(world, delta, outcome):
    _, project = site_with_parcel(world)
    required = tier(RULES["boundary_setback"].params["tiers"], 18.0)
    b = world.building(project, box(X0 + required + delta, Y0 + 50, 30, 30), height=18.0, floors=6)
    row = world.one(project, "boundary_setback", b)
    assert (row["outcome"], row["measured"]) == (outcome, pytest.approx(required + delta, abs=1e-6))


# --- land: containment, land use, holder ------------------------------------------------------

def test_parcel_containment_measures_the_area_outside(world):
    _, project = site_with_parcel(world, size=100.0)
    tol = RULES["parcel_containment"].params["tolerance_m2"]
    inside = world.building(project, box(X0 + 10, Y0 + 10, 20, 20))
    # 0.5 m wide strip sticking out of the parcel: 0.5 x 20 = 10 m² outside
    out = world.building(project, box(X0 + 100 - 19.5, Y0 + 40, 20, 20))
    rows = world.check(project, "parcel_containment")
    assert rows[("parcel_containment", inside.id)]["outcome"] == "pass"
    assert rows[("parcel_containment", inside.id)]["measured"] == pytest.approx(0)
    r = rows[("parcel_containment", out.id)]
    assert r["measured"] == pytest.approx(10.0) and 10.0 > tol
    assert r["outcome"] == "fail" and shapely.from_wkb(bytes(r["evidence"].data)).area == pytest.approx(10.0)


def test_footprint_across_two_of_the_project_parcels_is_inside(world):
    world.cover()
    a = world.parcel(box(X0, Y0, 100, 100))
    b = world.parcel(box(X0 + 100, Y0, 100, 100))
    project = world.project([a, b])
    bld = world.building(project, box(X0 + 80, Y0 + 40, 40, 20))
    rows = world.check(project, "parcel_containment", "boundary_setback", "parcel_land_use")
    assert rows[("parcel_containment", bld.id)]["outcome"] == "pass"
    # the shared boundary of the two parcels is not a boundary of the site
    assert rows[("boundary_setback", bld.id)]["measured"] == pytest.approx(40.0)
    assert len(rows[("parcel_land_use", bld.id)]["details"]["parcels"]) == 2


def test_parcel_land_use_and_holder(world):
    world.cover()
    ok = world.parcel(box(X0, Y0, 100, 100), land_use="R2")
    industrial = world.parcel(box(X0 + 100, Y0, 100, 100), land_use="M1")
    other_holder = world.parcel(box(X0 + 200, Y0, 100, 100), land_use="R2", holder="别人的公司")
    project = world.project([ok, industrial, other_holder])
    fine = world.building(project, box(X0 + 10, Y0 + 10, 20, 20), use="residential")
    wrong_use = world.building(project, box(X0 + 110, Y0 + 10, 20, 20), use="residential")
    not_held = world.building(project, box(X0 + 210, Y0 + 10, 20, 20), use="residential")
    rows = world.check(project, "parcel_land_use")
    assert rows[("parcel_land_use", fine.id)]["outcome"] == "pass"
    assert rows[("parcel_land_use", wrong_use.id)]["outcome"] == "fail"
    assert rows[("parcel_land_use", wrong_use.id)]["measured"] == pytest.approx(400.0)
    assert rows[("parcel_land_use", not_held.id)]["outcome"] == "warn"


# --- overlaps: farmland, eco red line, hazard, heritage -----------------------------------------

@pytest.mark.parametrize("rule_id,layer,attrs", [
    ("farmland_overlap", "basic_farmland", {"farmland_code": "T", "area_m2": 1.0}),
    ("eco_redline_overlap", "eco_redline", {"redline_code": "T", "name": "测试红线"}),
    ("geohazard", "hazard_zones", {"zone_code": "T", "hazard_type": "landslide", "risk_level": "high"}),
    ("heritage_zone", "heritage_zones", {"zone_code": "T", "name": "测试文物"}),
])
def test_overlap_rules_touching_passes_overlapping_is_measured(world, rule_id, layer, attrs):
    _, project = site_with_parcel(world)
    world.feature(layer, shapely.MultiPolygon([box(X0 + 100, Y0 + 100, 50, 50)]), **attrs)
    touching = world.building(project, box(X0 + 70, Y0 + 100, 30, 30))       # shares an edge only
    overlapping = world.building(project, box(X0 + 149, Y0 + 149, 20, 20))    # 1 m x 1 m inside
    rows = world.check(project, rule_id)
    assert rows[(rule_id, touching.id)]["outcome"] == "pass"
    r = rows[(rule_id, overlapping.id)]
    assert r["measured"] == pytest.approx(1.0)
    assert r["outcome"] == RULES[rule_id].severity
    assert r["details"]["share"] == pytest.approx(1.0 / 400.0)


def test_medium_risk_hazard_zone_is_not_the_high_risk_check(world):
    _, project = site_with_parcel(world)
    world.feature("hazard_zones", shapely.MultiPolygon([box(X0 + 100, Y0 + 100, 50, 50)]), zone_code="M",
                  hazard_type="collapse", risk_level="medium")
    b = world.building(project, box(X0 + 110, Y0 + 110, 20, 20))
    assert world.one(project, "geohazard", b)["outcome"] == "pass"


# --- planning: zoning use, FAR, coverage, height ---------------------------------------------

def zone(world, geom, use_code="R2", max_far=2.5, max_coverage=0.3, height_limit_m=54.0, min_green_ratio=0.3):
    return world.feature("zoning", shapely.MultiPolygon([geom]), zone_code=f"TZ-{use_code}", use_code=use_code,
                         max_far=max_far, max_coverage=max_coverage, height_limit_m=height_limit_m,
                         min_green_ratio=min_green_ratio)


def test_zoning_use_compatibility(world):
    _, project = site_with_parcel(world)
    zone(world, box(X0, Y0, 100, 200), use_code="R2")
    zone(world, box(X0 + 100, Y0, 100, 200), use_code="M1")
    home = world.building(project, box(X0 + 10, Y0 + 10, 20, 20), use="residential")
    home_in_industry = world.building(project, box(X0 + 110, Y0 + 10, 20, 20), use="residential")
    factory = world.building(project, box(X0 + 150, Y0 + 100, 20, 20), use="industrial", height=12, floors=2)
    rows = world.check(project, "zoning_use")
    assert rows[("zoning_use", home.id)]["outcome"] == "pass"
    assert rows[("zoning_use", home_in_industry.id)]["outcome"] == "fail"
    assert rows[("zoning_use", home_in_industry.id)]["measured"] == pytest.approx(400.0)
    assert rows[("zoning_use", factory.id)]["outcome"] == "pass"


@pytest.mark.parametrize("factor,outcome", [(1.0, "pass"), (1.001, "fail"), (0.999, "pass")])
def test_floor_area_ratio_exactly_at_the_limit_passes(world, factor, outcome):
    _, project = site_with_parcel(world, size=100.0)  # 10,000 m²
    zone(world, box(X0 - 10, Y0 - 10, 120, 120), max_far=2.5)
    world.building(project, box(X0 + 20, Y0 + 20, 30, 30), gfa=12500.0 * factor, floors=14, height=42)
    world.building(project, box(X0 + 60, Y0 + 60, 30, 30), gfa=12500.0 * factor, floors=14, height=42)
    row = world.one(project, "floor_area_ratio")
    assert row["measured"] == pytest.approx(2.5 * factor)
    assert (row["limit_value"], row["outcome"]) == (2.5, outcome)


@pytest.mark.parametrize("side,outcome", [(54.0, "pass"), (54.1, "fail")])
def test_building_coverage_both_sides(world, side, outcome):
    _, project = site_with_parcel(world, size=100.0)
    zone(world, box(X0 - 10, Y0 - 10, 120, 120), max_coverage=0.3)
    # 54 x 54 = 2916 m² is 0.2916 of the parcel; 54.78 would be 0.3
    width = 0.3 * 10000 / side if outcome == "pass" else 0.3001 * 10000 / side
    world.building(project, box(X0 + 20, Y0 + 20, side, width))
    row = world.one(project, "building_coverage")
    assert row["outcome"] == outcome
    assert row["limit_value"] == 0.3


def test_green_ratio_without_declared_green_area_is_not_applicable_never_pass(world):
    _, project = site_with_parcel(world)
    zone(world, box(X0 - 10, Y0 - 10, 220, 220))
    world.building(project, box(X0 + 20, Y0 + 20, 30, 30))
    assert world.one(project, "green_ratio")["outcome"] == "not_applicable"


@pytest.mark.parametrize("height,outcome", [(54.0, "pass"), (54.1, "fail")])
def test_height_limit_both_sides(world, height, outcome):
    _, project = site_with_parcel(world)
    zone(world, box(X0 - 10, Y0 - 10, 220, 220), height_limit_m=54.0)
    b = world.building(project, box(X0 + 20, Y0 + 20, 30, 30), height=height, floors=18)
    row = world.one(project, "height_limit", b)
    assert (row["measured"], row["limit_value"], row["outcome"]) == (height, 54.0, outcome)


# --- fire ---------------------------------------------------------------------------------

@pytest.mark.parametrize("delta,outcome", [(-0.1, "pass"), (0.1, "fail")])
def test_fire_station_service_distance(world, delta, outcome):
    _, project = site_with_parcel(world)
    limit = RULES["fire_station_distance"].params["max_distance_m"]
    b = world.building(project, box(X0 + 20, Y0 + 20, 30, 30))
    # a station due west of the building's west edge
    world.feature("fire_stations", shapely.Point(X0 + 20 - limit - delta, Y0 + 35), station_id="TS", name="测试站",
                  station_class="standard")
    row = world.one(project, "fire_station_distance", b)
    assert row["measured"] == pytest.approx(limit + delta, abs=1e-6)
    assert row["outcome"] == outcome


@pytest.mark.parametrize("delta,outcome", [(-0.1, "pass"), (0.1, "fail")])
def test_fire_access_distance_to_a_road(world, delta, outcome):
    _, project = site_with_parcel(world)
    limit = RULES["fire_access"].params["max_distance_m"]
    b = world.building(project, box(X0 + 20, Y0 + 20, 30, 30))
    world.feature("roads", shapely.MultiLineString([[(X0 + 20 - limit - delta, Y0 - 500),
                                                     (X0 + 20 - limit - delta, Y0 + 500)]]),
                  road_id="TR", name="测试路", road_class="branch", width_m=20.0)
    row = world.one(project, "fire_access", b)
    assert row["measured"] == pytest.approx(limit + delta, abs=1e-6)
    assert row["outcome"] == outcome


FIRE = RULES["fire_separation"].params


@pytest.mark.parametrize("mine,theirs,required", [
    ((60.0, "residential"), (60.0, "residential"), FIRE["high_high_m"]),
    ((60.0, "office"), (15.0, "office"), FIRE["high_other_m"]),
    ((15.0, "office"), (15.0, "office"), FIRE["other_other_m"]),
    # residential at exactly 27 m is not high-rise; other buildings above 24 m are
    ((FIRE["high_rise_residential_above_m"], "residential"), (15.0, "office"), FIRE["other_other_m"]),
    ((FIRE["high_rise_other_above_m"] + 0.1, "office"), (15.0, "office"), FIRE["high_other_m"]),
])
@pytest.mark.parametrize("delta", [-0.1, 0.1])
def test_fire_separation_gb50016_table(world, mine, theirs, required, delta):
    _, project = site_with_parcel(world)
    b = world.building(project, box(X0 + 50, Y0 + 50, 30, 30), height=mine[0], floors=max(1, int(mine[0] // 3)),
                       use=mine[1])
    world.feature("existing_buildings", shapely.MultiPolygon([box(X0 + 80 + required + delta, Y0 + 50, 20, 20)]),
                  building_id="TB", height_m=theirs[0], floors=max(1, int(theirs[0] // 3)), use=theirs[1])
    row = world.one(project, "fire_separation", b)
    assert row["limit_value"] == required
    assert row["measured"] == pytest.approx(required + delta, abs=1e-6)
    assert row["outcome"] == ("fail" if delta < 0 else "pass")


def test_fire_separation_between_the_projects_own_buildings(world):
    _, project = site_with_parcel(world)
    a = world.building(project, box(X0 + 50, Y0 + 50, 30, 30), height=15, floors=5, use="office")
    world.building(project, box(X0 + 80 + FIRE["other_other_m"] - 1, Y0 + 50, 30, 30), height=15, floors=5,
                   use="office")
    row = world.one(project, "fire_separation", a)
    assert row["outcome"] == "fail" and row["details"]["own_building"] is True


# --- no data is not a pass ------------------------------------------------------------------

VECTOR = [r for r in RULES.values() if r.kind == "vector" and r.layers]


@pytest.mark.parametrize("rule_id", [r.id for r in VECTOR])
def test_outside_a_layers_coverage_is_no_data(world, rule_id):
    parcel = world.parcel(box(X0, Y0, 200, 200))  # the site is NOT covered
    project = world.project([parcel])
    b = world.building(project, box(X0 + 20, Y0 + 20, 30, 30))
    rows = world.check(project, rule_id)
    row = rows.get((rule_id, b.id)) or rows[(rule_id, None)]
    assert row["outcome"] == "no_data"


def test_raster_rules_outside_the_raster_are_no_data(world):
    _, project = site_with_parcel(world)
    b = world.building(project, box(X0 + 20, Y0 + 20, 30, 30))
    rows = world.check(project, "slope", "flood_depth")
    assert rows[("slope", b.id)]["outcome"] == "no_data"
    assert rows[("flood_depth", b.id)]["outcome"] == "no_data"
