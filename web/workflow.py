"""The joint-approval pages and JSON API: the window's intake, the departments' tasks and
decisions, the leader's sign-offs and extensions, the project's stages and timeline, the
combined approval document, the supervision dashboard, the admin calendar, and the public
catalogue and status look-up. Views parse, call one use case, commit, render."""

from __future__ import annotations

import datetime as dt

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)

from gisapproval import public, supervision
from gisapproval.errors import InputError
from gisapproval.workflow import intake, review
from gisapproval.workflow import views as wv
from gisapproval.workflow.base import today_in_china
from gisapproval.workflow.calendar import (
    calendar_status,
    enter_year,
    parse_schedule,
    remove_override,
    set_override,
)
from gisapproval.workflow.document import render_pdf, stage_document

from . import i18n, nav
from .auth import current_user, login_required, roles_required
from .db import get_db

bp = Blueprint("workflow", __name__, url_prefix="/workflow")
public_bp = Blueprint("public", __name__, url_prefix="/public")

MESSAGES = {
    "workflow_nav_projects": {"zh": "办件", "en": "Applications"},
    "workflow_nav_window": {"zh": "综合窗口", "en": "Window"},
    "workflow_nav_tasks": {"zh": "审查任务", "en": "Review tasks"},
    "workflow_nav_leader": {"zh": "领导签发", "en": "Sign-off"},
    "workflow_nav_supervision": {"zh": "电子监察", "en": "Supervision"},
    "workflow_nav_calendar": {"zh": "工作日历", "en": "Calendar"},
    "workflow_nav_catalogue": {"zh": "办事指南", "en": "Service guide"},
    "workflow_nav_status": {"zh": "办件查询", "en": "Status look-up"},
    "workflow_done": {"zh": "已办理。", "en": "Done."},
    "workflow_submitted": {"zh": "已提交，请等待综合窗口受理。", "en": "Submitted: the window will check it."},
    "workflow_accepted": {"zh": "已受理，已分送各部门并联审查。", "en": "Accepted and sent to every department at once."},
    "workflow_notice_issued": {"zh": "已出具一次性补正告知书。", "en": "One-time correction notice issued."},
    "workflow_decided": {"zh": "审查意见已提交。", "en": "Decision recorded."},
}

STATUS = {
    "draft": ("草稿", "Draft"), "submitted": ("已提交·待受理", "Submitted"), "intake": ("待受理", "Awaiting intake"),
    "in_review": ("审查中", "In review"), "in_correction": ("补正中", "Correction requested"),
    "approved": ("已批准", "Approved"), "rejected": ("不予许可", "Rejected"), "completed": ("已办结", "Completed"),
    "withdrawn": ("已撤回", "Withdrawn"), "pending": ("待受理", "Pending"),
    "approved_with_conditions": ("有条件同意", "Approved with conditions"),
    "correction_requested": ("要求补正", "Correction requested"), "deemed_approved": ("超时默认同意", "Deemed approved"),
    "awaiting_signoff": ("待领导签发", "Awaiting sign-off"), "open": ("未答复", "Open"), "answered": ("已答复", "Answered"),
    "proposed": ("待签发", "proposed"), "final": ("已生效", "final"), "returned": ("已退回", "returned"),
}
COLOUR = {"green": ("正常", "On time"), "yellow": ("黄牌预警", "Warning"), "red": ("红牌超期", "Overdue"),
          "stopped": ("计时暂停", "Clock stopped"), "done": ("已办结", "Done"), "waiting": ("未受理", "Not accepted")}
STOP = {"correction": ("补正", "correction"), "expert_review": ("专家评审", "expert review"),
        "hearing": ("听证", "hearing"), "inspection": ("检验检测", "inspection")}
EVENT = {
    "project.created": ("创建项目", "Project created"), "stage.submitted": ("提交申请", "Submitted"),
    "stage.accepted": ("窗口受理", "Accepted at the window"),
    "stage.deemed_accepted": ("逾期视为受理（行政许可法第三十二条）", "Deemed accepted (art. 32)"),
    "correction_notice.issued": ("一次性补正告知", "One-time correction notice"),
    "review_task.proposed": ("审查意见（待签发）", "Decision proposed"),
    "review_task.signed_off": ("领导签发", "Signed off"), "review_task.signoff_returned": ("领导退回", "Returned"),
    "review_task.decided": ("部门审查决定", "Department decided"),
    "review_task.deemed_approved": ("超时默认同意", "Deemed approved"),
    "review_task.clock_stopped": ("暂停计时", "Clock stopped"), "review_task.clock_resumed": ("恢复计时", "Clock resumed"),
    "review_task.warned_yellow": ("黄牌预警", "Yellow warning"), "review_task.warned_red": ("红牌超期", "Red: overdue"),
    "extension.requested": ("申请延期", "Extension requested"), "extension.approved": ("批准延期", "Extension approved"),
    "extension.refused": ("不批准延期", "Extension refused"), "stage.approved": ("阶段审批通过", "Stage approved"),
    "stage.rejected": ("阶段不予许可", "Stage rejected"), "stage.opened": ("下一阶段开放申报", "Next stage opened"),
    "outstanding_item.received": ("容缺材料已补齐", "Outstanding material received"),
    "check_run.completed": ("自动检测完成", "Automatic checks run"),
}


