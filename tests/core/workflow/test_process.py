"""Intake, simultaneous review, sign-off, corrections, the merged outcome and the document."""

import datetime as dt

import pytest
import sqlalchemy as sa

from gisapproval.accounts import create_user
from gisapproval.errors import ConflictError, InputError, PermissionDeniedError
from gisapproval.models import (
    ClockEvent,
    CorrectionNotice,
    EarlyNotice,
    Event,
    OutstandingItem,
    ReviewTask,
)
from gisapproval.workflow import intake, review
from gisapproval.workflow.document import render_pdf, stage_document
from gisapproval.workflow.views import project_view, task_detail

MON = dt.date(2026, 11, 2)


def _tasks(session, stage):
    return {t.department.code: t for t in session.scalars(
        sa.select(ReviewTask).where(ReviewTask.stage_instance_id == stage.id))}


def _leader(wf, dept):
    return create_user(wf.s, None, username=f"{dept}_leader_t", password="secret123", display_name=f"{dept} leader",
                       roles=["leader"], department_code=dept)


def test_submit_needs_own_applicant_and_a_building(wf):
    p = wf.project(buildings=0)
    with pytest.raises(PermissionDeniedError):
        intake.submit_project(wf.s, wf.user("applicant2"), p.id, today=MON)
    with pytest.raises(InputError) as exc:
        intake.submit_project(wf.s, wf.user("applicant1"), p.id, today=MON)
    assert exc.value.where == "buildings"


def test_intake_notice_lists_every_missing_item_once_then_resubmission(wf):
    p = wf.project()
    app, clerk = wf.user("applicant1"), wf.user("clerk")
    stage = intake.submit_project(wf.s, app, p.id, ["application_form", "site_plan"], today=MON)
    assert stage.status == "intake" and p.status == "submitted"
    with pytest.raises(InputError):
        intake.accept_stage(wf.s, clerk, stage.id, today=MON)
    notice = intake.issue_intake_notice(wf.s, clerk, stage.id, ["请补充法定代表人授权书", "请补充法定代表人授权书"],
                                        today=MON + dt.timedelta(days=1))
    texts = [i["text_zh"] for i in notice.items]
    assert "缺少材料：项目立项批准（核准、备案）文件" in texts and "缺少材料：土地使用权证明材料" in texts
    assert texts.count("请补充法定代表人授权书") == 1
    # every failed check of every department (when the check engine ran) is in the same notice, once each
    from gisapproval.workflow.base import failed_check_items, merge_items

    checks = merge_items(failed_check_items(wf.s, stage))
    assert len(texts) == 3 + len(checks) and len(set(texts)) == len(texts)
    assert all(c["text_zh"] in texts for c in checks)
    assert stage.status == "in_correction" and p.status == "in_correction"
    with pytest.raises(ConflictError):
        intake.accept_stage(wf.s, clerk, stage.id)
    again = intake.submit_project(wf.s, app, p.id, today=dt.date(2026, 11, 5))
    assert again.id == stage.id and stage.status == "intake" and stage.received_on == dt.date(2026, 11, 5)
    assert notice.status == "answered"
    kinds = [e.kind for e in wf.s.scalars(sa.select(ClockEvent).where(ClockEvent.stage_instance_id == stage.id)
                                          .order_by(ClockEvent.id))]
    assert kinds == ["received", "stop", "resume"]


def test_accept_with_minor_items_to_follow(wf):
    p = wf.project()
    app, clerk = wf.user("applicant1"), wf.user("clerk")
    given = ["application_form", "project_approval", "land_title", "site_plan"]
    stage = intake.submit_project(wf.s, app, p.id, given, today=MON)
    with pytest.raises(InputError) as exc:
        intake.accept_stage(wf.s, clerk, stage.id, today=MON)
    assert exc.value.where == "deferred"
    intake.accept_stage(wf.s, clerk, stage.id, {"business_licence": dt.date(2026, 11, 20)}, today=MON)
    assert p.receipt_no and p.query_code and len(p.query_code) == 6 and p.status == "in_review"
    item = wf.s.scalar(sa.select(OutstandingItem).where(OutstandingItem.stage_instance_id == stage.id))
    assert item.material_code == "business_licence" and item.due_on == dt.date(2026, 11, 20)
    # simultaneous review: every department of the stage at once; the next stage's get an early notice
    assert {c: t.status for c, t in _tasks(wf.s, stage).items()} == {"land": "in_review", "planning": "in_review"}
    early = set(wf.s.scalars(sa.select(EarlyNotice.next_stage).where(EarlyNotice.stage_instance_id == stage.id)))
    assert early == {2}


def _accepted(wf, **kw):
    p = wf.project(**kw)
    stage = intake.submit_project(wf.s, wf.user("applicant1"), p.id, today=MON)
    intake.accept_stage(wf.s, wf.user("clerk"), stage.id, today=MON)
    return p, stage


