"""Deadlines derived from immutable clock events over the working-day calendar.

A period starts the day after the event that starts it (acceptance, resubmission) and ends
on the N-th working day after. When the clock stops, the stop's own day counts as used, and
the remaining days run again from the day after the resume. Extensions add working days.
Nothing here is stored: days left and warning colour are computed when asked.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from ..workdays import Calendar


@dataclass(frozen=True)
class ClockFact:
    kind: str  # stop, resume, extension
    on: dt.date
    days: int | None = None


@dataclass(frozen=True)
class Deadline:
    due_on: dt.date | None  # None while the clock is stopped
    is_stopped: bool
    days_remaining_at_stop: int | None
    is_provisional: bool

    def days_left(self, calendar: Calendar, today: dt.date) -> int | None:
        """Working days from today to the deadline; negative when overdue."""
        if self.due_on is None:
            return self.days_remaining_at_stop
        return calendar.between(today, self.due_on)[0]

    def colour(self, calendar: Calendar, today: dt.date, warning_days: int) -> str:
        """'green', 'yellow' (at most ``warning_days`` left), 'red' (overdue) or 'stopped'."""
        if self.is_stopped:
            return "stopped"
        left = self.days_left(calendar, today)
        if left < 0:
            return "red"
        return "yellow" if left <= warning_days else "green"


def compute_deadline(calendar: Calendar, start_on: dt.date, limit_days: int, facts: Iterable[ClockFact]) -> Deadline:
    anchor, remaining, stopped, provisional = start_on, limit_days, False, False
    for fact in sorted(facts, key=lambda f: (f.on, {"stop": 0, "resume": 1, "extension": 2}.get(f.kind, 3))):
        if fact.kind == "extension":
            remaining += fact.days or 0
        elif fact.kind == "stop" and not stopped:
            used, prov = calendar.between(anchor, fact.on)
            provisional |= prov
            remaining -= max(used, 0)
            stopped = True
        elif fact.kind == "resume" and stopped:
            anchor, stopped = fact.on, False
    if stopped:
        return Deadline(None, True, remaining, provisional)
    result = calendar.add(anchor, max(remaining, 0))
    return Deadline(result.day, False, None, provisional or result.is_provisional)


def working_days_used(calendar: Calendar, start_on: dt.date, facts: Iterable[ClockFact], end_on: dt.date) -> int:
    """Working days on the clock from ``start_on`` to ``end_on``, stopped periods left out
    (the stop's own day counts as used; counting resumes the day after the resume)."""
    anchor, used, stopped = start_on, 0, False
    for fact in sorted(facts, key=lambda f: (f.on, {"stop": 0, "resume": 1}.get(f.kind, 2))):
        if fact.on > end_on:
            break
        if fact.kind == "stop" and not stopped:
            used += max(calendar.between(anchor, fact.on)[0], 0)
            stopped = True
        elif fact.kind == "resume" and stopped:
            anchor, stopped = fact.on, False
    if not stopped:
        used += max(calendar.between(anchor, end_on)[0], 0)
    return used


OPEN_TASK_STATES = ("pending", "in_review", "awaiting_signoff")
DONE_TASK_STATES = ("approved", "approved_with_conditions", "correction_requested", "rejected", "deemed_approved")


@dataclass(frozen=True)
class TaskClock:
    """A review task's clock as of ``today``, derived from its clock events (nothing stored)."""

    start_on: dt.date | None
    committed: Deadline | None
    legal: Deadline | None
    review_step_due_on: dt.date | None
    days_left: int | None
    colour: str  # waiting (not accepted), green, yellow, red, stopped, done
    stop_kind: str | None
    stop_reason: str | None
    stop_on: dt.date | None
    extension_days: int
    extension_reasons: tuple[str, ...]
    unknown_years: tuple[int, ...]
    used_days: int | None
    finished_on: dt.date | None
    is_on_time: bool | None
    is_legal_overdue: bool

    @property
    def is_provisional(self) -> bool:
        return bool(self.unknown_years)

    @property
    def due_on(self) -> dt.date | None:
        return self.committed.due_on if self.committed else None


def task_clock(calendar: Calendar, *, status: str, accepted_on: dt.date | None, committed_days: int,
               legal_days: int, signoff_days: int, events, today: dt.date, warning_days: int) -> TaskClock:
    """``events``: the task's ClockEvent rows (or objects with kind, on, days, reason, stop_kind)."""
    events = sorted(events, key=lambda e: (e.on, getattr(e, "id", 0) or 0))
    facts = [ClockFact(e.kind, e.on, e.days) for e in events if e.kind in ("stop", "resume", "extension")]
    extensions = [e for e in events if e.kind == "extension"]
    if accepted_on is None:
        return TaskClock(None, None, None, None, None, "waiting", None, None, None, 0, (), (), None, None, None,
                         False)
    committed = compute_deadline(calendar, accepted_on, committed_days, facts)
    legal = compute_deadline(calendar, accepted_on, legal_days, facts)
    review_due = None
    if signoff_days and not committed.is_stopped:
        review_due = compute_deadline(calendar, accepted_on, committed_days - signoff_days, facts).due_on
    stop = None
    if committed.is_stopped:
        stop = next(e for e in reversed(events) if e.kind == "stop")
    finished = next((e.on for e in reversed(events) if e.kind in ("decided", "deemed")), None)
    is_done = status not in OPEN_TASK_STATES
    end = finished if (is_done and finished) else today
    used = working_days_used(calendar, accepted_on, facts, end)
    unknown: set[int] = set()
    for d in (committed, legal):
        if d.due_on is not None:
            unknown.update(calendar.unknown_years(accepted_on, max(d.due_on, end)))
        else:
            unknown.update(calendar.unknown_years(accepted_on, end))
    if is_done:
        on_time = None
        if finished and committed.due_on:
            on_time = finished <= committed.due_on
        colour, left = "done", None
        if status == "correction_requested" and committed.is_stopped:
            colour, left = "stopped", None  # waiting for the applicant's corrections
        legal_overdue = bool(finished and legal.due_on and finished > legal.due_on)
    else:
        on_time = None
        left = committed.days_left(calendar, today)
        colour = committed.colour(calendar, today, warning_days)
        legal_overdue = bool(legal.due_on and today > legal.due_on)
    return TaskClock(accepted_on, committed, legal, review_due, left, colour,
                     stop.stop_kind if stop else None, stop.reason if stop else None, stop.on if stop else None,
                     sum(e.days or 0 for e in extensions), tuple(e.reason or "" for e in extensions),
                     tuple(sorted(unknown)), used, finished if is_done else None, on_time, legal_overdue)
