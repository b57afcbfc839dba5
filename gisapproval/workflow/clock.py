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
