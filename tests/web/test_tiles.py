"""Vector tiles over HTTP: contents by viewer, aggregation below the parcel zooms, size, ETags,
layers as of a version, footprints of overlapping in-flight projects."""

from __future__ import annotations

import datetime as dt
import math

import mapbox_vector_tile
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from gisapproval.audit import record_event
from gisapproval.layerversions import partition_name
from gisapproval.mapdata import STATUS_CATEGORY, STATUS_PRIORITY
from gisapproval.models import Building, Layer, LayerFeature, LayerVersion, Parcel, Project, User, project_parcels
from gisapproval.tiles import TileAddress, load_tile_settings

SETTINGS = load_tile_settings()


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    n = 1 << z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return z, x, y


def get_tile(client, kind: str, z: int, x: int, y: int, query: str = "", **headers):
    return client.get(f"/tiles/{kind}/{z}/{x}/{y}.pbf{query}", headers=headers)


def decode(response) -> dict:
    assert response.status_code == 200, response.status_code
    assert response.mimetype == "application/vnd.mapbox-vector-tile"
    return mapbox_vector_tile.decode(response.data)


def features(tile: dict, layer: str) -> list[dict]:
    return tile.get(layer, {}).get("features", [])


def _point_on(conn, where_sql: str, **params) -> tuple[float, float, int]:
    row = conn.execute(sa.text(
        "SELECT ST_X(p), ST_Y(p), id FROM (SELECT pa.id, ST_Transform(ST_PointOnSurface(pa.geom), 4326) p "
        f"FROM parcels pa WHERE {where_sql} ORDER BY pa.id LIMIT 1) s"), params).one()
    return row[0], row[1], row[2]


def _expected_categories(conn, scope: str, user_id: int | None = None) -> dict[int, str]:
    """parcel id -> category of the project shown on it, computed independently of the tile query."""
    rows = conn.execute(
        sa.select(project_parcels.c.parcel_id, Project.status, Project.applicant_id)
        .join(Project, Project.id == project_parcels.c.project_id).where(Project.status != "withdrawn")).all()
    best: dict[int, str] = {}
    for parcel_id, status, applicant_id in rows:
        if scope == "staff" and status == "draft":
            continue
        if scope == "applicant" and applicant_id != user_id:
            continue
        if scope == "public" and status not in ("approved", "completed"):
            continue
        if parcel_id not in best or STATUS_PRIORITY[status] < STATUS_PRIORITY[best[parcel_id]]:
            best[parcel_id] = status
    return {pid: STATUS_CATEGORY[s] for pid, s in best.items()}


def _ids_in_envelope(conn, address: TileAddress, margin_units: int = 0) -> set[int]:
    minx, miny, maxx, maxy = address.bounds_3857()
    m = address.width_m * margin_units / SETTINGS.extent
    return set(conn.scalars(sa.text(
        "SELECT id FROM parcels WHERE NOT is_retired AND "
        "ST_Intersects(ST_GeomFromEWKB(geom_web), ST_MakeEnvelope(:a, :b, :c, :d, 3857))"),
        {"a": minx - m, "b": miny - m, "c": maxx + m, "d": maxy + m}))


def test_a_parcel_zoom_tile_holds_every_parcel_with_its_category(client, web, web_db):
    web.login(client, "supervisor")
    with web_db.connect() as conn:
        lon, lat, _ = _point_on(conn, "pa.id IN (SELECT parcel_id FROM project_parcels)")
        z, x, y = tile_of(lon, lat, SETTINGS.parcel_min_zoom)
        inside = _ids_in_envelope(conn, TileAddress(z, x, y))
        near = _ids_in_envelope(conn, TileAddress(z, x, y), SETTINGS.buffer + 1)
        expected = _expected_categories(conn, "staff")
    got = {f["id"]: f["properties"] for f in features(decode(get_tile(client, "parcels", z, x, y)), "parcels")}
    assert inside and inside <= set(got) <= near
    coloured = [pid for pid in got if pid in expected]
    assert coloured, "the tile was chosen on a project parcel"
    for pid, props in got.items():
        assert props["category"] == expected.get(pid, "none")
        assert props["parcel_id"] == pid and props["parcel_code"]
        assert ("project_code" in props) == (pid in expected)
        assert "holder" not in props  # tiles carry no personal data


