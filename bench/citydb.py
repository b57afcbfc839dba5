"""A city-scale database for the map benchmarks (bench/tiles.py, bench/load.py).

Generates a city with ``sample_parcels.generate`` (parcels, every layer, sample projects) into a
directory, and loads it through the platform's own sample loader (streamed, validated layer
imports) into a database named after the parcel count, with a jurisdiction extent widened
to the city. Both are reused when they exist (``--fresh`` rebuilds), so the benchmarks can run
one after the other without building the city twice. Also serves the app with gunicorn.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

EXTENT_MARGIN_M = 1000.0  # the jurisdiction extent reaches this far beyond the generated city


def city_dir(parcels: int) -> Path:
    return Path(tempfile.gettempdir()) / f"gisapproval-bench-city-{parcels}"


def _settings_for(data_dir: Path):
    import pyogrio

    from gisapproval.config import load_settings

    bounds = [pyogrio.read_info(data_dir / "district.gpkg", layer=layer, force_total_bounds=True)["total_bounds"]
              for layer, _type in pyogrio.list_layers(data_dir / "district.gpkg")]
    extent = (min(b[0] for b in bounds) - EXTENT_MARGIN_M, min(b[1] for b in bounds) - EXTENT_MARGIN_M,
              max(b[2] for b in bounds) + EXTENT_MARGIN_M, max(b[3] for b in bounds) + EXTENT_MARGIN_M)
    s = load_settings()
    return replace(s, jurisdiction=replace(s.jurisdiction, extent=extent))


def ensure_city(parcels: int, *, fresh: bool = False, data_dir: Path | None = None, log=print) -> str:
    """The URL of a database holding a ``parcels``-parcel city with the sample projects."""
    import sqlalchemy as sa

    from gisapproval import cluster, migrate
    from gisapproval.config import database_url, load_settings
    from gisapproval.db import drop_database, ensure_database, make_engine, make_session_factory, session_scope
    from gisapproval.sample import load_sample
    from sample_parcels.generate import generate

    base = load_settings()
    if not base.database_url:
        cluster.ensure_running(base)
    data_dir = Path(data_dir or city_dir(parcels))
    if fresh or not (data_dir / "district.gpkg").exists() or not (data_dir / "projects.json").exists():
        t0 = time.perf_counter()
        generate(data_dir, parcels=parcels, projects=True)
        log(f"generated a {parcels}-parcel city in {time.perf_counter() - t0:.1f} s ({data_dir})")
    url = database_url(base, f"gisapproval_bench_city_{parcels}")
    if fresh:
        drop_database(url)
    ensure_database(url)
    engine = make_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            loaded = conn.scalar(sa.text("SELECT to_regclass('parcels') IS NOT NULL")) and conn.scalar(
                sa.text("SELECT count(*) FROM parcels")) >= parcels * 0.9
    finally:
        engine.dispose()
    if loaded:
        migrate.upgrade(url)  # a city built by an older version of the code gets the newer schema
    else:
        drop_database(url)
        ensure_database(url)
        migrate.upgrade(url)
        t0 = time.perf_counter()
        engine = make_engine(url)
        with session_scope(make_session_factory(engine)) as session:
            load_sample(session, _settings_for(data_dir), data_dir=data_dir)
        engine.dispose()
        log(f"loaded the city into {url.rsplit('/', 1)[-1]} in {time.perf_counter() - t0:.1f} s")
    # fresh statistics, also after a migration that rewrote tables (ANALYZE of a partitioned
    # table covers its partitions)
    engine = make_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        conn.execute(sa.text("COMMIT"))
        for table in ("layer_features", "buildings", "projects", "project_parcels", "events"):
            conn.execute(sa.text(f"ANALYZE {table}"))
    engine.dispose()
    return url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(url: str, workers: int = 2, threads: int = 4, app: str = "web.wsgi:app"):
    """``app`` (default: the platform) under gunicorn (the production server) on a free local
    port; yields its base URL once its /healthz answers."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": "bench", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", str(workers), "--threads", str(threads), "-b", f"127.0.0.1:{port}",
         "--log-level", "warning", app], cwd=ROOT, env={**env, "PYTHONPATH": f"{ROOT}:{ROOT / 'bench'}"})
    base = f"http://127.0.0.1:{port}"
    try:
        import requests

        for _ in range(120):
            try:
                if requests.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.5)
        else:
            raise RuntimeError("the app did not start")
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def login(base: str, username: str, password: str = "gisdemo2026"):
    """A requests.Session logged in through the form (cookie + CSRF), as a browser would be."""
    import re

    import requests

    s = requests.Session()
    html = s.get(f"{base}/login", timeout=30).text
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)
    r = s.post(f"{base}/login", data={"username": username, "password": password, "csrf_token": token}, timeout=30)
    r.raise_for_status()
    return s
