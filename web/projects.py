"""The applicant's projects (pages and JSON API): my projects, create a project on parcels,
add buildings (upload a footprint file or draw on the map), run the self-check and see each
department's results on the map, edit and re-run, submit. Reviewers see a project's check
results and override them (reason required; the original stays).

Views parse the request, call one use case of the core and commit; nothing else.
"""

from __future__ import annotations

import shutil

import sqlalchemy as sa
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from marshmallow import EXCLUDE, Schema, fields

from gisapproval import projects as core
from gisapproval.checks import engine
from gisapproval.checks.rules import default_rules
from gisapproval.errors import (
    GisApprovalError,
    InputError,
    NotFoundError,
)
from gisapproval.layerversions import save_upload
from gisapproval.models import (
    Building,
    CheckResult,
    Department,
    Parcel,
    Project,
    project_parcels,
)

from . import api, i18n, nav
from .auth import current_user, login_required
from .db import app_state, get_db
from .i18n import gettext as _
from .i18n import pick

bp = Blueprint("projects", __name__, url_prefix="/projects")
STAFF = {"clerk", "reviewer", "leader", "supervisor", "admin"}
DEPARTMENT_ORDER = ("land", "planning", "construction", "fire", "heritage")

MESSAGES = {
    "projects_nav": {"zh": "我的项目", "en": "My projects"},
    "projects_nav_staff": {"zh": "项目检测", "en": "Project checks"},
    "projects_title": {"zh": "建设项目", "en": "Projects"},
    "projects_new": {"zh": "新建项目", "en": "New project"},
    "projects_none": {"zh": "暂无项目。", "en": "No projects yet."},
    "projects_code": {"zh": "项目编号", "en": "Code"},
    "projects_name": {"zh": "项目名称", "en": "Name"},
    "projects_name_en": {"zh": "英文名称（可选）", "en": "English name (optional)"},
    "projects_status": {"zh": "状态", "en": "Status"},
    "projects_buildings": {"zh": "建筑", "en": "Buildings"},
    "projects_parcels": {"zh": "宗地", "en": "Parcels"},
    "projects_parcel_codes": {"zh": "宗地编号（多个以空格或逗号分隔，或在地图上点选）",
                              "en": "Parcel codes (separated by spaces or commas, or click them on the map)"},
    "projects_create": {"zh": "创建项目", "en": "Create project"},
    "projects_created": {"zh": "项目已创建，请添加建筑。", "en": "Project created; now add its buildings."},
    "projects_map_hint": {"zh": "放大地图后点击宗地即可选中或取消。", "en": "Zoom in and click parcels to pick or drop them."},
    "projects_upload_title": {"zh": "上传建筑轮廓文件", "en": "Upload footprints"},
    "projects_upload_hint": {
        "zh": "支持 GeoJSON、GeoPackage、ZIP 压缩的 Shapefile 与 DXF；任意坐标系（文件无坐标系时请填写）。"
              "属性字段 name、height_m、floors、gfa_m2、use；文件中缺少的属性使用下方默认值。",
        "en": "GeoJSON, GeoPackage, zipped Shapefile or DXF, in any CRS (give it when the file has none). "
              "Fields name, height_m, floors, gfa_m2, use; the values below fill fields the file lacks."},
    "projects_file": {"zh": "文件", "en": "File"},
    "projects_crs": {"zh": "坐标系（如 EPSG:4547）", "en": "CRS (e.g. EPSG:4547)"},
    "projects_upload": {"zh": "上传", "en": "Upload"},
    "projects_uploaded": {"zh": "建筑已添加。", "en": "Buildings added."},
    "projects_draw_title": {"zh": "在地图上绘制建筑", "en": "Draw a building on the map"},
    "projects_draw_hint": {"zh": "用地图左侧的多边形工具绘制轮廓，填写属性后保存。",
                           "en": "Draw the outline with the polygon tool on the map, fill in its figures, save."},
    "projects_draw_save": {"zh": "保存绘制的建筑", "en": "Save the drawn building"},
    "projects_draw_missing": {"zh": "请先在地图上绘制轮廓。", "en": "Draw an outline on the map first."},
    "projects_height": {"zh": "高度 (m)", "en": "Height (m)"},
    "projects_floors": {"zh": "层数", "en": "Floors"},
    "projects_gfa": {"zh": "建筑面积 (m²)", "en": "GFA (m²)"},
    "projects_use": {"zh": "用途", "en": "Use"},
    "projects_building_name": {"zh": "建筑名称", "en": "Building name"},
    "projects_save": {"zh": "保存", "en": "Save"},
    "projects_delete": {"zh": "删除", "en": "Remove"},
    "projects_removed": {"zh": "建筑已删除。", "en": "Building removed."},
    "projects_updated": {"zh": "建筑已更新。", "en": "Building updated."},
    "projects_run_check": {"zh": "运行自检", "en": "Run the self-check"},
    "projects_rerun_check": {"zh": "重新自检", "en": "Run the self-check again"},
    "projects_checked": {"zh": "自检完成。", "en": "Self-check done."},
    "projects_results_title": {"zh": "各部门检测结果", "en": "Results by department"},
    "projects_no_run": {"zh": "尚未运行检测。", "en": "No check has run yet."},
    "projects_run_info": {"zh": "检测 #{id}（{purpose}，{at}），图层版本：{versions}",
                          "en": "Check #{id} ({purpose}, {at}); layer versions: {versions}"},
    "projects_rule": {"zh": "检测项", "en": "Check"},
    "projects_building": {"zh": "建筑", "en": "Building"},
    "projects_outcome": {"zh": "结果", "en": "Outcome"},
    "projects_measured": {"zh": "实测值", "en": "Measured"},
    "projects_limit": {"zh": "限值", "en": "Limit"},
    "projects_message": {"zh": "说明", "en": "Details"},
    "projects_whole_project": {"zh": "整个项目", "en": "Whole project"},
    "projects_outcome_pass": {"zh": "通过", "en": "Pass"},
    "projects_outcome_fail": {"zh": "不通过", "en": "Fail"},
    "projects_outcome_warn": {"zh": "警示", "en": "Warning"},
    "projects_outcome_no_data": {"zh": "无数据", "en": "No data"},
    "projects_outcome_not_applicable": {"zh": "不适用", "en": "N/A"},
    "projects_extra_departments": {"zh": "检测结果要求增加审查部门：{names}",
                                   "en": "The results bring in these departments: {names}"},
    "projects_changes": {"zh": "与上次检测相比有 {n} 项变化", "en": "{n} result(s) changed since the previous check"},
    "projects_overlaps": {"zh": "与在办项目重叠：{codes}", "en": "Overlaps projects in flight: {codes}"},
    "projects_submit": {"zh": "提交申请", "en": "Submit"},
    "projects_submitted": {"zh": "项目已提交综合窗口。", "en": "The project went to the one-stop window."},
    "projects_submit_unavailable": {"zh": "提交功能暂不可用（受理模块尚未部署），请稍后再试。",
                                    "en": "Submitting is not available yet (the intake module is not installed); "
                                          "try again later."},
    "projects_override": {"zh": "改判", "en": "Override"},
    "projects_override_reason": {"zh": "改判理由（必填）", "en": "Reason (required)"},
    "projects_overridden": {"zh": "已改判，原检测结果保留。", "en": "Overridden; the original result is kept."},
    "projects_overridden_by": {"zh": "审查员改判：{outcome}（{reason}）；原结果：{original}",
                               "en": "Reviewer override: {outcome} ({reason}); original: {original}"},
    "projects_legend_fail": {"zh": "不通过的证据", "en": "Failing evidence"},
    "projects_legend_warn": {"zh": "警示", "en": "Warning"},
    "projects_legend_building": {"zh": "建筑轮廓", "en": "Footprints"},
    "projects_legend_parcel": {"zh": "项目宗地", "en": "Project parcels"},
    "projects_status_draft": {"zh": "草稿", "en": "Draft"},
    "projects_status_submitted": {"zh": "已提交", "en": "Submitted"},
    "projects_status_in_review": {"zh": "审查中", "en": "In review"},
    "projects_status_in_correction": {"zh": "补正中", "en": "In correction"},
    "projects_status_approved": {"zh": "已批准", "en": "Approved"},
    "projects_status_rejected": {"zh": "不予批准", "en": "Rejected"},
    "projects_status_completed": {"zh": "已办结", "en": "Completed"},
    "projects_status_withdrawn": {"zh": "已撤回", "en": "Withdrawn"},
    "projects_use_residential": {"zh": "居住", "en": "Residential"},
    "projects_use_public": {"zh": "公共设施", "en": "Public"},
    "projects_use_commercial": {"zh": "商业", "en": "Commercial"},
    "projects_use_office": {"zh": "办公", "en": "Office"},
    "projects_use_industrial": {"zh": "工业", "en": "Industrial"},
    "projects_use_warehouse": {"zh": "仓储", "en": "Warehouse"},
    "projects_problems": {"zh": "以下问题需要修改（未保存任何内容）：", "en": "Please fix (nothing was stored):"},
}


