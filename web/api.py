"""The JSON API under /api: flask-smorest blueprints, one per area, with an OpenAPI 3
description generated from the code and served self-contained at /api/openapi.json.

Authentication: a bearer token (``Authorization: Bearer gat_...``, for machine clients) or
the browser's session cookie; a cookie-authenticated request that changes something must
carry the CSRF token in an ``X-CSRFToken`` header. Errors are JSON:
``{"error": {"code": ..., "message": ..., "where": ...}}`` with the status below.
"""

from __future__ import annotations

import functools

from flask import Flask, current_app, g, jsonify, request
from flask_smorest import Api
from flask_smorest import Blueprint as ApiBlueprint  # noqa: F401  (areas import it from here)
from flask_wtf.csrf import CSRFError, validate_csrf
from wtforms import ValidationError

from gisapproval.accounts import user_for_token
from gisapproval.errors import (AuthenticationError, ConflictError, GisApprovalError, InputError, NotFoundError,
                                PermissionDeniedError)

from .auth import current_user
from .db import get_db

PREFIX = "/api"
STATUS = [
    (AuthenticationError, 401, "unauthenticated"),
    (PermissionDeniedError, 403, "forbidden"),
    (NotFoundError, 404, "not_found"),
    (ConflictError, 409, "conflict"),
    (InputError, 422, "invalid_input"),
]


def status_for(exc: GisApprovalError) -> tuple[int, str]:
    from gisapproval.layerversions import LayerBusyError

    if isinstance(exc, LayerBusyError):
        return 409, "busy"
    for cls, status, code in STATUS:
        if isinstance(exc, cls):
            return status, code
    return 400, "bad_request"


def error_body(status: int, code: str, message: str, where: str | None = None, **extra):
    body = {"error": {"code": code, "message": message, **({"where": where} if where else {}), **extra}}
    return jsonify(body), status


def api_user():
    """The user of this API request: by bearer token, else by session cookie; None if neither."""
    if "_api_user" in g:
        return g._api_user
    header = request.headers.get("Authorization", "")
    user = None
    if header.startswith("Bearer "):
        user = user_for_token(get_db(), header[7:].strip())
        if user is not None:
            get_db().commit()  # last_used_at
        g._api_by_token = True
    else:
        user = current_user()
    g._api_user = user
    return user


def api_login_required(*roles: str):
    """Require an API user (401) holding one of ``roles`` when given (403)."""

    def wrap(view):
        @functools.wraps(view)
        def inner(*args, **kwargs):
            user = api_user()
            if user is None:
                raise AuthenticationError("log in or send a bearer token (Authorization: Bearer <token>)")
            if roles and not (set(roles) & user.role_codes):
                raise PermissionDeniedError(f"this needs one of the roles {', '.join(roles)}")
            return view(*args, **kwargs)

        return inner

    return wrap


def _check_csrf():
    if not request.path.startswith(PREFIX + "/") or request.method in ("GET", "HEAD", "OPTIONS"):
        return None
    if request.headers.get("Authorization", "").startswith("Bearer "):
        return None
    if not current_app.config.get("WTF_CSRF_ENABLED", True):
        return None
    try:
        validate_csrf(request.headers.get("X-CSRFToken") or request.form.get("csrf_token"))
    except (ValidationError, CSRFError) as exc:
        return error_body(400, "csrf", f"missing or invalid CSRF token ({exc}); send it in the X-CSRFToken header")
    return None


def register(app: Flask, blueprint) -> None:
    """Add an area's API blueprint (a flask-smorest Blueprint) to the API."""
    from .security import csrf

    csrf.exempt(blueprint)  # _check_csrf applies CSRF to cookie-authenticated API calls instead
    app.extensions["gisapproval_api"].register_blueprint(blueprint)


def init_app(app: Flask) -> None:
    app.config.setdefault("API_TITLE", "gisapproval")
    app.config.setdefault("API_VERSION", "1")
    app.config.setdefault("OPENAPI_VERSION", "3.0.3")
    app.config.setdefault("OPENAPI_URL_PREFIX", PREFIX)
    app.config.setdefault("OPENAPI_JSON_PATH", "openapi.json")
    # No Swagger UI / ReDoc: their default pages load from a CDN.
    api = Api(app, spec_kwargs={
        "info": {"description": "Joint construction-approval platform: layers, projects, checks, reviews. "
                                "Authenticate with `Authorization: Bearer <token>`."},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
    })
    app.extensions["gisapproval_api"] = api
    app.before_request(_check_csrf)

    @app.errorhandler(GisApprovalError)
    def handle(exc: GisApprovalError):
        status, code = status_for(exc)
        if request.path.startswith(PREFIX + "/"):
            problems = [str(p) for p in getattr(exc, "problems", [])]
            return error_body(status, code, exc.message, exc.where, **({"problems": problems} if problems else {}))
        from .pages import error_page

        return error_page(status)(exc)
