"""Engines, sessions, and making sure a database with PostGIS exists.

The core never commits on behalf of a use case: callers own the transaction
(``with session_scope(factory) as s: ...``).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from .errors import DatabaseUnavailableError


def _describe(url: str) -> str:
    u = make_url(url)
    return f"{u.host or 'localhost'}:{u.port or 5432}/{u.database}"


def make_engine(url: str, **kwargs) -> sa.Engine:
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("connect_args", {"connect_timeout": 10})
    return sa.create_engine(url, **kwargs)


def sha256_prefix(text: str, chars: int) -> str:
    """The first ``chars`` hex digits of the SHA-256 of ``text`` (UTF-8); ``sha256_prefix_sql`` is
    the same in SQL, for values that Python and the database must compute alike."""
    return hashlib.sha256(text.encode()).hexdigest()[:chars]


def sha256_prefix_sql(text: sa.ColumnElement, chars: int) -> sa.ColumnElement:
    return sa.func.left(sa.func.encode(sa.func.sha256(sa.func.convert_to(text, "UTF8")), "hex"), chars)


def make_reader_engine(url: str, **kwargs) -> sa.Engine:
    """An engine for single-statement reads such as map tiles: autocommit (no BEGIN and ROLLBACK
    around each statement), no ping before use (the caller retries once on a dropped
    connection), and serial plans: tile statements run many at once, each small, and parallel
    workers cost more than they give (their start and the rows they pass back made a city-wide
    z11 tile take 122 ms instead of 65 ms) while taking cores from the other requests."""
    engine = make_engine(url, pool_pre_ping=False, isolation_level="AUTOCOMMIT", **kwargs)

    @sa.event.listens_for(engine, "connect")
    def serial_plans(dbapi_connection, _record) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET max_parallel_workers_per_gather = 0")
        dbapi_connection.commit()

    return engine


def make_session_factory(engine: sa.Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextlib.contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A transaction: commit when the block ends normally, roll back on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def check_connection(engine: sa.Engine) -> str:
    """Connect once and return the PostGIS version, or raise one clear error."""
    try:
        with engine.connect() as conn:
            has = conn.execute(sa.text("SELECT extversion FROM pg_extension WHERE extname = 'postgis'")).scalar()
    except sa.exc.OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise DatabaseUnavailableError(
            f"cannot connect to the database at {_describe(str(engine.url))}: {reason}. "
            "Check DATABASE_URL (or unset it to use the app's own cluster) and that the server is running"
        ) from None
    if not has:
        raise DatabaseUnavailableError(
            f"the database at {_describe(str(engine.url))} does not have the PostGIS extension; "
            "run `CREATE EXTENSION postgis;` in it as a superuser (Debian: apt-get install postgresql-NN-postgis-3)"
        )
    return has


def ensure_database(url: str) -> None:
    """Create the database named in ``url`` if it is missing, and the postgis extension in it."""
    target = make_url(url)
    admin = make_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        with admin.connect() as conn:
            exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": target.database}).scalar()
            if not exists:
                conn.execute(sa.text(f'CREATE DATABASE "{_ident(target.database)}" ENCODING \'UTF8\' TEMPLATE template0'))
    except sa.exc.OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        if "does not exist" in reason or "permission denied" in reason.lower():
            pass  # no access to the maintenance database: assume the target exists and try it below
        else:
            raise DatabaseUnavailableError(
                f"cannot connect to the database server at {_describe(url)}: {reason}. "
                "Check DATABASE_URL (or unset it to use the app's own cluster) and that the server is running"
            ) from None
    finally:
        admin.dispose()
    engine = make_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            available = conn.execute(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'")).scalar()
            if not available:
                raise DatabaseUnavailableError(
                    f"the PostgreSQL server at {_describe(url)} has no PostGIS extension available; "
                    "install it on the server (Debian/Ubuntu: apt-get install postgresql-NN-postgis-3)"
                )
            try:
                conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS postgis"))
            except sa.exc.ProgrammingError as exc:
                raise DatabaseUnavailableError(
                    f"cannot create the postgis extension in {_describe(url)}: "
                    f"{str(exc.orig).strip().splitlines()[0]}; ask the database administrator to run "
                    "`CREATE EXTENSION postgis;` in it"
                ) from None
    except sa.exc.OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise DatabaseUnavailableError(f"cannot connect to the database at {_describe(url)}: {reason}") from None
    finally:
        engine.dispose()


def drop_database(url: str) -> None:
    target = make_url(url)
    admin = make_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{_ident(target.database)}" WITH (FORCE)'))
    finally:
        admin.dispose()


def _ident(name: str | None) -> str:
    if not name or '"' in name or "\x00" in name:
        raise DatabaseUnavailableError(f"not a usable database name: {name!r}")
    return name
