"""The `gisapproval` command line. Every error a user can cause is one clear line, exit 2."""

from __future__ import annotations

import datetime as dt
import os
import socket
import sys

import click
from sqlalchemy import exc as sa_exc

from . import cluster
from .config import database_url, load_settings
from .errors import GisApprovalError


def _settings():
    return load_settings()


@click.group()
def cli() -> None:
    """gisapproval: the geospatial joint construction-approval platform."""


# --- database -------------------------------------------------------------------------

@cli.group()
def db() -> None:
    """The database: the app's own cluster or DATABASE_URL."""


def prepare_database(settings, dbname: str | None = None) -> str:
    """Start the app's cluster when DATABASE_URL is unset, create the database with PostGIS,
    and migrate it to head. Returns its URL."""
    from . import migrate
    from .db import ensure_database

    if not settings.database_url:
        cluster.ensure_running(settings)
    url = database_url(settings, dbname)
    ensure_database(url)
    migrate.upgrade(url)
    return url


@db.command("up")
def db_up() -> None:
    """Start the cluster if needed, create the database and migrate it to head."""
    settings = _settings()
    url = prepare_database(settings)
    from sqlalchemy.engine import make_url

    u = make_url(url)
    where = "DATABASE_URL" if settings.database_url else f"app cluster in {settings.home}"
    click.echo(f"database ready: {u.host}:{u.port}/{u.database} ({where})")


@db.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default head)."""
    from . import migrate

    migrate.upgrade(database_url(_settings()), revision)


@db.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Revert migrations down to REVISION (e.g. -1)."""
    from . import migrate

    migrate.downgrade(database_url(_settings()), revision)


@db.command("url")
def db_url() -> None:
    """Print the database URL the app uses (contains the password)."""
    click.echo(database_url(_settings()))


# --- the app-owned cluster --------------------------------------------------------------

@cli.group("cluster")
def cluster_group() -> None:
    """The app-owned PostgreSQL cluster (used when DATABASE_URL is unset)."""


@cluster_group.command("start")
def cluster_start() -> None:
    settings = _settings()
    info = cluster.ensure_running(settings)
    click.echo(f"cluster running on 127.0.0.1:{info['port']} (data: {settings.pgdata})")


@cluster_group.command("stop")
def cluster_stop() -> None:
    settings = _settings()
    if settings.database_url:
        click.echo("DATABASE_URL is set: the external server is not ours to stop")
        return
    stopped = cluster.stop(settings)
    click.echo("cluster stopped" if stopped else "cluster was not running")


@cluster_group.command("status")
def cluster_status() -> None:
    settings = _settings()
    click.echo("running" if cluster.is_running(settings) else "stopped")


# --- sample data ----------------------------------------------------------------------

@cli.group()
def sample() -> None:
    """The sample district."""


@sample.command("load")
@click.option("--data", "data_dir", type=click.Path(exists=True, file_okay=False), default=None)
def sample_load(data_dir) -> None:
    """Load sample_parcels/data into the database (does nothing if layers exist)."""
    import time

    from .db import make_engine, make_session_factory, session_scope
    from .sample import load_sample

    settings = _settings()
    engine = make_engine(database_url(settings))
    t0 = time.monotonic()
    with session_scope(make_session_factory(engine)) as session:
        counts = load_sample(session, settings, data_dir)
    engine.dispose()
    if counts.get("skipped"):
        click.echo("sample district already loaded")
    else:
        click.echo(f"sample district loaded in {time.monotonic() - t0:.1f}s: "
                   + ", ".join(f"{k}={v}" for k, v in counts.items()))


# --- layers -----------------------------------------------------------------------------

@cli.group()
def layer() -> None:
    """The shared layers: import, versions, diff, roll back."""


def _session_scope():
    from .db import make_engine, make_session_factory, session_scope

    settings = _settings()
    engine = make_engine(database_url(settings))
    return settings, engine, session_scope(make_session_factory(engine))


def _actor(session, username: str):
    import sqlalchemy as sa

    from .errors import NotFoundError
    from .models import User

    user = session.scalar(sa.select(User).where(User.username == username))
    if user is None or not user.is_active:
        raise NotFoundError(f"no active user {username!r}")
    return user


