"""The map's JSON API: a parcel's details (the popup) and overlapping in-flight projects.

Values are raw JSON strings; the map script puts them into the page as text nodes.
"""

from __future__ import annotations

from marshmallow import Schema, fields

from gisapproval import mapdata

from . import api
from .db import get_db

blp = api.ApiBlueprint("map", __name__, url_prefix="/api/map",
                       description="The planners' map: parcel details and overlapping projects")


class TaskSchema(Schema):
    department = fields.String(required=True)
    department_zh = fields.String(required=True)
    department_en = fields.String(required=True)
    status = fields.String(required=True)
    due_on = fields.String(allow_none=True, metadata={"description": "ISO date; null when closed or stopped"})
    days_left = fields.Integer(allow_none=True, metadata={"description": "working days; negative when overdue"})
    colour = fields.String(allow_none=True, metadata={"description": "green, yellow, red or stopped"})


class ParcelProjectSchema(Schema):
    code = fields.String(required=True)
    name = fields.String(required=True)
    name_en = fields.String(allow_none=True)
    applicant_org = fields.String(required=True)
    status = fields.String(required=True)
    category = fields.String(required=True)
    stage = fields.Integer(required=True)
    stage_status = fields.String(allow_none=True)
    days_left = fields.Integer(allow_none=True)
    is_overlapping = fields.Boolean(required=True)
    tasks = fields.List(fields.Nested(TaskSchema), required=True)


class ParcelDetailsSchema(Schema):
    id = fields.Integer(required=True)
    parcel_code = fields.String(required=True)
    land_use = fields.String(required=True)
    area_m2 = fields.Float(required=True)
    holder = fields.String(allow_none=True)
    projects = fields.List(fields.Nested(ParcelProjectSchema), required=True)


class OverlapSchema(Schema):
    a = fields.String(required=True)
    b = fields.String(required=True)
    overlap_m2 = fields.Float(required=True)


@blp.route("/parcels/<int:parcel_id>")
@blp.response(200, ParcelDetailsSchema)
@blp.alt_response(404, description="No such parcel")
@api.api_login_required()
def parcel_details(parcel_id: int):
    """A parcel with the projects on it the caller may see: stage, department statuses, days left."""
    return mapdata.parcel_details(get_db(), api.api_user(), parcel_id)


@blp.route("/overlaps")
@blp.response(200, OverlapSchema(many=True))
@api.api_login_required()
def overlaps():
    """Pairs of in-flight projects (both visible to the caller) whose footprints overlap."""
    return mapdata.overlapping_projects(get_db(), api.api_user())


def init_app(app) -> None:
    api.register(app, blp)
