"""OGC API - Features (Part 1 core with GeoJSON and OpenAPI 3.0, Part 2 CRS) under /ogcapi.

Hand-written over ``gisapproval.features`` rather than pygeoapi: our collections are slices
of versioned tables (a layer's features valid in its current version; footprints of approved
projects joined to their project), which pygeoapi's PostgreSQL provider can serve only through
one database view per layer and a configuration rebuilt on every publication, and pygeoapi's
Flask app builds its configuration at import (see STYLE.md). The endpoints are flask-smorest
views, so they are described in the app's own OpenAPI document (/api/openapi.json, the
``service-desc`` of the landing page) and fuzzed with the rest of the API.

Anyone may read the approved projects; vector layers need a login or a bearer token.
"""

from __future__ import annotations

import datetime as dt

from flask import Response, json, request, url_for
from marshmallow import Schema, fields, validate

from gisapproval import features
from gisapproval.errors import GisApprovalError

from . import api
from .db import get_db

blp = api.ApiBlueprint("ogcapi", __name__, url_prefix="/ogcapi",
                       description="OGC API - Features: every vector layer (current version) and approved projects")

CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
]
GEOJSON = "application/geo+json"
JSON = "application/json"


class ItemsArgs(Schema):
    bbox = fields.String(metadata={"description": "minx,miny,maxx,maxy (in bbox-crs, default CRS84)"})
    bbox_crs = fields.String(data_key="bbox-crs", metadata={"description": "CRS URI of bbox"})
    limit = fields.Integer(load_default=features.DEFAULT_LIMIT, validate=validate.Range(min=1, max=2**31 - 1),
                           metadata={"description": f"page size; at most {features.MAX_LIMIT} are returned"})
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=2**31 - 1))
    crs = fields.String(metadata={"description": "CRS URI of the returned geometries (default CRS84)"})
    f = fields.String(metadata={"description": "format: json (the only one)"})


class ItemArgs(Schema):
    crs = fields.String(metadata={"description": "CRS URI of the returned geometry (default CRS84)"})
    f = fields.String()


def _json(body: dict, mimetype: str = JSON, **headers) -> Response:
    response = Response(json.dumps(body, ensure_ascii=False), mimetype=mimetype)
    response.headers.update(headers)
    return response


def _link(endpoint: str, rel: str, type_: str, title: str | None = None, **values) -> dict:
    link = {"href": url_for(endpoint, _external=True, **values), "rel": rel, "type": type_}
    if title:
        link["title"] = title
    return link


@blp.errorhandler(GisApprovalError)
def _ogc_error(exc: GisApprovalError):
    """OGC API exceptions: JSON with a code and a description naming what is wrong and where."""
    status, code = api.status_for(exc)
    body = {"code": code, "description": exc.message, **({"where": exc.where} if exc.where else {})}
    return Response(json.dumps(body, ensure_ascii=False), status=status, mimetype=JSON)


@blp.route("/")
@blp.response(200, description="The landing page")
def landing():
    """Landing page: links to the API description, conformance and collections."""
    return _json({
        "title": "gisapproval OGC API - Features",
        "description": "Vector layers (current versions) and approved projects' footprints",
        "links": [
            _link("ogcapi.landing", "self", JSON, "This document"),
            {"href": url_for("api-docs.openapi_json", _external=True), "rel": "service-desc",
             "type": "application/vnd.oai.openapi+json;version=3.0", "title": "The API definition"},
            _link("ogcapi.conformance", "conformance", JSON, "Conformance classes"),
            _link("ogcapi.collections", "data", JSON, "Collections"),
        ],
    })


@blp.route("/conformance")
@blp.response(200, description="Conformance classes")
def conformance():
    """The conformance classes implemented."""
    return _json({"conformsTo": CONFORMANCE})


def _collection_body(c: features.Collection) -> dict:
    body = {
        "id": c.id, "title": c.title_en, "description": c.title, "itemType": "feature",
        "crs": features.supported_crs(), "storageCrs": features.crs_uri(features.SRID),
        "geometryType": c.geometry_type,
        "links": [
            _link("ogcapi.collection", "self", JSON, collection_id=c.id),
            _link("ogcapi.items", "items", GEOJSON, c.title_en, collection_id=c.id),
        ],
    }
    if c.version is not None:
        body["version"] = c.version
    if c.extent:
        body["extent"] = {"spatial": {"bbox": [list(c.extent)], "crs": features.CRS84}}
    return body


@blp.route("/collections")
@blp.response(200, description="The collections")
def collections():
    """Every vector layer (current version; logged-in callers) and the approved projects."""
    found = features.list_collections(get_db(), api.api_user())
    return _json({
        "links": [_link("ogcapi.collections", "self", JSON)],
        "collections": [_collection_body(c) for c in found],
        "crs": features.supported_crs(),
    })


@blp.route("/collections/<collection_id>")
@blp.response(200, description="One collection")
@blp.alt_response(404, description="No such collection")
def collection(collection_id: str):
    """One collection's description."""
    return _json(_collection_body(features.get_collection(get_db(), api.api_user(), collection_id)))


def _page_link(collection_id: str, rel: str, offset: int, limit: int) -> dict:
    query = {k: v for k, v in request.args.items() if k not in ("offset", "limit")}
    return _link("ogcapi.items", rel, GEOJSON, collection_id=collection_id, offset=offset, limit=limit, **query)


@blp.route("/collections/<collection_id>/items")
@blp.arguments(ItemsArgs, location="query", as_kwargs=True)
@blp.response(200, description="A page of features (GeoJSON FeatureCollection)")
@blp.alt_response(400, description="Invalid bbox, CRS or paging")
@blp.alt_response(404, description="No such collection")
def items(collection_id: str, limit: int, offset: int, bbox: str | None = None, bbox_crs: str | None = None,
          crs: str | None = None, f: str | None = None):
    """Features of a collection: bbox filter, limit/offset paging, crs (default CRS84)."""
    limit = min(limit, features.MAX_LIMIT)
    page = features.query_items(get_db(), api.api_user(), collection_id, bbox=bbox, bbox_crs=bbox_crs, limit=limit,
                                offset=offset, crs=crs)
    links = [_page_link(collection_id, "self", offset, limit)]
    if offset + len(page.features) < page.number_matched:
        links.append(_page_link(collection_id, "next", offset + limit, limit))
    if offset > 0:
        links.append(_page_link(collection_id, "prev", max(offset - limit, 0), limit))
    links.append(_link("ogcapi.collection", "collection", JSON, collection_id=collection_id))
    body = {
        "type": "FeatureCollection", "features": page.features, "links": links,
        "timeStamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "numberMatched": page.number_matched, "numberReturned": len(page.features),
    }
    return _json(body, GEOJSON, **{"Content-Crs": f"<{page.crs}>"})


@blp.route("/collections/<collection_id>/items/<int:feature_id>")
@blp.arguments(ItemArgs, location="query", as_kwargs=True)
@blp.response(200, description="One feature (GeoJSON)")
@blp.alt_response(404, description="No such feature")
def item(collection_id: str, feature_id: int, crs: str | None = None, f: str | None = None):
    """One feature of a collection."""
    feature = features.get_item(get_db(), api.api_user(), collection_id, feature_id, crs=crs)
    feature["links"] = [
        _link("ogcapi.item", "self", GEOJSON, collection_id=collection_id, feature_id=feature_id),
        _link("ogcapi.collection", "collection", JSON, collection_id=collection_id),
    ]
    return _json(feature, GEOJSON, **{"Content-Crs": f"<{crs or features.CRS84}>"})


def init_app(app) -> None:
    api.register(app, blp)
