"""Mixed-role load on the city: 50 simulated users for 60 s against the app under gunicorn.

    python bench/load.py [--parcels 200000] [--users 50] [--seconds 60] [--city-dir DIR]

Users (bearer tokens of the sample accounts), without think time:
  planners   (40%) pan the map: the parcels and footprints tiles of a 3x3 block at z14-z16
             around a random parcel, then open a parcel's details;
  reviewers  (30%) list their department's open tasks, open one, and now and then decide it;
  applicants (30%) list their projects and run a self-check on one.
Operations the running app does not offer (looked up in its OpenAPI description) are replaced
by map panning, and the report says so. Errors are 5xx answers and failed connections; 4xx
answers that the rules allow (409 when two reviewers decide the same task) are counted apart.

Last line: RESULT load p95_ms=<ms> errors=<n>
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import citydb

PLANNERS = ("supervisor", "planning_reviewer", "leader", "clerk")
REVIEWERS = ("land_reviewer", "planning_reviewer", "construction_reviewer", "fire_reviewer")
APPLICANTS = ("applicant1", "applicant2")
SHARES = (("planner", 0.4), ("reviewer", 0.3), ("applicant", 0.3))
DECIDE_EVERY = 10  # a reviewer decides one task in this many rounds


def tile_of(lon, lat, z):
    n = 1 << z
    return int((lon + 180) / 360 * n), int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.times = defaultdict(list)
        self.errors = Counter()
        self.refusals = Counter()

    def record(self, kind, elapsed, status):
        with self.lock:
            self.times[kind].append(elapsed)
            if status is None or status >= 500:
                self.errors[f"{kind} {status}"] += 1
            elif status >= 400:
                self.refusals[f"{kind} {status}"] += 1


def make_tokens(url: str) -> dict[str, str]:
    import sqlalchemy as sa
    from sqlalchemy.orm import Session

    from gisapproval.accounts import create_api_token
    from gisapproval.db import make_engine
    from gisapproval.models import User

    engine = make_engine(url)
    tokens = {}
    with Session(engine) as s:
        for name in set(PLANNERS + REVIEWERS + APPLICANTS):
            user = s.scalar(sa.select(User).where(User.username == name))
            tokens[name] = create_api_token(s, user, user, "bench load")
        s.commit()
    engine.dispose()
    return tokens


def parcel_points(url: str, n: int = 2000):
    import sqlalchemy as sa

    from gisapproval.db import make_engine

    engine = make_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT id, ST_X(p), ST_Y(p) FROM (SELECT ident AS id, ST_Transform(ST_Centroid(geom), 4326) p FROM layer_features "
            "TABLESAMPLE SYSTEM (5) WHERE valid_to IS NULL AND layer_id = (SELECT id FROM layers WHERE name = 'cadastre') "
            "LIMIT :n) s"), {"n": n}).all()
    engine.dispose()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--parcels", type=int, default=200_000)
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--city-dir", default=None)
    ap.add_argument("--fresh", action="store_true")
    args = ap.parse_args()
    import requests

    url = citydb.ensure_city(args.parcels, fresh=args.fresh, data_dir=args.city_dir)
    tokens = make_tokens(url)
    points = parcel_points(url)
    stats = Stats()
    with citydb.serve(url, workers=2, threads=8) as base:
        spec = requests.get(f"{base}/api/openapi.json", timeout=30).json()["paths"]
        offers = {
            "tasks": "/api/workflow/tasks" in spec and "/api/workflow/tasks/{task_id}/decision" in spec,
            "checks": "/api/projects" in spec and "/api/projects/{project_id}/checks" in spec,
        }
        print(f"operations offered by the app: {offers}")
        deadline = time.perf_counter() + args.seconds

        def call(session, kind, method, path, **kwargs):
            t0 = time.perf_counter()
            try:
                r = session.request(method, f"{base}{path}", timeout=120, **kwargs)
                status = r.status_code
            except requests.RequestException:
                r, status = None, None
            stats.record(kind, time.perf_counter() - t0, status)
            return r

        def pan(session, rng):
            pid, lon, lat = rng.choice(points)
            z = rng.choice((14, 15, 16))
            x, y = tile_of(lon, lat, z)
            for dx in (-1, 0, 1):
                for dy in (-1, 0, 1):
                    call(session, "tile", "GET", f"/tiles/parcels/{z}/{x + dx}/{y + dy}.pbf")
                    call(session, "tile", "GET", f"/tiles/footprints/{z}/{x + dx}/{y + dy}.pbf")
            call(session, "details", "GET", f"/api/map/parcels/{pid}")

        def review(session, rng, round_no):
            r = call(session, "task_list", "GET", "/api/workflow/tasks")
            tasks = r.json() if r is not None and r.status_code == 200 else []
            tasks = tasks.get("tasks", tasks) if isinstance(tasks, dict) else tasks
            if not tasks:
                return
            task = rng.choice(tasks)
            task_id = task.get("id") or task.get("task_id")
            detail = call(session, "task", "GET", f"/api/workflow/tasks/{task_id}")
            if round_no % DECIDE_EVERY == 0 and detail is not None and detail.status_code == 200:
                body = detail.json()
                version = body.get("row_version") or body.get("task", {}).get("row_version")
                call(session, "decision", "POST", f"/api/workflow/tasks/{task_id}/decision",
                     json={"decision": "approved", "opinion": "同意（压力测试）", "row_version": version})

        def self_check(session, rng):
            r = call(session, "projects", "GET", "/api/projects")
            projects = r.json() if r is not None and r.status_code == 200 else []
            projects = projects.get("projects", projects) if isinstance(projects, dict) else projects
            drafts = [p for p in projects if p.get("status") in ("draft", "in_correction")] or projects
            if drafts:
                call(session, "self_check", "POST", f"/api/projects/{rng.choice(drafts)['id']}/checks")

        def user(index: int):
            rng = random.Random(index)
            share, role = 0.0, "planner"
            for role, fraction in SHARES:
                share += fraction
                if index < share * args.users:
                    break
            name = {"planner": PLANNERS, "reviewer": REVIEWERS, "applicant": APPLICANTS}[role]
            name = name[index % len(name)]
            session = requests.Session()
            session.headers["Authorization"] = f"Bearer {tokens[name]}"
            round_no = 0
            while time.perf_counter() < deadline:
                round_no += 1
                if role == "reviewer" and offers["tasks"]:
                    review(session, rng, round_no)
                elif role == "applicant" and offers["checks"]:
                    self_check(session, rng)
                else:
                    pan(session, rng)

        threads = [threading.Thread(target=user, args=(i,)) for i in range(args.users)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0

    everything = [t for ts in stats.times.values() for t in ts]
    everything.sort()

    def p(values, q):
        values = sorted(values)
        return values[min(len(values) - 1, int(round(q * (len(values) - 1))))] * 1000

    print(f"{args.users} users for {wall:.0f} s: {len(everything)} requests ({len(everything) / wall:.0f}/s)")
    for kind, ts in sorted(stats.times.items()):
        print(f"  {kind:11s} n={len(ts):6d}  p50 {statistics.median(ts) * 1000:7.1f} ms  p95 {p(ts, 0.95):7.1f} ms")
    if stats.refusals:
        print(f"refused as the rules say (4xx): {dict(stats.refusals)}")
    if stats.errors:
        print(f"errors: {dict(stats.errors)}")
    print(f"RESULT load p95_ms={p(everything, 0.95):.0f} errors={sum(stats.errors.values())}")


if __name__ == "__main__":
    main()