@pytest.mark.parametrize("scope,username", [("applicant", "applicant1"), ("applicant", "applicant2"),
                                            ("public", None)])
def test_tiles_show_a_viewer_only_the_projects_they_may_see(client, web, web_db, scope, username):
    with web_db.connect() as conn:
        user_id = conn.scalar(sa.select(User.id).where(User.username == username)) if username else None
        expected = _expected_categories(conn, scope, user_id)
        staff = _expected_categories(conn, "staff")
        others = set(staff) - set(expected)
        assert others, "there are parcels with projects this viewer may not see"
        pid = min(others)
        lon, lat, _ = _point_on(conn, "pa.id = :pid", pid=pid)
    if username:
        web.login(client, username)
    z, x, y = tile_of(lon, lat, 16)
    got = {f["id"]: f["properties"] for f in features(decode(get_tile(client, "parcels", z, x, y)), "parcels")}
    assert got[pid]["category"] == "none" and "project_code" not in got[pid]
    for parcel_id, props in got.items():
        assert props["category"] == expected.get(parcel_id, "none")


def test_below_the_parcel_zooms_parcels_are_aggregated_and_tiles_stay_small(client, web, web_db):
    web.login(client, "supervisor")
    with web_db.connect() as conn:
        total = conn.scalar(sa.select(sa.func.count()).select_from(Parcel).where(Parcel.is_retired.is_(False)))
        west, south, east, north = conn.execute(sa.text(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
            "(SELECT ST_Transform(ST_SetSRID(ST_Extent(geom)::geometry, ST_SRID(min(geom))), 4326) e FROM parcels) s"
        )).one()
        expected = _expected_categories(conn, "staff")
    z = SETTINGS.min_zoom
    _, x0, y0 = tile_of(west, north, z)
    _, x1, y1 = tile_of(east, south, z)
    cells_total, project_parcels_seen = 0, set()
    for x in range(x0, x1 + 1):
        for y in range(y0, y1 + 1):
            response = get_tile(client, "parcels", z, x, y)
            assert len(response.data) < SETTINGS.max_tile_kb * 1024
            tile = decode(response)
            cells_total += sum(f["properties"]["parcels"] for f in features(tile, "cells"))
            for f in features(tile, "parcels"):
                assert f["properties"]["category"] != "none"  # only parcels with a project, drawn whole
                project_parcels_seen.add(f["id"])
    assert cells_total >= total  # every parcel counted (edge parcels may count in two tiles)
    assert project_parcels_seen == set(expected)


