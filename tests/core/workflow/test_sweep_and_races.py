"""The sweep: art. 32 deemed acceptance, deemed approval on timeout, warnings; run twice, and
twice at once, it gives the same state. These tests commit, so they use their own database."""

import datetime as dt
import threading

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from gisapproval.accounts import create_user
from gisapproval.db import make_engine
from gisapproval.models import (
    ClockEvent,
    Event,
    ReviewTask,
    StageInstance,
    TaskWarning,
    User,
)
from gisapproval.workflow import intake, review
from gisapproval.workflow.sweep import sweep
from gisapproval.workflow.views import task_detail

D = dt.date.fromisoformat


@pytest.fixture(scope="module")
def own_engine(own_sample_db):
    with own_sample_db("sweep") as url:
        yield from _own_engine(url)


def _own_engine(url):
    engine = make_engine(url, poolclass=sa.pool.NullPool)
    with Session(engine) as s:
        create_user(s, None, username="land_leader", password="secret123", display_name="国土局领导",
                    roles=["leader"], department_code="land")
        s.commit()
    yield engine
    engine.dispose()


def _u(s, name):
    return s.scalar(sa.select(User).where(User.username == name))


def _tasks(s, stage_id):
    return {t.department.code: t for t in s.scalars(sa.select(ReviewTask).where(ReviewTask.stage_instance_id == stage_id))}


make_project = None


@pytest.fixture(autouse=True)
def _factory(project_factory):
    global make_project
    make_project = project_factory


def _project_in_stage_2(s, day):
    """A fresh project with stage 1 approved and stage 2 accepted on ``day``."""
    p = make_project(s)
    st = intake.submit_project(s, _u(s, "applicant1"), p.id, today=day)
    intake.accept_stage(s, _u(s, "clerk"), st.id, today=day)
    t = _tasks(s, st.id)
    review.decide_review_task(s, _u(s, "land_reviewer"), t["land"].id, "approved", "同意", today=day)
    review.sign_off(s, _u(s, "land_leader"), t["land"].id, True, today=day)
    review.decide_review_task(s, _u(s, "planning_reviewer"), t["planning"].id, "approved", "同意", today=day)
    review.sign_off(s, _u(s, "leader"), t["planning"].id, True, today=day)
    st2 = intake.submit_project(s, _u(s, "applicant1"), p.id, today=day)
    intake.accept_stage(s, _u(s, "clerk"), st2.id, today=day)
    return p, st2


def snapshot(engine):
    with engine.connect() as c:
        return {
            "tasks": sorted(c.execute(sa.select(ReviewTask.id, ReviewTask.status)).all()),
            "stages": sorted(c.execute(sa.select(StageInstance.id, StageInstance.status, StageInstance.accepted_on)).all()),
            "clock_events": c.scalar(sa.select(sa.func.count()).select_from(ClockEvent)),
            "warnings": c.scalar(sa.select(sa.func.count()).select_from(TaskWarning)),
            "events": c.scalar(sa.select(sa.func.count()).select_from(Event)),
        }


def test_art32_deemed_acceptance_and_deemed_approval(own_engine):
    with Session(own_engine) as s:
        p = make_project(s)
        st = intake.submit_project(s, _u(s, "applicant1"), p.id, today=D("2026-11-02"))
        _p2, st2 = _project_in_stage_2(s, D("2026-11-02"))
        s.commit()
        ids = (p.id, st.id, st2.id)
    with Session(own_engine) as s:
        # Nov 9 is the 5th working day after Nov 2: the window may still act
        sweep(s, D("2026-11-09"))
        assert s.get(StageInstance, ids[1]).status == "intake"
        s.rollback()
    with Session(own_engine) as s:
        counts = sweep(s, D("2026-11-10"))
        s.commit()
        assert counts["deemed_accepted"] >= 1
        stage = s.get(StageInstance, ids[1])
        assert stage.status == "in_review" and stage.accepted_on == D("2026-11-02")
        assert s.get(StageInstance, ids[1]).project.receipt_no
        types = set(s.scalars(sa.select(Event.type).where(Event.project_id == ids[0])))
        assert "stage.deemed_accepted" in types
        # stage 2 accepted Nov 2: fire and construction (deemed on timeout, 10 days) were due Nov 16;
        # planning (not deemed) is only warned
        t = _tasks(s, ids[2])
        assert t["fire"].status == "in_review"
    with Session(own_engine) as s:
        sweep(s, D("2026-11-17"))
        s.commit()
        t = _tasks(s, ids[2])
        assert t["fire"].status == "deemed_approved" and t["construction"].status == "deemed_approved"
        assert t["planning"].status == "in_review"
        deemed = s.scalars(sa.select(ClockEvent).where(ClockEvent.review_task_id == t["fire"].id,
                                                       ClockEvent.kind == "deemed")).all()
        assert [e.on for e in deemed] == [D("2026-11-16")]
        levels = set(s.scalars(sa.select(TaskWarning.level).where(TaskWarning.review_task_id == t["planning"].id)))
        # planning (12 committed days from Nov 2: due Wed Nov 18) is 1 working day from its deadline: yellow
        detail = task_detail(s, _u(s, "planning_reviewer"), t["planning"].id, D("2026-11-17"))
        assert detail["clock"]["committed_due_on"] == D("2026-11-18") and detail["clock"]["days_left"] == 1
        assert levels == {"yellow"}
    with Session(own_engine) as s:
        sweep(s, D("2026-11-19"))
        s.commit()
        levels = set(s.scalars(sa.select(TaskWarning.level).where(TaskWarning.review_task_id == t["planning"].id)))
        assert levels == {"yellow", "red"}
        assert s.get(ReviewTask, t["planning"].id).status == "in_review"  # planning is not deemed on timeout


