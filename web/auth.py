"""Logging in and out, the current user, and the ``login_required`` / ``roles_required`` guards.

The session cookie holds only the user's id and a fingerprint of the password hash, so that
changing a password (or deactivating the user) ends every session that used the old one.
"""

from __future__ import annotations

import functools
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    abort,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface
from flask_wtf import FlaskForm
from wtforms import HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, Length

from gisapproval.accounts import authenticate, get_user, password_fingerprint
from gisapproval.audit import record_event
from gisapproval.errors import AuthenticationError
from gisapproval.mapdata import sees_all_projects
from gisapproval.models import User

from .db import get_db
from .i18n import gettext as _

bp = Blueprint("auth", __name__)

_NO_USER = object()


class LoginForm(FlaskForm):
    username = StringField(validators=[DataRequired(), Length(max=64)])
    password = PasswordField(validators=[DataRequired(), Length(max=256)])
    next = HiddenField()


class LogoutForm(FlaskForm):
    """Only the CSRF token: logging out is a POST that another site cannot forge."""


def _fingerprint(user: User) -> str:
    return password_fingerprint(user.password_hash)


def session_claim() -> tuple[int, str, bool] | None:
    """What the session cookie claims without asking the database: (user id, password
    fingerprint, whether the user sees every project) as of login; None when no one is logged in
    or the cookie predates the claim. A reader that trusts it must check it in the same
    statement (``gisapproval.tiles.viewer_still_valid``)."""
    user_id, fingerprint, sees_all = session.get("user_id"), session.get("auth"), session.get("sees_all")
    if isinstance(user_id, int) and isinstance(fingerprint, str) and isinstance(sees_all, bool):
        return user_id, fingerprint, sees_all
    return None


def current_user() -> User | None:
    """The logged-in, active user of this request, or None (loaded once per request)."""
    user = g.get("_user", _NO_USER)
    if user is _NO_USER:
        user = None
        user_id = session.get("user_id")
        if isinstance(user_id, int):
            user = get_user(get_db(), user_id)
            if user is not None and session.get("auth") != _fingerprint(user):
                user = None
        g._user = user
    return user


def login_required(view):
    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        if current_user() is None:
            target = request.full_path.rstrip("?") if request.method == "GET" else None
            flash("login_required_notice")
            return redirect(url_for("auth.login", next=target))
        return view(*args, **kwargs)

    return wrapped


def roles_required(*roles: str):
    """Allow the view to users holding at least one of ``roles``; others get 403."""
    if not roles:
        raise ValueError("roles_required needs at least one role")

    def decorator(view):
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            if not current_user().role_codes & set(roles):
                abort(403)
            return view(*args, **kwargs)

        return login_required(wrapped)

    return decorator


def safe_next(target: str | None) -> str | None:
    """``target`` if it is a path on this site, else None (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    if request.method == "GET":
        if current_user() is not None:
            return redirect(safe_next(request.args.get("next")) or url_for("pages.map_view"))
        form.next.data = request.args.get("next", "")
        return render_template("login.html", form=form, error=None)

    if not form.validate():
        return render_template("login.html", form=form, error=_("login_required_field")), 400
    db = get_db()
    try:
        user = authenticate(db, form.username.data, form.password.data)
    except AuthenticationError:
        db.commit()  # the failed attempt stays in the audit log
        form.password.data = ""
        return render_template("login.html", form=form, error=_("login_failed")), 401
    db.commit()
    session.clear()  # no session fixation: start a fresh one
    session.permanent = True
    session["user_id"] = user.id
    session["auth"] = _fingerprint(user)
    session["sees_all"] = sees_all_projects(user)
    return redirect(safe_next(form.next.data) or url_for("pages.map_view"))


@bp.route("/logout", methods=["POST"])
def logout():
    form = LogoutForm()
    if not form.validate():
        abort(400)
    user = current_user()
    if user is not None:
        db = get_db()
        record_event(db, user, "user.logged_out", user)
        db.commit()
    session.clear()
    flash("logged_out")
    return redirect(url_for("pages.home"))


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, except that a response marked with ``keep_session_cookie``
    does not send the cookie again. Pages and API calls still slide the idle window
    (PERMANENT_SESSION_LIFETIME); map tiles, fetched by the dozen as a map pans, do not re-sign
    the cookie and put a Set-Cookie header on every tile."""

    def should_set_cookie(self, app, session) -> bool:
        if g.get("_keep_session_cookie") and not session.modified:
            return False
        return super().should_set_cookie(app, session)


def keep_session_cookie() -> None:
    """This response leaves the session cookie as the browser has it (unless the session changed)."""
    g._keep_session_cookie = True


def no_store_for_users(response):
    """``after_request``: a page built for a logged-in user is never kept in a shared cache."""
    if g.get("_user") is not None:
        response.headers.setdefault("Cache-Control", "private, no-store")
    return response


def init_app(app) -> None:
    app.session_interface = SessionInterface()
    app.register_blueprint(bp)
    _init_api(app)
    app.after_request(no_store_for_users)

    @app.context_processor
    def inject_user():
        # formdata=None: the header's form never reads the request (it may be an oversized one being refused)
        return {"current_user": current_user(), "logout_form": LogoutForm(formdata=None)}


# --- the API's view of the current user -------------------------------------------------

def _init_api(app) -> None:
    from marshmallow import Schema, fields

    from . import api

    blp = api.ApiBlueprint("me", __name__, url_prefix="/api", description="The calling user")

    class MeSchema(Schema):
        username = fields.String(required=True)
        display_name = fields.String(required=True)
        roles = fields.List(fields.String(), required=True)
        department = fields.String(allow_none=True)

    @blp.route("/me")
    @blp.response(200, MeSchema)
    @api.api_login_required()
    def me():
        """Who the token or session belongs to."""
        user = api.api_user()
        return {"username": user.username, "display_name": user.display_name, "roles": sorted(user.role_codes),
                "department": user.department.code if user.department else None}

    api.register(app, blp)
