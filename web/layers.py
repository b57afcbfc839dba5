"""The layers area: the catalogue, each layer's versions, upload with a result report, diff on a
map and roll back — as pages (layer editors change their department's layers; other staff
read) and as the JSON API under /api/layers.

Every view parses the request and calls one use case of ``gisapproval.layerversions``. An
import or roll-back that is refused is rolled back and then written to the audit log in a
transaction of its own (``record_refused_import``), as the command line does.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_wtf import FlaskForm
from marshmallow import Schema, fields, validate
from werkzeug.exceptions import RequestEntityTooLarge

from gisapproval import layerversions as lv
from gisapproval.errors import GisApprovalError, InputError, NotFoundError
from gisapproval.layerimport import ImportOptions, LayerImportError
from gisapproval.workflow.base import can_view_project

from . import api, nav
from .auth import current_user, roles_required
from .db import app_state, get_db
from .i18n import register

# Everyone but applicants reads the layers; only layer editors of the owning department change them.
STAFF_ROLES = ("clerk", "reviewer", "leader", "layer_editor", "supervisor", "admin")
DEFAULT_LAYER_MAX_UPLOAD_BYTES = 1_000_000_000  # app.config["LAYER_MAX_UPLOAD_BYTES"] overrides
DEFAULT_FEATURES_LIMIT = 1000
MAX_FEATURES_LIMIT = 20000
DIFF_MAP_LIMIT = 20000  # changed features drawn on the diff map (the counts are always complete)
DIFF_TABLE_LIMIT = 1000  # changed features listed under it, with what changed
DIFF_COLOURS = {"added": "#2e9d44", "removed": "#d62828", "changed": "#f08c00", "changed_before": "#5b6573",
                "context": "#9aa3af"}
DIFF_CONTEXT_ZOOM = 16  # from this zoom the diff map shows the layer's other features around the changes
DIFF_CONTEXT_LIMIT = 3000

bp = Blueprint("layers", __name__, url_prefix="/layers")
blp = api.ApiBlueprint("layers_api", __name__, url_prefix="/api/layers",
                       description="The shared layers: catalogue, versions, import, diff, roll back, features")


# --- use cases wrapped for the web -----------------------------------------------------------

def _upload_limit() -> int:
    return int(current_app.config.get("LAYER_MAX_UPLOAD_BYTES", DEFAULT_LAYER_MAX_UPLOAD_BYTES))


def _audit_refusal(user, layer_name: str, source_name: str, exc: GisApprovalError) -> None:
    db = get_db()
    db.rollback()  # the import's own transaction: nothing of it stays
    lv.record_refused_import(db, user, layer_name, source_name, exc)
    db.commit()


def run_import(user, layer_name: str) -> lv.VersionReport:
    """Import the request's uploaded ``file`` (form fields ``crs``, ``repair``) as the next version
    of ``layer_name`` and commit; a refusal is audited and re-raised."""
    db = get_db()
    settings = app_state().settings
    source_name = "(no file)"
    saved = None
    try:
        layer = lv.get_layer(db, layer_name)
        lv.ensure_may_edit(user, layer)  # before the body is read
        request.max_content_length = _upload_limit()
        try:
            upload = request.files.get("file")
            crs = (request.form.get("crs") or "").strip() or None
            repair = (request.form.get("repair") or "").lower() in ("1", "true", "on", "yes")
        except RequestEntityTooLarge:
            raise InputError(f"the upload is larger than the {_upload_limit() / 1e6:.0f} MB allowed for a layer",
                             where="file") from None
        if upload is None or not Path(upload.filename or "").name:
            raise InputError("choose a file to import (GeoPackage, GeoJSON, zipped Shapefile or GeoTIFF)",
                             where="file")
        source_name = Path(upload.filename).name
        saved = lv.save_upload(upload.stream, source_name, _upload_limit())
        report = lv.publish_layer_version(db, settings, user, layer.name, saved, source_name,
                                          ImportOptions(crs=crs, repair=repair))
        db.commit()
        return report
    except GisApprovalError as exc:
        _audit_refusal(user, layer_name, source_name, exc)
        raise
    finally:
        if saved is not None:
            shutil.rmtree(saved.parent, ignore_errors=True)


def run_rollback(user, layer_name: str, to_number: int) -> lv.VersionReport:
    db = get_db()
    report = lv.rollback_layer(db, user, layer_name, to_number)
    db.commit()
    return report


def report_dict(report: lv.VersionReport, user) -> dict:
    out = report.as_dict()
    out["repair_details"] = [r.as_dict() for r in report.repairs]
    ids = report.affected_project_ids
    out["affected_projects"] = projects_named(ids, lv.impact_projects(get_db(), ids, user), user)
    return out


def projects_named(ids, projects: dict, user) -> list[dict]:
    """A version's affected projects as its pages and API name them: code and names of those
    ``user`` may see on the map (``projects``; the others by id alone), and the project's page
    when ``user`` may open it."""
    out = []
    for i in ids or ():
        p = projects.get(i)
        out.append({"id": i, "code": p.code if p else None, "name": p.name if p else None,
                    "name_en": p.name_en if p else None,
                    "url": url_for("workflow.project", project_id=i) if p and can_view_project(user, p) else None})
    return out


def problem_body(exc: GisApprovalError) -> dict:
    problems = list(getattr(exc, "problems", []))
    return {"code": "invalid_input" if isinstance(exc, InputError) else api.status_for(exc)[1],
            "message": exc.message, "where": exc.where,
            "problems": [str(p) for p in problems] or [str(exc)],
            "problem_details": [p.as_dict() for p in problems]
            or [{"where": exc.where, "feature": None, "field": None, "message": exc.message}],
            "more": getattr(exc, "more", 0)}


def layer_dict(o: lv.LayerOverview, user) -> dict:
    v = o.current
    return {
        "name": o.layer.name, "title_zh": o.spec.title_zh, "title_en": o.spec.title_en,
        "department": {"code": o.layer.department.code, "name_zh": o.layer.department.name_zh,
                       "name_en": o.layer.department.name_en},
        "kind": o.spec.kind, "geometry_type": o.spec.geometry_type, "feature_key": o.spec.feature_key,
        "attributes": dict(o.spec.attributes), "allowed": {k: list(vals) for k, vals in o.spec.allowed.items()},
        "coverage": o.spec.coverage, "coverage_km2": None if o.coverage_km2 is None else round(o.coverage_km2, 3),
        "used_by": list(o.spec.used_by), "feature_count": o.feature_count, "version_count": o.version_count,
        "current_version": None if v is None else version_dict(v),
        "may_edit": lv.may_edit(user, o.layer),
    }


def version_dict(v, authors: dict | None = None) -> dict:
    author = (authors or {}).get(v.created_by_id)
    return {"number": v.number, "created_at": v.created_at.isoformat(), "source_name": v.source_name,
            "checksum": v.checksum, "added": v.count_added, "changed": v.count_changed, "removed": v.count_removed,
            "unchanged": v.count_unchanged, "affected_project_ids": list(v.affected_project_ids or []),
            "created_by": author.username if author else None, "note": v.note, "raster": bool(v.raster_path)}


def _int_arg(name: str, default=None, minimum: int = 1, maximum: int | None = None):
    raw = request.args.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InputError(f"must be a whole number, got {raw!r}", where=name) from None
    if value < minimum or (maximum is not None and value > maximum):
        raise InputError(f"must be between {minimum} and {maximum}" if maximum else f"must be at least {minimum}",
                         where=name)
    return value


def _bbox_arg():
    raw = request.args.get("bbox")
    if not raw:
        return None
    try:
        parts = tuple(float(p) for p in raw.split(","))
    except ValueError:
        raise InputError(f"bbox must be four numbers west,south,east,north (EPSG:4326), got {raw!r}",
                         where="bbox") from None
    if len(parts) != 4:
        raise InputError(f"bbox must be four numbers west,south,east,north (EPSG:4326), got {raw!r}", where="bbox")
    return parts


def diff_pair(layer_name: str):
    """(from, to) version numbers of a diff request: ``to`` defaults to the current version and
    ``from`` to the one before it."""
    db = get_db()
    layer = lv.get_layer(db, layer_name)
    current = lv.get_version(db, layer).number
    to = _int_arg("to", current)
    frm = _int_arg("from", max(to - 1, 1))
    return frm, to


# --- JSON API --------------------------------------------------------------------------------

class DepartmentSchema(Schema):
    code = fields.String()
    name_zh = fields.String()
    name_en = fields.String()


class VersionSchema(Schema):
    number = fields.Integer()
    created_at = fields.String()
    created_by = fields.String(allow_none=True)
    source_name = fields.String()
    checksum = fields.String()
    added = fields.Integer()
    changed = fields.Integer()
    removed = fields.Integer()
    unchanged = fields.Integer()
    affected_project_ids = fields.List(fields.Integer())
    note = fields.String(allow_none=True)
    raster = fields.Boolean()


class LayerSchema(Schema):
    name = fields.String()
    title_zh = fields.String()
    title_en = fields.String()
    department = fields.Nested(DepartmentSchema)
    kind = fields.String()
    geometry_type = fields.String(allow_none=True)
    feature_key = fields.String(allow_none=True)
    attributes = fields.Dict(keys=fields.String(), values=fields.String())
    allowed = fields.Dict(keys=fields.String(), values=fields.List(fields.Raw()))
    coverage = fields.String()
    coverage_km2 = fields.Float(allow_none=True)
    used_by = fields.List(fields.String())
    feature_count = fields.Integer(allow_none=True)
    version_count = fields.Integer()
    current_version = fields.Nested(VersionSchema, allow_none=True)
    may_edit = fields.Boolean()


class ProblemSchema(Schema):
    where = fields.String(allow_none=True)
    feature = fields.String(allow_none=True)
    field = fields.String(allow_none=True)
    message = fields.String()


class AffectedProjectSchema(Schema):
    id = fields.Integer()
    code = fields.String(allow_none=True)
    name = fields.String(allow_none=True)
    name_en = fields.String(allow_none=True)
    url = fields.String(allow_none=True, metadata={"description": "the project's page, if the caller may open it"})


class ReportSchema(Schema):
    layer = fields.String()
    version = fields.Integer()
    version_id = fields.Integer()
    added = fields.Integer()
    changed = fields.Integer()
    removed = fields.Integer()
    unchanged = fields.Integer()
    features = fields.Integer()
    seconds = fields.Float()
    repairs = fields.List(fields.String())
    repair_details = fields.List(fields.Nested(ProblemSchema))
    affected_project_ids = fields.List(fields.Integer())
    affected_projects = fields.List(fields.Nested(AffectedProjectSchema))
    source_crs = fields.String(allow_none=True)


class FieldChangeSchema(Schema):
    name = fields.String()
    before = fields.Raw(allow_none=True)
    after = fields.Raw(allow_none=True)


class ChangeSchema(Schema):
    key = fields.String()
    kind = fields.String(metadata={"description": "added, removed or changed"})
    fields_ = fields.List(fields.Nested(FieldChangeSchema), data_key="fields", attribute="fields",
                          metadata={"description": "the attributes that differ"})
    reshaped = fields.Boolean(allow_none=True, metadata={"description": "a changed feature's shape differs"})
    before = fields.Float(allow_none=True, metadata={"description": "area (m²) or length (m) before"})
    after = fields.Float(allow_none=True, metadata={"description": "area (m²) or length (m) after"})


class DiffSchema(Schema):
    layer = fields.String()
    from_version = fields.Integer(data_key="from")
    to_version = fields.Integer(data_key="to")
    counts = fields.Dict(keys=fields.String(), values=fields.Integer())
    geojson = fields.Dict()
    changes = fields.List(fields.Nested(ChangeSchema))
    truncated = fields.Boolean()


class RollbackSchema(Schema):
    to_version = fields.Integer(required=True, validate=validate.Range(min=1))


UPLOAD_DOC = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"],
    "properties": {
        "file": {"type": "string", "format": "binary",
                 "description": "GeoPackage, GeoJSON, zipped Shapefile (with .prj) or GeoTIFF"},
        "crs": {"type": "string", "description": "the source's CRS when the file has none, e.g. EPSG:4547"},
        "repair": {"type": "boolean", "description": "fix invalid geometries with make_valid, reporting each"},
    }}}}},
    "responses": {"422": {"description": "refused: `error.problems` lists every problem (with "
                                         "`error.problem_details`: feature, field, message); nothing changed"},
                  "409": {"description": "another import or roll-back of the layer is under way"},
                  "403": {"description": "only layer editors of the owning department may import"}}}


@blp.route("")
@blp.response(200, LayerSchema(many=True))
@api.api_login_required(*STAFF_ROLES)
def api_catalogue():
    """The layer catalogue with each layer's current version and live feature count."""
    user = api.api_user()
    return [layer_dict(o, user) for o in lv.layer_overview(get_db())]


