"""The review task's guarded state machine, by table; and deadlines that run into a year the
calendar does not know, recomputed when that year's schedule is entered."""

import datetime as dt

import pytest

from gisapproval.errors import ConflictError
from gisapproval.models import ReviewTask
from gisapproval.workflow.review import TRANSITIONS, transition

STATES = ("pending", "in_review", "awaiting_signoff", "approved", "approved_with_conditions",
          "correction_requested", "rejected", "deemed_approved")
EVENTS = ("accept", "approved", "approved_with_conditions", "correction_requested", "rejected", "propose", "deem",
          "return", "resubmit")


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("event", EVENTS)
def test_transition_table(state, event):
    task = ReviewTask(id=1, status=state)
    expected = TRANSITIONS.get((state, event))
    if expected is None:
        with pytest.raises(ConflictError):
            transition(task, event)
        assert task.status == state
    else:
        assert transition(task, event) == expected and task.status == expected


def test_final_states_accept_nothing():
    for state in ("approved", "approved_with_conditions", "rejected", "deemed_approved"):
        assert not [e for (s, e) in TRANSITIONS if s == state]


def test_task_deadline_into_2027_is_provisional_until_the_year_is_entered(wf):
    from gisapproval.workflow import intake
    from gisapproval.workflow.calendar import enter_year, parse_schedule
    from gisapproval.workflow.views import task_detail

    p = wf.project()
    day = dt.date(2026, 12, 21)
    stage = intake.submit_project(wf.s, wf.user("applicant1"), p.id, today=day)
    intake.accept_stage(wf.s, wf.user("clerk"), stage.id, today=day)
    task = next(t for t in stage.tasks if t.department.code == "planning")
    before = task_detail(wf.s, wf.user("planning_reviewer"), task.id, day)["clock"]
    # 10 working days after Mon Dec 21 on weekends alone: Dec 22-25, 28-31, Jan 1, Jan 4
    assert before["is_provisional"] and before["unknown_years"] == [2027]
    assert before["committed_due_on"] == dt.date(2027, 1, 4)
    enter_year(wf.s, wf.user("admin"), parse_schedule(
        'year = 2027\nsource = "test"\nholidays = ["2027-01-01", "2027-01-04"]\n', "test"))
    after = task_detail(wf.s, wf.user("planning_reviewer"), task.id, day)["clock"]
    assert not after["is_provisional"] and after["committed_due_on"] == dt.date(2027, 1, 6)
