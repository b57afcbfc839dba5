"""The audit log is append-only, and the database itself enforces it."""

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from gisapproval.audit import record_event
from gisapproval.models import Event, User


def _one_event(session):
    user = session.scalar(sa.select(User).where(User.username == "clerk"))
    event = record_event(session, user, "test.recorded", ("tests", "1"), {"n": 1})
    session.flush()
    return event


def test_recording_an_event_keeps_actor_and_payload(session):
    event = _one_event(session)
    row = session.get(Event, event.id)
    assert row.type == "test.recorded" and row.payload == {"n": 1} and row.is_automated is False
    assert row.actor_id is not None and row.occurred_at is not None


def test_an_event_without_actor_is_marked_automated(session):
    event = record_event(session, None, "test.swept", ("tests", "2"))
    session.flush()
    assert session.get(Event, event.id).is_automated is True


@pytest.mark.parametrize("statement", [
    "UPDATE events SET type = 'tampered' WHERE id = :id",
    "DELETE FROM events WHERE id = :id",
    "TRUNCATE events CASCADE",
])
def test_the_database_refuses_changes_to_the_audit_log(session, statement):
    event = _one_event(session)
    # run the event's deferred trigger (map revision, migration 0008) now: with it pending,
    # PostgreSQL refuses TRUNCATE for that reason before the append-only trigger is asked
    session.execute(sa.text("SET CONSTRAINTS ALL IMMEDIATE"))
    with pytest.raises(DBAPIError, match="append-only"):
        with session.begin_nested():
            session.execute(sa.text(statement), {"id": event.id})
    assert session.get(Event, event.id).type == "test.recorded"
