"""Working days of the PRC: the one module every deadline is computed with.

Statutory holidays and make-up working days (调休) come from the ``chinese_calendar``
library, with overrides (days the library lacks or gets wrong) given by the caller. A year
neither knows is computed provisionally on weekends alone, and results say so.
Conventions (Administrative Licensing Law art. 82): a period starts the day after the event
that starts it; the deadline is the N-th working day after.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

import chinese_calendar


@dataclass(frozen=True)
class WorkdayResult:
    day: dt.date
    is_provisional: bool  # some day on the way lies in a year the calendar does not know


@dataclass
class Calendar:
    overrides: Mapping[dt.date, bool] = field(default_factory=dict)  # date -> is a working day
    override_years: frozenset[int] = frozenset()  # years whose whole schedule was entered

    def knows_year(self, year: int) -> bool:
        return year in self.override_years or _library_knows(year)

    def unknown_years(self, a: dt.date, b: dt.date) -> list[int]:
        """The years from a to b (either order) that the calendar does not know."""
        lo, hi = sorted((a.year, b.year))
        return [y for y in range(lo, hi + 1) if not self.knows_year(y)]

    def knows(self, day: dt.date) -> bool:
        if day in self.overrides or day.year in self.override_years:
            return True
        return _library_knows(day.year)

    def is_workday(self, day: dt.date) -> tuple[bool, bool]:
        """(is a working day, is provisional)."""
        if day in self.overrides:
            return self.overrides[day], False
        if day.year in self.override_years:
            return day.weekday() < 5, False
        if _library_knows(day.year):
            return chinese_calendar.is_workday(day), False
        return day.weekday() < 5, True

    def add(self, start: dt.date, n: int) -> WorkdayResult:
        """The n-th working day after ``start`` (n >= 0; n == 0 gives ``start``)."""
        if n < 0:
            raise ValueError("n must be >= 0")
        day, left, provisional = start, n, False
        while left > 0:
            day += dt.timedelta(days=1)
            ok, prov = self.is_workday(day)
            provisional |= prov
            if ok:
                left -= 1
        return WorkdayResult(day, provisional)

    def between(self, a: dt.date, b: dt.date) -> tuple[int, bool]:
        """Working days in (a, b]; negative when b < a. Returns (count, is_provisional)."""
        sign = 1
        if b < a:
            a, b, sign = b, a, -1
        count, provisional, day = 0, False, a
        while day < b:
            day += dt.timedelta(days=1)
            ok, prov = self.is_workday(day)
            provisional |= prov
            count += ok
        return sign * count, provisional


_KNOWN: dict[int, bool] = {}


def _library_knows(year: int) -> bool:
    if year not in _KNOWN:
        try:
            chinese_calendar.is_workday(dt.date(year, 6, 1))
            _KNOWN[year] = True
        except NotImplementedError:
            _KNOWN[year] = False
    return _KNOWN[year]


def library_years() -> tuple[int, int]:
    """The first and last year the ``chinese_calendar`` library knows."""
    years = [y for y in range(1990, dt.date.today().year + 10) if _library_knows(y)]
    return years[0], years[-1]