@layer.command("import")
@click.argument("layer_name")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--user", "username", required=True, help="the layer editor doing the import")
@click.option("--crs", default=None, help="the source's CRS when the file has none, e.g. EPSG:4547")
@click.option("--repair", is_flag=True, help="fix invalid geometries with make_valid and report each repair")
def layer_import(layer_name, file, username, crs, repair) -> None:
    """Import FILE as the next version of LAYER_NAME (all or nothing)."""
    from pathlib import Path

    from .layerimport import ImportOptions
    from .layerversions import publish_layer_version, record_refused_import

    settings, engine, scope = _session_scope()
    try:
        with scope as session:
            actor = _actor(session, username)
            report = publish_layer_version(session, settings, actor, layer_name, Path(file),
                                           options=ImportOptions(crs=crs, repair=repair))
    except GisApprovalError as exc:
        from .db import make_session_factory, session_scope

        with session_scope(make_session_factory(engine)) as session:
            record_refused_import(session, _actor_or_none(session, username), layer_name, Path(file).name, exc)
        for problem in getattr(exc, "problems", [])[:50]:
            click.echo(f"  {problem}", err=True)
        raise
    finally:
        engine.dispose()
    r = report.as_dict()
    click.echo(f"layer {r['layer']} version {r['version']}: {r['added']} added, {r['changed']} changed, "
               f"{r['removed']} removed, {r['unchanged']} unchanged ({r['features']} features read from "
               f"{r['source_crs']}) in {r['seconds']} s")
    for repair_note in r["repairs"]:
        click.echo(f"  {repair_note}")
    if r["affected_project_ids"]:
        click.echo(f"projects in flight affected: {', '.join(map(str, r['affected_project_ids']))}")


def _actor_or_none(session, username):
    try:
        return _actor(session, username)
    except GisApprovalError:
        return None


@layer.command("versions")
@click.argument("layer_name")
def layer_versions(layer_name) -> None:
    """List a layer's versions, newest first."""
    from .layerversions import list_versions

    settings, engine, scope = _session_scope()
    with scope as session:
        for v in list_versions(session, layer_name):
            click.echo(f"v{v.number}  {v.created_at:%Y-%m-%d %H:%M}  +{v.count_added} ~{v.count_changed} "
                       f"-{v.count_removed} ={v.count_unchanged}  {v.source_name}")
    engine.dispose()


@layer.command("diff")
@click.argument("layer_name")
@click.argument("a", type=int)
@click.argument("b", type=int)
def layer_diff(layer_name, a, b) -> None:
    """Show what changed in LAYER_NAME between versions A and B."""
    from .layerversions import diff_versions

    settings, engine, scope = _session_scope()
    with scope as session:
        d = diff_versions(session, layer_name, a, b)
    engine.dispose()
    click.echo(f"{layer_name} v{a} -> v{b}: {len(d.added)} added, {len(d.changed)} changed, {len(d.removed)} removed")
    for kind in ("added", "changed", "removed"):
        for key in getattr(d, kind)[:100]:
            click.echo(f"  {kind:8s} {key}")


@layer.command("rollback")
@click.argument("layer_name")
@click.argument("version", type=int)
@click.option("--user", "username", required=True)
def layer_rollback(layer_name, version, username) -> None:
    """Publish VERSION's content of LAYER_NAME as a new version."""
    from .layerversions import rollback_layer

    settings, engine, scope = _session_scope()
    with scope as session:
        r = rollback_layer(session, _actor(session, username), layer_name, version)
    engine.dispose()
    click.echo(f"layer {layer_name} version {r.number} has version {version}'s content: {r.added} added, "
               f"{r.changed} changed, {r.removed} removed")


# --- API tokens -------------------------------------------------------------------------

@cli.group()
def token() -> None:
    """Bearer tokens for machine clients of the JSON API."""


@token.command("create")
@click.option("--user", "username", required=True)
@click.option("--name", required=True, help="what uses the token, e.g. 'QGIS at the land bureau'")
def token_create(username, name) -> None:
    """Create a token for USER and print it (it is shown only this once)."""
    from .accounts import create_api_token

    settings, engine, scope = _session_scope()
    with scope as session:
        user = _actor(session, username)
        value = create_api_token(session, user, user, name)
    engine.dispose()
    click.echo(value)


