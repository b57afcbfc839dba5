"""The parallel checks at city scale, beside hand-written PostGIS.

    python bench/check_latency.py [--parcels 200000] [--projects 10000] [--samples 200] [--keep DIR]

Builds a city (sample_parcels.generate) with the full layer set in a throwaway database (every
layer imported through the platform's own import), puts --projects projects in flight on it
(one or two buildings each), then prints:

* p50/p95 of a full four-department check of one project through the engine
  (``run_project_checks``: every rule, rasters included, the run and its results stored),
  beside the raw PostGIS time of the same vector predicates in ONE hand-written query;
* checks/s with 2 concurrent clients;
* the time to re-check the projects affected by changing 1% of the zoning layer
  (``recheck_affected``), beside one set-based SQL statement computing the same predicates for
  the same projects.

Last line: RESULT checks p50_ratio=<x> p95_ratio=<y> p95_ms=<ms> recheck_ratio=<z>
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RAW_SQL = """
WITH b AS (SELECT id, project_id, geom, height_m, use, gfa_m2 FROM buildings WHERE project_id = ANY(:ids)),
pu AS (SELECT pp.project_id, ST_Union(f.geom) AS geom, sum(ST_Area(f.geom)) AS area,
              bool_or(f.attrs->>'holder' <> pr.applicant_org) AS other_holder
       FROM project_parcels pp JOIN parcels p ON p.id = pp.parcel_id JOIN projects pr ON pr.id = pp.project_id
       JOIN layer_features f ON f.layer_id = :cadastre AND f.valid_to IS NULL AND f.feature_key = p.parcel_code
       WHERE pp.project_id = ANY(:ids) GROUP BY pp.project_id),
pz AS (SELECT pu.project_id, pu.area, z.max_far, z.max_coverage
       FROM pu LEFT JOIN LATERAL (
         SELECT (f.attrs->>'max_far')::float AS max_far, (f.attrs->>'max_coverage')::float AS max_coverage
         FROM layer_features f WHERE f.layer_id = :zoning AND f.valid_to IS NULL AND ST_Intersects(f.geom, pu.geom)
         ORDER BY ST_Area(ST_Intersection(f.geom, pu.geom)) DESC LIMIT 1) z ON true),
ratio AS (SELECT b.project_id, sum(b.gfa_m2) / min(pz.area) AS far, sum(ST_Area(b.geom)) / min(pz.area) AS cov,
                 min(pz.max_far) AS max_far, min(pz.max_coverage) AS max_cov
          FROM b JOIN pz ON pz.project_id = b.project_id GROUP BY b.project_id)