# ----------------------------------------------------------------------------- helpers

def _visible_project(project_id: int) -> Project:
    user = current_user()
    project = get_db().get(Project, project_id)
    if project is None or not (project.applicant_id == user.id or user.role_codes & STAFF):
        raise NotFoundError(f"no project {project_id}")
    return project


def _is_owner(project: Project) -> bool:
    return project.applicant_id == current_user().id


def _error(exc: GisApprovalError) -> dict:
    """What the page shows of a refused action: the message and every problem."""
    return {"message": str(exc), "problems": [str(p) for p in getattr(exc, "problems", [])]}


def _geojson(session, stmt) -> dict:
    features = []
    for row in session.execute(stmt):
        data = dict(row._mapping)
        geometry = data.pop("g")
        if geometry:
            features.append({"type": "Feature", "geometry": geometry, "properties": data})
    return {"type": "FeatureCollection", "features": features}


def _wgs84(geom):
    return sa.func.ST_AsGeoJSON(sa.func.ST_Transform(geom, 4326), 7).cast(sa.JSON).label("g")


def project_map_data(session, project: Project, run) -> dict:
    parcels = _geojson(session, sa.select(Parcel.parcel_code.label("code"), Parcel.land_use, _wgs84(Parcel.geom))
                       .join(project_parcels, project_parcels.c.parcel_id == Parcel.id)
                       .where(project_parcels.c.project_id == project.id))
    buildings = _geojson(session, sa.select(Building.id, Building.name, Building.height_m, Building.use,
                                            _wgs84(Building.geom)).where(Building.project_id == project.id))
    evidence = {"type": "FeatureCollection", "features": []}
    if run is not None:
        evidence = _geojson(session, sa.select(
            CheckResult.id, CheckResult.rule_id, CheckResult.outcome, CheckResult.building_id,
            CheckResult.message_zh, CheckResult.message_en, _wgs84(CheckResult.evidence))
            .where(CheckResult.check_run_id == run.id, CheckResult.evidence.isnot(None),
                   CheckResult.overrides_result_id.is_(None), CheckResult.outcome.in_(("fail", "warn"))))
    return {"parcels": parcels, "buildings": buildings, "evidence": evidence}