# --- workflow: sweep and the working-day calendar (issue 5) ----------------------------

@cli.command()
@click.option("--today", default=None, help="the day to sweep as (YYYY-MM-DD; default: today in China)")
def sweep(today) -> None:
    """Apply art. 32 deemed acceptances, deemed approvals on timeout and warnings (idempotent)."""
    from .workflow.sweep import sweep as run_sweep

    _, engine, scope = _session_scope()
    with scope as session:
        counts = run_sweep(session, _date(today) if today else None)
    engine.dispose()
    click.echo(" ".join(f"{k}={v}" for k, v in counts.items()))


@cli.group("calendar")
def calendar_group() -> None:
    """The working-day calendar: what it knows, a year's schedule, single-day overrides."""


@calendar_group.command("status")
def calendar_status_cmd() -> None:
    """Years the library knows, years entered, overrides, and the years ahead still unknown."""
    from .workflow.base import today_in_china
    from .workflow.calendar import calendar_status

    _, engine, scope = _session_scope()
    with scope as session:
        st = calendar_status(session, today_in_china())
        click.echo(f"library {st['library']}: {st['library_first_year']}-{st['library_last_year']}")
        click.echo(f"entered years: {', '.join(map(str, st['entered_years'] + st['file_years'])) or 'none'}")
        for o in st["overrides"]:
            click.echo(f"{o.day} {'workday' if o.is_workday else 'off'} {o.note or ''}")
        if st["unknown_years_ahead"]:
            click.echo(f"unknown (provisional, weekends only): {', '.join(map(str, st['unknown_years_ahead']))}")
    engine.dispose()


@calendar_group.command("load")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--user", "username", required=True, help="the administrator entering the schedule")
def calendar_load(file, username) -> None:
    """Enter a year's schedule from a TOML file (see layers/calendar/README.md)."""
    from pathlib import Path

    from .workflow.calendar import enter_year, parse_schedule

    _, engine, scope = _session_scope()
    with scope as session:
        counts = enter_year(session, _actor(session, username), parse_schedule(Path(file).read_text("utf-8"), file))
    engine.dispose()
    click.echo(f"entered {counts['year']}: {counts['holidays']} days off, {counts['workdays']} make-up working days")


@calendar_group.command("set")
@click.argument("day")
@click.argument("kind", type=click.Choice(["workday", "off"]))
@click.option("--note", default=None)
@click.option("--user", "username", required=True)
def calendar_set(day, kind, note, username) -> None:
    """Declare DAY a working day or a day off."""
    from .workflow.calendar import set_override

    _, engine, scope = _session_scope()
    with scope as session:
        set_override(session, _actor(session, username), _date(day), kind == "workday", note)
    engine.dispose()
    click.echo(f"{day} {kind}")


@calendar_group.command("add")
@click.argument("date")
@click.argument("n", type=int)
def calendar_add(date: str, n: int) -> None:
    """Like `workdays add`, on the calendar with the entered years and overrides of the database."""
    from .workflow.calendar import load_calendar

    if n < 0:
        raise GisApprovalError("N must be 0 or more")
    _, engine, scope = _session_scope()
    with scope as session:
        result = load_calendar(session).add(_date(date), n)
    engine.dispose()
    click.echo(result.day.isoformat() + (" (provisional: the calendar does not know every year on the way)"
                                         if result.is_provisional else ""))


# --- checks (issue 4) --------------------------------------------------------------------

@cli.group()
def checks() -> None:
    """The parallel spatial checks: run them on a project, re-check after a layer change."""


@checks.command("run")
@click.argument("project_code")
@click.option("--purpose", default="review", type=click.Choice(["self_check", "review", "recheck"]))
def checks_run(project_code, purpose) -> None:
    """Run every department's checks on PROJECT_CODE and print the results."""
    import sqlalchemy as sa

    from .checks.engine import run_project_checks, run_results
    from .errors import NotFoundError
    from .models import Project

    _settings, engine, scope = _session_scope()
    with scope as session:
        project = session.scalar(sa.select(Project).where(Project.code == project_code))
        if project is None:
            raise NotFoundError(f"no project {project_code!r}")
        run = run_project_checks(session, None, project, purpose=purpose)
        lines = [f"check run {run.id} of {project.code}: {run.summary}"
                 + (f"; brings in {', '.join(run.extra_departments)}" if run.extra_departments else "")]
        for result, _ in run_results(session, run):
            if result.outcome != "pass":
                lines.append(f"  {result.rule_id:24s} {result.outcome:14s} {result.message_en}")
    engine.dispose()
    click.echo("\n".join(lines))


