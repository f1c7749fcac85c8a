"""`Idempotency-Key`: a repeat of the same request within 24 hours gets the first answer."""

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete

from leads.core.clock import utcnow
from leads.core.database import db
from leads.core.errors import Invalid
from leads.intake.models import IdempotencyRecord
from leads.privacy.personal import keyed_fingerprint

KEEP_FOR = timedelta(hours=24)
MAX_KEY_LENGTH = 255


class KeyReused(Invalid):
    """The key came back with a different body."""

    def __init__(self):
        super().__init__("Idempotency-Key", "Already used with a different body.")


@dataclass
class StoredAnswer:
    status_code: int
    body: dict


def fingerprint(payload) -> str:
    """Keyed: the body holds the patient's e-mail, which a plain hash would let be guessed.
    (The HMAC is of the body's SHA-256, so migration 0003 could key the hashes it found.)"""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return keyed_fingerprint("idempotency", hashlib.sha256(canonical.encode()).digest())


def stored_answer(key: str, request_hash: str) -> StoredAnswer | None:
    """The first answer for this key, None if there is none (or it is older than 24 h)."""
    record = db.session.get(IdempotencyRecord, key)
    if record is None:
        return None
    if record.created_at < utcnow() - KEEP_FOR:
        db.session.delete(record)
        db.session.flush()
        return None
    if record.request_hash != request_hash:
        raise KeyReused()
    return StoredAnswer(record.status_code, record.response)


def remember_answer(key: str, request_hash: str, status_code: int, body: dict) -> None:
    """Stage the answer in the caller's transaction; a concurrent twin fails on the key."""
    db.session.add(IdempotencyRecord(
        key=key, request_hash=request_hash, status_code=status_code, response=body,
        created_at=utcnow(),
    ))


def forget_expired() -> int:
    result = db.session.execute(
        delete(IdempotencyRecord).where(IdempotencyRecord.created_at < utcnow() - KEEP_FOR)
    )
    return result.rowcount