def label(table: dict, key) -> str:
    zh, en = table.get(key, (key, key))
    return i18n.pick(zh, en)


def _today() -> dt.date:
    return today_in_china()


def _done(message: str, target: str):
    get_db().commit()
    flash(message)
    return redirect(target)


# --- projects and timeline -------------------------------------------------------------

@bp.route("/projects")
@login_required
def projects():
    return render_template("workflow/projects.html", projects=wv.projects_for(get_db(), current_user()))


@bp.route("/projects/<int:project_id>")
@login_required
def project(project_id: int):
    db, user = get_db(), current_user()
    view = wv.project_view(db, user, project_id, _today())
    return render_template("workflow/project.html", v=view, timeline=wv.timeline(db, user, project_id),
                           joint_extension_days=wv.process().joint_extension_days)


@bp.route("/projects/<int:project_id>/submit", methods=["POST"])
@login_required
def submit(project_id: int):
    materials = request.form.getlist("materials")
    intake.submit_project(get_db(), current_user(), project_id, materials)
    return _done("workflow_submitted", url_for(".project", project_id=project_id))


@bp.route("/stages/<int:stage_id>/document")
@login_required
def document(stage_id: int):
    return render_template("workflow/document.html", doc=stage_document(get_db(), current_user(), stage_id),
                           stage_id=stage_id)