@blp.route("/<name>")
@blp.response(200, LayerSchema)
@api.api_login_required(*STAFF_ROLES)
def api_layer(name):
    """One layer of the catalogue."""
    return layer_dict(_overview(name), api.api_user())


@blp.route("/<name>/versions", methods=["GET"])
@blp.response(200, VersionSchema(many=True))
@api.api_login_required(*STAFF_ROLES)
def api_versions(name):
    """A layer's versions, newest first."""
    db = get_db()
    versions = lv.list_versions(db, name)
    authors = lv.version_authors(db, versions)
    return [version_dict(v, authors) for v in versions]


@blp.route("/<name>/versions", methods=["POST"])
@blp.doc(**UPLOAD_DOC)
@blp.response(201, ReportSchema)
@api.api_login_required()
def api_import(name):
    """Import an uploaded file as the layer's next version (all or nothing)."""
    try:
        user = api.api_user()
        return report_dict(run_import(user, name), user)
    except LayerImportError as exc:
        body = problem_body(exc)
        response, status = api.error_body(422, body.pop("code"), body.pop("message"), body.pop("where"), **body)
        response.status_code = status
        return response


@blp.route("/<name>/versions/<int:number>")
@blp.response(200, VersionSchema)
@api.api_login_required(*STAFF_ROLES)
def api_version(name, number):
    """One version of a layer."""
    db = get_db()
    version = lv.get_version(db, lv.get_layer(db, name), number)
    return version_dict(version, lv.version_authors(db, [version]))


