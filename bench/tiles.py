"""Vector tiles at city scale: the HTTP endpoint beside the raw ST_AsMVT query.

    python bench/tiles.py [--parcels 200000] [--tiles 40] [--city-dir DIR] [--fresh] [--no-screenshots]

Builds (or reuses) a city database (bench/citydb.py), serves the app with gunicorn, and for
random tiles over the city at z12, z14 and z16 times GET /tiles/parcels/{z}/{x}/{y}.pbf (a
logged-in planner, no ETag, so every tile is built) and, for the same tiles, the statement the
endpoint runs (``gisapproval.tiles.PreparedTile``, the same SQL text and parameters) executed
directly on an autocommit connection: the raw database work of the tile. Also fetches every tile at
the lowest zoom served (parcels and the cadastre layer) for the largest tile. With Chromium
present, screenshots the city map at full extent and zoomed in (tests/artifacts/citymap_*.png)
and reports how long the full extent takes to draw.

Last line: RESULT tiles p50_ratio=<x> max_kb=<k>, x being the worst zoom's p50 ratio.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import math
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import citydb

ZOOMS = (12, 14, 16)
REPEAT = 3
ARTIFACTS = ROOT / "tests" / "artifacts"


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 1 << z
    return int((lon + 180) / 360 * n), int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def sample_tiles(engine, zoom: int, count: int, rng: random.Random) -> list[tuple[int, int, int]]:
    """Tiles over parcels: the tile under a random parcel's centre (so no tile is empty sea)."""
    import sqlalchemy as sa

    with engine.connect() as conn:
        points = conn.execute(sa.text(
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_Transform(ST_Centroid(geom), 4326) p FROM layer_features "
            "TABLESAMPLE SYSTEM (2) REPEATABLE (20261123) WHERE valid_to IS NULL AND layer_id = "
            "(SELECT id FROM layers WHERE name = 'cadastre') LIMIT :n) s"), {"n": count * 4}).all()
    rng.shuffle(points)
    tiles = []
    for lon, lat in points:
        tile = (zoom, *tile_of(lon, lat, zoom))
        if tile not in tiles:
            tiles.append(tile)
        if len(tiles) == count:
            break
    return tiles


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--parcels", type=int, default=200_000)
    ap.add_argument("--tiles", type=int, default=40, help="tiles per zoom")
    ap.add_argument("--city-dir", default=None)
    ap.add_argument("--fresh", action="store_true")
    ap.add_argument("--no-screenshots", action="store_true")
    args = ap.parse_args()

    import sqlalchemy as sa
    from sqlalchemy.orm import Session

    from gisapproval import tiles
    from gisapproval.accounts import password_fingerprint
    from gisapproval.db import make_engine, make_reader_engine
    from gisapproval.mapdata import Scope, project_clock_colours
    from gisapproval.models import User

    url = citydb.ensure_city(args.parcels, fresh=args.fresh, data_dir=args.city_dir)
    engine = make_engine(url)
    settings = tiles.load_tile_settings()
    with engine.connect() as conn:
        n_parcels = conn.scalar(sa.text("SELECT count(*) FROM parcels"))
        west, south, east, north = conn.execute(sa.text(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Transform(ST_SetSRID("
            "ST_Extent(geom)::geometry, 4547), 4326) e FROM parcels) s")).one()
    print(f"city: {n_parcels} parcels; extent {west:.4f},{south:.4f} - {east:.4f},{north:.4f}")
    rng = random.Random(20261123)
    chosen = {z: sample_tiles(engine, z, args.tiles, rng) for z in ZOOMS}

    with Session(engine) as session:
        viewer = session.scalar(sa.select(User).where(User.username == "planning_reviewer"))
        fingerprint = password_fingerprint(viewer.password_hash)
        # the days-left colours the endpoint computes once per map state (web.tiles._clocks)
        clocks = project_clock_colours(session, dt.date.today())
    reader = make_reader_engine(url)  # as the app's tile connections are
    scope = Scope("all", viewer.id)

    def raw(z, x, y) -> tuple[float, int]:
        address = tiles.tile_address(z, x, y)
        statement = tiles.prepared("parcels", address, "all", reader.dialect, check_viewer=True)
        params = {**tiles.tile_params(address), "clocks": tiles.clocks_json(clocks), "viewer_id": viewer.id,
                  "fingerprint": fingerprint, "sees_all": True, "if_none_match": [],
                  "etag_suffix": tiles.etag_suffix(scope.key, "parcels", z, x, y)}
        with reader.connect() as conn:
            t0 = time.perf_counter()
            answer = statement.run(conn, **params)
            elapsed = time.perf_counter() - t0
        assert answer.viewer_ok
        return elapsed, len(answer.data or b"")

    with citydb.serve(url, app="floor_app:app") as base:  # the HTTP exchange alone, same server settings
        floor_conn = http.client.HTTPConnection(*base.removeprefix("http://").split(":"), timeout=30)
        exchange = []
        for i in range(230):
            t0 = time.perf_counter()
            floor_conn.request("GET", "/tile")
            floor_conn.getresponse().read()
            if i >= 30:
                exchange.append(time.perf_counter() - t0)
        print(f"floor: an empty Flask app under the same gunicorn, 4 KB answer: p50 "
              f"{statistics.median(exchange) * 1000:.2f} ms")

    results = {}
    max_tile = (0, None)
    with citydb.serve(url) as base:
        cookie = "; ".join(f"{k}={v}" for k, v in citydb.login(base, "planning_reviewer").cookies.items())
        # the leanest client on each side: http.client on one kept-alive connection here, psycopg's
        # RawCursor for the raw query (requests alone adds about half a millisecond per call)
        host, port = base.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=120)

        def fetch(path: str) -> tuple[float, int]:
            t0 = time.perf_counter()
            conn.request("GET", path, headers={"Cookie": cookie})
            r = conn.getresponse()
            body = r.read()
            elapsed = time.perf_counter() - t0
            if r.status != 200:
                raise RuntimeError(f"GET {path}: HTTP {r.status}")
            return elapsed, len(body)

        for z, x, y in chosen[ZOOMS[0]][:3]:  # warm both paths (connections, caches)
            fetch(f"/tiles/parcels/{z}/{x}/{y}.pbf")
            raw(z, x, y)
        # floors: an HTTP exchange with the app that does no work (a 364-byte static file), and a
        # logged-in API call that loads its user (cookie, user and roles, transaction)
        floor = statistics.median([fetch("/static/img/logo.svg")[0] for _ in range(50)])
        print(f"floor: GET /static/img/logo.svg p50 {floor * 1000:.2f} ms (HTTP and Flask, no work)")
        floor = statistics.median([fetch("/api/me")[0] for _ in range(50)])
        print(f"floor: GET /api/me p50 {floor * 1000:.2f} ms (a logged-in request that builds nothing)")
        for z in ZOOMS:
            t_http, t_raw, sizes = [], [], []
            for (tz, x, y) in chosen[z] * REPEAT:  # each tile REPEAT times, HTTP and raw in turn
                a, size = fetch(f"/tiles/parcels/{tz}/{x}/{y}.pbf")
                b, raw_size = raw(tz, x, y)
                assert size == raw_size, (tz, x, y, size, raw_size)
                t_http.append(a)
                t_raw.append(b)
                sizes.append(size)
                if size > max_tile[0]:
                    max_tile = (size, f"parcels {tz}/{x}/{y}")
            results[z] = (t_http, t_raw, sizes)
            print(f"z{z}: {len(chosen[z])} tiles x {REPEAT}  http p50 {statistics.median(t_http) * 1000:7.1f} ms  "
                  f"p95 {pct(t_http, 0.95) * 1000:7.1f} ms | raw ST_AsMVT p50 {statistics.median(t_raw) * 1000:7.1f}"
                  f" ms  p95 {pct(t_raw, 0.95) * 1000:7.1f} ms | ratio p50 "
                  f"{statistics.median(t_http) / statistics.median(t_raw):.2f} | max {max(sizes) / 1024:.0f} KB")

        zmin = settings.min_zoom
        x0, y0 = tile_of(west, north, zmin)
        x1, y1 = tile_of(east, south, zmin)
        for x in range(x0, x1 + 1):
            for y in range(y0, y1 + 1):
                for kind in ("parcels", "layers/cadastre", "layers/existing_buildings", "footprints"):
                    elapsed, size = fetch(f"/tiles/{kind}/{zmin}/{x}/{y}.pbf")
                    print(f"z{zmin} {kind} {x}/{y}: {size / 1024:.0f} KB in {elapsed * 1000:.0f} ms")
                    if size > max_tile[0]:
                        max_tile = (size, f"{kind} {zmin}/{x}/{y}")

        if not args.no_screenshots:
            with engine.connect() as conn:  # zoom in where a project is under review
                focus = conn.execute(sa.text(
                    "SELECT ST_Y(p), ST_X(p) FROM (SELECT ST_Transform(ST_Centroid(pa.geom), 4326) p FROM parcels pa "
                    "JOIN project_parcels pp ON pp.parcel_id = pa.id JOIN projects pr ON pr.id = pp.project_id "
                    "WHERE pr.status = 'in_review' ORDER BY pr.id LIMIT 1) s")).first()
            screenshots(base, tuple(focus) if focus else None)

    all_http = [t for z in ZOOMS for t in results[z][0]]
    ratios = [statistics.median(results[z][0]) / statistics.median(results[z][1]) for z in ZOOMS]
    pooled = statistics.median(all_http) / statistics.median([t for z in ZOOMS for t in results[z][1]])
    print(f"p50 ratio per zoom: {', '.join(f'z{z} {r:.2f}' for z, r in zip(ZOOMS, ratios))}; "
          f"all tiles pooled {pooled:.2f}")
    print(f"largest tile: {max_tile[1]} {max_tile[0] / 1024:.0f} KB (limit {settings.max_tile_kb} KB)")
    # the figure: the worst zoom's p50 ratio
    print(f"RESULT tiles p50_ratio={max(ratios):.2f} max_kb={max_tile[0] / 1024:.0f}")


def screenshots(base: str, focus: tuple[float, float] | None) -> None:
    """The city map at full extent and zoomed in; prints how long the full extent took to draw."""
    import os

    chromium = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
    if not Path(chromium).exists():
        print("no Chromium: screenshots skipped")
        return
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{base}/login?lang=en")
        page.fill("#username", "supervisor")
        page.fill("#password", "gisdemo2026")
        t0 = time.perf_counter()
        page.click("form.form button[type=submit]")
        page.wait_for_url(f"{base}/map")
        page.wait_for_function("() => window.gisMapView && window.gisMapView.state.tilesLoaded >= 2",
                               timeout=120_000, polling=100)
        page.wait_for_load_state("networkidle")
        print(f"full extent drawn {time.perf_counter() - t0:.2f} s after logging in")
        page.screenshot(path=str(ARTIFACTS / "citymap_full.png"))
        centre = list(focus) if focus else page.evaluate("() => { const c = gisMap.getCenter(); return [c.lat, c.lng]; }")
        t0 = time.perf_counter()
        page.evaluate("([lat, lng]) => gisMap.setView([lat, lng], 16, {animate: false})", centre)
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(300)
        print(f"zoomed to z16 and drawn in {time.perf_counter() - t0:.2f} s")
        page.screenshot(path=str(ARTIFACTS / "citymap_zoom.png"))
        browser.close()


if __name__ == "__main__":
    main()
