"""Working-day arithmetic across 2026's Spring Festival and National Day, make-up days, years
the library does not know, and entering a year's schedule."""

import datetime as dt

import pytest

from gisapproval.errors import InputError, PermissionDeniedError
from gisapproval.workdays import Calendar, library_years
from gisapproval.workflow.calendar import (
    enter_year,
    load_calendar,
    parse_schedule,
    set_override,
)
from gisapproval.workflow.clock import ClockFact, compute_deadline, working_days_used

D = dt.date.fromisoformat

# chinese_calendar 1.11 for 2026: Spring Festival off Feb 15-23, make-up working days Sat Feb 14 and
# Sat Feb 28; National Day off Oct 1-7, make-up working days Sun Sep 20 and Sat Oct 10.
CASES = [
    ("2026-02-13", 1, "2026-02-14"),   # Friday -> the make-up Saturday
    ("2026-02-14", 1, "2026-02-24"),   # the whole festival is skipped
    ("2026-02-12", 3, "2026-02-24"),
    ("2026-02-24", 4, "2026-02-28"),   # Sat Feb 28 is a working day
    ("2026-02-27", 1, "2026-02-28"),
    ("2026-09-18", 1, "2026-09-20"),   # Sunday Sep 20 is a working day
    ("2026-09-30", 1, "2026-10-08"),
    ("2026-09-30", 3, "2026-10-10"),   # Sat Oct 10 is a working day
    ("2026-10-10", 1, "2026-10-12"),
    ("2026-09-29", 20, "2026-11-02"),   # Sep 30, Oct 8, 9, 10, 12-16, 19-23, 26-30, Nov 2
]


@pytest.mark.parametrize("start,n,expected", CASES)
def test_add_across_2026_holidays(start, n, expected):
    result = Calendar().add(D(start), n)
    assert result.day == D(expected) and not result.is_provisional


def test_between_counts_working_days_in_the_half_open_range():
    # (Feb 13, Feb 28]: Feb 14 (make-up), Feb 24, 25, 26, 27, Feb 28 (make-up) = 6
    assert Calendar().between(D("2026-02-13"), D("2026-02-28")) == (6, False)
    assert Calendar().between(D("2026-02-28"), D("2026-02-13")) == (-6, False)
    assert Calendar().between(D("2026-09-30"), D("2026-10-08")) == (1, False)


def test_library_years_and_2027_is_provisional():
    first, last = library_years()
    assert first <= 2004 and last == 2026
    r = Calendar().add(D("2026-12-25"), 10)
    assert r.is_provisional
    assert Calendar().unknown_years(D("2026-12-25"), r.day) == [2027]


def test_stop_day_counts_and_remaining_days_run_after_the_resume():
    cal = Calendar()
    # accepted Mon 2026-11-02, 10 days -> Mon Nov 16 without stops
    assert compute_deadline(cal, D("2026-11-02"), 10, []).due_on == D("2026-11-16")
    # stopped Wed Nov 4 (Nov 3 and Nov 4 used: 2), resumed Mon Nov 9: 8 left from Nov 10 -> Thu Nov 19
    facts = [ClockFact("stop", D("2026-11-04")), ClockFact("resume", D("2026-11-09"))]
    assert compute_deadline(cal, D("2026-11-02"), 10, facts).due_on == D("2026-11-19")
    stopped = compute_deadline(cal, D("2026-11-02"), 10, facts[:1])
    assert stopped.is_stopped and stopped.due_on is None and stopped.days_remaining_at_stop == 8
    # an extension of 10 working days
    ext = facts + [ClockFact("extension", D("2026-11-12"), 10)]
    assert compute_deadline(cal, D("2026-11-02"), 10, ext).due_on == D("2026-12-03")
    assert working_days_used(cal, D("2026-11-02"), facts, D("2026-11-12")) == 2 + 3


def test_stop_across_national_day():
    cal = Calendar()
    # accepted Fri Sep 25, 20 days; stop Tue Sep 29 (Sep 28, 29 used = 2), resume Fri Oct 9
    facts = [ClockFact("stop", D("2026-09-29")), ClockFact("resume", D("2026-10-09"))]
    # 18 left from Oct 10 (Sat, working): Oct 10, 12-16 (6), 19-23 (11), 26-30 (16), Nov 2, 3 -> Nov 3
    assert compute_deadline(cal, D("2026-09-25"), 20, facts).due_on == D("2026-11-03")


SCHEDULE_2027 = """
year = 2027
source = "test schedule (not the State Council's)"
holidays = ["2027-01-01", "2027-01-04", "2027-01-05"]
workdays = ["2027-01-09"]
"""


def test_entering_a_year_recomputes_deadlines(session):
    import sqlalchemy as sa

    from gisapproval.models import User

    admin = session.scalar(sa.select(User).where(User.username == "admin"))
    before = load_calendar(session).add(D("2026-12-30"), 5)
    assert before.is_provisional and before.day == D("2027-01-06")
    enter_year(session, admin, parse_schedule(SCHEDULE_2027, "test"))
    after = load_calendar(session).add(D("2026-12-30"), 5)
    # Dec 31, Jan 6, 7, 8, 9 (Sat, make-up)
    assert after.day == D("2027-01-09") and not after.is_provisional


def test_single_override_and_who_may_set_it(session):
    import sqlalchemy as sa

    from gisapproval.models import User

    admin = session.scalar(sa.select(User).where(User.username == "admin"))
    clerk = session.scalar(sa.select(User).where(User.username == "clerk"))
    with pytest.raises(PermissionDeniedError):
        set_override(session, clerk, D("2026-11-27"), False, "x")
    set_override(session, admin, D("2026-11-27"), False, "local typhoon closure")
    assert load_calendar(session).add(D("2026-11-26"), 1).day == D("2026-11-30")


@pytest.mark.parametrize("text,where", [
    ("year = 2027\nsource='x'\nholidays=['2026-01-01']", "holidays[0]"),
    ("year = 2027\nsource='x'\nholidays=['nope']", "holidays[0]"),
    ("year = 'x'", "test"),
    ("year = 2027\nsource='x'\nholidays=['2027-01-01']\nworkdays=['2027-01-01']", "test"),
])
def test_bad_schedule_names_the_problem(text, where):
    with pytest.raises(InputError) as exc:
        parse_schedule(text, "test")
    assert where in str(exc.value)