def test_etag_answers_304_and_changes_when_a_stage_changes(client, web, web_db):
    web.login(client, "supervisor")
    with web_db.connect() as conn:
        lon, lat, _ = _point_on(conn, "TRUE")
    z, x, y = tile_of(lon, lat, 15)
    first = get_tile(client, "parcels", z, x, y)
    etag = first.headers["ETag"]
    assert "no-cache" in first.headers["Cache-Control"] and "private" in first.headers["Cache-Control"]
    again = get_tile(client, "parcels", z, x, y, **{"If-None-Match": etag})
    assert again.status_code == 304 and not again.data
    with Session(web_db) as s:  # what a stage decision writes: an audit event on the project
        project = s.scalar(sa.select(Project).where(Project.status == "in_review").limit(1))
        record_event(s, None, "stage.test_changed", project, {"test": True}, project_id=project.id)
        s.commit()
    changed = get_tile(client, "parcels", z, x, y, **{"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    # logging in (an audit event that changes nothing on the map) leaves it alone
    etag = changed.headers["ETag"]
    web.login(client, "supervisor")
    assert get_tile(client, "parcels", z, x, y, **{"If-None-Match": etag}).status_code == 304


def test_etag_changes_when_a_layer_gets_a_new_current_version(client, web, web_db):
    web.login(client, "supervisor")
    with web_db.connect() as conn:
        lon, lat, _ = _point_on(conn, "TRUE")
    z, x, y = tile_of(lon, lat, 15)
    before = get_tile(client, "layers/zoning", z, x, y).headers["ETag"]
    parcels_before = get_tile(client, "parcels", z, x, y).headers["ETag"]
    with Session(web_db) as s:
        layer = s.scalar(sa.select(Layer).where(Layer.name == "zoning"))
        old = layer.current_version_id
        current = s.get(LayerVersion, old)
        newer = LayerVersion(layer_id=layer.id, number=current.number + 100, state="live", source_name="test",
                             checksum="0" * 64)
        s.add(newer)
        s.flush()
        layer.current_version_id = newer.id
        s.commit()
        try:
            assert get_tile(client, "layers/zoning", z, x, y).headers["ETag"] != before
            assert get_tile(client, "parcels", z, x, y).headers["ETag"] != parcels_before
        finally:
            layer.current_version_id = old
            s.delete(newer)
            s.commit()


def test_layer_tiles_hold_the_features_of_the_version(client, web, web_db):
    web.login(client, "land_editor")
    with web_db.connect() as conn:
        layer_id, number = conn.execute(sa.select(Layer.id, LayerVersion.number).join(
            LayerVersion, LayerVersion.id == Layer.current_version_id).where(Layer.name == "zoning")).one()
        lon, lat = conn.execute(sa.text(
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_Transform(ST_PointOnSurface(geom), 4326) p FROM layer_features "
            "WHERE layer_id = :l AND valid_to IS NULL ORDER BY id LIMIT 1) s"), {"l": layer_id}).one()
        z, x, y = tile_of(lon, lat, 15)
        minx, miny, maxx, maxy = TileAddress(z, x, y).bounds_3857()
        inside = set(conn.scalars(sa.select(LayerFeature.id).where(
            LayerFeature.layer_id == layer_id, LayerFeature.valid_from <= number,
            sa.or_(LayerFeature.valid_to.is_(None), LayerFeature.valid_to > number),
            sa.func.ST_Intersects(sa.func.ST_GeomFromEWKB(LayerFeature.geom_web),
                                  sa.func.ST_MakeEnvelope(minx, miny, maxx, maxy, 3857)))))
    for query in ("", f"?version={number}"):
        got = features(decode(get_tile(client, "layers/zoning", z, x, y, query)), "features")
        ids = {f["id"] for f in got}
        assert inside and inside <= ids
        assert all(f["properties"]["feature_key"] for f in got)
        assert any(len(f["properties"]) > 1 for f in got), "attributes travel in the tile"
    assert get_tile(client, "layers/zoning", z, x, y, "?version=999").status_code == 404
    assert get_tile(client, "layers/nosuchlayer", z, x, y).status_code == 404
    assert get_tile(client, "layers/dem", z, x, y).status_code == 422  # a raster has no vector tiles
    assert get_tile(client, "layers/zoning", z, x, y, "?version=abc").status_code == 422
    client.post("/logout", data={"csrf_token": web.csrf_token(client.get("/map").get_data(as_text=True))})
    anonymous = get_tile(client, "layers/zoning", z, x, y)
    assert anonymous.status_code == 401


@pytest.mark.parametrize("z,x,y", [(SETTINGS.min_zoom - 1, 0, 0), (SETTINGS.max_zoom + 1, 0, 0), (12, 4096, 0),
                                   (12, 0, 5000)])
def test_tile_addresses_outside_the_served_range_are_refused(client, web, z, x, y):
    web.login(client, "supervisor")
    assert get_tile(client, "parcels", z, x, y).status_code == 422


@pytest.fixture
def overlapping_projects(web_db):
    """Two in-review projects whose footprints overlap, and a third, approved, overlapping both."""
    with Session(web_db) as s:
        applicant = s.scalar(sa.select(User).where(User.username == "applicant1"))
        centre = s.execute(sa.text("SELECT ST_X(c), ST_Y(c), ST_SRID(geom) FROM "
                                   "(SELECT ST_Centroid(geom) c, geom FROM parcels ORDER BY id LIMIT 1) s")).one()
        cx, cy, srid = centre
        codes = {"TEST-OVL-A": ("in_review", 0), "TEST-OVL-B": ("in_correction", 10), "TEST-OVL-C": ("approved", 5)}
        ids = {}
        for code, (status, dx) in codes.items():
            project = Project(code=code, name=f"重叠 {code}", applicant_id=applicant.id, applicant_org="测试",
                              status=status, current_stage=1)
            s.add(project)
            s.flush()
            square = sa.func.ST_Multi(sa.func.ST_MakeEnvelope(cx + dx, cy, cx + dx + 20, cy + 20, srid))
            s.execute(sa.insert(Building).values(project_id=project.id, name="1#", height_m=10, floors=3, gfa_m2=900,
                                                 use="office", geom=square))
            ids[code] = project.id
        s.commit()
    yield (cx, cy, srid)
    with Session(web_db) as s:
        s.execute(sa.delete(Project).where(Project.id.in_(ids.values())))
        s.commit()


def test_footprints_of_overlapping_in_flight_projects_are_flagged(client, web, web_db, overlapping_projects):
    web.login(client, "supervisor")
    cx, cy, srid = overlapping_projects
    with web_db.connect() as conn:
        lon, lat = conn.execute(sa.text("SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_Transform(ST_SetSRID("
                                        "ST_MakePoint(:x, :y), :s), 4326) p) q"), {"x": cx + 10, "y": cy + 10,
                                                                                   "s": srid}).one()
    z, x, y = tile_of(lon, lat, 17)
    got = {f["properties"]["project_code"]: f["properties"]
           for f in features(decode(get_tile(client, "footprints", z, x, y)), "footprints")}
    assert got["TEST-OVL-A"]["is_overlapping"] is True
    assert got["TEST-OVL-B"]["is_overlapping"] is True
    assert got["TEST-OVL-C"]["is_overlapping"] is False  # approved: not in flight
    assert got["TEST-OVL-A"]["category"] == "in_review"
    pairs = client.get("/api/map/overlaps").get_json()
    pair = next(p for p in pairs if {p["a"], p["b"]} == {"TEST-OVL-A", "TEST-OVL-B"})
    assert pair["overlap_m2"] == pytest.approx(200.0, abs=0.5)  # 10 m x 20 m
    assert not any("TEST-OVL-C" in (p["a"], p["b"]) for p in pairs)
    page = client.get("/map").get_data(as_text=True)
    assert "TEST-OVL-A ↔ TEST-OVL-B" in page or "TEST-OVL-B ↔ TEST-OVL-A" in page
    # the applicant of both sees the pair; another applicant sees neither footprint nor pair
    web.login(client, "applicant2")
    assert not any(f["properties"]["project_code"].startswith("TEST-OVL")
                   for f in features(decode(get_tile(client, "footprints", z, x, y)), "footprints"))
    assert client.get("/api/map/overlaps").get_json() == []


def test_parcels_carry_the_days_left_colour_of_their_project(client, web, web_db):
    web.login(client, "supervisor")
    with web_db.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT DISTINCT ON (p.id) pp.parcel_id, p.code FROM projects p "
            "JOIN project_parcels pp ON pp.project_id = p.id "
            "JOIN stage_instances s ON s.project_id = p.id AND s.stage = p.current_stage "
            "JOIN review_tasks t ON t.stage_instance_id = s.id "
            "WHERE p.status IN ('submitted', 'in_review', 'in_correction') AND s.accepted_on IS NOT NULL "
            "AND t.status IN ('pending', 'in_review', 'correction_requested') ORDER BY p.id, pp.parcel_id")).all()
        assert rows, "the sample has projects under review"
        points = {pid: _point_on(conn, "pa.id = :p", p=pid)[:2] for pid, _code in rows}
    severity = ("red", "yellow", "green", "stopped")
    seen = set()
    for parcel_id, code in rows:
        details = client.get(f"/api/map/parcels/{parcel_id}").get_json()
        project = next(p for p in details["projects"] if p["code"] == code)
        colours = [t["colour"] for t in project["tasks"] if t["colour"]]
        lon, lat = points[parcel_id]
        tile = decode(get_tile(client, "parcels", *tile_of(lon, lat, 16)))
        props = next(f["properties"] for f in features(tile, "parcels") if f["id"] == parcel_id)
        if props.get("project_code") != code:
            continue  # another, livelier project is shown on this parcel
        assert props.get("clock") == min(colours, key=severity.index), (code, props, colours)
        seen.add(props["clock"])
    assert seen