@blp.route("/<name>/diff")
@blp.response(200, DiffSchema)
@api.api_login_required(*STAFF_ROLES)
def api_diff(name):
    """What changed between versions ``from`` and ``to`` (query arguments; default: the current
    version and the one before): counts, the changed features as GeoJSON (EPSG:4326) with
    ``kind`` added / removed / changed (new shape) / changed_before (old shape), and ``changes``:
    for each, by key, the attributes that differ, whether its shape did, and its area or length
    before and after. At most ``limit`` features of each (``truncated`` says when there are more)."""
    frm, to = diff_pair(name)
    db = get_db()
    diff = lv.diff_versions(db, name, frm, to)
    limit = _int_arg("limit", DIFF_MAP_LIMIT, maximum=DIFF_MAP_LIMIT)
    geojson = lv.diff_geojson(db, name, frm, to, limit=limit)
    return {"layer": name, "from_version": frm, "to_version": to, "counts": diff.counts(), "geojson": geojson,
            "changes": [c.as_dict() for c in lv.diff_changes(db, name, frm, to, limit=limit)],
            "truncated": sum(diff.counts().values()) > limit}


@blp.route("/<name>/rollback", methods=["POST"])
@blp.arguments(RollbackSchema)
@blp.response(201, ReportSchema)
@api.api_login_required()
def api_rollback(args, name):
    """Publish an earlier version's content as the layer's next version."""
    user = api.api_user()
    return report_dict(run_rollback(user, name, args["to_version"]), user)


