"""The transactional outbox: work is written beside the change that needs it, then relayed
to the broker. Delivery is at least once; every task is idempotent, so once in effect."""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import insert, select

from leads.core.clock import utcnow
from leads.core.database import db
from leads.messaging.models import OutboxMessage

_OUTBOX_INSERT = insert(OutboxMessage.__table__)


def enqueue(task: str, **payload) -> None:
    """Write a task in the caller's transaction."""
    enqueue_all([(task, payload)])


def enqueue_all(jobs: Iterable[tuple[str, dict]]) -> None:
    """Write (task, payload) rows in the caller's transaction, in one Core statement: no
    unit of work to flush for rows nothing reads back."""
    rows = [{"task": task, "payload": payload} for task, payload in jobs]
    if rows:
        db.session.execute(_OUTBOX_INSERT, rows)


@dataclass(frozen=True)
class Merge:
    """Rows of one task whose payload is a single list under `key` are published up to
    `size` at a time as one task, their lists joined: one task for a burst's e-mails rather
    than one each."""

    key: str
    size: int


def relay(publish: Callable[[str, dict], None], merges: Mapping[str, Merge] | None = None,
          batch: int = 500) -> int:
    """Publish pending rows and mark them dispatched; returns how many rows.

    Rows are claimed with FOR UPDATE SKIP LOCKED (PostgreSQL), so several relays never
    publish the same row at once. A publish that fails leaves its rows for the next run.
    """
    rows = db.session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.dispatched_at.is_(None), OutboxMessage.available_at <= utcnow())
        .order_by(OutboxMessage.id)
        .limit(batch)
        .with_for_update(skip_locked=True)
    ).all()
    done = 0
    try:
        for task, payload, group in _publications(rows, merges or {}):
            for row in group:
                row.attempts += 1
            publish(task, payload)
            for row in group:
                row.dispatched_at = utcnow()
            done += len(group)
    finally:
        db.session.commit()
    return done


def _publications(rows: list[OutboxMessage], merges: Mapping[str, Merge]):
    """(task, payload, rows) to publish, in the order of each one's first row."""
    publications, filling = [], {}
    for row in rows:
        merge = merges.get(row.task)
        if merge is None:
            publications.append((row.task, row.payload, [row]))
            continue
        current = filling.get(row.task)
        if current is None or len(current[1][merge.key]) >= merge.size:
            current = filling[row.task] = (row.task, {merge.key: []}, [])
            publications.append(current)
        current[1][merge.key].extend(row.payload[merge.key])
        current[2].append(row)
    return publications
