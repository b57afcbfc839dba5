"""Vector tiles over HTTP: /tiles/parcels, /tiles/footprints, /tiles/layers/<name> (``{z}/{x}/{y}.pbf``).

Each response carries an ETag derived from the map's state (``gisapproval.tiles.map_state``:
last audit event, current layer versions), the viewer's scope and the tile address; a request
whose ``If-None-Match`` matches gets 304 without the tile being built. Tiles depend on who
asks (an applicant's own projects), hence ``Cache-Control: private, no-cache``.

Viewers: a bearer token or the session cookie (``web.api.api_user``); without either, the
parcels and footprints tiles show approved projects only, and layer tiles answer 401.
"""

from __future__ import annotations

import datetime as dt
import threading

from flask import Blueprint, Response, request, url_for

from gisapproval import tiles
from gisapproval.errors import AuthenticationError, InputError
from gisapproval.mapdata import project_clock_colours, viewer_scope

from .api import api_user
from .db import get_db

bp = Blueprint("tiles", __name__, url_prefix="/tiles")

MVT_TYPE = "application/vnd.mapbox-vector-tile"


def url_template(endpoint: str, **values) -> str:
    """A tile endpoint's URL with ``{z}/{x}/{y}`` placeholders, as Leaflet wants it."""
    return url_for(endpoint, z=0, x=0, y=0, **values).rsplit("/0/0/0.pbf", 1)[0] + "/{z}/{x}/{y}.pbf"


def _tile_response(etag: str, build) -> Response:
    if etag in request.if_none_match:
        response = Response(status=304)
    else:
        response = Response(build(), mimetype=MVT_TYPE)
    response.set_etag(etag)
    response.headers["Cache-Control"] = "private, no-cache"
    response.headers["Vary"] = "Cookie, Authorization"
    return response


_clock_memo: dict[tuple[str, str, dt.date], dict[int, str]] = {}
_clock_lock = threading.Lock()


def _clocks(db, state: str) -> dict[int, str]:
    """Days-left colours of in-flight projects, computed once per map state and day in this process
    (a memo of a derived value: the state changes with every stage or clock event)."""
    key = (str(db.get_bind().url), state, dt.date.today())
    with _clock_lock:
        found = _clock_memo.get(key)
    if found is None:
        found = project_clock_colours(db, key[2])
        with _clock_lock:
            _clock_memo.clear()
            _clock_memo[key] = found
    return found


@bp.route("/parcels/<int:z>/<int:x>/<int:y>.pbf")
def parcels(z: int, x: int, y: int):
    user, db = api_user(), get_db()
    address = tiles.tile_address(z, x, y)
    state = tiles.map_state(db)
    etag = tiles.tile_etag(state, dt.date.today(), viewer_scope(user), "parcels", z, x, y)
    return _tile_response(etag, lambda: tiles.render(
        db, tiles.parcels_tile_query(user, address, clocks=_clocks(db, state))))


@bp.route("/footprints/<int:z>/<int:x>/<int:y>.pbf")
def footprints(z: int, x: int, y: int):
    user, db = api_user(), get_db()
    address = tiles.tile_address(z, x, y)
    etag = tiles.tile_etag(tiles.map_state(db), viewer_scope(user), "footprints", z, x, y)
    return _tile_response(etag, lambda: tiles.render(db, tiles.footprints_tile_query(user, address)))


@bp.route("/layers/<name>/<int:z>/<int:x>/<int:y>.pbf")
def layer(name: str, z: int, x: int, y: int):
    user, db = api_user(), get_db()
    if user is None:
        raise AuthenticationError("log in or send a bearer token to read layer tiles")
    raw_version = request.args.get("version")
    try:
        version = int(raw_version) if raw_version not in (None, "") else None
    except ValueError:
        raise InputError(f"version must be a whole number, not {raw_version!r}", where="version") from None
    address = tiles.tile_address(z, x, y)
    found_layer, found_version = tiles.resolve_layer_version(db, name, version)
    etag = tiles.tile_etag(tiles.map_state(db), "layer", name, found_version.id, z, x, y)
    return _tile_response(etag, lambda: tiles.render(db, tiles.layer_tile_query(found_layer, found_version, address)))


def init_app(app) -> None:
    app.register_blueprint(bp)
