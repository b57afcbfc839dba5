"""Downloads (GeoPackage, GeoJSON): /exports/layers/<name>.<fmt>[?version=N],
/exports/projects/<code>/footprints.<fmt>, /exports/projects/<code>/checks.<fmt>.

Authenticated by session cookie or bearer token (``web.api.api_user``); errors come back as the
app's error pages (HTML) with the status of the error.
"""

from __future__ import annotations

from flask import Blueprint, Response, request

from gisapproval import exports
from gisapproval.errors import AuthenticationError, InputError

from .api import api_user
from .db import get_db

bp = Blueprint("exports", __name__, url_prefix="/exports")


def _user():
    user = api_user()
    if user is None:
        raise AuthenticationError("log in or send a bearer token to download")
    return user


def _send(result: exports.ExportFile) -> Response:
    get_db().commit()  # the audit event of the export
    response = Response(result.content, mimetype=result.mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{result.filename}"'
    response.headers["X-Feature-Count"] = str(result.count)
    return response


@bp.route("/layers/<name>.<fmt>")
def layer(name: str, fmt: str):
    raw = request.args.get("version")
    try:
        version = int(raw) if raw not in (None, "") else None
    except ValueError:
        raise InputError(f"version must be a whole number, not {raw!r}", where="version") from None
    return _send(exports.export_layer_version(get_db(), _user(), name, version, fmt))


@bp.route("/projects/<code>/footprints.<fmt>")
def footprints(code: str, fmt: str):
    return _send(exports.export_project_footprints(get_db(), _user(), code, fmt))


@bp.route("/projects/<code>/checks.<fmt>")
def checks(code: str, fmt: str):
    return _send(exports.export_project_checks(get_db(), _user(), code, fmt))


def init_app(app) -> None:
    app.register_blueprint(bp)
