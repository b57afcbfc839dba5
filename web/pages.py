"""The HTML pages (home, map) and the health check."""

from __future__ import annotations

from flask import Blueprint, jsonify, redirect, render_template, url_for

from gisapproval.db import check_connection
from gisapproval.errors import DatabaseUnavailableError, GisApprovalError

from . import mapdata, mapview, nav
from .auth import current_user, login_required
from .db import app_state, get_db
from .i18n import gettext as _

bp = Blueprint("pages", __name__)


@bp.route("/")
def home():
    if current_user() is not None:
        return redirect(url_for("pages.map_view"))
    return render_template("landing.html")


@bp.route("/map")
@login_required
def map_view():
    state = app_state()
    jurisdiction = state.settings.jurisdiction
    user = current_user()
    db = get_db()
    parcels = mapdata.parcel_status_collection(db, user)
    grid = mapdata.grid_collection(db, jurisdiction.extent, jurisdiction.srid)
    counts = mapdata.category_counts(parcels)
    rendered = mapview.build_map(
        mapview.prepare_for_display(parcels),
        grid,
        assets=mapview.MapAssets(
            leaflet_js=url_for("static", filename="vendor/leaflet/leaflet.js"),
            leaflet_css=url_for("static", filename="vendor/leaflet/leaflet.css"),
        ),
        center=jurisdiction.map_center,
        zoom=jurisdiction.map_zoom,
    )
    own_only = not mapdata.sees_all_projects(user)
    return render_template(
        "map.html",
        folium_map=rendered,
        legend=mapview.legend_entries(counts, own_only=own_only),
        own_only=own_only,
        parcel_total=len(parcels["features"]),
    )


@bp.route("/healthz")
def healthz():
    try:
        version = check_connection(app_state().engine)
    except DatabaseUnavailableError as exc:
        return jsonify(status="error", database="unreachable", error=exc.message), 503
    return jsonify(status="ok", database="reachable", postgis=version)


def error_page(code: int):
    """An HTML error page; a platform error (GisApprovalError) adds its own message, which
    says what is wrong and where."""

    def handler(exc):
        detail = getattr(exc, "message", None) if isinstance(exc, GisApprovalError) else None
        where = getattr(exc, "where", None) if detail else None
        return render_template("error.html", code=code, message=_(f"error_{code}"), detail=detail,
                               where=where), code

    return handler


def init_app(app) -> None:
    app.register_blueprint(bp)
    nav.add(app, "pages.home", "nav_home", order=0, public=True)
    nav.add(app, "pages.map_view", "nav_map", order=10)