def results_by_department(session, run) -> list[dict]:
    if run is None:
        return []
    rules = default_rules()
    depts = {d.id: d for d in session.scalars(sa.select(Department))}
    names = dict(session.execute(sa.select(Building.id, Building.name).where(Building.project_id == run.project_id)).all())
    groups: dict[str, dict] = {}
    for result, overrides in engine.run_results(session, run):
        dept = depts[result.department_id]
        group = groups.setdefault(dept.code, {"code": dept.code, "name": pick(dept.name_zh, dept.name_en),
                                              "rows": [], "counts": {}})
        rule = rules.get(result.rule_id)
        effective = overrides[-1] if overrides else result
        group["counts"][effective.outcome] = group["counts"].get(effective.outcome, 0) + 1
        group["rows"].append({
            "result": result, "override": overrides[-1] if overrides else None, "outcome": effective.outcome,
            "title": pick(rule.title_zh, rule.title_en) if rule else result.rule_id,
            "building": names.get(result.building_id) if result.building_id else None,
            "message": pick(result.message_zh, result.message_en),
            "department": dept.code,
            "may_override": _may_override(result, dept.code),
        })
    order = {c: i for i, c in enumerate(DEPARTMENT_ORDER)}
    for g in groups.values():
        g["rows"].sort(key=lambda r: ({"fail": 0, "warn": 1, "no_data": 2, "not_applicable": 3, "pass": 4}
                                      [r["outcome"]], r["title"]))
    return sorted(groups.values(), key=lambda g: order.get(g["code"], 99))