@blp.route("/<name>/features")
@blp.response(200)
@api.api_login_required(*STAFF_ROLES)
def api_features(name):
    """A layer's features as of ``version`` (default: current) as GeoJSON in EPSG:4326;
    ``bbox=west,south,east,north`` (EPSG:4326) and ``limit`` (default 1000) narrow it;
    ``truncated`` tells whether more features matched."""
    return lv.features_geojson(get_db(), name, _int_arg("version"), _bbox_arg(),
                               _int_arg("limit", DEFAULT_FEATURES_LIMIT, maximum=MAX_FEATURES_LIMIT))


# --- pages -----------------------------------------------------------------------------------

class ActionForm(FlaskForm):
    """Only the CSRF token (upload, roll back)."""


def _overview(name: str) -> lv.LayerOverview:
    found = lv.layer_overview(get_db(), name)
    if not found:
        raise NotFoundError(f"layer {name!r} is no longer in the catalogue")
    return found[0]


def _layer_page_context(name: str) -> dict:
    db = get_db()
    overview = _overview(name)
    versions = lv.list_versions(db, name)
    user = current_user()
    projects = lv.impact_projects(db, (i for v in versions for i in v.affected_project_ids or ()), user)
    return {"o": overview, "versions": versions, "authors": lv.version_authors(db, versions),
            "affected": {v.id: projects_named(v.affected_project_ids, projects, user) for v in versions},
            "rolled_back_to": lv.rolled_back_to, "may_edit": lv.may_edit(user, overview.layer)}


