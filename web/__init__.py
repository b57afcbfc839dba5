"""The Flask front of gisapproval: ``create_app()`` builds an app; nothing is built at import.

``gunicorn web.wsgi:app`` serves the app that ``web/wsgi.py`` builds.
"""

from __future__ import annotations

import datetime as dt
import importlib
import os

from flask import Flask, g
from sqlalchemy.exc import OperationalError

from gisapproval.config import database_url, load_settings
from gisapproval.errors import DatabaseUnavailableError

# The areas of the front, each a module with ``init_app(app)`` that registers its blueprints
# (HTML and API), navigation entries and messages. A new area adds its module name here.
AREAS = ("auth", "pages", "layers", "tiles", "mapapi", "ogcapi", "exports", "workflow", "projects")

DEFAULT_MAX_UPLOAD_BYTES = 50 * 1024 * 1024  # uploads are zipped shapefiles / GeoPackages of footprints


def create_app(test_config: dict | None = None) -> Flask:
    """Build the app. ``test_config`` overrides any setting (tests pass DATABASE_URL, SECRET_KEY...)."""
    from . import api, db, i18n, nav, security

    test_config = dict(test_config or {})
    settings = load_settings()
    app = Flask(__name__)
    app.config.update(
        MAX_CONTENT_LENGTH=DEFAULT_MAX_UPLOAD_BYTES,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_NAME="gisapproval_session",
        SESSION_COOKIE_SECURE=os.environ.get("GISAPPROVAL_SECURE_COOKIES", "") == "1",
        PERMANENT_SESSION_LIFETIME=dt.timedelta(hours=8),
        WTF_CSRF_TIME_LIMIT=8 * 3600,
    )
    app.config.update(test_config)
    app.json.ensure_ascii = False

    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = settings.secret_key or security.persistent_secret_key(settings.home)
    app.config["DATABASE_URL"] = test_config.get("DATABASE_URL") or database_url(settings)

    db.init_app(app, app.config["DATABASE_URL"], settings)
    security.init_app(app)
    i18n.init_app(app)
    nav.init_app(app)
    api.init_app(app)
    for name in AREAS:
        importlib.import_module(f"{__name__}.{name}").init_app(app)
    from . import pages

    _register_error_pages(app, pages)

    @app.context_processor
    def inject_jurisdiction():
        return {"jurisdiction": settings.jurisdiction}

    return app


def _register_error_pages(app: Flask, pages) -> None:
    for code in (400, 401, 403, 404, 405, 409, 413, 422):
        app.register_error_handler(code, pages.error_page(code))

    def unavailable(exc):
        g._user = None  # the header must not query the database that just failed
        return pages.error_page(503)(exc)

    def internal(exc):
        g._user = None
        return pages.error_page(500)(exc)

    app.register_error_handler(DatabaseUnavailableError, unavailable)
    app.register_error_handler(OperationalError, unavailable)
    app.register_error_handler(500, internal)