def _may_override(result: CheckResult, dept_code: str) -> bool:
    user = current_user()
    if not user.role_codes & {"reviewer", "leader"} or user.department is None:
        return False
    return user.department.code in {dept_code, result.adds_department}


def _submit(session, actor, project_id):
    """The issue-5 intake use case, when it is installed."""
    try:
        from gisapproval.workflow.intake import submit_project
    except ImportError:
        return None
    return submit_project(session, actor, project_id)


# ----------------------------------------------------------------------------- pages

@bp.route("")
@login_required
def index():
    items = core.list_projects(get_db(), current_user())
    return render_template("projects/index.html", projects=items, may_create="applicant" in current_user().role_codes)


@bp.route("/new", methods=["GET", "POST"])
@login_required
def new():
    if "applicant" not in current_user().role_codes:
        abort(403)
    form = {"name": "", "name_en": "", "parcel_codes": request.args.get("parcels", "")}
    if request.method == "POST":
        form = {k: request.form.get(k, "") for k in form}
        codes = form["parcel_codes"].replace(",", " ").replace("，", " ").split()
        db = get_db()
        try:
            project = core.create_project(db, current_user(), form["name"], codes, form["name_en"])
            db.commit()
        except GisApprovalError as exc:
            db.rollback()
            return render_template("projects/new.html", form=form, map_config=_map_config(), error=_error(exc)), 422
        flash("projects_created")
        return redirect(url_for("projects.detail", project_id=project.id))
    return render_template("projects/new.html", form=form, map_config=_map_config(), error=None)


def _map_config() -> dict:
    j = app_state().settings.jurisdiction
    return {"center": list(j.map_center), "zoom": j.map_zoom}


@bp.route("/<int:project_id>")
@login_required
def detail(project_id: int, error: dict | None = None):
    db = get_db()
    project = _visible_project(project_id)
    run = engine.latest_run(db, project.id)
    buildings = list(db.scalars(sa.select(Building).where(Building.project_id == project.id).order_by(Building.id)))
    groups = results_by_department(db, run)
    overlaps = engine.overlapping_projects(db, project.id)
    depts = {d.code: pick(d.name_zh, d.name_en) for d in db.scalars(sa.select(Department))}
    return render_template(
        "projects/detail.html", project=project, run=run, buildings=buildings, groups=groups, overlaps=overlaps,
        is_owner=_is_owner(project), editable=_is_owner(project) and project.status in core.EDITABLE,
        uses=core.footprint_limits().uses, map_data=project_map_data(db, project, run), map_config=_map_config(),
        extra_departments=[depts.get(c, c) for c in (run.extra_departments if run else [])],
        outcomes=("pass", "fail", "warn", "no_data", "not_applicable"), error=error)


