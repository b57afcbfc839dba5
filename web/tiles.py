"""Vector tiles over HTTP: /tiles/parcels, /tiles/footprints, /tiles/layers/<name> (``{z}/{x}/{y}.pbf``).

Each response carries an ETag derived from the map's state (``gisapproval.tiles.map_state``:
last audit event, current layer versions, last project), the viewer's scope and the tile
address; a request whose ``If-None-Match`` matches gets 304 without the tile being built. Tiles
depend on who asks (an applicant's own projects), hence ``Cache-Control: private, no-cache``.

A parcels or footprints tile is one statement (``gisapproval.tiles.PreparedTile``) on an
autocommit connection: the map's state, the ETag, the check of the viewer the session cookie
names, and the tile. Only when that check fails (the user was deactivated, changed password or
roles) or the request comes with a bearer token is the user loaded the usual way
(``web.api.api_user``). Layer tiles load the user first: no unknown caller learns which layers
or versions exist.

Viewers: a bearer token or the session cookie; without either, the parcels and footprints tiles
show approved projects only, and layer tiles answer 401.
"""

from __future__ import annotations

import datetime as dt
import threading

from flask import Blueprint, Response, request, session, url_for
from sqlalchemy.orm import Session

from gisapproval import tiles
from gisapproval.errors import AuthenticationError, InputError
from gisapproval.mapdata import Scope, project_clock_colours, sees_all_projects

from .api import api_user
from .auth import keep_session_cookie, session_claim
from .db import app_state, get_db, read_once

bp = Blueprint("tiles", __name__, url_prefix="/tiles")

MVT_TYPE = "application/vnd.mapbox-vector-tile"


def url_template(endpoint: str, **values) -> str:
    """A tile endpoint's URL with ``{z}/{x}/{y}`` placeholders, as Leaflet wants it."""
    return url_for(endpoint, z=0, x=0, y=0, **values).rsplit("/0/0/0.pbf", 1)[0] + "/{z}/{x}/{y}.pbf"


def _claimed_viewer() -> tuple[Scope, dict] | None:
    """The viewer as the session cookie claims it, with the parameters that make the tile
    statement check the claim; None when the claim cannot be used (a bearer token, a cookie
    from before claims were kept)."""
    if request.headers.get("Authorization", "").startswith("Bearer "):
        return None
    claim = session_claim()
    if claim is None:
        return (Scope("public"), {}) if "user_id" not in session else None
    user_id, fingerprint, sees_all = claim
    return Scope("all" if sees_all else "own", user_id), {"fingerprint": fingerprint, "sees_all": sees_all}


def _resolved_viewer(require_user: bool) -> Scope:
    """The viewer loaded the usual way (token or cookie); refreshes the cookie's claim."""
    user = api_user()
    if user is None:
        if require_user:
            raise AuthenticationError("log in or send a bearer token to read layer tiles")
        return Scope("public")
    if session.get("user_id") == user.id and session.get("sees_all") != sees_all_projects(user):
        session["sees_all"] = sees_all_projects(user)  # the cookie named this user: bring its claim up to date
    return Scope.of(user)


def _serve(kind: str, address: tiles.TileAddress, params: dict, suffix_parts: tuple,
           viewer: Scope | None = None) -> tuple[Response, tiles.TileAnswer]:
    """Answer a request for a ``kind`` tile at ``address`` with one statement; ``params`` are the
    tile's own parameters, ``suffix_parts`` what the ETag depends on besides the map's state and
    the viewer's scope. ``viewer``: already known (else the session's claim is checked in the
    statement, and the user loaded when it fails)."""
    if_none_match = request.if_none_match
    dialect = app_state().reader.dialect
    keep_session_cookie()

    def run(scope: Scope, check: dict) -> tiles.TileAnswer:
        statement = tiles.prepared(kind, address, scope.kind, dialect, check_viewer=bool(check))
        values = {**params, **check, "etag_suffix": tiles.etag_suffix(scope.key, *suffix_parts),
                  "if_none_match": sorted(if_none_match.as_set())}
        if "viewer_id" in statement.constants:
            values["viewer_id"] = scope.viewer_id
        return read_once(lambda conn: statement.run(conn, **values))

    claimed = _claimed_viewer() if viewer is None else None
    answer = run(*claimed) if claimed is not None else None
    if answer is None or not answer.viewer_ok:
        answer = run(viewer or _resolved_viewer(require_user=False), {})
    if answer.data is None or if_none_match.star_tag:
        response = Response(status=304)
    else:
        response = Response(answer.data, mimetype=MVT_TYPE)
    response.set_etag(answer.etag)
    response.headers["Cache-Control"] = "private, no-cache"
    response.headers["Vary"] = "Cookie, Authorization"
    return response, answer


# Days-left colours of in-flight projects, per database and day: (the map state they were
# computed in, the colours). A parcels tile names that state in its ETag; a tile request that
# finds the map's state moved on computes the colours again and draws the tile once more.
_clock_memo: dict[tuple[str, dt.date], tuple[str, dict[int, str]]] = {}
_clock_lock = threading.Lock()


def _clocks(today: dt.date, stale: str | None = None) -> tuple[str, dict[int, str]]:
    """The colours of ``today``, computed again if missing or computed in state ``stale``."""
    key = (str(app_state().reader.url), today)
    with _clock_lock:
        found = _clock_memo.get(key)
    if found is None or found[0] == stale:
        db = get_db()
        found = (tiles.map_state(db), project_clock_colours(db, today))
        db.rollback()
        with _clock_lock:
            _clock_memo.clear()
            _clock_memo[key] = found
    return found


@bp.route("/parcels/<int:z>/<int:x>/<int:y>.pbf")
def parcels(z: int, x: int, y: int):
    address = tiles.tile_address(z, x, y)
    today = dt.date.today()

    def serve(clock_state: str, clocks: dict[int, str]):
        return _serve("parcels", address, {**tiles.tile_params(address), "clocks": tiles.clocks_json(clocks)},
                      ("parcels", z, x, y, today, clock_state))

    clock_state, clocks = _clocks(today)
    response, answer = serve(clock_state, clocks)
    if answer.state != clock_state:
        response, _ = serve(*_clocks(today, stale=clock_state))
    return response


@bp.route("/footprints/<int:z>/<int:x>/<int:y>.pbf")
def footprints(z: int, x: int, y: int):
    address = tiles.tile_address(z, x, y)
    return _serve("footprints", address, tiles.tile_params(address), ("footprints", z, x, y))[0]


@bp.route("/layers/<name>/<int:z>/<int:x>/<int:y>.pbf")
def layer(name: str, z: int, x: int, y: int):
    # the user first, the usual way: no one unknown is told which layers or versions exist
    viewer = _resolved_viewer(require_user=True)
    raw_version = request.args.get("version")
    try:
        version = int(raw_version) if raw_version not in (None, "") else None
    except ValueError:
        raise InputError(f"version must be a whole number, not {raw_version!r}", where="version") from None
    address = tiles.tile_address(z, x, y)

    def resolve(conn):
        with Session(bind=conn) as s:
            found_layer, found_version = tiles.resolve_layer_version(s, name, version)
            return found_layer.id, found_version.id, found_version.number

    layer_id, version_id, number = read_once(resolve)
    return _serve("layer", address, {**tiles.tile_params(address), "layer_id": layer_id, "version_number": number},
                  ("layer", name, version_id, z, x, y), viewer=viewer)[0]


def init_app(app) -> None:
    app.register_blueprint(bp)