@checks.command("recheck")
@click.argument("version_id", type=int)
def checks_recheck(version_id) -> None:
    """Re-check the projects in flight affected by layer version VERSION_ID."""
    from .checks.engine import recheck_affected

    _settings, engine, scope = _session_scope()
    with scope as session:
        run_ids = recheck_affected(session, version_id)
    engine.dispose()
    click.echo(f"{len(run_ids)} project(s) re-checked" + (f": runs {', '.join(map(str, run_ids))}" if run_ids else ""))


# --- serving --------------------------------------------------------------------------

def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


@cli.command()
@click.option("--host", default=lambda: os.environ.get("GISAPPROVAL_HOST", "127.0.0.1"), show_default="127.0.0.1")
@click.option("--port", type=int, default=lambda: int(os.environ.get("GISAPPROVAL_PORT", "8000")), show_default="8000")
@click.option("--workers", type=int, default=lambda: int(os.environ.get("GISAPPROVAL_WORKERS", "2")), show_default="2")
@click.option("--threads", type=int, default=lambda: int(os.environ.get("GISAPPROVAL_THREADS", "4")), show_default="4",
              help="threads per worker: a map fetches several tiles at once over kept-alive connections")
def serve(host: str, port: int, workers: int, threads: int) -> None:
    """Serve the web app with gunicorn (threaded workers, as bench/ measures it)."""
    from .db import check_connection, make_engine

    settings = _settings()
    engine = make_engine(database_url(settings))
    check_connection(engine)
    engine.dispose()
    if not _port_free(host, port):
        raise GisApprovalError(f"port {port} on {host} is already in use; stop what uses it or choose another "
                               f"with GISAPPROVAL_PORT=<port>")
    click.echo(f"serving on http://{host}:{port}/")
    sys.stdout.flush()
    os.execvp(sys.executable, [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--threads", str(threads),
                               "--bind", f"{host}:{port}", "--access-logfile", "-", "web.wsgi:app"])


# --- working days ---------------------------------------------------------------------

@cli.group()
def workdays() -> None:
    """Working-day arithmetic on the PRC calendar."""


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise GisApprovalError(f"not a date (YYYY-MM-DD): {text!r}") from None


@workdays.command("add")
@click.argument("date")
@click.argument("n", type=int)
def workdays_add(date: str, n: int) -> None:
    """Print the N-th working day after DATE."""
    from .workdays import Calendar

    if n < 0:
        raise GisApprovalError("N must be 0 or more")
    result = Calendar().add(_date(date), n)
    click.echo(result.day.isoformat() + (" (provisional: the calendar does not know every year on the way)"
                                         if result.is_provisional else ""))


@workdays.command("between")
@click.argument("a")
@click.argument("b")
def workdays_between(a: str, b: str) -> None:
    """Print the number of working days in (A, B]."""
    from .workdays import Calendar

    count, provisional = Calendar().between(_date(a), _date(b))
    click.echo(str(count) + (" (provisional)" if provisional else ""))


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except GisApprovalError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except (sa_exc.ProgrammingError, sa_exc.OperationalError) as exc:
        click.echo(f"error: {database_problem(exc)}", err=True)
        sys.exit(2)


def database_problem(exc) -> str:
    """One line for a database error a user can fix: a schema behind the code, or no server."""
    import psycopg.errors as pg

    orig = getattr(exc, "orig", None)
    if isinstance(orig, (pg.UndefinedTable, pg.UndefinedColumn)):
        return (f"the database schema is older than this code ({str(orig).splitlines()[0]}); "
                "run `gisapproval db upgrade` (or `./platform setup`)")
    first = str(orig or exc).strip().splitlines()[0]
    return f"database error: {first}"


if __name__ == "__main__":
    main()