def _owner_action(project_id: int, action, ok_message: str):
    _visible_project(project_id)
    db = get_db()
    try:
        action(db)
        db.commit()
        flash(ok_message)
    except GisApprovalError as exc:
        db.rollback()
        status = api.status_for(exc)[0]
        if status in (403, 404):
            raise
        return detail(project_id, error=_error(exc)), status
    return redirect(url_for("projects.detail", project_id=project_id) + "#results")


@bp.route("/<int:project_id>/upload", methods=["POST"])
@login_required
def upload(project_id: int):
    file = request.files.get("file")
    if file is None or not file.filename:
        return detail(project_id, error=_error(InputError("choose a file to upload", where="file"))), 422
    settings = app_state().settings
    path = save_upload(file.stream, file.filename, request.max_content_length or 50 * 1024 * 1024)
    defaults = {k: request.form.get(k) for k in core.ATTRIBUTES}
    try:
        return _owner_action(project_id, lambda db: core.add_buildings_from_file(
            db, settings, current_user(), project_id, path, path.name, crs=request.form.get("crs") or None,
            defaults=defaults), "projects_uploaded")
    finally:
        shutil.rmtree(path.parent, ignore_errors=True)


@bp.route("/<int:project_id>/buildings/<int:building_id>", methods=["POST"])
@login_required
def edit_building(project_id: int, building_id: int):
    settings = app_state().settings
    if request.form.get("action") == "delete":
        return _owner_action(project_id, lambda db: core.remove_building(db, current_user(), building_id),
                             "projects_removed")
    changes = {k: request.form.get(k) for k in core.ATTRIBUTES if request.form.get(k) is not None}
    return _owner_action(project_id, lambda db: core.update_building(db, settings, current_user(), building_id,
                                                                     changes), "projects_updated")


@bp.route("/<int:project_id>/check", methods=["POST"])
@login_required
def run_check(project_id: int):
    project = _visible_project(project_id)
    if not _is_owner(project):
        abort(403)
    return _owner_action(project_id, lambda db: engine.run_project_checks(db, current_user(), project),
                         "projects_checked")


@bp.route("/<int:project_id>/submit", methods=["POST"])
@login_required
def submit(project_id: int):
    project = _visible_project(project_id)
    if not _is_owner(project):
        abort(403)
    try:
        from gisapproval.workflow import intake  # noqa: F401
    except ImportError:
        return render_template("error.html", code=503, message=_("projects_submit_unavailable"), detail=None,
                               where=None), 503
    return _owner_action(project_id, lambda db: _submit(db, current_user(), project_id), "projects_submitted")


@bp.route("/results/<int:result_id>/override", methods=["POST"])
@login_required
def override(result_id: int):
    db = get_db()
    result = db.get(CheckResult, result_id)
    if result is None:
        abort(404)
    from gisapproval.models import CheckRun

    project_id = db.get(CheckRun, result.check_run_id).project_id
    return _owner_action(project_id, lambda db: engine.override_result(
        db, current_user(), result_id, request.form.get("outcome", ""), request.form.get("reason", "")),
        "projects_overridden")


# ----------------------------------------------------------------------------- JSON API

api_bp = api.ApiBlueprint("projects_api", __name__, url_prefix="/api/projects",
                          description="Applicants' projects, buildings, self-checks; reviewers' overrides.")


class ProjectIn(Schema):
    class Meta:
        unknown = EXCLUDE

    name = fields.String(required=True)
    name_en = fields.String(load_default=None)
    parcel_codes = fields.List(fields.String(), required=True)