def _staff_only_parcel(conn) -> tuple[int, tuple[int, int, int]]:
    """A parcel whose shown project staff see and the public does not, and its z16 tile."""
    staff, public = _expected_categories(conn, "staff"), _expected_categories(conn, "public")
    pid = min(p for p in staff if p not in public)
    lon, lat, _ = _point_on(conn, "pa.id = :pid", pid=pid)
    return pid, tile_of(lon, lat, 16)


def by_id(response) -> dict[int, dict]:
    """The parcels of a tile response: id -> properties (the order of features in a tile is not fixed)."""
    return {f["id"]: f["properties"] for f in features(decode(response), "parcels")}


def _category(client, pid: int, address) -> str:
    tile = decode(get_tile(client, "parcels", *address))
    return next(f["properties"]["category"] for f in features(tile, "parcels") if f["id"] == pid)


@pytest.mark.parametrize("change", ["deactivated", "password changed"])
def test_a_session_of_a_user_deactivated_or_with_a_new_password_gets_no_staff_tiles(client, web, web_db, change):
    """The tile statement checks the user the cookie names; a stale cookie falls back to the public view."""
    with web_db.connect() as conn:
        pid, address = _staff_only_parcel(conn)
    web.login(client, "supervisor")
    staff_category = _category(client, pid, address)
    assert staff_category != "none"
    column = "is_active" if change == "deactivated" else "password_hash"
    with web_db.begin() as conn:
        old = conn.scalar(sa.text(f"SELECT {column} FROM users WHERE username = 'supervisor'"))
        conn.execute(sa.text(f"UPDATE users SET {column} = :v WHERE username = 'supervisor'"),
                     {"v": False if change == "deactivated" else old + "x"})
    try:
        assert _category(client, pid, address) == "none"
        assert get_tile(client, "layers/zoning", *address).status_code == 401
    finally:
        with web_db.begin() as conn:
            conn.execute(sa.text(f"UPDATE users SET {column} = :v WHERE username = 'supervisor'"), {"v": old})


