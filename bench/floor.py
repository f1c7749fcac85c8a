"""The floor for intake: a minimal Flask view that parses the same JSON and makes the same
inserts as an accepted inquiry (lead, destinations, the name index, timeline event, outbox
rows, the acknowledgement record) with raw psycopg, no validation and no ORM, and the same
cryptography as the app: the body's keyed fingerprint, each personal value sealed with
AES-GCM and the e-mail's and name words' HMAC digests, by leads/privacy/personal.py itself.

Served by gunicorn as `bench.floor:app`, with FLOOR_DSN naming the database and DATA_KEYS and
BLIND_INDEX_KEY the app's keys."""

import json
import os
import secrets
from datetime import UTC, datetime

import psycopg
from flask import Flask, request

from leads.intake.idempotency import fingerprint
from leads.privacy.personal import email_lookup_key, name_index_digests, use_keys

app = Flask(__name__)
KEYS = use_keys(os.environ["DATA_KEYS"], os.environ["BLIND_INDEX_KEY"])
TREATMENT_ID = None
_connection = None


def connection() -> psycopg.Connection:
    """One connection per gunicorn worker, kept open, as the app's pool keeps one."""
    global _connection
    if _connection is None or _connection.closed:
        _connection = psycopg.connect(os.environ["FLOOR_DSN"])
    return _connection


def sealed(value: str | None) -> str | None:
    return None if value is None else KEYS.seal_text(value)


@app.post("/api/v1/inquiries")
def inquiry():
    global TREATMENT_ID
    body = json.loads(request.get_data())
    fingerprint(body)  # the app keys every body, for its Idempotency-Key check
    patient = body["patient"]
    now = datetime.now(UTC)
    reference = "MT-" + secrets.token_hex(6).upper()
    conn = connection()
    with conn.transaction(), conn.cursor() as cur:
        if TREATMENT_ID is None:
            cur.execute("SELECT id FROM treatments WHERE slug = %s", (body["treatment"],))
            TREATMENT_ID = cur.fetchone()[0]
        cur.execute(
            """INSERT INTO leads (reference, status, priority, tags, treatment_id, first_name,
            last_name, email, email_key, phone, country, language, condition,
            consent_data_processing, consent_share_with_clinics, consent_marketing, source,
            status_token_hash, created_at, updated_at)
            VALUES (%s, 'received', 'normal', '[]', %s, %s, %s, %s, %s, %s, %s, %s, %s,
            true, true, false, %s, %s, %s, %s) RETURNING id""",
            (reference, TREATMENT_ID, sealed(patient["first_name"]), sealed(patient["last_name"]),
             sealed(patient["email"]), email_lookup_key(patient["email"]),
             sealed(patient.get("phone")), patient["country"], patient.get("language"),
             sealed(body["condition"]), json.dumps(body.get("source") or {}),
             secrets.token_hex(32), now, now))
        lead_id = cur.fetchone()[0]
        cur.executemany(
            "INSERT INTO lead_destinations (lead_id, country, position) VALUES (%s, %s, %s)",
            [(lead_id, country, i) for i, country in enumerate(body.get("destinations", []))])
        cur.executemany(
            "INSERT INTO lead_search_terms (digest, lead_id) VALUES (%s, %s)",
            [(digest, lead_id)
             for digest in name_index_digests(patient["first_name"], patient["last_name"])])
        cur.execute(
            "INSERT INTO timeline_events (lead_id, at, actor, kind, data) "
            "VALUES (%s, %s, 'patient', 'received', %s)",
            (lead_id, now, sealed(json.dumps({"reference": reference}))))
        cur.execute(
            "INSERT INTO email_messages (dedupe_key, kind, lead_id, recipient, subject, status,"
            " attempts, created_at, body_text, body_html) VALUES (%s, 'acknowledgement', %s,"
            " %s, 'Your inquiry', 'pending', 0, %s, %s, %s) RETURNING id",
            (f"acknowledgement:{lead_id}", lead_id, sealed(patient["email"]), now,
             sealed("text"), sealed("<p>html</p>")))
        message_id = cur.fetchone()[0]
        cur.executemany(
            "INSERT INTO outbox (task, payload, created_at, available_at, attempts) "
            "VALUES (%s, %s, %s, %s, 0)",
            [("process_lead", json.dumps({"lead_id": lead_id}), now, now),
             ("send_emails", json.dumps({"message_ids": [message_id]}), now, now)])
    return {"reference": reference, "status": "received"}, 202