class BuildingIn(Schema):
    class Meta:
        unknown = EXCLUDE

    geometry = fields.Dict(load_default=None, metadata={"description": "GeoJSON geometry (EPSG:4326 unless crs)"})
    crs = fields.String(load_default="EPSG:4326")
    name = fields.String(load_default="")
    height_m = fields.Raw(load_default=None)
    floors = fields.Raw(load_default=None)
    gfa_m2 = fields.Raw(load_default=None)
    use = fields.String(load_default=None)


class OverrideIn(Schema):
    outcome = fields.String(required=True)
    reason = fields.String(required=True)


def _project_json(project: Project) -> dict:
    return {"id": project.id, "code": project.code, "name": project.name, "name_en": project.name_en,
            "status": project.status, "parcels": [p.parcel_code for p in project.parcels],
            "buildings": [_building_json(b) for b in project.buildings]}


def _building_json(b: Building) -> dict:
    return {"id": b.id, "name": b.name, "height_m": b.height_m, "floors": b.floors, "gfa_m2": b.gfa_m2,
            "use": b.use}


def _run_json(session, run) -> dict:
    out = {"id": run.id, "project_id": run.project_id, "purpose": run.purpose, "created_at": run.created_at.isoformat(),
           "layer_versions": run.layer_versions, "summary": run.summary, "extra_departments": run.extra_departments,
           "changes": run.changes, "results": []}
    depts = dict(session.execute(sa.select(Department.id, Department.code)).all())
    for result, overrides in engine.run_results(session, run):
        out["results"].append({
            "id": result.id, "rule_id": result.rule_id, "department": depts[result.department_id],
            "building_id": result.building_id, "outcome": result.outcome, "measured": result.measured,
            "limit": result.limit_value, "unit": result.unit, "message_zh": result.message_zh,
            "message_en": result.message_en, "layer_version_ids": result.layer_version_ids,
            "adds_department": result.adds_department, "details": result.details,
            "overrides": [{"id": o.id, "outcome": o.outcome, "reason": o.override_reason,
                           "by": o.overridden_by_id} for o in overrides]})
    return out


def _api_project(project_id: int) -> Project:
    user = api.api_user()
    project = get_db().get(Project, project_id)
    if project is None or not (project.applicant_id == user.id or user.role_codes & STAFF):
        raise NotFoundError(f"no project {project_id}")
    return project


@api_bp.route("", methods=["GET"])
@api.api_login_required()
def api_list():
    """The caller's projects (staff: all)."""
    return {"projects": [_project_json(p) for p in core.list_projects(get_db(), api.api_user())]}


@api_bp.route("", methods=["POST"])
@api_bp.arguments(ProjectIn)
@api.api_login_required("applicant")
def api_create(data):
    """Create a draft project on parcels."""
    db = get_db()
    project = core.create_project(db, api.api_user(), data["name"], data["parcel_codes"], data.get("name_en"))
    db.commit()
    return _project_json(project), 201


@api_bp.route("/<int:project_id>", methods=["GET"])
@api.api_login_required()
def api_get(project_id: int):
    """A project with its buildings and its map data (GeoJSON, EPSG:4326)."""
    db = get_db()
    project = _api_project(project_id)
    return {**_project_json(project), "map": project_map_data(db, project, engine.latest_run(db, project.id))}


@api_bp.route("/<int:project_id>/buildings", methods=["POST"])
@api.api_login_required("applicant")
def api_add_buildings(project_id: int):
    """Add buildings: multipart ``file`` (+ ``crs`` and default attributes) or JSON of one drawn building."""
    db = get_db()
    settings = app_state().settings
    if request.files.get("file"):
        file = request.files["file"]
        path = save_upload(file.stream, file.filename, request.max_content_length or 50 * 1024 * 1024)
        try:
            made = core.add_buildings_from_file(db, settings, api.api_user(), project_id, path, path.name,
                                                crs=request.form.get("crs") or None,
                                                defaults={k: request.form.get(k) for k in core.ATTRIBUTES})
        finally:
            shutil.rmtree(path.parent, ignore_errors=True)
    else:
        data = BuildingIn().load(request.get_json(silent=True) or {})
        if data["geometry"] is None:
            raise InputError("send a GeoJSON geometry, or upload a file", where="geometry")
        made = [core.add_drawn_building(db, settings, api.api_user(), project_id, data["geometry"],
                                        {k: data.get(k) for k in core.ATTRIBUTES}, crs=data["crs"])]
    db.commit()
    return {"buildings": [_building_json(b) for b in made]}, 201