def test_a_reviewer_who_lost_their_roles_sees_only_their_own_projects_and_the_cookie_follows(client, web, web_db):
    with web_db.connect() as conn:
        pid, address = _staff_only_parcel(conn)
        user_id = conn.scalar(sa.select(User.id).where(User.username == "planning_reviewer"))
    web.login(client, "planning_reviewer")
    assert _category(client, pid, address) != "none"
    with client.session_transaction() as session:
        assert session["sees_all"] is True
    with web_db.begin() as conn:
        roles = conn.execute(sa.text("DELETE FROM user_roles WHERE user_id = :u RETURNING role"), {"u": user_id}).scalars().all()
    try:
        assert _category(client, pid, address) == "none"
        with client.session_transaction() as session:
            assert session["sees_all"] is False
    finally:
        with web_db.begin() as conn:
            conn.execute(sa.text("INSERT INTO user_roles (user_id, role) VALUES (:u, :r)"),
                         [{"u": user_id, "r": r} for r in roles])


def test_a_session_from_before_the_scope_was_kept_gets_the_same_tiles(client, web, web_db):
    with web_db.connect() as conn:
        pid, address = _staff_only_parcel(conn)
    web.login(client, "supervisor")
    expected = get_tile(client, "parcels", *address)
    with client.session_transaction() as session:
        del session["sees_all"]
    again = get_tile(client, "parcels", *address)
    assert again.headers["ETag"] == expected.headers["ETag"], "the same map state, scope and tile"
    assert by_id(again) == by_id(expected)
    with client.session_transaction() as session:
        assert session["sees_all"] is True


def test_tiles_do_not_resend_the_session_cookie_but_pages_do(client, web):
    web.login(client, "supervisor")
    assert "Set-Cookie" not in get_tile(client, "parcels", 16, 53407, 28462).headers
    assert "Set-Cookie" in client.get("/api/me").headers


def test_the_etag_computed_in_sql_is_the_documented_one(client, web, web_db):
    from gisapproval.tiles import map_state, tile_etag

    web.login(client, "supervisor")
    with web_db.connect() as conn:
        _pid, (z, x, y) = _staff_only_parcel(conn)
        first = get_tile(client, "parcels", z, x, y)  # computes the days-left colours for this state
        state = map_state(conn)
    etag = tile_etag(state, "all", "parcels", z, x, y, dt.date.today(), state)
    assert first.headers["ETag"] == f'"{etag}"'


