"""The one place audit events are written. Events are append-only (the database enforces it)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from .models import Event, User


def record_event(
    session: Session,
    actor: User | None,
    type: str,
    subject: Any,
    payload: dict[str, Any] | None = None,
    *,
    project_id: int | None = None,
    occurred_at=None,
) -> Event:
    """Add an audit event in the caller's transaction.

    ``type`` is ``<subject>.<past_verb>`` (``user.logged_in``, ``review_task.decided``).
    ``subject`` is a mapped object (its table and id are recorded) or a ``(type, id)`` pair.
    No actor means the system did it (a sweep, a loader): the event is marked automated.
    """
    if isinstance(subject, tuple):
        subject_type, subject_id = subject
    else:
        subject_type = subject.__tablename__
        subject_id = getattr(subject, "id", None)
    if project_id is None and subject_type == "projects":
        project_id = subject_id
    event = Event(
        actor_id=actor.id if actor is not None else None,
        is_automated=actor is None,
        type=type,
        subject_type=subject_type,
        subject_id=None if subject_id is None else str(subject_id),
        project_id=project_id,
        payload=payload or {},
    )
    if occurred_at is not None:
        event.occurred_at = occurred_at
    session.add(event)
    return event
