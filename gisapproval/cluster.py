"""The app-owned PostgreSQL + PostGIS cluster, used when DATABASE_URL is unset.

Layout under ``Settings.home``: ``pgdata/`` (the data directory, 0700), ``run/`` (the server's
Unix socket), ``log/postgres.log``, and ``cluster.json`` (port, user, password; 0600). As root
the server runs as the unprivileged system user ``gisapproval``; otherwise as the invoking user.
Every function here is idempotent: calling it again on a running cluster does nothing.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

from .config import Settings
from .errors import ClusterError

SERVICE_USER = os.environ.get("GISAPPROVAL_SERVICE_USER", "gisapproval")
DB_SUPERUSER = "gisapproval"
DEFAULT_DBNAME = "gisapproval"


def pg_bindir() -> Path:
    """The directory of initdb/pg_ctl: $PG_BINDIR, else the newest /usr/lib/postgresql/N/bin."""
    env = os.environ.get("PG_BINDIR")
    if env:
        return Path(env)
    versions = sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if versions:
        return versions[-1]
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    raise ClusterError(
        "PostgreSQL server programs (initdb, pg_ctl) not found; install them with "
        "`sudo apt-get install postgresql postgis` or set PG_BINDIR, or set DATABASE_URL "
        "to use an external PostGIS server"
    )


def _run_as() -> str | None:
    """The OS user the server runs as when we must switch user (as root), else None."""
    return SERVICE_USER if os.geteuid() == 0 else None


def _ensure_service_user() -> None:
    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
             "--shell", "/usr/sbin/nologin", SERVICE_USER],
            check=True, capture_output=True,
        )


def _cmd(args: list[str]) -> list[str]:
    user = _run_as()
    return ["runuser", "-u", user, "--", *args] if user else args


def _pg(settings: Settings, prog: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(_cmd([str(pg_bindir() / prog), *args]), capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise ClusterError(f"{prog} failed: {(proc.stderr or proc.stdout).strip()}", where=str(settings.pgdata))
    return proc


def _owner_uid(path: Path) -> int:
    return path.stat().st_uid


def _expected_uid() -> int:
    user = _run_as()
    return pwd.getpwnam(user).pw_uid if user else os.geteuid()


def is_running(settings: Settings) -> bool:
    if not (settings.pgdata / "PG_VERSION").exists():
        return False
    return _pg(settings, "pg_ctl", "status", "-D", str(settings.pgdata), check=False).returncode == 0


def _port_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _init(settings: Settings) -> None:
    home, pgdata = settings.home, settings.pgdata
    user = _run_as()
    if user:
        _ensure_service_user()
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o755)
    password = secrets.token_urlsafe(24)
    for sub in ("run", "log", "pgdata"):
        (home / sub).mkdir(exist_ok=True)
    os.chmod(pgdata, 0o700)
    pwfile = home / "run" / ".initdb-pw"
    pwfile.write_text(password + "\n")
    os.chmod(pwfile, 0o600)
    if user:
        uid = pwd.getpwnam(user).pw_uid
        gid = pwd.getpwnam(user).pw_gid
        for sub in ("run", "log", "pgdata"):
            os.chown(home / sub, uid, gid)
        os.chown(pwfile, uid, gid)
    try:
        _pg(settings, "initdb", "-D", str(pgdata), "-U", DB_SUPERUSER, "--auth=scram-sha-256",
            f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C.UTF-8")
    except ClusterError:
        for child in pgdata.iterdir():  # leave an empty directory, not half a cluster
            shutil.rmtree(child) if child.is_dir() else child.unlink()
        raise
    finally:
        pwfile.unlink(missing_ok=True)
    with open(pgdata / "postgresql.auto.conf", "a", encoding="utf-8") as conf:
        conf.write(
            "# written by gisapproval\n"
            "listen_addresses = '127.0.0.1'\n"
            f"unix_socket_directories = '{home / 'run'}'\n"
            "max_connections = 200\n"
            "shared_buffers = '256MB'\n"
            "work_mem = '32MB'\n"
            "maintenance_work_mem = '256MB'\n"
        )
    info = {"port": settings.pg_port, "user": DB_SUPERUSER, "password": password, "dbname": DEFAULT_DBNAME}
    settings.cluster_file.write_text(json.dumps(info, indent=1))
    os.chmod(settings.cluster_file, 0o600)


def ensure_running(settings: Settings) -> dict:
    """Initialise (first time) and start the app-owned cluster; return its connection facts."""
    pgdata = settings.pgdata
    if pgdata.exists() and any(pgdata.iterdir()):
        if not (pgdata / "PG_VERSION").exists():
            raise ClusterError(
                "the data directory exists but is not a PostgreSQL cluster; empty it or set "
                "GISAPPROVAL_HOME to another directory", where=str(pgdata))
        if _owner_uid(pgdata) != _expected_uid():
            owner = pwd.getpwuid(_owner_uid(pgdata)).pw_name
            runner = _run_as() or pwd.getpwuid(os.geteuid()).pw_name
            raise ClusterError(
                f"the data directory is owned by user {owner!r} but the server would run as "
                f"{runner!r}; run as {owner!r}, or set GISAPPROVAL_HOME to a directory of your own",
                where=str(pgdata))
        if not settings.cluster_file.exists():
            raise ClusterError(
                "the data directory exists but its connection file is missing; remove the "
                "directory to start afresh or set GISAPPROVAL_HOME", where=str(settings.cluster_file))
    else:
        _init(settings)
    info = json.loads(settings.cluster_file.read_text())
    if is_running(settings):
        return info
    port = int(info["port"])
    if _port_taken(port):
        raise ClusterError(
            f"port {port} on 127.0.0.1 is already taken by another program; stop it or choose "
            f"another port: GISAPPROVAL_PGPORT=<port> with a fresh GISAPPROVAL_HOME")
    log = settings.home / "log" / "postgres.log"
    proc = _pg(settings, "pg_ctl", "start", "-w", "-t", "60", "-D", str(pgdata), "-l", str(log),
               "-o", f"-p {port}", check=False)
    if proc.returncode != 0:
        tail = ""
        try:
            tail = log.read_text(errors="replace").strip().splitlines()[-1]
        except (OSError, IndexError):
            pass
        raise ClusterError(f"PostgreSQL did not start: {tail or proc.stderr.strip()} (log: {log})",
                           where=str(pgdata))
    deadline = time.monotonic() + 30
    while not _port_taken(port):
        if time.monotonic() > deadline:
            raise ClusterError(f"PostgreSQL started but does not accept connections on port {port} (log: {log})")
        time.sleep(0.1)
    return info


def stop(settings: Settings) -> bool:
    """Stop the app-owned cluster; False when it was not running."""
    if not is_running(settings):
        return False
    _pg(settings, "pg_ctl", "stop", "-m", "fast", "-w", "-D", str(settings.pgdata))
    return True
