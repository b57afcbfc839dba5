"""The joint-approval JSON API (/api/workflow and /api/public): the same use cases as the pages."""

from __future__ import annotations

import datetime as dt

from flask import jsonify, request

from gisapproval import public, supervision
from gisapproval.errors import InputError
from gisapproval.workflow import intake, review
from gisapproval.workflow import views as wv
from gisapproval.workflow.base import today_in_china

from . import api
from .db import get_db


def plain(value):
    """Dates as ISO strings, all the way down."""
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def _body() -> dict:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise InputError("send a JSON object", where="body")
    return data


def _task_out(task) -> dict:
    return {"id": task.id, "status": task.status, "row_version": task.row_version,
            "department": task.department.code, "opinion": task.opinion, "conditions": task.conditions}


def init_app(app) -> None:
    blp = api.ApiBlueprint("workflow_api", __name__, url_prefix="/api/workflow",
                           description="Joint approval: intake, review tasks, clocks, supervision")
    pub = api.ApiBlueprint("public_api", __name__, url_prefix="/api/public",
                           description="Public catalogue of approval items and status look-up")

    @blp.route("/projects/<int:project_id>/submit", methods=["POST"])
    @api.api_login_required("applicant")
    def submit(project_id):
        """The applicant submits (or resubmits) the project's current stage."""
        body = request.get_json(silent=True) or {}
        stage = intake.submit_project(get_db(), api.api_user(), project_id, body.get("materials"))
        out = {"stage_id": stage.id, "stage": stage.stage, "status": stage.status,
               "received_on": stage.received_on.isoformat()}
        get_db().commit()
        return jsonify(out), 201

    @blp.route("/projects/<int:project_id>")
    @api.api_login_required()
    def project(project_id):
        """A project's stages, tasks and clocks (deadlines derived now)."""
        return jsonify(plain(wv.project_view(get_db(), api.api_user(), project_id, today_in_china())))

    @blp.route("/projects/<int:project_id>/timeline")
    @api.api_login_required()
    def timeline(project_id):
        """Every audit event of the project: who, when, what, why."""
        return jsonify(plain(wv.timeline(get_db(), api.api_user(), project_id)))

    @blp.route("/intake")
    @api.api_login_required("clerk", "supervisor", "admin")
    def intake_queue():
        """Stages awaiting the window, with the art. 32 deadline and what is missing."""
        return jsonify(plain(wv.intake_queue(get_db(), today_in_china())))

    @blp.route("/stages/<int:stage_id>/accept", methods=["POST"])
    @api.api_login_required("clerk")
    def accept(stage_id):
        """Accept a stage; `deferred` maps missing minor materials to their due dates (容缺受理)."""
        body = request.get_json(silent=True) or {}
        deferred = {}
        for code, due in (body.get("deferred") or {}).items():
            try:
                deferred[code] = dt.date.fromisoformat(due)
            except (TypeError, ValueError):
                raise InputError(f"not a date: {due!r}", where=f"deferred.{code}") from None
        stage = intake.accept_stage(get_db(), api.api_user(), stage_id, deferred)
        project = stage.project
        out = {"stage_id": stage.id, "status": stage.status, "receipt_no": project.receipt_no,
               "query_code": project.query_code, "accepted_on": stage.accepted_on.isoformat()}
        get_db().commit()
        return jsonify(out)

    @blp.route("/stages/<int:stage_id>/notice", methods=["POST"])
    @api.api_login_required("clerk")
    def notice(stage_id):
        """Issue the one-time correction notice (missing materials + failed checks + `items`)."""
        body = request.get_json(silent=True) or {}
        n = intake.issue_intake_notice(get_db(), api.api_user(), stage_id, body.get("items") or [])
        out = {"id": n.id, "items": n.items}
        get_db().commit()
        return jsonify(out), 201

    @blp.route("/tasks")
    @api.api_login_required("reviewer", "leader")
    def tasks():
        """The open tasks of the caller's department, most urgent first."""
        user = api.api_user()
        return jsonify(plain(wv.department_tasks(get_db(), user.department_id, today_in_china(),
                                                 open_only=request.args.get("all") != "1")))

    @blp.route("/tasks/<int:task_id>")
    @api.api_login_required("reviewer", "leader", "clerk", "supervisor", "admin")
    def task(task_id):
        """A task with its clock, check results, decisions, extensions and the other departments."""
        return jsonify(plain(wv.task_detail(get_db(), api.api_user(), task_id, today_in_china())))

    @blp.route("/tasks/<int:task_id>/decision", methods=["POST"])
    @api.api_login_required()
    def decide(task_id):
        """Decide: approved, approved_with_conditions, correction_requested, rejected. Send the
        task's `row_version`: a stale one gets 409."""
        b = _body()
        t = review.decide_review_task(get_db(), api.api_user(), task_id, b.get("decision", ""), b.get("opinion", ""),
                                      b.get("conditions"), b.get("correction_items"), row_version=b.get("row_version"))
        out = _task_out(t)
        get_db().commit()
        return jsonify(out)

    @blp.route("/tasks/<int:task_id>/signoff", methods=["POST"])
    @api.api_login_required("leader")
    def signoff(task_id):
        """The leader signs the decision off (`approve`: true) or returns it with a note."""
        b = _body()
        t = review.sign_off(get_db(), api.api_user(), task_id, bool(b.get("approve")), b.get("note"),
                            row_version=b.get("row_version"))
        out = _task_out(t)
        get_db().commit()
        return jsonify(out)

    @blp.route("/tasks/<int:task_id>/stops", methods=["POST"])
    @api.api_login_required("reviewer")
    def stop(task_id):
        """Stop the clock: expert_review, hearing or inspection, with the reason told to the applicant."""
        b = _body()
        e = review.stop_clock(get_db(), api.api_user(), task_id, b.get("stop_kind", ""), b.get("reason", ""))
        out = {"id": e.id, "kind": e.kind, "on": e.on.isoformat()}
        get_db().commit()
        return jsonify(out), 201

    @blp.route("/tasks/<int:task_id>/resume", methods=["POST"])
    @api.api_login_required("reviewer")
    def resume(task_id):
        """Resume the stopped clock."""
        e = review.resume_clock(get_db(), api.api_user(), task_id)
        out = {"id": e.id, "kind": e.kind, "on": e.on.isoformat()}
        get_db().commit()
        return jsonify(out), 201

    @blp.route("/tasks/<int:task_id>/extensions", methods=["POST"])
    @api.api_login_required("reviewer")
    def extension(task_id):
        """Ask the leader for more working days (default: the configured art. 42 extension)."""
        b = _body()
        r = review.request_extension(get_db(), api.api_user(), task_id, b.get("reason", ""), b.get("days"))
        out = {"id": r.id, "days": r.days, "status": r.status}
        get_db().commit()
        return jsonify(out), 201

    @blp.route("/extensions/<int:request_id>/decision", methods=["POST"])
    @api.api_login_required("leader")
    def extension_decide(request_id):
        """The leader approves or refuses an extension."""
        b = _body()
        r = review.decide_extension(get_db(), api.api_user(), request_id, bool(b.get("approve")), b.get("note"))
        out = {"id": r.id, "status": r.status}
        get_db().commit()
        return jsonify(out)

    @blp.route("/stages/<int:stage_id>/joint-extension", methods=["POST"])
    @api.api_login_required("leader")
    def joint_extension(stage_id):
        """A leader extends the stage's joint-handling limit (default: the configured 15 working days)."""
        b = _body()
        e = review.extend_joint_deadline(get_db(), api.api_user(), stage_id, b.get("reason", ""), b.get("days"))
        out = {"stage_id": stage_id, "days": e.days, "on": e.on.isoformat(), "reason": e.reason}
        get_db().commit()
        return jsonify(out), 201

    @blp.route("/supervision")
    @api.api_login_required("supervisor", "admin", "leader")
    def supervision_metrics():
        """Per department, per reviewer and per month: handled, on-time rate, days used, overdue, returns."""
        return jsonify(plain(supervision.metrics(get_db(), api.api_user(), today_in_china())))

    @blp.route("/calendar")
    @api.api_login_required()
    def calendar():
        """What the working-day calendar knows; with `from` and `n`, the n-th working day after `from`."""
        from gisapproval.workflow.calendar import calendar_status, load_calendar

        db = get_db()
        if request.args.get("from"):
            try:
                start, n = dt.date.fromisoformat(request.args["from"]), int(request.args.get("n", "0"))
            except ValueError:
                raise InputError("give from=YYYY-MM-DD and a whole n >= 0", where="from") from None
            if n < 0:
                raise InputError("n must be 0 or more", where="n")
            r = load_calendar(db).add(start, n)
            return jsonify({"from": start.isoformat(), "n": n, "day": r.day.isoformat(),
                            "is_provisional": r.is_provisional})
        st = calendar_status(db, today_in_china())
        return jsonify(plain({k: v for k, v in st.items() if k not in ("overrides", "entered")} | {
            "overrides": [{"day": o.day, "is_workday": o.is_workday, "note": o.note} for o in st["overrides"]]}))

    @blp.route("/calendar/days", methods=["POST"])
    @api.api_login_required("admin")
    def calendar_day():
        """Declare one day a working day or a day off: {"day", "is_workday", "note"}."""
        from gisapproval.workflow.calendar import set_override

        b = _body()
        try:
            day = dt.date.fromisoformat(str(b.get("day")))
        except ValueError:
            raise InputError("not a date (YYYY-MM-DD)", where="day") from None
        if not isinstance(b.get("is_workday"), bool):
            raise InputError("is_workday must be true or false", where="is_workday")
        set_override(get_db(), api.api_user(), day, b["is_workday"], b.get("note"))
        get_db().commit()
        return jsonify({"day": day.isoformat(), "is_workday": b["is_workday"]}), 201

    @blp.route("/calendar/years", methods=["POST"])
    @api.api_login_required("admin")
    def calendar_year():
        """Enter a year's schedule: {"schedule": "<TOML: year, source, holidays, workdays>"}."""
        from gisapproval.workflow.calendar import enter_year, parse_schedule

        counts = enter_year(get_db(), api.api_user(), parse_schedule(str(_body().get("schedule", "")), "schedule"))
        get_db().commit()
        return jsonify(counts), 201

    @pub.route("/catalogue")
    def catalogue():
        """The approval items: materials, legal and committed limits, legal basis, fees."""
        return jsonify(public.catalogue(get_db()))

    @pub.route("/status")
    def status():
        """Look up an application by receipt number and query code (no personal data)."""
        return jsonify(plain(public.status_lookup(get_db(), request.args.get("receipt_no", ""),
                                                  request.args.get("query_code", ""), today_in_china())))

    api.register(app, blp)
    api.register(app, pub)
