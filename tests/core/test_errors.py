"""Each environment problem is one clear line saying what is wrong and how to fix it."""

import os
import pwd
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from gisapproval import cluster
from gisapproval.config import Settings, load_jurisdiction
from gisapproval.db import check_connection, ensure_database, make_engine
from gisapproval.errors import ClusterError, DatabaseUnavailableError

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "gisapproval.cli"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli(*args, env=None):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=full_env, cwd=REPO, timeout=120)


def test_unreachable_database_url_is_one_clear_line():
    port = _free_port()
    proc = _cli("db", "up", env={"DATABASE_URL": f"postgresql://nobody:pw@127.0.0.1:{port}/nothing"})
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: cannot connect")
    assert f"127.0.0.1:{port}/nothing" in lines[0] and "DATABASE_URL" in lines[0]
    assert "Traceback" not in proc.stderr


def test_database_without_postgis_is_named(settings, empty_db_url):
    from gisapproval.db import drop_database
    from sqlalchemy.engine import make_url

    url = make_url(empty_db_url).set(database=make_url(empty_db_url).database + "_nopostgis")
    url = url.render_as_string(hide_password=False)
    ensure_database(url)
    engine = make_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as c:
            c.execute(sa.text("DROP EXTENSION postgis CASCADE"))
        with pytest.raises(DatabaseUnavailableError, match="does not have the PostGIS extension"):
            check_connection(engine)
    finally:
        engine.dispose()
        drop_database(url)


def test_port_already_taken_is_refused_clearly(tmp_path):
    home = tmp_path / "home"
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        s = Settings(database_url=None, home=_reachable(home), pg_port=port, jurisdiction=load_jurisdiction())
        with pytest.raises(ClusterError, match=f"port {port} on 127.0.0.1 is already taken"):
            cluster.ensure_running(s)
    assert not cluster.is_running(s)


def test_data_directory_owned_by_someone_else_is_refused(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("only root can give a directory to another user; CI runs as root")
    home = _reachable(tmp_path / "home2")
    pgdata = home / "pgdata"
    pgdata.mkdir(parents=True)
    (pgdata / "PG_VERSION").write_text("15\n")
    (home / "cluster.json").write_text("{}")
    other = pwd.getpwnam("nobody")
    os.chown(pgdata, other.pw_uid, other.pw_gid)
    s = Settings(database_url=None, home=home, pg_port=_free_port(), jurisdiction=load_jurisdiction())
    with pytest.raises(ClusterError, match="owned by user 'nobody'") as info:
        cluster.ensure_running(s)
    assert "GISAPPROVAL_HOME" in str(info.value) and str(pgdata) in str(info.value)


def test_cli_port_in_use_for_serving_is_one_clear_line():
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        proc = _cli("serve", "--port", str(port))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: port {port} on 127.0.0.1 is already in use; stop what uses it or choose another "
        "with GISAPPROVAL_PORT=<port>"]


def _reachable(path: Path) -> Path:
    """A directory the unprivileged server user can reach (pytest's tmp dirs are private to root)."""
    if os.geteuid() != 0:
        return path
    base = Path("/var/tmp/gisapproval-tests")
    base.mkdir(exist_ok=True)
    os.chmod(base, 0o755)
    target = base / f"{path.name}-{os.getpid()}"
    if target.exists():
        import shutil
        shutil.rmtree(target)
    return target


def test_a_schema_behind_the_code_is_one_clear_line(settings):
    from gisapproval import migrate
    from gisapproval.config import database_url
    from gisapproval.db import drop_database

    url = database_url(settings, f"gisapproval_test_oldschema_{os.getpid()}")
    ensure_database(url)
    try:
        migrate.upgrade(url, "0004")
        proc = _cli("calendar", "status", env={"DATABASE_URL": url})
    finally:
        drop_database(url)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert lines[0].startswith("error: the database schema is older than this code") and "db upgrade" in lines[0]