SELECT b.id, b.project_id,
  ST_CoveredBy(b.geom, (SELECT coverage FROM layers WHERE id = :zoning)) AS covered,
  coalesce(ST_Area(ST_Difference(b.geom, pu.geom)), ST_Area(b.geom)) AS outside_m2,
  CASE WHEN ST_Within(b.geom, pu.geom) THEN ST_Distance(b.geom, ST_Boundary(pu.geom)) ELSE 0 END AS boundary_m,
  pu.other_holder,
  (SELECT coalesce(sum(ST_Area(ST_Intersection(b.geom, f.geom))) FILTER (WHERE NOT (f.attrs->>'land_use') = ANY(
     CASE b.use WHEN 'residential' THEN ARRAY['R1','R2','R3'] WHEN 'industrial' THEN ARRAY['M1','M2']
     ELSE ARRAY['B1','B2','A1','A2','A3','A5','S4','U1','G1','G2','W1','M1','M2'] END)), 0)
   FROM project_parcels pp JOIN parcels p ON p.id = pp.parcel_id
   JOIN layer_features f ON f.layer_id = :cadastre AND f.valid_to IS NULL AND f.feature_key = p.parcel_code
   WHERE pp.project_id = b.project_id AND ST_Intersects(f.geom, b.geom)) AS wrong_land_use_m2,
  (SELECT coalesce(sum(ST_Area(ST_Intersection(b.geom, f.geom))), 0) FROM layer_features f
   WHERE f.layer_id = :farmland AND f.valid_to IS NULL AND ST_Intersects(f.geom, b.geom)) AS farmland_m2,
  (SELECT coalesce(sum(ST_Area(ST_Intersection(b.geom, f.geom))), 0) FROM layer_features f
   WHERE f.layer_id = :eco AND f.valid_to IS NULL AND ST_Intersects(f.geom, b.geom)) AS eco_m2,
  (SELECT coalesce(sum(ST_Area(ST_Intersection(b.geom, f.geom))), 0) FROM layer_features f
   WHERE f.layer_id = :hazard AND f.valid_to IS NULL AND f.attrs->>'risk_level' = 'high'
     AND ST_Intersects(f.geom, b.geom)) AS hazard_m2,
  (SELECT coalesce(sum(ST_Area(ST_Intersection(b.geom, f.geom))), 0) FROM layer_features f
   WHERE f.layer_id = :heritage AND f.valid_to IS NULL AND ST_Intersects(f.geom, b.geom)) AS heritage_m2,
  (SELECT coalesce(sum(ST_Area(ST_Intersection(b.geom, f.geom))) FILTER (WHERE NOT (f.attrs->>'use_code') = ANY(
     CASE b.use WHEN 'residential' THEN ARRAY['R1','R2','R3'] WHEN 'industrial' THEN ARRAY['M1','M2']
     ELSE ARRAY['B1','B2','A1','A2','A3','A5','S4','U1','G1','G2','W1','M1','M2'] END)), 0)
   FROM layer_features f WHERE f.layer_id = :zoning AND f.valid_to IS NULL AND ST_Intersects(f.geom, b.geom))
   AS wrong_zone_m2,
  (SELECT min((f.attrs->>'height_limit_m')::float) FROM layer_features f
   WHERE f.layer_id = :zoning AND f.valid_to IS NULL AND ST_Intersects(f.geom, b.geom)) AS height_limit,
  (SELECT min(ST_Distance(b.geom, f.geom)) FROM layer_features f
   WHERE f.layer_id = :redlines AND f.valid_to IS NULL AND ST_DWithin(f.geom, b.geom, 50)) AS redline_m,
  (SELECT ST_Distance(b.geom, f.geom) FROM layer_features f WHERE f.layer_id = :stations AND f.valid_to IS NULL
   ORDER BY f.geom <-> b.geom LIMIT 1) AS station_m,
  (SELECT ST_Distance(b.geom, f.geom) FROM layer_features f WHERE f.layer_id = :roads AND f.valid_to IS NULL
   ORDER BY f.geom <-> b.geom LIMIT 1) AS road_m,
  (SELECT min(ST_Distance(b.geom, f.geom)) FROM layer_features f
   WHERE f.layer_id = :existing AND f.valid_to IS NULL AND ST_DWithin(f.geom, b.geom, 30)) AS neighbour_m,
  (SELECT min(ST_Distance(b.geom, o.geom)) FROM buildings o
   WHERE o.project_id = b.project_id AND o.id <> b.id AND ST_DWithin(o.geom, b.geom, 30)) AS own_neighbour_m,
  (SELECT coalesce(sum(ST_Area(ST_Intersection(b.geom, o.geom))), 0) FROM buildings o JOIN projects op
   ON op.id = o.project_id WHERE ST_Intersects(o.geom, b.geom) AND o.project_id <> b.project_id
   AND op.status IN ('draft', 'submitted', 'in_review', 'in_correction')) AS project_overlap_m2,
  r.far, r.max_far, r.cov, r.max_cov
