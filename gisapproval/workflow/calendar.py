"""The working-day calendar as the platform uses it: the library, then the years entered as
files under layers/calendar, then the admin's overrides in the database (the later wins).

Nothing derived from it is stored: entering a year's schedule changes every deadline that runs
into that year the next time it is read.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..audit import record_event
from ..config import LAYERS_DIR
from ..errors import InputError, PermissionDeniedError
from ..models import CalendarOverride, CalendarYear, User
from ..workdays import Calendar

CALENDAR_DIR = LAYERS_DIR / "calendar"


@dataclass(frozen=True)
class YearSchedule:
    """A year's schedule from the State Council's notice: days off and make-up working days."""

    year: int
    source: str
    holidays: tuple[dt.date, ...]
    workdays: tuple[dt.date, ...]


def parse_schedule(text: str, where: str) -> YearSchedule:
    """Read a year's schedule (TOML: year, source, holidays = [...], workdays = [...])."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"not valid TOML: {exc}", where=where) from None
    year = data.get("year")
    if not isinstance(year, int) or not 1990 <= year <= 2100:
        raise InputError(f"'year' must be a year such as 2027, got {year!r}", where=where)
    source = data.get("source")
    if not isinstance(source, str) or not source.strip():
        raise InputError("'source' must name the notice the schedule comes from", where=where)
    days: dict[str, tuple[dt.date, ...]] = {}
    for key in ("holidays", "workdays"):
        values = data.get(key, [])
        if not isinstance(values, list):
            raise InputError(f"'{key}' must be a list of dates", where=where)
        out = []
        for i, v in enumerate(values):
            day = v if isinstance(v, dt.date) and not isinstance(v, dt.datetime) else None
            if day is None and isinstance(v, str):
                try:
                    day = dt.date.fromisoformat(v)
                except ValueError:
                    day = None
            if day is None:
                raise InputError(f"not a date (YYYY-MM-DD): {v!r}", where=f"{where}: {key}[{i}]")
            if day.year != year:
                raise InputError(f"{day} is not in {year}", where=f"{where}: {key}[{i}]")
            out.append(day)
        days[key] = tuple(sorted(set(out)))
    both = set(days["holidays"]) & set(days["workdays"])
    if both:
        raise InputError(f"listed both as holiday and as working day: {', '.join(map(str, sorted(both)))}",
                         where=where)
    if not days["holidays"]:
        raise InputError("'holidays' is empty: a year's schedule lists its statutory holidays", where=where)
    return YearSchedule(year, source.strip(), days["holidays"], days["workdays"])


def file_schedules(directory: Path | None = None) -> list[YearSchedule]:
    directory = Path(directory or CALENDAR_DIR)
    if not directory.is_dir():
        return []
    return [parse_schedule(p.read_text(encoding="utf-8"), str(p)) for p in sorted(directory.glob("*.toml"))]


def load_calendar(session: Session | None = None, directory: Path | None = None) -> Calendar:
    """The calendar every deadline is computed with: library + layers/calendar files + overrides."""
    overrides: dict[dt.date, bool] = {}
    years: set[int] = set()
    for sched in file_schedules(directory):
        years.add(sched.year)
        overrides.update({d: False for d in sched.holidays})
        overrides.update({d: True for d in sched.workdays})
    if session is not None:
        years.update(session.scalars(sa.select(CalendarYear.year)))
        for row in session.execute(sa.select(CalendarOverride.day, CalendarOverride.is_workday)):
            overrides[row.day] = row.is_workday
    return Calendar(overrides=overrides, override_years=frozenset(years))


def _require_admin(actor: User | None) -> None:
    if actor is not None and "admin" not in actor.role_codes:
        raise PermissionDeniedError("only an administrator may change the working-day calendar")


def set_override(session: Session, actor: User | None, day: dt.date, is_workday: bool, note: str | None) -> None:
    """Declare one day a working day or a day off (the library lacks it or gets it wrong)."""
    _require_admin(actor)
    before = session.get(CalendarOverride, day)
    old = None if before is None else before.is_workday
    if before is None:
        session.add(CalendarOverride(day=day, is_workday=is_workday, note=note,
                                     entered_by_id=actor.id if actor else None))
    else:
        before.is_workday, before.note = is_workday, note
        before.entered_by_id = actor.id if actor else None
    record_event(session, actor, "calendar.day_set", ("calendar_overrides", day.isoformat()),
                 {"day": day.isoformat(), "is_workday": is_workday, "before": old, "note": note})
    session.flush()


def remove_override(session: Session, actor: User | None, day: dt.date) -> None:
    _require_admin(actor)
    row = session.get(CalendarOverride, day)
    if row is None:
        raise InputError(f"no override for {day}", where="day")
    session.delete(row)
    record_event(session, actor, "calendar.day_removed", ("calendar_overrides", day.isoformat()),
                 {"day": day.isoformat(), "was_workday": row.is_workday})
    session.flush()


def enter_year(session: Session, actor: User | None, schedule: YearSchedule) -> dict:
    """Enter a year's whole schedule; its days stop being provisional. Returns counts."""
    _require_admin(actor)
    stmt = sa.delete(CalendarOverride).where(sa.extract("year", CalendarOverride.day) == schedule.year)
    session.execute(stmt)
    who = actor.id if actor else None
    for d in schedule.holidays:
        session.add(CalendarOverride(day=d, is_workday=False, note=schedule.source, entered_by_id=who))
    for d in schedule.workdays:
        session.add(CalendarOverride(day=d, is_workday=True, note=schedule.source, entered_by_id=who))
    row = session.get(CalendarYear, schedule.year)
    if row is None:
        session.add(CalendarYear(year=schedule.year, source=schedule.source, entered_by_id=who))
    else:
        row.source, row.entered_by_id = schedule.source, who
    record_event(session, actor, "calendar.year_entered", ("calendar_years", schedule.year),
                 {"year": schedule.year, "source": schedule.source, "holidays": len(schedule.holidays),
                  "workdays": len(schedule.workdays)})
    session.flush()
    return {"year": schedule.year, "holidays": len(schedule.holidays), "workdays": len(schedule.workdays)}


def calendar_status(session: Session, today: dt.date) -> dict:
    """What the calendar knows: library years, entered years, overrides, and the years ahead it lacks."""
    from ..workdays import library_years

    cal = load_calendar(session)
    first, last = library_years()
    ahead = [y for y in range(today.year, today.year + 3) if not cal.knows_year(y)]
    overrides = session.scalars(sa.select(CalendarOverride).order_by(CalendarOverride.day)).all()
    years = session.scalars(sa.select(CalendarYear).order_by(CalendarYear.year)).all()
    return {"library": "chinese_calendar", "library_first_year": first, "library_last_year": last,
            "file_years": [s.year for s in file_schedules()], "entered_years": [y.year for y in years],
            "entered": years, "overrides": overrides, "unknown_years_ahead": ahead}
