"""The HTML pages (home, map) and the health check."""

from __future__ import annotations

from flask import Blueprint, jsonify, redirect, render_template, url_for

from gisapproval import mapdata, tiles
from gisapproval.db import check_connection
from gisapproval.errors import DatabaseUnavailableError, GisApprovalError

from . import mapview, nav
from . import tiles as tiles_web
from .auth import current_user, login_required
from .db import app_state, get_db
from .i18n import get_language, pick
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
    """The city map: vector tiles of parcels by approval state, footprints and every vector layer."""
    state = app_state()
    jurisdiction = state.settings.jurisdiction
    user = current_user()
    db = get_db()
    tile_settings = tiles.load_tile_settings()
    extent = mapdata.parcels_extent_4326(db)
    config = mapview.map_config(
        tile_urls={"parcels": tiles_web.url_template("tiles.parcels"),
                   "footprints": tiles_web.url_template("tiles.footprints")},
        layers=[{"name": name, "title": pick(zh, en), "url": tiles_web.url_template("tiles.layer", name=name)}
                for name, zh, en in mapdata.map_layers(db)],
        details_url=url_for("map.parcel_details", parcel_id=0).rsplit("/0", 1)[0] + "/",
        bounds=[[extent[1], extent[0]], [extent[3], extent[2]]] if extent else None,
        tiles=tile_settings, lang=get_language(),
    )
    rendered = mapview.build_map(
        config,
        assets=mapview.MapAssets(
            leaflet_js=url_for("static", filename="vendor/leaflet/leaflet.js"),
            leaflet_css=url_for("static", filename="vendor/leaflet/leaflet.css"),
            vectorgrid_js=url_for("static", filename="vendor/leaflet.vectorgrid/Leaflet.VectorGrid.bundled.min.js"),
            map_js=url_for("static", filename="js/map.js"),
            map_css=url_for("static", filename="css/map.css"),
        ),
        center=jurisdiction.map_center,
        zoom=jurisdiction.map_zoom,
    )
    own_only = not mapdata.sees_all_projects(user)
    counts = mapdata.category_counts(db, user)
    return render_template(
        "map.html",
        folium_map=rendered,
        legend=mapview.legend_entries(counts, own_only=own_only),
        clock_legend=mapview.clock_legend(),
        own_only=own_only,
        parcel_total=sum(counts.values()),
        overlaps=mapdata.overlapping_projects(db, user),
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