FROM b LEFT JOIN pu ON pu.project_id = b.project_id LEFT JOIN ratio r ON r.project_id = b.project_id
"""


def _settings_for(extent):
    from dataclasses import replace

    from gisapproval.config import load_settings

    s = load_settings()
    return replace(s, jurisdiction=replace(s.jurisdiction, extent=tuple(extent)))


def build_city(tmp: Path, parcels: int) -> Path:
    from sample_parcels.generate import generate

    gpkg = tmp / "district.gpkg"
    if not gpkg.exists():
        t0 = time.perf_counter()
        generate(tmp, parcels=parcels, projects=False)
        print(f"generated a {parcels}-parcel city in {time.perf_counter() - t0:.1f} s", flush=True)
    return gpkg


def load_city(url: str, settings, tmp: Path, gpkg: Path) -> None:
    import pyogrio

    from gisapproval.accounts import create_user, sync_departments
    from gisapproval.catalogue import default_catalogue
    from gisapproval.db import make_engine, make_session_factory, session_scope
    from gisapproval.layerstore import register_layers
    from gisapproval.layerversions import publish_layer_version

    boundary = pyogrio.read_dataframe(gpkg, layer="jurisdiction").to_crs(settings.jurisdiction.srid).geometry.union_all()
    engine = make_engine(url)
    t0 = time.perf_counter()
    with session_scope(make_session_factory(engine)) as session:
        sync_departments(session)
        create_user(session, None, username="bench_applicant", password="bench-password-1", display_name="bench",
                    roles=["applicant"], organisation="bench")
        specs = default_catalogue()
        register_layers(session, specs, boundary, settings.jurisdiction.srid)
        for name, spec in specs.items():
            source = gpkg if spec.kind == "vector" else tmp / spec.source_file
            publish_layer_version(session, settings, None, name, source,
                                  f"{source.name}:{spec.source_layer}" if spec.kind == "vector" else None,
                                  check_permission=False)
    engine.dispose()
    print(f"imported every layer in {time.perf_counter() - t0:.1f} s", flush=True)


def make_projects(url: str, n: int) -> None:
    import sqlalchemy as sa

    from gisapproval.db import make_engine

    engine = make_engine(url)
    t0 = time.perf_counter()
    with engine.begin() as c:
        c.execute(sa.text("""
            CREATE TEMP TABLE picked AS
            SELECT id AS parcel_id, row_number() OVER () AS n FROM (
              SELECT id FROM parcels WHERE area_m2 > 1500 ORDER BY md5(parcel_code) LIMIT :n) s"""), {"n": n})
        c.execute(sa.text("""
            INSERT INTO projects (code, name, applicant_id, applicant_org, is_green_channel, current_stage, status,
                                  created_at)
            SELECT 'BENCH-' || lpad(n::text, 6, '0'), '基准项目 ' || n, u.id, 'bench', false, 1,
                   (ARRAY['submitted', 'in_review', 'in_correction', 'draft'])[1 + n % 4], now()
            FROM picked, users u WHERE u.username = 'bench_applicant'"""))
        c.execute(sa.text("""
            INSERT INTO project_parcels (project_id, parcel_id)
            SELECT p.id, k.parcel_id FROM picked k JOIN projects p ON p.code = 'BENCH-' || lpad(k.n::text, 6, '0')"""))
        # one building per project, a second on every other project; 10 m to 45 m tall
        c.execute(sa.text("""
            INSERT INTO buildings (project_id, name, height_m, floors, gfa_m2, use, geom)
            SELECT p.id, k || '#', h, (h / 3)::int, 24 * 24 * (h / 3)::int,
                   (ARRAY['residential', 'office', 'commercial', 'industrial'])[1 + p.id % 4],
                   ST_Multi(ST_Buffer(ST_Translate(ST_PointOnSurface(pa.geom), (k - 1.5) * 30, 0), 12,
                                      'endcap=square'))
            FROM projects p JOIN project_parcels pp ON pp.project_id = p.id JOIN parcels pa ON pa.id = pp.parcel_id
            CROSS JOIN generate_series(1, 2) k
            CROSS JOIN LATERAL (SELECT 10 + (p.id * 7 % 36)::float AS h) hh
            WHERE p.code LIKE 'BENCH-%' AND (k = 1 OR p.id % 2 = 0)"""))
        c.execute(sa.text("ANALYZE"))
    engine.dispose()
    print(f"{n} projects in flight created in {time.perf_counter() - t0:.1f} s", flush=True)


def layer_ids(session) -> dict:
    import sqlalchemy as sa

    from gisapproval.models import Layer

    ids = dict(session.execute(sa.select(Layer.name, Layer.id)).all())
    return {"cadastre": ids["cadastre"], "zoning": ids["zoning"], "farmland": ids["basic_farmland"],
            "eco": ids["eco_redline"], "hazard": ids["hazard_zones"], "heritage": ids["heritage_zones"],
            "redlines": ids["road_redlines"], "stations": ids["fire_stations"], "roads": ids["roads"],
            "existing": ids["existing_buildings"]}


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def measure_checks(url: str, samples: int) -> tuple[list[float], list[float], list[int]]:
    import random

    import sqlalchemy as sa
    from sqlalchemy.orm import Session

    from gisapproval.checks.engine import run_project_checks
    from gisapproval.db import make_engine
    from gisapproval.models import Project

    engine = make_engine(url)
    with Session(engine) as s:
        ids = list(s.scalars(sa.select(Project.id).where(Project.code.like("BENCH-%"))))
        params = layer_ids(s)
    random.seed(4)
    chosen = random.sample(ids, min(samples, len(ids)))
    raw_sql = sa.text(RAW_SQL)
    ours, raw = [], []
    for warm in chosen[:5]:  # warm caches and the statement cache
        with Session(engine) as s:
            run_project_checks(s, None, s.get(Project, warm), purpose="review")
            s.execute(raw_sql, {**params, "ids": [warm]}).all()
            s.rollback()
    for pid in chosen:
        with Session(engine) as s:
            project = s.get(Project, pid)
            t0 = time.perf_counter()
            run_project_checks(s, None, project, purpose="review")
            s.flush()
            ours.append((time.perf_counter() - t0) * 1000)
            s.rollback()
        with Session(engine) as s:
            t0 = time.perf_counter()
            s.execute(raw_sql, {**params, "ids": [pid]}).all()
            raw.append((time.perf_counter() - t0) * 1000)
            s.rollback()
    engine.dispose()
    return ours, raw, chosen


def concurrent_checks(url: str, chosen: list[int], clients: int = 2, seconds: float = 20.0) -> float:
    from sqlalchemy.orm import Session

    from gisapproval.checks.engine import run_project_checks
    from gisapproval.db import make_engine
    from gisapproval.models import Project

    engine = make_engine(url)
    done = [0] * clients
    stop = time.perf_counter() + seconds

    def client(k):
        i = k
        while time.perf_counter() < stop:
            with Session(engine) as s:
                run_project_checks(s, None, s.get(Project, chosen[i % len(chosen)]), purpose="review")
                s.commit()
            done[k] += 1
            i += clients

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    engine.dispose()
    return sum(done) / elapsed


def change_zoning(url: str, settings, tmp: Path, gpkg: Path, share: float = 0.01) -> tuple[int, int, int]:
    """Publish a zoning version with ``share`` of the zones changed (lower FAR and height limit)."""
    import numpy as np
    import pyogrio

    from gisapproval.db import make_engine, make_session_factory, session_scope
    from gisapproval.layerversions import publish_layer_version

    frame = pyogrio.read_dataframe(gpkg, layer="zoning")
    rng = np.random.default_rng(11)
    idx = rng.choice(len(frame), size=max(1, int(len(frame) * share)), replace=False)
    rows = frame.index[idx]
    frame.loc[rows, "max_far"] = (frame.loc[rows, "max_far"] * 0.5).round(2)
    frame.loc[rows, "height_limit_m"] = (frame.loc[rows, "height_limit_m"] * 0.5).round(1)
    changed = tmp / "zoning_1pct.gpkg"
    pyogrio.write_dataframe(frame, changed, layer="zoning")
    engine = make_engine(url)
    with session_scope(make_session_factory(engine)) as session:
        report = publish_layer_version(session, settings, None, "zoning", changed, check_permission=False)
    engine.dispose()
    return report.version_id, len(idx), len(report.affected_project_ids)


def measure_recheck(url: str, version_id: int) -> tuple[float, float, int]:
    import sqlalchemy as sa
    from sqlalchemy.orm import Session

    from gisapproval.checks.engine import recheck_affected
    from gisapproval.db import make_engine
    from gisapproval.models import LayerVersion, Project

    engine = make_engine(url)
    with Session(engine) as s:
        affected = list(s.get(LayerVersion, version_id).affected_project_ids)
        ids = list(s.scalars(sa.select(Project.id).where(Project.id.in_(affected), Project.status.in_(
            ("draft", "submitted", "in_review", "in_correction")))))
        params = layer_ids(s)
    with Session(engine) as s:  # one set-based statement: the same predicates for the same projects
        t0 = time.perf_counter()
        s.execute(sa.text("CREATE TEMP TABLE recheck_raw AS " + RAW_SQL), {**params, "ids": ids})
        s.commit()
        raw = time.perf_counter() - t0
    with Session(engine) as s:
        t0 = time.perf_counter()
        runs = recheck_affected(s, version_id)
        s.commit()
        ours = time.perf_counter() - t0
    engine.dispose()
    return ours, raw, len(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parcels", type=int, default=200_000)
    ap.add_argument("--projects", type=int, default=10_000)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=20.0, help="duration of the 2-client run")
    ap.add_argument("--keep", default=None, help="keep the generated city in this directory")
    args = ap.parse_args()
    import pyogrio

    from gisapproval import migrate
    from gisapproval.config import database_url, load_settings
    from gisapproval.db import drop_database, ensure_database

    base = load_settings()
    if not base.database_url:
        from gisapproval import cluster

        cluster.ensure_running(base)
    tmp = Path(args.keep or tempfile.mkdtemp(prefix="bench-checks-"))
    tmp.mkdir(parents=True, exist_ok=True)
    gpkg = build_city(tmp, args.parcels)
    info = pyogrio.read_info(gpkg, layer="parcels", force_total_bounds=True)
    bounds = [pyogrio.read_info(gpkg, layer=str(name), force_total_bounds=True)["total_bounds"]
              for name, _ in pyogrio.list_layers(gpkg)]
    x0, y0 = min(b[0] for b in bounds), min(b[1] for b in bounds)
    x1, y1 = max(b[2] for b in bounds), max(b[3] for b in bounds)
    settings = _settings_for([x0 - 2000, y0 - 2000, x1 + 2000, y1 + 2000])
    url = database_url(settings, f"gisapproval_bench_checks_{os.getpid()}")
    ensure_database(url)
    try:
        migrate.upgrade(url)
        load_city(url, settings, tmp, gpkg)
        make_projects(url, args.projects)
        ours, raw, chosen = measure_checks(url, args.samples)
        rate = concurrent_checks(url, chosen, seconds=args.seconds)
        version_id, n_zones, n_affected = change_zoning(url, settings, tmp, gpkg)
        recheck_s, raw_recheck_s, n_runs = measure_recheck(url, version_id)
    finally:
        drop_database(url)
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    p50, p95 = pct(ours, 0.5), pct(ours, 0.95)
    r50, r95 = pct(raw, 0.5), pct(raw, 0.95)
    print(f"city: {int(info['features'])} parcels, {args.projects} projects in flight")
    print(f"full check of one project through the engine ({len(ours)} projects, every rule, rasters included, run "
          f"stored): p50 {p50:.1f} ms, p95 {p95:.1f} ms, mean {statistics.mean(ours):.1f} ms")
    print(f"raw PostGIS, the same vector predicates in one hand-written query: p50 {r50:.1f} ms, p95 {r95:.1f} ms")
    print(f"2 concurrent clients: {rate:.1f} checks/s")
    print(f"zoning change: {n_zones} zones (1%) changed, {n_affected} projects affected, {n_runs} re-checked in "
          f"{recheck_s:.2f} s; one set-based SQL statement: {raw_recheck_s:.2f} s")
    print(f"RESULT checks p50_ratio={p50 / r50:.2f} p95_ratio={p95 / r95:.2f} p95_ms={p95:.0f} "
          f"recheck_ratio={recheck_s / raw_recheck_s:.2f}")


if __name__ == "__main__":
    main()
