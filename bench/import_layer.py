"""Layer import at city scale, beside ogr2ogr.

    python bench/import_layer.py [--parcels 200000] [--rounds 3] [--keep DIR]

Generates a city's cadastre as a GeoPackage and, in a throwaway database, imports it into an
empty layer (our streamed, validated, versioned import) and with `ogr2ogr -f PostgreSQL`
(PG_USE_COPY=YES, with a GiST index) into the same server, ``--rounds`` times each, in turn
(one round ours first, the next ogr2ogr first), after one untimed ogr2ogr load that warms the
server; the layer is emptied again between rounds. Then it re-imports the file with 1% of the
parcels changed, ``--rounds`` times (the changed file and the original in turn: each is a 1%
change): each takes the live features' digests from the file the import before kept
(gisapproval.digestcache), as on the machine that made the live version, and then, as many
times again, from the database, as on another machine. Each import runs in its own process, so
its peak memory is its own. The same re-imports then run one after the other in a single
process, as a running web server runs the upload page's imports. Prints the figures and their
medians; the last line is machine-readable:
RESULT import ratio_vs_ogr2ogr=<x> reimport_1pct_s=<s> peak_mb=<m>
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _settings_for(extent):
    from dataclasses import replace

    from gisapproval.config import load_settings

    s = load_settings()
    return replace(s, jurisdiction=replace(s.jurisdiction, extent=tuple(extent)))


def _timed_import(factory, settings, gpkg: str):
    """One import of the cadastre from ``gpkg``, committed: its seconds and report."""
    from gisapproval.db import session_scope
    from gisapproval.layerversions import publish_layer_version

    t0 = time.perf_counter()
    with session_scope(factory) as session:
        report = publish_layer_version(session, settings, None, "cadastre", Path(gpkg), check_permission=False)
    return time.perf_counter() - t0, report


def phase_import(url: str, gpkg: str, extent: list[float]) -> None:
    """Child process: one import of the cadastre, committed; prints JSON with time and peak."""
    from gisapproval.db import make_engine, make_session_factory

    engine = make_engine(url)
    seconds, report = _timed_import(make_session_factory(engine), _settings_for(extent), gpkg)
    engine.dispose()
    print(json.dumps({"seconds": seconds, "peak_mb": _peak_mb(), **report.as_dict()}))


def phase_reimports(url: str, files: list[str], extent: list[float]) -> None:
    """Child process: re-imports one after the other in the same process, each committed, as a
    running web server's worker runs the upload page's imports (its transformers made, its
    mappers configured, its connections pooled); prints JSON with each one's seconds."""
    from gisapproval.db import make_engine, make_session_factory

    settings = _settings_for(extent)
    factory = make_session_factory(make_engine(url))
    print(json.dumps({"seconds": [_timed_import(factory, settings, gpkg)[0] for gpkg in files]}))