@bp.route("/stages/<int:stage_id>/document.pdf")
@login_required
def document_pdf(stage_id: int):
    doc = stage_document(get_db(), current_user(), stage_id)
    return Response(render_pdf(doc), mimetype="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="approval-{doc["number"]}.pdf"'})


# --- the window ------------------------------------------------------------------------

@bp.route("/window")
@roles_required("clerk", "supervisor", "admin")
def window():
    db = get_db()
    return render_template("workflow/window.html", queue=wv.intake_queue(db, _today()),
                           outstanding=wv.outstanding_items(db), today=_today())


@bp.route("/stages/<int:stage_id>/accept", methods=["POST"])
@roles_required("clerk")
def accept(stage_id: int):
    deferred = {}
    for key, value in request.form.items():
        if key.startswith("due_") and value:
            try:
                deferred[key[4:]] = dt.date.fromisoformat(value)
            except ValueError:
                raise InputError(f"not a date: {value!r}", where=key) from None
    intake.accept_stage(get_db(), current_user(), stage_id, deferred)
    return _done("workflow_accepted", url_for(".window"))


@bp.route("/stages/<int:stage_id>/notice", methods=["POST"])
@roles_required("clerk")
def notice(stage_id: int):
    items = [line for line in request.form.get("items", "").splitlines() if line.strip()]
    intake.issue_intake_notice(get_db(), current_user(), stage_id, items)
    return _done("workflow_notice_issued", url_for(".window"))


@bp.route("/outstanding/<int:item_id>/received", methods=["POST"])
@roles_required("clerk")
def outstanding_received(item_id: int):
    intake.receive_outstanding_item(get_db(), current_user(), item_id)
    return _done("workflow_done", url_for(".window"))


# --- departments -----------------------------------------------------------------------

@bp.route("/tasks")
@roles_required("reviewer", "leader")
def tasks():
    db, user = get_db(), current_user()
    if user.department_id is None:
        abort(403)
    show_done = request.args.get("all") == "1"
    return render_template("workflow/tasks.html", tasks=wv.department_tasks(db, user.department_id, _today(),
                                                                             open_only=not show_done),
                           early=wv.early_notices(db, user.department_id), show_done=show_done)


@bp.route("/tasks/<int:task_id>")
@login_required
def task(task_id: int):
    user = current_user()
    if not (user.role_codes & {"reviewer", "leader", "clerk", "supervisor", "admin"}):
        abort(403)
    t = wv.task_detail(get_db(), user, task_id, _today())
    mine = user.department is not None and user.department.code == t["department"]
    return render_template("workflow/task.html", t=t, can_decide=mine and "reviewer" in user.role_codes,
                           can_sign=mine and "leader" in user.role_codes)


@bp.route("/tasks/<int:task_id>/decide", methods=["POST"])
@login_required
def decide(task_id: int):
    f = request.form
    items = [line for line in f.get("correction_items", "").splitlines() if line.strip()]
    review.decide_review_task(get_db(), current_user(), task_id, f.get("decision", ""), f.get("opinion", ""),
                              f.get("conditions"), items, row_version=f.get("row_version", type=int))
    return _done("workflow_decided", url_for(".task", task_id=task_id))


@bp.route("/tasks/<int:task_id>/signoff", methods=["POST"])
@login_required
def signoff(task_id: int):
    f = request.form
    review.sign_off(get_db(), current_user(), task_id, f.get("approve") == "1", f.get("note"),
                    row_version=f.get("row_version", type=int))
    return _done("workflow_done", request.form.get("next") or url_for(".leader"))


@bp.route("/tasks/<int:task_id>/stop", methods=["POST"])
@login_required
def stop(task_id: int):
    review.stop_clock(get_db(), current_user(), task_id, request.form.get("stop_kind", ""),
                      request.form.get("reason", ""))
    return _done("workflow_done", url_for(".task", task_id=task_id))


@bp.route("/tasks/<int:task_id>/resume", methods=["POST"])
@login_required
def resume(task_id: int):
    review.resume_clock(get_db(), current_user(), task_id)
    return _done("workflow_done", url_for(".task", task_id=task_id))


@bp.route("/tasks/<int:task_id>/extension", methods=["POST"])
@login_required
def extension(task_id: int):
    review.request_extension(get_db(), current_user(), task_id, request.form.get("reason", ""),
                             request.form.get("days", type=int))
    return _done("workflow_done", url_for(".task", task_id=task_id))


@bp.route("/stages/<int:stage_id>/joint-extension", methods=["POST"])
@roles_required("leader")
def joint_extension(stage_id: int):
    event = review.extend_joint_deadline(get_db(), current_user(), stage_id, request.form.get("reason", ""),
                                         request.form.get("days", type=int))
    project_id = review.get_stage(get_db(), event.stage_instance_id).project_id
    return _done("workflow_done", url_for(".project", project_id=project_id))


@bp.route("/leader")
@roles_required("leader")
def leader():
    db, user = get_db(), current_user()
    return render_template("workflow/leader.html", signoffs=wv.signoff_queue(db, user, _today()),
                           extensions=wv.extension_queue(db, user, _today()))


@bp.route("/extensions/<int:request_id>/decide", methods=["POST"])
@roles_required("leader")
def extension_decide(request_id: int):
    review.decide_extension(get_db(), current_user(), request_id, request.form.get("approve") == "1",
                            request.form.get("note"))
    return _done("workflow_done", url_for(".leader"))


# --- supervision and calendar -------------------------------------------------------------

@bp.route("/supervision")
@roles_required("supervisor", "admin", "leader")
def supervision_page():
    m = supervision.metrics(get_db(), current_user(), _today())
    return render_template("workflow/supervision.html", m=m)


@bp.route("/admin/calendar", methods=["GET", "POST"])
@roles_required("admin")
def calendar_admin():
    db, user = get_db(), current_user()
    if request.method == "POST":
        action = request.form.get("action")
        if action == "schedule":
            enter_year(db, user, parse_schedule(request.form.get("schedule", ""), "schedule"))
        elif action == "remove":
            remove_override(db, user, _date_field("day"))
        else:
            set_override(db, user, _date_field("day"), request.form.get("kind") == "workday",
                         request.form.get("note") or None)
        return _done("workflow_done", url_for(".calendar_admin"))
    return render_template("workflow/calendar.html", st=calendar_status(db, _today()))


def _date_field(name: str) -> dt.date:
    try:
        return dt.date.fromisoformat(request.form.get(name, ""))
    except ValueError:
        raise InputError("not a date (YYYY-MM-DD)", where=name) from None


# --- public ---------------------------------------------------------------------------------

@public_bp.route("/catalogue")
def catalogue():
    return render_template("workflow/catalogue.html", c=public.catalogue(get_db()))


@public_bp.route("/status", methods=["GET", "POST"])
def status():
    result, error = None, None
    if request.method == "POST":
        from gisapproval.errors import GisApprovalError

        try:
            result = public.status_lookup(get_db(), request.form.get("receipt_no", ""),
                                          request.form.get("query_code", ""), _today())
        except GisApprovalError:
            error = True
    return render_template("workflow/status.html", result=result, error=error)


def init_app(app) -> None:
    i18n.register(MESSAGES)
    app.register_blueprint(bp)
    app.register_blueprint(public_bp)
    app.jinja_env.globals.update(wf_status=lambda k: label(STATUS, k), wf_colour=lambda k: label(COLOUR, k),
                                 wf_stop=lambda k: label(STOP, k), wf_event=lambda k: label(EVENT, k))
    nav.add(app, "workflow.projects", "workflow_nav_projects", order=20)
    nav.add(app, "workflow.window", "workflow_nav_window", order=21, roles=["clerk"])
    nav.add(app, "workflow.tasks", "workflow_nav_tasks", order=22, roles=["reviewer"])
    nav.add(app, "workflow.leader", "workflow_nav_leader", order=23, roles=["leader"])
    nav.add(app, "workflow.supervision_page", "workflow_nav_supervision", order=24, roles=["supervisor", "admin"])
    nav.add(app, "workflow.calendar_admin", "workflow_nav_calendar", order=25, roles=["admin"])
    nav.add(app, "public.catalogue", "workflow_nav_catalogue", order=90, public=True)
    nav.add(app, "public.status", "workflow_nav_status", order=91, public=True)
    from . import workflow_api

    workflow_api.init_app(app)