@api_bp.route("/<int:project_id>/buildings/<int:building_id>", methods=["PATCH"])
@api.api_login_required("applicant")
def api_update_building(project_id: int, building_id: int):
    """Change a building's figures and/or its footprint (``geometry``)."""
    db = get_db()
    data = request.get_json(silent=True) or {}
    b = core.update_building(db, app_state().settings, api.api_user(), building_id, data)
    db.commit()
    return _building_json(b)


@api_bp.route("/<int:project_id>/buildings/<int:building_id>", methods=["DELETE"])
@api.api_login_required("applicant")
def api_remove_building(project_id: int, building_id: int):
    """Remove a building."""
    db = get_db()
    core.remove_building(db, api.api_user(), building_id)
    db.commit()
    return "", 204


@api_bp.route("/<int:project_id>/checks", methods=["POST"])
@api.api_login_required("applicant")
def api_run_check(project_id: int):
    """Run the self-check: every department's rules at once."""
    db = get_db()
    project = _api_project(project_id)
    run = engine.run_project_checks(db, api.api_user(), project)
    db.commit()
    return _run_json(db, run), 201


@api_bp.route("/<int:project_id>/checks/latest", methods=["GET"])
@api.api_login_required()
def api_latest_check(project_id: int):
    """The project's latest check run with every result (numbers, limits, overrides)."""
    db = get_db()
    project = _api_project(project_id)
    run = engine.latest_run(db, project.id)
    if run is None:
        raise NotFoundError(f"project {project.code} has no check run yet")
    return _run_json(db, run)


@api_bp.route("/check-results/<int:result_id>/override", methods=["POST"])
@api_bp.arguments(OverrideIn)
@api.api_login_required("reviewer", "leader")
def api_override(data, result_id: int):
    """Override an automatic result (reviewers of the rule's department; reason required)."""
    db = get_db()
    o = engine.override_result(db, api.api_user(), result_id, data["outcome"], data["reason"])
    db.commit()
    return {"id": o.id, "overrides_result_id": o.overrides_result_id, "outcome": o.outcome,
            "reason": o.override_reason}, 201


@api_bp.route("/parcels", methods=["GET"])
@api.api_login_required()
def api_parcels():
    """Live parcels in a bounding box (``bbox=minlon,minlat,maxlon,maxlat``) for picking on the map."""
    try:
        x0, y0, x1, y1 = (float(v) for v in request.args.get("bbox", "").split(","))
    except ValueError:
        raise InputError("bbox must be minlon,minlat,maxlon,maxlat", where="bbox") from None
    env = sa.func.ST_Transform(sa.func.ST_MakeEnvelope(x0, y0, x1, y1, 4326), app_state().settings.jurisdiction.srid)
    db = get_db()
    return _geojson(db, sa.select(Parcel.parcel_code.label("code"), Parcel.land_use, Parcel.holder,
                                  _wgs84(Parcel.geom))
                    .where(sa.func.ST_Intersects(Parcel.geom, env), Parcel.is_retired.is_(False)).limit(3000))


def init_app(app) -> None:
    i18n.register(MESSAGES)
    app.register_blueprint(bp)
    api.register(app, api_bp)
    nav.add(app, "projects.index", "projects_nav", order=20, roles=["applicant"])
    nav.add(app, "projects.index", "projects_nav_staff", order=21, roles=list(STAFF))