def test_sweep_twice_gives_the_same_state(own_engine):
    with Session(own_engine) as s:
        make_project(s)
        _project_in_stage_2(s, D("2026-11-03"))
        s.commit()
    with Session(own_engine) as s:
        sweep(s, D("2026-12-01"))
        s.commit()
    first = snapshot(own_engine)
    with Session(own_engine) as s:
        again = sweep(s, D("2026-12-01"))
        s.commit()
    assert again == {"deemed_accepted": 0, "deemed_approved": 0, "warnings": 0}
    assert snapshot(own_engine) == first


def test_two_sweeps_at_once_give_the_same_state_as_one(own_engine):
    with Session(own_engine) as s:
        for _ in range(3):
            p = make_project(s)
            intake.submit_project(s, _u(s, "applicant1"), p.id, today=D("2026-12-01"))
            _project_in_stage_2(s, D("2026-12-01"))
        s.commit()
    barrier = threading.Barrier(2)
    results, errors = [], []

    def run():
        try:
            with Session(own_engine) as s:
                barrier.wait()
                results.append(sweep(s, D("2026-12-31")))
                s.commit()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    after = snapshot(own_engine)
    with Session(own_engine) as s:
        third = sweep(s, D("2026-12-31"))
        s.commit()
    assert third == {"deemed_accepted": 0, "deemed_approved": 0, "warnings": 0}
    assert snapshot(own_engine) == after
    total = {k: sum(r[k] for r in results) for k in results[0]}
    assert total["deemed_accepted"] >= 3 and total["deemed_approved"] >= 6
    with own_engine.connect() as c:
        # nothing done twice: one acceptance per stage, one deemed event per task, one warning per level and deadline
        dup = c.execute(sa.text(
            "SELECT stage_instance_id FROM clock_events WHERE kind = 'accepted' GROUP BY stage_instance_id "
            "HAVING count(*) > 1 UNION ALL SELECT review_task_id FROM clock_events WHERE kind = 'deemed' "
            "GROUP BY review_task_id HAVING count(*) > 1")).all()
        assert dup == []


def test_two_reviewers_decide_the_same_task_at_once(own_engine):
    """Both load the task, both decide, both commit: one wins, the other gets a ConflictError and
    nothing of its decision is written."""
    from gisapproval.errors import ConflictError
    from gisapproval.models import TaskDecision

    with Session(own_engine) as s:
        create_user(s, None, username="fire_reviewer2", password="secret123", display_name="消防审查二",
                    roles=["reviewer"], department_code="fire")
        _p, st2 = _project_in_stage_2(s, D("2026-11-23"))
        s.commit()
        task_id = _tasks(s, st2.id)["fire"].id
        version = _tasks(s, st2.id)["fire"].row_version
    barrier = threading.Barrier(2)
    outcomes = {}

    def run(username, approve):
        with Session(own_engine) as s:
            actor = _u(s, username)
            s.get(ReviewTask, task_id)  # both read the task (row version 1) before either decides
            barrier.wait()
            try:
                review.decide_review_task(s, actor, task_id, "approved" if approve else "rejected",
                                          f"{username} 的意见", row_version=version, today=D("2026-11-24"))
                s.commit()
                outcomes[username] = "won"
            except ConflictError as exc:
                s.rollback()
                outcomes[username] = exc

    threads = [threading.Thread(target=run, args=("fire_reviewer", True)),
               threading.Thread(target=run, args=("fire_reviewer2", False))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    won = [u for u, o in outcomes.items() if o == "won"]
    lost = [o for o in outcomes.values() if o != "won"]
    assert len(won) == 1 and len(lost) == 1 and isinstance(lost[0], ConflictError), outcomes
    assert "someone else" in lost[0].message or "changed" in lost[0].message
    with Session(own_engine) as s:
        task = s.get(ReviewTask, task_id)
        assert task.opinion == f"{won[0]} 的意见"
        decisions = s.scalars(sa.select(TaskDecision).where(TaskDecision.review_task_id == task_id)).all()
        assert len(decisions) == 1
        decided = s.scalars(sa.select(Event).where(Event.type == "review_task.decided",
                                                   Event.subject_id == str(task_id))).all()
        assert len(decided) == 1


def test_cli_sweep_and_workdays(own_engine, monkeypatch):
    from click.testing import CliRunner

    from gisapproval.cli import cli

    runner = CliRunner()
    assert runner.invoke(cli, ["workdays", "add", "2026-02-13", "1"]).output.strip() == "2026-02-14"
    assert runner.invoke(cli, ["workdays", "add", "2026-09-30", "3"]).output.strip() == "2026-10-10"
    assert runner.invoke(cli, ["workdays", "between", "2026-02-13", "2026-02-28"]).output.strip() == "6"
    assert "provisional" in runner.invoke(cli, ["workdays", "add", "2026-12-30", "5"]).output
    monkeypatch.setenv("DATABASE_URL", own_engine.url.render_as_string(hide_password=False))
    first = runner.invoke(cli, ["sweep", "--today", "2027-01-29"])
    assert first.exit_code == 0, first.output
    second = runner.invoke(cli, ["sweep", "--today", "2027-01-29"])
    assert second.output.strip() == "deemed_accepted=0 deemed_approved=0 warnings=0"
    status = runner.invoke(cli, ["calendar", "status"])
    assert "library chinese_calendar: 2004-2026" in status.output
