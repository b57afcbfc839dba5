"""Shared fixtures. Every database test runs against a real PostGIS: when none can be
reached the fixtures fail with the reason (they never skip)."""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from gisapproval import cluster, migrate
from gisapproval.config import database_url, load_settings
from gisapproval.db import drop_database, ensure_database, make_engine, make_session_factory, session_scope

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


@pytest.fixture(scope="session", autouse=True)
def _digest_files_of_the_session(tmp_path_factory):
    """Layer imports in tests (also those of session fixtures, such as the sample's) keep their
    versions' content digests (gisapproval.digestcache) in the session's own directory, not in
    the app's home."""
    from gisapproval import digestcache

    where = tmp_path_factory.mktemp("live-digests")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(digestcache, "directory", lambda: where)
        yield


@pytest.fixture(autouse=True)
def digest_files(_digest_files_of_the_session, tmp_path_factory, monkeypatch):
    """Each test keeps them in a directory of its own; the directory."""
    from gisapproval import digestcache

    where = tmp_path_factory.mktemp("live-digests")
    monkeypatch.setattr(digestcache, "directory", lambda: where)
    return where


@pytest.fixture(scope="session")
def settings():
    s = load_settings()
    if not s.database_url:
        cluster.ensure_running(s)
    return s


def _throwaway_url(settings, label: str) -> str:
    name = f"gisapproval_test_{label}_{os.getpid()}_{secrets.token_hex(3)}"
    url = database_url(settings, name)
    ensure_database(url)
    return url


@pytest.fixture(scope="session")
def empty_db_url(settings):
    """A throwaway database with PostGIS and no schema (for migration tests)."""
    url = _throwaway_url(settings, "empty")
    yield url
    drop_database(url)


@contextlib.contextmanager
def sample_database(settings, label: str):
    """A throwaway database migrated to head with the sample district loaded, dropped afterwards."""
    from gisapproval.sample import load_sample

    url = _throwaway_url(settings, label)
    try:
        migrate.upgrade(url)
        engine = make_engine(url)
        with session_scope(make_session_factory(engine)) as session:
            load_sample(session, settings)
        engine.dispose()
        yield url
    finally:
        drop_database(url)


@pytest.fixture(scope="session")
def own_sample_db(settings):
    """``with own_sample_db("label") as url:`` — a sample database of the test's own, for tests
    that change shared state (publish layers, decide tasks) and must not disturb the others."""
    return lambda label: sample_database(settings, label)


@pytest.fixture(scope="session")
def db_url(own_sample_db):
    """A throwaway database migrated to head with the sample district loaded."""
    with own_sample_db("sample") as url:
        yield url


@pytest.fixture(scope="session")
def engine(db_url):
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture()
def session(engine):
    """A session whose work is rolled back after the test (commits become savepoints)."""
    conn = engine.connect()
    outer = conn.begin()
    s = Session(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)
    yield s
    s.close()
    outer.rollback()
    conn.close()


@pytest.fixture(scope="session")
def app(db_url):
    from web import create_app

    return create_app({"TESTING": True, "DATABASE_URL": db_url, "SECRET_KEY": "test", "WTF_CSRF_ENABLED": True})


@pytest.fixture()
def client(app):
    return app.test_client()


class LiveServer:
    def __init__(self, app):
        from werkzeug.serving import make_server

        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        self.port = self._server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._server.shutdown()


@contextlib.contextmanager
def serving(app):
    """``app`` served on a free localhost port by a background thread, until the block ends."""
    server = LiveServer(app).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def serve():
    """``with serve(app) as server: server.url`` — for tests with an app of their own."""
    return serving


@pytest.fixture(scope="session")
def live_server(app):
    with serving(app) as server:
        yield server


CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: install Debian's chromium package (./platform test does)")
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-background-networking", "--disable-component-update",
                  "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--disable-sync"],
        )
        yield b
        b.close()


@pytest.fixture()
def browser_page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="zh-CN")
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture(scope="session")
def artifacts_dir():
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