def _peak_mb() -> float:
    """This process's peak resident memory. On Linux from /proc (VmHWM): ru_maxrss carries the
    parent's peak over fork and exec, which would charge this import with the parent's work."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(url, gpkg, extent) -> dict:
    out = subprocess.run([sys.executable, __file__, "--phase-import", url, str(gpkg), json.dumps(extent)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _prepare_db(settings, extent):
    import geopandas  # noqa: F401  (import cost outside the timings)
    import shapely

    from gisapproval import migrate
    from gisapproval.accounts import sync_departments
    from gisapproval.catalogue import default_catalogue
    from gisapproval.config import database_url
    from gisapproval.db import (
        ensure_database,
        make_engine,
        make_session_factory,
        session_scope,
    )
    from gisapproval.layerstore import register_layers

    url = database_url(settings, f"gisapproval_bench_import_{os.getpid()}")
    ensure_database(url)
    migrate.upgrade(url)
    engine = make_engine(url)
    with session_scope(make_session_factory(engine)) as session:
        sync_departments(session)
        register_layers(session, default_catalogue(), shapely.box(*extent), settings.jurisdiction.srid)
    engine.dispose()
    return url


def _ogr2ogr(url: str, gpkg: Path, table: str = "bench_ogr_parcels") -> float:
    from sqlalchemy.engine import make_url

    u = make_url(url)
    pg = f"PG:host={u.host} port={u.port} dbname={u.database} user={u.username} password={u.password}"
    env = {**os.environ, "PG_USE_COPY": "YES"}
    t0 = time.perf_counter()
    subprocess.run(["ogr2ogr", "-f", "PostgreSQL", pg, str(gpkg), "parcels", "-nln", table,
                    "-lco", "SPATIAL_INDEX=GIST", "-lco", "GEOMETRY_NAME=geom", "-nlt", "PROMOTE_TO_MULTI",
                    "-overwrite", "--config", "PG_USE_COPY", "YES"], check=True, env=env)
    return time.perf_counter() - t0


def _empty_cadastre(url: str) -> None:
    """Make the cadastre layer empty again, as before its first import: no partition, no version
    (and no digests kept for its versions)."""
    import sqlalchemy as sa

    from gisapproval.db import make_engine
    from gisapproval.layerversions import PARCELS_VIEW, partition_name

    _forget_kept_digests(url)
    engine = make_engine(url)
    with engine.begin() as conn:
        layer = conn.scalar(sa.text("SELECT id FROM layers WHERE name = 'cadastre'"))
        conn.execute(sa.text("DROP VIEW parcels"))
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {partition_name(layer)}"))
        conn.execute(sa.text(PARCELS_VIEW.format(table="layer_features", layer=layer)))
        conn.execute(sa.text("UPDATE layers SET current_version_id = NULL WHERE id = :l"), {"l": layer})
        conn.execute(sa.text("DELETE FROM layer_versions WHERE layer_id = :l"), {"l": layer})
    engine.dispose()


def _forget_kept_digests(url: str) -> None:
    """Remove the files of content digests kept for the cadastre's versions, as on another machine."""
    import sqlalchemy as sa

    from gisapproval import digestcache
    from gisapproval.db import make_engine

    engine = make_engine(url)
    with engine.connect() as conn:
        for token in conn.scalars(sa.text("SELECT v.content_token FROM layer_versions v JOIN layers l "
                                          "ON l.id = v.layer_id WHERE l.name = 'cadastre'")):
            digestcache.path_for(token).unlink(missing_ok=True)
    engine.dispose()


def _phases(report: dict) -> str:
    """An import's phases and their seconds, as its report's timings give them."""
    return ", ".join(f"{k} {v:.2f}" for k, v in report.get("timings", {}).items())