def test_tiles_survive_the_server_dropping_their_connections(app, client, web, web_db):
    """The tile connections are not pinged before use: a dropped one is noticed on use and the
    statement runs again on a new connection, whatever else the pool held."""
    from contextlib import ExitStack

    from web.db import EXTENSION_KEY

    with web_db.connect() as conn:
        pid, address = _staff_only_parcel(conn)
    web.login(client, "supervisor")
    before = get_tile(client, "parcels", *address)
    reader = app.extensions[EXTENSION_KEY].reader
    with ExitStack() as stack:  # three connections open at once: the pool keeps them all
        for _ in range(3):
            stack.enter_context(reader.connect()).exec_driver_sql("SELECT 1")
    assert reader.pool.checkedin() >= 3
    with web_db.connect() as conn:
        dropped = conn.scalar(sa.text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'"))
    assert dropped >= 1
    after = get_tile(client, "parcels", *address)
    assert by_id(after) == by_id(before) and pid in by_id(after)


def test_a_matching_etag_or_a_refused_viewer_builds_no_tile(web_db):
    """PreparedTile: the tile's subquery sits in a CASE branch and runs only when taken."""
    import psycopg

    from gisapproval.accounts import password_fingerprint
    from gisapproval.mapdata import Scope
    from gisapproval import tiles

    with web_db.connect() as conn:
        _pid, (z, x, y) = _staff_only_parcel(conn)
        user = conn.execute(sa.select(User.id, User.password_hash).where(User.username == "supervisor")).one()
    address = tiles.tile_address(z, x, y)
    statement = tiles.PreparedTile(tiles.parcels_tile(Scope("all", tiles.VIEWER_ID), address), web_db.dialect,
                                   check_viewer=True)
    params = {**tiles.tile_params(address), "viewer_id": user.id, "sees_all": True, "if_none_match": [],
              "fingerprint": password_fingerprint(user.password_hash), "etag_suffix": "test"}

    def plan(**changes) -> str:
        values = {**statement.constants, **params, **changes}
        with web_db.connect() as conn, psycopg.RawCursor(conn.connection.dbapi_connection) as cursor:
            cursor.execute("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + statement.sql,
                           [values[name] for name in statement.order])
            return "\n".join(row[0] for row in cursor.fetchall())

    with web_db.connect() as conn:
        answer = statement.run(conn, **params)
    assert answer.viewer_ok and answer.data
    built = plan()
    with web_db.connect() as conn:
        cadastre = conn.scalar(sa.select(Layer.id).where(Layer.name == "cadastre"))
    index = f"{partition_name(cadastre)}_geom_idx"

    def parcel_scans(text: str) -> list[str]:
        return [line for line in text.splitlines() if index in line]

    # the tile's parcels were read through the spatial index (the parcels view's check of retired
    # parcels may stay unexecuted: the tile's parcels are all live)
    assert parcel_scans(built) and not any("never executed" in line for line in parcel_scans(built))
    for refused in ({"if_none_match": [answer.etag]}, {"fingerprint": "0" * 16}, {"sees_all": False}):
        with web_db.connect() as conn:
            again = statement.run(conn, **{**params, **refused})
        assert again.data is None
        scans = parcel_scans(plan(**refused))
        assert scans and all("never executed" in line for line in scans)


def test_tile_connections_read_in_autocommit_with_serial_plans(app):
    from web.db import EXTENSION_KEY

    with app.extensions[EXTENSION_KEY].reader.connect() as conn:
        assert conn.exec_driver_sql("SHOW max_parallel_workers_per_gather").scalar() == "0"
        conn.exec_driver_sql("SELECT 1")
        assert conn.connection.dbapi_connection.info.transaction_status.name == "IDLE"  # no transaction left open


def _zoning_tile(conn) -> tuple[int, int, int]:
    lon, lat = conn.execute(sa.text(
        "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_Transform(ST_PointOnSurface(f.geom), 4326) p FROM layer_features f "
        "JOIN layers l ON l.id = f.layer_id WHERE l.name = 'zoning' AND f.valid_to IS NULL ORDER BY f.id LIMIT 1) s")
    ).one()
    return tile_of(lon, lat, 15)


def test_layer_tiles_for_a_token_an_old_cookie_and_a_fresh_login_are_the_same(client, web, web_db):
    from gisapproval.accounts import create_api_token

    with web_db.connect() as conn:
        address = _zoning_tile(conn)
    with Session(web_db) as s:
        user = s.scalar(sa.select(User).where(User.username == "planning_reviewer"))
        token = create_api_token(s, user, user, "tile test")
        s.commit()
    by_token = get_tile(client, "layers/zoning", *address, Authorization=f"Bearer {token}")
    web.login(client, "planning_reviewer")
    by_cookie = get_tile(client, "layers/zoning", *address)
    with client.session_transaction() as session:
        del session["sees_all"]  # a cookie from before the claim was kept
    by_old_cookie = get_tile(client, "layers/zoning", *address)
    tiles = [{f["id"]: f["properties"] for f in features(decode(r), "features")} for r in
             (by_token, by_cookie, by_old_cookie)]
    assert tiles[0] and tiles[0] == tiles[1] == tiles[2]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer gat_not_a_token"}])
def test_layer_tiles_tell_no_unknown_caller_which_layers_or_versions_exist(client, headers):
    for path in ("layers/zoning", "layers/no_such_layer"):
        assert get_tile(client, path, 15, 26704, 14231, **headers).status_code == 401
    assert get_tile(client, "layers/zoning", 15, 26704, 14231, "?version=999", **headers).status_code == 401


def test_layer_tiles_refuse_a_deactivated_users_cookie_before_looking_up_the_layer(client, web, web_db):
    web.login(client, "land_editor")
    with web_db.begin() as conn:
        conn.execute(sa.text("UPDATE users SET is_active = false WHERE username = 'land_editor'"))
    try:
        assert get_tile(client, "layers/no_such_layer", 15, 26704, 14231).status_code == 401
    finally:
        with web_db.begin() as conn:
            conn.execute(sa.text("UPDATE users SET is_active = true WHERE username = 'land_editor'"))


def test_the_etag_moves_when_a_transaction_commits_after_a_later_event(client, web, web_db):
    """Event ids are taken at insert, not at commit: the map's state follows commits."""
    web.login(client, "supervisor")
    with web_db.connect() as conn:
        _pid, address = _staff_only_parcel(conn)
        project_id = conn.scalar(sa.select(Project.id).where(Project.status == "in_review").limit(1))
    early, late = Session(web_db), Session(web_db)
    try:
        record_event(early, None, "stage.test_early", ("projects", project_id), {}, project_id=project_id)
        early.flush()  # takes the smaller id, commits last
        record_event(late, None, "stage.test_late", ("projects", project_id), {}, project_id=project_id)
        late.commit()
        etag = get_tile(client, "parcels", *address).headers["ETag"]
        assert get_tile(client, "parcels", *address, **{"If-None-Match": etag}).status_code == 304
        early.commit()
        after = get_tile(client, "parcels", *address, **{"If-None-Match": etag})
        assert after.status_code == 200 and after.headers["ETag"] != etag
    finally:
        early.close()
        late.close()


def test_the_map_revision_moves_once_per_committed_map_change_and_not_for_logins(web_db):
    from gisapproval.models import MapRevision

    def revision() -> int:
        with web_db.connect() as conn:
            return conn.scalar(sa.select(MapRevision.revision))

    with web_db.connect() as conn:
        project_id = conn.scalar(sa.select(Project.id).limit(1))
    before = revision()
    with Session(web_db) as s:
        record_event(s, None, "user.login", ("users", 1), {})
        record_event(s, None, "layer_version.exported", ("layers", 1), {})
        s.commit()
    assert revision() == before
    with Session(web_db) as s:
        for _ in range(3):
            record_event(s, None, "stage.test_changed", ("projects", project_id), {}, project_id=project_id)
        s.flush()
        assert revision() == before  # not before commit
        s.commit()
    assert revision() == before + 1
    with Session(web_db) as s:
        record_event(s, None, "stage.test_changed", ("projects", project_id), {}, project_id=project_id)
        s.rollback()
    assert revision() == before + 1