def test_only_reviewers_of_the_department_decide(wf):
    _p, stage = _accepted(wf)
    land = _tasks(wf.s, stage)["land"]
    for who in ("planning_reviewer", "applicant1", "clerk", "supervisor"):
        with pytest.raises(PermissionDeniedError):
            review.decide_review_task(wf.s, wf.user(who), land.id, "approved", "同意", today=MON)


def test_two_level_approval_and_merged_correction_notice(wf):
    p, stage = _accepted(wf)
    tasks = _tasks(wf.s, stage)
    land_leader = _leader(wf, "land")
    review.decide_review_task(wf.s, wf.user("land_reviewer"), tasks["land"].id, "correction_requested",
                              "用地证明不全", correction_items=["补充土地出让合同", "补充宗地图"], today=MON)
    assert tasks["land"].status == "awaiting_signoff"
    with pytest.raises(PermissionDeniedError):
        review.sign_off(wf.s, wf.user("leader"), tasks["land"].id, True, today=MON)  # planning's leader
    review.sign_off(wf.s, land_leader, tasks["land"].id, True, "同意退回补正", today=MON + dt.timedelta(days=1))
    assert tasks["land"].status == "correction_requested" and stage.status == "in_review"
    review.decide_review_task(wf.s, wf.user("planning_reviewer"), tasks["planning"].id, "correction_requested",
                              "总平面不清", correction_items=["补充宗地图", "补充总平面图"], today=MON)
    review.sign_off(wf.s, wf.user("leader"), tasks["planning"].id, True, today=MON + dt.timedelta(days=2))
    assert stage.status == "in_correction" and p.status == "in_correction"
    notices = wf.s.scalars(sa.select(CorrectionNotice).where(CorrectionNotice.stage_instance_id == stage.id)).all()
    assert len(notices) == 1
    texts = [i["text_zh"] for i in notices[0].items if i["source"] == "department"]
    assert sorted(texts) == ["补充土地出让合同", "补充宗地图", "补充总平面图"]
    # plus the failed checks of the two departments, once each
    all_texts = [i["text_zh"] for i in notices[0].items]
    assert len(all_texts) == len(set(all_texts))
    shared = next(i for i in notices[0].items if i["text_zh"] == "补充宗地图")
    assert sorted(shared["departments"]) == ["land", "planning"]
    # resubmission: the clocks of the tasks that asked resume the day of the resubmission
    intake.submit_project(wf.s, wf.user("applicant1"), p.id, today=dt.date(2026, 11, 9))
    assert stage.status == "in_review" and tasks["land"].status == "in_review"
    detail = task_detail(wf.s, wf.user("land_reviewer"), tasks["land"].id, dt.date(2026, 11, 9))
    # accepted Mon Nov 2 (10 committed days); the correction took effect at the sign-off, Tue Nov 3 (the stop's
    # day counts: 1 used); resumed Mon Nov 9: 9 left from Nov 10 -> Fri Nov 20
    assert detail["clock"]["committed_due_on"] == dt.date(2026, 11, 20)
    assert detail["clock"]["used_days"] == 1


def test_rejection_wins_and_approval_opens_next_stage_with_document(wf):
    p, stage = _accepted(wf)
    tasks = _tasks(wf.s, stage)
    land_leader = _leader(wf, "land")
    review.decide_review_task(wf.s, wf.user("land_reviewer"), tasks["land"].id, "approved_with_conditions",
                              "原则同意", "缴清土地出让价款", today=MON)
    review.sign_off(wf.s, land_leader, tasks["land"].id, True, today=MON)
    review.decide_review_task(wf.s, wf.user("planning_reviewer"), tasks["planning"].id, "approved",
                              "符合控制性详细规划，同意。", today=MON)
    assert stage.status == "in_review"  # the leader has not signed
    review.sign_off(wf.s, wf.user("leader"), tasks["planning"].id, True, today=MON + dt.timedelta(days=1))
    assert stage.status == "approved" and p.status == "approved"
    doc = stage_document(wf.s, wf.user("applicant1"), stage.id)
    assert [o["decision_zh"] for o in doc["opinions"]] == ["有条件同意", "同意"]
    pdf = render_pdf(doc)
    assert pdf.startswith(b"%PDF")
    from io import BytesIO

    from pypdf import PdfReader

    text = "".join(page.extract_text() for page in PdfReader(BytesIO(pdf)).pages)
    assert "缴清土地出让价款" in text and "符合控制性详细规划，同意。" in text and "建设用地规划许可证" in text
    # stage 2: fire rejects -> the stage is rejected whatever the others say
    s2 = intake.submit_project(wf.s, wf.user("applicant1"), p.id, today=MON + dt.timedelta(days=3))
    assert s2.stage == 2
    intake.accept_stage(wf.s, wf.user("clerk"), s2.id, today=MON + dt.timedelta(days=3))
    t2 = _tasks(wf.s, s2)
    review.decide_review_task(wf.s, wf.user("fire_reviewer"), t2["fire"].id, "rejected", "消防车道不满足要求",
                              today=MON + dt.timedelta(days=4))
    review.decide_review_task(wf.s, wf.user("construction_reviewer"), t2["construction"].id, "approved", "同意",
                              today=MON + dt.timedelta(days=4))
    review.decide_review_task(wf.s, wf.user("planning_reviewer"), t2["planning"].id, "approved", "同意",
                              today=MON + dt.timedelta(days=4))
    review.sign_off(wf.s, wf.user("leader"), t2["planning"].id, True, today=MON + dt.timedelta(days=4))
    assert s2.status == "rejected" and p.status == "rejected"
    types = list(wf.s.scalars(sa.select(Event.type).where(Event.project_id == p.id).order_by(Event.id)))
    for t in ("stage.submitted", "stage.accepted", "review_task.proposed", "review_task.signed_off",
              "review_task.decided", "stage.approved", "stage.opened", "stage.rejected"):
        assert t in types