def _changed_copy(src: Path, dst: Path, share: float = 0.01) -> int:
    """A copy of the cadastre with ``share`` of the parcels changed (holder renamed, shape nudged)."""
    import numpy as np
    import pyogrio
    import shapely

    frame = pyogrio.read_dataframe(src, layer="parcels")
    rng = np.random.default_rng(7)
    idx = rng.choice(len(frame), size=max(1, int(len(frame) * share)), replace=False)
    frame.loc[frame.index[idx], "holder"] = frame.loc[frame.index[idx], "holder"] + "（变更）"
    geoms = frame.geometry.values
    frame.loc[frame.index[idx], "geometry"] = shapely.buffer(np.asarray(geoms[idx]), -0.5, join_style="mitre")
    pyogrio.write_dataframe(frame, dst, layer="parcels")
    return len(idx)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--parcels", type=int, default=200_000)
    ap.add_argument("--keep", default=None, help="keep the generated city in this directory")
    ap.add_argument("--rounds", type=int, default=3, help="timed imports of each kind (medians are reported)")
    args = ap.parse_args()
    import pyogrio

    from gisapproval.config import load_settings
    from gisapproval.db import drop_database
    from sample_parcels.generate import generate

    if shutil.which("ogr2ogr") is None:
        sys.exit("ogr2ogr not found: apt-get install gdal-bin")
    base = load_settings()
    if not base.database_url:
        from gisapproval import cluster

        cluster.ensure_running(base)
    tmp = Path(args.keep or tempfile.mkdtemp(prefix="bench-import-"))
    tmp.mkdir(parents=True, exist_ok=True)
    gpkg = tmp / "district.gpkg"
    if not gpkg.exists():
        t0 = time.perf_counter()
        generate(tmp, parcels=args.parcels, projects=False)
        print(f"generated a {args.parcels}-parcel city in {time.perf_counter() - t0:.1f} s")
    info = pyogrio.read_info(gpkg, layer="parcels", force_total_bounds=True)
    n = int(info["features"])
    x0, y0, x1, y1 = info["total_bounds"]
    extent = [x0 - 1000, y0 - 1000, x1 + 1000, y1 + 1000]
    settings = _settings_for(extent)
    url = _prepare_db(settings, extent)
    changed = tmp / "district_1pct.gpkg"
    ours, ogr, again, elsewhere = [], [], [], []
    try:
        _ogr2ogr(url, gpkg, "bench_ogr_warmup")  # untimed: the server's first bulk load of the run
        for r in range(args.rounds):
            if r:
                _empty_cadastre(url)
            if r % 2:
                ogr.append(_ogr2ogr(url, gpkg))
            ours.append(_child(url, gpkg, extent))
            if not r % 2:
                ogr.append(_ogr2ogr(url, gpkg))
        n_changed = _changed_copy(gpkg, changed)
        for r in range(args.rounds):  # the changed file, the original, ...: a 1% change each time
            again.append(_child(url, changed if r % 2 == 0 else gpkg, extent))
        for r in range(args.rounds, 2 * args.rounds):  # the same, the live digests asked of the database
            _forget_kept_digests(url)
            elsewhere.append(_child(url, changed if r % 2 == 0 else gpkg, extent))
        # as the upload page runs them: one untimed re-import first, in the same process
        done = len(again) + len(elsewhere)
        files = [str(changed if r % 2 == 0 else gpkg) for r in range(done, done + args.rounds + 1)]
        out = subprocess.run([sys.executable, __file__, "--phase-reimports", url, json.dumps(files),
                              json.dumps(extent)], capture_output=True, text=True, check=True)
        running = json.loads(out.stdout.strip().splitlines()[-1])["seconds"][1:]
    finally:
        _forget_kept_digests(url)  # (the versions' files, in the app's home)
        drop_database(url)
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    ours_s = statistics.median(o["seconds"] for o in ours)
    ogr_s = statistics.median(ogr)
    again_s = statistics.median(a["seconds"] for a in again)
    elsewhere_s = statistics.median(a["seconds"] for a in elsewhere)
    peak = max(o["peak_mb"] for o in ours + again + elsewhere)
    print(f"features: {n}")
    for i, (o, g) in enumerate(zip(ours, ogr), 1):
        print(f"round {i}: our import {o['seconds']:5.2f} s (+{o['added']} added, peak {o['peak_mb']:.0f} MB; "
              f"{_phases(o)}), ogr2ogr {g:5.2f} s")
    print(f"our import:     {ours_s:7.2f} s  {n / ours_s:9.0f} features/s  (median of {len(ours)})")
    print(f"ogr2ogr (COPY): {ogr_s:7.2f} s  {n / ogr_s:9.0f} features/s  (median of {len(ogr)})")
    for i, a in enumerate(again + elsewhere, 1):
        print(f"re-import {i}: {a['seconds']:.2f} s ({a['changed']} changed, {a['unchanged']} unchanged), "
              f"peak {a['peak_mb']:.0f} MB; {_phases(a)}{'' if i <= len(again) else '; digests from the database'}")
    print(f"re-import with {n_changed} parcels changed (1%): {again_s:.2f} s (median of {len(again)}; "
          f"{again_s / ours_s:.0%} of the first import), the live digests kept by the import before")
    print(f"the same, the live digests asked of the database (the import before ran on another machine): "
          f"{elsewhere_s:.2f} s (median of {len(elsewhere)}; {elsewhere_s / ours_s:.0%} of the first import)")
    running_s = statistics.median(running)
    print(f"the same re-imports in one running process, as the upload page runs them: "
          f"{' '.join(f'{x:.2f}' for x in running)} s, median {running_s:.2f} s ({running_s / ours_s:.0%} of the "
          f"first import; the first re-import of the process, untimed, made its transformers and mappers)")
    print(f"RESULT import ratio_vs_ogr2ogr={ours_s / ogr_s:.2f} reimport_1pct_s={again_s:.2f} peak_mb={peak:.0f}")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--phase-import":
        phase_import(sys.argv[2], sys.argv[3], json.loads(sys.argv[4]))
    elif len(sys.argv) == 5 and sys.argv[1] == "--phase-reimports":
        phase_reimports(sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4]))
    else:
        main()