@bp.route("")
@roles_required(*STAFF_ROLES)
def catalogue():
    user = current_user()
    return render_template("layers/catalogue.html", layers=lv.layer_overview(get_db()),
                           may_edit=lambda layer: lv.may_edit(user, layer))


@bp.route("/<name>")
@roles_required(*STAFF_ROLES)
def layer_page(name):
    return render_template("layers/layer.html", form=ActionForm(), **_layer_page_context(name))


@bp.route("/<name>/upload", methods=["GET", "POST"])
@roles_required(*STAFF_ROLES)
def upload(name):
    ctx = _layer_page_context(name)
    if not ctx["may_edit"]:
        if request.method == "POST":
            # still a refused import: audited like any other
            try:
                run_import(current_user(), name)
            except GisApprovalError:
                pass
        abort(403)
    form = ActionForm()
    status, report, refusal = 200, None, None
    if request.method == "POST":  # the page without JavaScript posts here; with it, to the API
        if not form.validate():
            abort(400)
        try:
            report = report_dict(run_import(current_user(), name), current_user())
            ctx = _layer_page_context(name)
        except GisApprovalError as exc:
            status = api.status_for(exc)[0]
            refusal = problem_body(exc)
    return render_template("layers/upload.html", form=form, report=report, refusal=refusal,
                           max_mb=_upload_limit() // 10**6, **ctx), status


@bp.route("/<name>/diff")
@roles_required(*STAFF_ROLES)
def diff_page(name):
    frm, to = diff_pair(name)
    db = get_db()
    diff = lv.diff_versions(db, name, frm, to)
    geojson = lv.diff_geojson(db, name, frm, to, limit=DIFF_MAP_LIMIT)
    changes = lv.diff_changes(db, name, frm, to, limit=DIFF_TABLE_LIMIT)
    jur = app_state().settings.jurisdiction
    ctx = _layer_page_context(name)
    total = sum(diff.counts().values())
    return render_template("layers/diff.html", diff=diff, counts=diff.counts(), geojson=geojson, changes=changes,
                           total=total, truncated=total > DIFF_MAP_LIMIT, colours=DIFF_COLOURS,
                           center=jur.map_center, zoom=jur.map_zoom, context_zoom=DIFF_CONTEXT_ZOOM,
                           context_limit=DIFF_CONTEXT_LIMIT, measure=lv.measure_of(ctx["o"].spec.geometry_type),
                           **ctx)


@bp.route("/<name>/rollback", methods=["GET", "POST"])
@roles_required(*STAFF_ROLES)
def rollback(name):
    ctx = _layer_page_context(name)
    if not ctx["may_edit"]:
        abort(403)
    form = ActionForm()
    to = _int_arg("to") if request.method == "GET" else None
    if request.method == "POST":
        if not form.validate():
            abort(400)
        try:
            to = int(request.form.get("to", ""))
        except ValueError:
            raise InputError("choose the version to roll back to", where="to") from None
        report = run_rollback(current_user(), name, to)
        flash("layers_rolled_back")
        return redirect(url_for("layers.layer_page", name=name, rolled=report.number))
    if to is None:
        raise InputError("choose the version to roll back to", where="to")
    current = ctx["o"].current
    diff = lv.diff_versions(get_db(), name, current.number, to)
    return render_template("layers/rollback.html", form=form, to=to, counts=diff.counts(), **ctx)


def init_app(app) -> None:
    register(MESSAGES)
    app.register_blueprint(bp)
    api.register(app, blp)
    nav.add(app, "layers.catalogue", "layers_nav", order=60, roles=STAFF_ROLES)


MESSAGES = {
    "layers_nav": {"zh": "图层管理", "en": "Layers"},
    "layers_catalogue_title": {"zh": "共享图层目录", "en": "Shared layer catalogue"},
    "layers_catalogue_lead": {
        "zh": "各部门共享的空间数据图层。图层由所属部门的图层管理员维护，每次导入生成新版本，可随时比较与回退。",
        "en": "The spatial layers the departments share. Each is kept by the layer editors of its department; "
              "every import is a new version that can be compared and rolled back."},
    "layers_col_layer": {"zh": "图层", "en": "Layer"},
    "layers_col_owner": {"zh": "所属部门", "en": "Owner"},
    "layers_col_kind": {"zh": "类型", "en": "Kind"},
    "layers_col_geometry": {"zh": "几何类型", "en": "Geometry"},
    "layers_col_attributes": {"zh": "属性字段", "en": "Attributes"},
    "layers_col_coverage": {"zh": "覆盖范围", "en": "Coverage"},
    "layers_col_version": {"zh": "现行版本", "en": "Current version"},
    "layers_col_features": {"zh": "要素数", "en": "Features"},
    "layers_col_used_by": {"zh": "使用该图层的检测", "en": "Used by checks"},
    "layers_col_actions": {"zh": "操作", "en": "Actions"},
    "layers_kind_vector": {"zh": "矢量", "en": "Vector"},
    "layers_kind_raster": {"zh": "栅格", "en": "Raster"},
    "layers_coverage_jurisdiction": {"zh": "全辖区", "en": "Whole jurisdiction"},
    "layers_none": {"zh": "无", "en": "none"},
    "layers_no_version": {"zh": "尚无版本", "en": "no version yet"},
    "layers_key": {"zh": "主键", "en": "key"},
    "layers_allowed": {"zh": "允许值", "en": "allowed"},
    "layers_open": {"zh": "查看", "en": "Open"},
    "layers_upload": {"zh": "导入新版本", "en": "Import a new version"},
    "layers_read_only": {"zh": "只读（仅所属部门的图层管理员可导入或回退）",
                         "en": "Read-only (only layer editors of the owning department import or roll back)"},
    "layers_history": {"zh": "版本历史", "en": "Version history"},
    "layers_col_number": {"zh": "版本", "en": "Version"},
    "layers_col_when": {"zh": "时间", "en": "When"},
    "layers_col_who": {"zh": "操作人", "en": "By"},
    "layers_col_source": {"zh": "来源文件", "en": "Source file"},
    "layers_rolled_back_source": {"zh": "回退到版本 {n} 的内容", "en": "Rolled back to version {n}"},
    "layers_col_checksum": {"zh": "校验值", "en": "Checksum"},
    "layers_col_counts": {"zh": "新增 / 变更 / 删除 / 未变", "en": "Added / changed / removed / unchanged"},
    "layers_col_affected": {"zh": "受影响的在办项目", "en": "Projects in flight affected"},
    "layers_system": {"zh": "系统", "en": "system"},
    "layers_current": {"zh": "现行", "en": "current"},
    "layers_diff_previous": {"zh": "与上一版比较", "en": "Compare with previous"},
    "layers_rollback_to": {"zh": "回退到此版本", "en": "Roll back to this version"},
    "layers_rolled_back": {"zh": "已回退：所选版本的内容已发布为新版本。",
                           "en": "Rolled back: the chosen version's content is published as a new version."},
    "layers_back_to_catalogue": {"zh": "返回图层目录", "en": "Back to the catalogue"},
    "layers_back_to_layer": {"zh": "返回图层", "en": "Back to the layer"},
    "layers_upload_title": {"zh": "导入图层新版本", "en": "Import a new layer version"},
    "layers_upload_lead": {
        "zh": "支持 GeoPackage、GeoJSON、含 .prj 的 Shapefile 压缩包（矢量）和 GeoTIFF（栅格）。"
              "导入前全部校验；任何问题都会逐条列出，现行版本保持不变。",
        "en": "GeoPackage, GeoJSON, a zipped Shapefile with its .prj (vector) and GeoTIFF (raster). Everything is "
              "checked before anything changes; every problem is listed and the current version stays live."},
    "layers_file": {"zh": "文件", "en": "File"},
    "layers_max_size": {"zh": "最大 {mb} MB", "en": "at most {mb} MB"},
    "layers_crs": {"zh": "坐标系（文件未带坐标系时填写，如 EPSG:4547）",
                   "en": "CRS (when the file has none, e.g. EPSG:4547)"},
    "layers_repair": {"zh": "用 make_valid 修复无效几何并逐条报告",
                      "en": "Repair invalid geometries with make_valid and report each repair"},
    "layers_submit_upload": {"zh": "上传并导入", "en": "Upload and import"},
    "layers_uploading": {"zh": "正在上传…", "en": "Uploading…"},
    "layers_processing": {"zh": "上传完成，正在校验和导入…", "en": "Uploaded; checking and importing…"},
    "layers_report_title": {"zh": "导入结果", "en": "Import result"},
    "layers_report_ok": {"zh": "已发布为版本 {n}。", "en": "Published as version {n}."},
    "layers_report_refused": {"zh": "导入被拒绝，图层未作任何更改。", "en": "Import refused; nothing changed."},
    "layers_added": {"zh": "新增", "en": "Added"},
    "layers_changed": {"zh": "变更", "en": "Changed"},
    "layers_removed": {"zh": "删除", "en": "Removed"},
    "layers_unchanged": {"zh": "未变", "en": "Unchanged"},
    "layers_features_read": {"zh": "读取要素", "en": "Features read"},
    "layers_source_crs": {"zh": "源坐标系", "en": "Source CRS"},
    "layers_seconds": {"zh": "用时（秒）", "en": "Seconds"},
    "layers_repairs": {"zh": "几何修复", "en": "Geometry repairs"},
    "layers_problems": {"zh": "问题清单", "en": "Problems"},
    "layers_more_problems": {"zh": "另有 {n} 个问题未列出", "en": "and {n} more not listed"},
    "layers_col_feature": {"zh": "要素", "en": "Feature"},
    "layers_col_field": {"zh": "字段", "en": "Field"},
    "layers_col_problem": {"zh": "问题", "en": "Problem"},
    "layers_col_where": {"zh": "位置", "en": "Where"},
    "layers_affected": {"zh": "受影响的在办项目", "en": "Projects in flight affected"},
    "layers_view_diff": {"zh": "在地图上查看变化", "en": "See the changes on a map"},
    "layers_network_error": {"zh": "上传失败（网络错误），请重试。", "en": "The upload failed (network error); try again."},
    "layers_diff_title": {"zh": "版本比较", "en": "Compare versions"},
    "layers_diff_from": {"zh": "自版本", "en": "From version"},
    "layers_diff_to": {"zh": "至版本", "en": "To version"},
    "layers_diff_show": {"zh": "比较", "en": "Compare"},
    "layers_diff_changed_before": {"zh": "变更前形状", "en": "Shape before the change"},
    "layers_diff_context": {"zh": "其余要素（v{n}，放大到 {zoom} 级显示）",
                            "en": "Other features (v{n}, from zoom {zoom})"},
    "layers_diff_context_more": {"zh": "此范围内其余要素超过 {n} 个，放大后显示",
                                 "en": "More than {n} other features here: zoom in to see them"},
    "layers_diff_truncated": {"zh": "变化过多，地图只显示前 {n} 个要素；计数完整。",
                              "en": "Too many changes: the map shows the first {n} features; the counts are complete."},
    "layers_diff_empty": {"zh": "两个版本内容相同。", "en": "The two versions have the same content."},
    "layers_changes_title": {"zh": "有变化的要素", "en": "Features that differ"},
    "layers_changes_first": {"zh": "按主键排序，只列出前 {n} 个；计数完整。",
                             "en": "Only the first {n} by key are listed; the counts are complete."},
    "layers_changes_zoom": {"zh": "在地图上定位", "en": "Show on the map"},
    "layers_col_change": {"zh": "变化", "en": "Change"},
    "layers_col_changed_attributes": {"zh": "属性", "en": "Attributes"},
    "layers_col_shape": {"zh": "形状", "en": "Shape"},
    "layers_col_area": {"zh": "面积（平方米）", "en": "Area (m²)"},
    "layers_col_length": {"zh": "长度（米）", "en": "Length (m)"},
    "layers_shape_changed": {"zh": "已改变", "en": "changed"},
    "layers_shape_same": {"zh": "未变", "en": "same"},
    "layers_diff_raster": {"zh": "栅格图层的版本是整幅替换，无逐要素比较。",
                           "en": "A raster layer's versions replace the whole grid; there is no per-feature diff."},
    "layers_rollback_title": {"zh": "确认回退", "en": "Confirm the roll-back"},
    "layers_rollback_lead": {
        "zh": "将把版本 {to} 的内容发布为新版本（现行版本 {current} 及全部历史保留）。相对现行版本：",
        "en": "Version {to}'s content will be published as a new version (the current version {current} and all "
              "history are kept). Compared with the current version:"},
    "layers_rollback_confirm": {"zh": "确认回退", "en": "Roll back"},
    "layers_rollback_confirm_js": {"zh": "确定要回退到版本 {to} 吗？", "en": "Roll back to version {to}?"},
    "layers_cancel": {"zh": "取消", "en": "Cancel"},
    "layers_km2": {"zh": "平方公里", "en": "km²"},
}