def test_stops_extensions_and_their_reasons_are_shown(wf):
    p, stage = _accepted(wf)
    task = _tasks(wf.s, stage)["planning"]
    r = wf.user("planning_reviewer")
    review.stop_clock(wf.s, r, task.id, "expert_review", "组织专家论证日照分析", today=dt.date(2026, 11, 4))
    with pytest.raises(ConflictError):
        review.stop_clock(wf.s, r, task.id, "hearing", "x", today=dt.date(2026, 11, 5))
    d = task_detail(wf.s, r, task.id, dt.date(2026, 11, 6))["clock"]
    assert d["is_stopped"] and d["colour"] == "stopped" and d["days_remaining_at_stop"] == 8
    review.resume_clock(wf.s, r, task.id, today=dt.date(2026, 11, 9))
    req = review.request_extension(wf.s, r, task.id, "需征求交通部门意见")
    with pytest.raises(InputError):
        review.request_extension(wf.s, r, task.id, "again", 1)
    with pytest.raises(PermissionDeniedError):
        review.decide_extension(wf.s, r, req.id, True)
    review.decide_extension(wf.s, wf.user("leader"), req.id, True, "同意延期", today=dt.date(2026, 11, 10))
    d = task_detail(wf.s, r, task.id, dt.date(2026, 11, 10))["clock"]
    # 8 left after Nov 9 -> Nov 19; +10 -> Dec 3
    assert d["committed_due_on"] == dt.date(2026, 12, 3) and d["extension_days"] == 10
    view = project_view(wf.s, wf.user("applicant1"), p.id, dt.date(2026, 11, 10))
    planning = next(t for t in view["stages"][0]["tasks"] if t["department"] == "planning")
    assert planning["clock"]["extension_reasons"] == ["需征求交通部门意见"]


def test_stale_row_version_is_a_conflict(wf):
    _p, stage = _accepted(wf)
    task = _tasks(wf.s, stage)["fire"] if "fire" in _tasks(wf.s, stage) else _tasks(wf.s, stage)["planning"]
    with pytest.raises(ConflictError):
        review.decide_review_task(wf.s, wf.user("planning_reviewer"), task.id, "approved", "同意",
                                  row_version=task.row_version + 1, today=MON)


def test_applicant_cannot_see_anothers_project(wf):
    from gisapproval.errors import NotFoundError

    p = wf.project(applicant="applicant1")
    with pytest.raises(NotFoundError):
        project_view(wf.s, wf.user("applicant2"), p.id, MON)


def test_joint_handling_limit_45_extendable_by_15(wf):
    from gisapproval.workdays import Calendar

    p, stage = _accepted(wf)
    applicant = wf.user("applicant1")
    joint = project_view(wf.s, applicant, p.id, dt.date(2026, 11, 10))["stages"][0]["joint"]
    assert joint["limit_days"] == 45 and joint["due_on"] == Calendar().add(MON, 45).day
    with pytest.raises(PermissionDeniedError):
        review.extend_joint_deadline(wf.s, wf.user("planning_reviewer"), stage.id, "复杂项目")
    with pytest.raises(InputError, match="reason is required"):
        review.extend_joint_deadline(wf.s, wf.user("leader"), stage.id, "  ")
    review.extend_joint_deadline(wf.s, wf.user("leader"), stage.id, "涉及多部门协调，需联合踏勘", 10,
                                 today=dt.date(2026, 11, 10))
    with pytest.raises(InputError, match="at most 15 working days in all \\(10 already granted\\)"):
        review.extend_joint_deadline(wf.s, wf.user("leader"), stage.id, "再次延期", 6)
    review.extend_joint_deadline(wf.s, wf.user("leader"), stage.id, "再次延期", 5, today=dt.date(2026, 11, 11))
    joint = project_view(wf.s, applicant, p.id, dt.date(2026, 11, 11))["stages"][0]["joint"]
    assert joint["due_on"] == Calendar().add(MON, 60).day and joint["extension_days"] == 15
    assert joint["extension_reasons"] == ["涉及多部门协调，需联合踏勘", "再次延期"]
    assert wf.s.scalar(sa.select(sa.func.count()).select_from(Event).where(
        Event.type == "stage.joint_limit_extended", Event.project_id == p.id)) == 2
