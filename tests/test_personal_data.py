"""Personal data at rest (CONTRACT §4 *People*, §1 `keys rotate`, `DATA_KEYS`,
`BLIND_INDEX_KEY`): the cipher layer, what a dump of the database shows, finding leads by
keyed indexes, key rotation beside the data, and the migration that encrypted what was there."""

import base64
import contextlib
import hashlib
import io
import json
import multiprocessing
import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from sqlalchemy import Text, select, text, type_coerce
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url

from config import Config, key_file, new_data_key
from leads.core.clock import today, utcnow
from leads.privacy.personal import (
    Keyring,
    PersonalJSON,
    UndecryptableValue,
    key_id,
    name_index_digests,
    name_search_digests,
    name_tokens,
    use_keys,
)
from tests.helpers import (
    BLIND_INDEX_KEY,
    DATA_KEY,
    ROOT,
    app_at_revision,
    auth,
    detail,
    inquiry_body,
    listed,
    references,
    route,
    status_token,
    transition,
)

KEY_B = "1rWD53qMHsMIeDiT99gZh-Il6kUqMX1PCoK21Zng4B0="


def keys(*data_keys: str) -> Keyring:
    return Keyring.from_settings(",".join(data_keys), BLIND_INDEX_KEY)


def raw(key: str) -> bytes:
    return base64.urlsafe_b64decode(key)


# --- the cipher layer ----------------------------------------------------------------------

def test_text_bytes_and_json_round_trip_under_the_newest_key():
    ring = keys(KEY_B, DATA_KEY)
    for value in ("Ana Ruiz", "", "Ünïcödé ✓ 日本語", "x" * 5000):
        stored = ring.seal_text(value)
        assert stored.startswith(f"pd1:{ring.newest}:")
        assert not value or value not in stored
        assert ring.open_text(stored) == value
    content = bytes(range(256)) * 10
    assert ring.open(ring.seal(content)) == content
    # The same value twice is two different ciphertexts (a fresh nonce each time).
    assert ring.seal_text("Ana") != ring.seal_text("Ana")
    document = {"body": "Ana's note", "n": [1, 2.5, None], "ok": True}
    with process_keys(DATA_KEY):
        stored = PersonalJSON().process_bind_param(document, None)
        assert "note" not in stored
        assert PersonalJSON().process_result_value(stored, None) == document


def test_each_value_names_its_key_and_every_configured_key_decrypts():
    old, rotated = keys(DATA_KEY), keys(KEY_B, DATA_KEY)
    assert old.newest == key_id(raw(DATA_KEY))
    assert rotated.newest != old.newest and rotated.key_ids == [rotated.newest, old.newest]
    under_old = old.seal_text("Quillonia")
    assert under_old[4:12] == old.newest
    assert rotated.open_text(under_old) == "Quillonia"
    assert rotated.seal_text("Quillonia")[4:12] == rotated.newest


def test_a_value_under_a_key_no_longer_configured_fails_naming_the_key_id():
    under_a = keys(DATA_KEY).seal_text("Quillonia")
    with pytest.raises(UndecryptableValue, match=keys(DATA_KEY).newest) as refused:
        keys(KEY_B).open_text(under_a)
    assert "DATA_KEYS" in str(refused.value)
    with pytest.raises(UndecryptableValue, match=keys(DATA_KEY).newest):
        keys(KEY_B).open(keys(DATA_KEY).seal(b"file"))


def test_tampered_or_plain_values_are_refused():
    ring = keys(DATA_KEY)
    stored = ring.seal_text("Quillonia Zarvexton")
    flipped = stored[:20] + ("A" if stored[20] != "A" else "B") + stored[21:]
    sealed = bytearray(ring.seal(b"%PDF-1.7 scan"))
    sealed[-1] ^= 1
    other_header = stored.replace(ring.newest, "0" * 8, 1)
    for refused, open_ in [(flipped, ring.open_text), (bytes(sealed), ring.open),
                           (stored[:-4], ring.open_text), ("Quillonia", ring.open_text),
                           (b"%PDF-1.7 plain", ring.open), (other_header, ring.open_text)]:
        with pytest.raises(UndecryptableValue):
            open_(refused)
    # A key with the same id as another (the same key twice) is refused at start.
    with pytest.raises(ValueError, match="twice"):
        keys(DATA_KEY, DATA_KEY)


@pytest.mark.parametrize("setting, message", [
    ("not base64 at all!", "DATA_KEYS: key 1 is not URL-safe base64"),
    (f"{DATA_KEY},c2hvcnQ=", "DATA_KEYS: key 2 is 5 bytes; it must be 32"),
    (f"{DATA_KEY},", "DATA_KEYS: key 2 is 0 bytes"),
])
def test_bad_data_keys_stop_the_start_naming_the_setting(app, setting, message):
    from leads.web.app import create_app

    with pytest.raises(ValueError, match=message):
        create_app(DATA_KEYS=setting)


def test_production_needs_every_shared_secret(monkeypatch):
    monkeypatch.setenv("APP_ENV", "production")
    for name in ("SECRET_KEY", "DATA_KEYS", "BLIND_INDEX_KEY"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(RuntimeError, match="SECRET_KEY, DATA_KEYS, BLIND_INDEX_KEY must be set"):
        Config()
    monkeypatch.setenv("SECRET_KEY", "s" * 64)
    monkeypatch.setenv("DATA_KEYS", DATA_KEY)
    with pytest.raises(RuntimeError, match="^BLIND_INDEX_KEY must be set"):
        Config()
    monkeypatch.setenv("BLIND_INDEX_KEY", BLIND_INDEX_KEY)
    assert Config().DATA_KEYS == DATA_KEY


def _make_key_file(path: str, barrier, results) -> None:
    barrier.wait()
    results.put(key_file(Path(path), new_data_key))


def test_a_development_key_file_is_made_once_by_processes_starting_together(tmp_path):
    path = tmp_path / "instance" / "data_keys"
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(8), context.Queue()
    processes = [context.Process(target=_make_key_file, args=(str(path), barrier, results))
                 for _ in range(8)]
    for process in processes:
        process.start()
    seen = {results.get(timeout=30) for _ in processes}
    for process in processes:
        process.join(timeout=30)
    assert len(seen) == 1 and seen == {path.read_text().strip()}
    assert len(raw(seen.pop())) == 32
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["data_keys"]  # no temporary left


def test_name_words_are_folded_and_indexed_by_their_prefixes():
    assert name_tokens("  O'Brien-Núñez  María José ") == ["obrien", "nunez", "maria", "jose"]
    assert name_tokens("Jürgen Łukasz Søren Straße") == ["jurgen", "lukasz", "soren", "strasse"]
    assert name_tokens("A B") == []
    with process_keys(DATA_KEY):
        indexed = name_index_digests("Ana", "Ruiz")
        assert len(indexed) == len(["an", "ana", "ru", "rui", "ruiz"])
        for search in ("ana", "ruiz", "Ana Ruiz", "rui", "RUÍZ ANA"):
            assert name_search_digests(search) <= indexed, search
        for search in ("uiz", "anab", "ruiz ana maria"):
            assert not name_search_digests(search) <= indexed, search
        long_name = "Wolfeschlegelsteinhausenbergerdorff"
        assert name_search_digests(long_name) <= name_index_digests(long_name)


# --- a whole story, and what the database holds of it -------------------------------------

SECRETS = {
    "first_name": "Quillonia", "last_name": "Zarvexton",
    "email": "quillonia.zarvexton@example.org", "phone": "+1 415 555 0142",
    "condition": "Xylophorine degeneration of L4-L5 seen by Dr Plumbercott, pain for years",
    "note": "Nubbletwig called back about the Glarfindel scan",
    "decline": "Frobnicated schedule at Wexmoor this spring",
    "quote": "Snorkelwhistle airport pickup included",
    "transition": "Pangolinade booked by phone",
    "file": "Glimmerquad radiology content",
    "filename": "Plonkfiler-scan.pdf",
}
# The made-up words in them, each of which must not be found on its own either.
WORDS = ["quillonia", "zarvexton", "xylophorine", "plumbercott", "nubbletwig", "glarfindel",
         "frobnicated", "wexmoor", "snorkelwhistle", "pangolinade", "glimmerquad", "plonkfiler",
         "4155550142"]


def pdf(content: str) -> bytes:
    return f"%PDF-1.7\n1 0 obj << /Title ({content}) >> endobj\ntrailer << >>\n%%EOF\n".encode()


def story(app, client, db_session, staff) -> dict:
    """An inquiry with distinctive strings in every personal field, routed; a note, a
    decline reason, a quote with notes, a transition reason and an uploaded file."""
    body = inquiry_body(
        patient={"first_name": SECRETS["first_name"], "last_name": SECRETS["last_name"],
                 "email": SECRETS["email"], "phone": SECRETS["phone"], "country": "US",
                 "language": "es"},
        condition=SECRETS["condition"])
    response = client.post("/api/v1/inquiries", json=body,
                           headers={"Idempotency-Key": "story-1"},
                           environ_base={"REMOTE_ADDR": "10.77.0.1"})
    assert response.status_code == 202, response.get_json()
    accepted = response.get_json()
    lead_id = route(app, db_session, accepted["reference"])
    coordinator, admin = staff["coordinator"], staff["admin"]
    assert client.post(f"/api/v1/leads/{lead_id}/notes", headers=coordinator,
                       json={"body": SECRETS["note"]}).status_code == 201
    referrals = detail(client, coordinator, lead_id)["referrals"]
    clinic_keys = {}
    for referral in referrals:
        key = client.post(f"/api/v1/clinics/{referral['clinic']['id']}/api-keys", headers=admin)
        clinic_keys[referral["id"]] = auth(key.get_json()["key"])
    quoting, declining = referrals[0]["id"], referrals[1]["id"]

    def act(referral_id, action, json_body=None):
        answer = client.post(f"/api/v1/clinic/referrals/{referral_id}/{action}",
                             headers=clinic_keys[referral_id], json=json_body)
        assert answer.status_code == 200, answer.get_json()

    act(declining, "decline", {"reason": SECRETS["decline"]})
    act(quoting, "accept")
    act(quoting, "quote", {"amount": 9500, "currency": "USD", "includes": ["treatment"],
                           "valid_until": (today() + timedelta(days=30)).isoformat(),
                           "notes": SECRETS["quote"]})
    assert transition(client, coordinator, lead_id, "booked",
                      SECRETS["transition"]).status_code == 200
    token = status_token(accepted)
    upload = client.post(f"/api/v1/inquiries/{accepted['reference']}/attachments",
                         query_string={"token": token}, content_type="multipart/form-data",
                         data={"file": (io.BytesIO(pdf(SECRETS["file"])), SECRETS["filename"])})
    assert upload.status_code == 201, upload.get_json()
    return {"lead_id": lead_id, "reference": accepted["reference"], "token": token,
            "body": body, "accepted": accepted, "quoting": quoting, "declining": declining,
            "clinic_keys": clinic_keys, "attachment_id": upload.get_json()["id"]}


def database_bytes(app, database_url: str) -> bytes:
    """What someone who copied the database would hold: a `pg_dump`, or SQLite's files."""
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        return subprocess.run(
            ["pg_dump", "-h", url.host or "127.0.0.1", "-p", str(url.port or 5432),
             "-U", url.username or "postgres", url.database],
            capture_output=True, check=True, env={**os.environ, "PGPASSWORD": url.password or ""},
        ).stdout
    # Read by another process: closing a file this process has open as an SQLite database
    # would drop this process's SQLite locks (POSIX locks are per process, not per handle).
    files = [path for path in (url.database, url.database + "-wal") if Path(path).exists()]
    return subprocess.run(["cat", *files], capture_output=True, check=True).stdout


def test_a_copy_of_the_database_holds_no_personal_data_nor_token(
        app, client, db_session, staff, database_url):
    told = story(app, client, db_session, staff)
    lead = detail(client, staff["coordinator"], told["lead_id"])
    # It is all there for those who may see it ...
    assert (lead["patient"]["first_name"], lead["patient"]["email"], lead["condition"]) == (
        SECRETS["first_name"], SECRETS["email"], SECRETS["condition"])
    timeline = json.dumps(lead["timeline"])
    assert SECRETS["note"] in timeline and SECRETS["decline"] in timeline
    assert SECRETS["transition"] in timeline

    # ... and nowhere in a copy of the database.
    dump = database_bytes(app, database_url).decode("latin-1").lower()
    assert told["reference"].lower() in dump  # it is the database, with the lead in it
    unkeyed = hashlib.sha256(SECRETS["email"].encode()).hexdigest()
    for secret in [*SECRETS.values(), *WORDS, told["token"], unkeyed]:
        assert secret.lower() not in dump, secret

    # The keyed indexes still find the lead, and the duplicate rule still holds.
    coordinator = staff["coordinator"]
    for search in (SECRETS["email"], SECRETS["email"].upper(), "Quillonia", "zarvex",
                   "Quillonia Zarvexton", "zarvexton quill"):
        assert references(listed(client, coordinator, q=search)) == [told["reference"]], search
    assert listed(client, coordinator, q="Quillonia Ruiz") == []
    again = client.post("/api/v1/inquiries", json={**inquiry_body(), "patient": {
        **told["body"]["patient"], "email": "Quillonia.Zarvexton@EXAMPLE.org"}},
        environ_base={"REMOTE_ADDR": "10.77.0.2"})
    assert again.status_code == 202
    second = listed(client, coordinator, q=again.get_json()["reference"])
    assert second[0]["status"] == "duplicate" and second[0]["duplicate_of"] == told["lead_id"]


# --- rotation -----------------------------------------------------------------------------

@contextlib.contextmanager
def process_keys(data_keys: str):
    """This test process's keys for a while (the app under test holds DATA_KEY)."""
    use_keys(data_keys, BLIND_INDEX_KEY)
    try:
        yield
    finally:
        use_keys(DATA_KEY, BLIND_INDEX_KEY)


def every_encrypted_value(app) -> dict:
    """Every encrypted value in the database, decrypted, by table, column and row."""
    from leads.core.database import db
    from leads.privacy.rotation import encrypted_columns

    values = {}
    with app.app_context():
        for table, columns in encrypted_columns(db.metadata):
            [pk] = table.primary_key.columns
            for row in db.session.execute(select(pk, *columns)).all():
                for column, value in zip(columns, row[1:], strict=True):
                    values[(table.name, column.name, row[0])] = value
        db.session.remove()
    return values


def rotate_keys(data_keys: str, *args: str, **popen) -> subprocess.Popen:
    """`flask --app wsgi keys rotate` as an operator runs it, with these DATA_KEYS."""
    return subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "keys", "rotate", *args], cwd=ROOT,
        env={**os.environ, "DATA_KEYS": data_keys, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, **popen)


def api_views(base: str, told: dict, coordinator: dict) -> dict:
    def get(path, **kwargs):
        response = requests.get(base + path, timeout=10, **kwargs)
        assert response.status_code == 200, (path, response.text)
        return response.json()

    return {
        "lead": get(f"/api/v1/leads/{told['lead_id']}", headers=coordinator),
        "status": get(f"/api/v1/inquiries/{told['reference']}", params={"token": told["token"]}),
        "referral": get(f"/api/v1/clinic/referrals/{told['quoting']}",
                        headers=told["clinic_keys"][told["quoting"]]),
        "search": get("/api/v1/leads", headers=coordinator, params={"q": SECRETS["email"]}),
    }


def test_rotation_re_encrypts_everything_and_the_old_key_can_go(
        app, client, db_session, staff, gunicorn_server):
    from leads.attachments.models import Attachment
    from leads.core.database import db
    from leads.messaging.models import EmailMessage

    told = story(app, client, db_session, staff)
    before = every_encrypted_value(app)
    assert {table for table, _, _ in before} >= {
        "leads", "notes", "timeline_events", "referrals", "quotes", "email_messages",
        "idempotency_records", "attachments"}
    views = api_views(gunicorn_server(workers=1), told, staff["coordinator"])
    old_id, new_id = keys(DATA_KEY).newest, keys(KEY_B).newest

    # Interrupted: one row per batch, stopped once it has committed some of them.
    interrupted = rotate_keys(f"{KEY_B},{DATA_KEY}", "--batch-size", "1",
                              start_new_session=True)
    lines = [interrupted.stdout.readline(), interrupted.stdout.readline()]
    with contextlib.suppress(ProcessLookupError):  # it may have finished already
        os.killpg(interrupted.pid, signal.SIGKILL)
    interrupted.wait(timeout=30)
    assert lines[0].startswith(f"re-encrypting under key id {new_id}"), lines

    # Run again: it goes on, and a third run finds nothing to do.
    finished = rotate_keys(f"{KEY_B},{DATA_KEY}", "--batch-size", "2")
    output = finished.communicate(timeout=120)[0]
    assert finished.returncode == 0, output
    assert "leads.first_name:" in output and "attachments.content:" in output
    assert output.strip().endswith("under an older key") and " 0 under an older key" in output
    nothing = rotate_keys(f"{KEY_B},{DATA_KEY}")
    output = nothing.communicate(timeout=120)[0]
    assert nothing.returncode == 0 and "0 values re-encrypted; 0 under an older key" in output

    # Key A goes: everything reads back byte for byte, in this process and through the API.
    with process_keys(KEY_B):
        assert every_encrypted_value(app) == before
        with app.app_context():
            attachment = db.session.get(Attachment, told["attachment_id"])
            assert attachment.content == pdf(SECRETS["file"])
            assert attachment.filename == SECRETS["filename"]
            messages = db.session.scalars(select(EmailMessage)).all()
            assert messages and any(told["token"] in m.body_text for m in messages)
            assert any(m.recipient == SECRETS["email"] for m in messages)
            db.session.remove()
    assert api_views(gunicorn_server(workers=1, DATA_KEYS=KEY_B), told,
                     staff["coordinator"]) == views
    with process_keys(KEY_B):  # the idempotent answer, kept encrypted, is the same one
        replay = client.post("/api/v1/inquiries", json=told["body"],
                             headers={"Idempotency-Key": "story-1"},
                             environ_base={"REMOTE_ADDR": "10.77.0.3"})
        assert replay.status_code == 202 and replay.get_json() == told["accepted"]

    # A process that has only key A now fails loudly, naming the key it lacks.
    assert old_id != new_id
    with app.app_context(), pytest.raises(UndecryptableValue, match=new_id):
        db.session.get(Attachment, told["attachment_id"])


def test_rotation_never_overwrites_a_value_changed_meanwhile(
        app, client, db_session, staff):
    from leads.core.database import db
    from leads.pipeline.models import Lead
    from leads.privacy.rotation import replace_value

    told = story(app, client, db_session, staff)
    leads, ring = Lead.__table__, keys(KEY_B, DATA_KEY)
    column = leads.c.first_name
    stored = type_coerce(column, Text())
    with app.app_context():
        old = db.session.scalar(select(stored).where(leads.c.id == told["lead_id"]))
        # The service writes the name anew after rotation read it ...
        db.session.get(Lead, told["lead_id"]).first_name = "Quilla"
        db.session.commit()
        # ... so writing the re-encrypted old value back is refused, and the change stays.
        assert not replace_value(db.session, leads, column, told["lead_id"], old,
                                 column.type.rewrap(old, ring))
        db.session.commit()
        assert db.session.get(Lead, told["lead_id"]).first_name == "Quilla"
        current = db.session.scalar(select(stored).where(leads.c.id == told["lead_id"]))
        assert replace_value(db.session, leads, column, told["lead_id"], current,
                             column.type.rewrap(current, ring))
        db.session.commit()
        db.session.remove()
    with process_keys(f"{KEY_B},{DATA_KEY}"):
        assert detail(client, staff["coordinator"], told["lead_id"])["patient"][
            "first_name"] == "Quilla"


# --- the migration that encrypted what was there ------------------------------------------

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
AT_0002 = {  # the tables as revision 0002 left them, with the columns this test fills
    "users": ["email", "role", "active", "created_at"],
    "treatments": ["slug", "name", "specialty", "active", "created_at"],
    "currency_rates": ["currency", "usd_per_unit", "updated_at"],
    "clinics": ["name", "city", "country", "email", ("languages", JSON), "active",
                "monthly_referral_cap", "created_at", "updated_at"],
    "leads": ["reference", "status", "priority", ("tags", JSON), "treatment_id", "first_name",
              "last_name", "email", "phone", "condition", "email_key", "country",
              "consent_data_processing", "consent_share_with_clinics", "consent_marketing",
              ("source", JSON), "status_token_hash", "created_at", "updated_at"],
    "referrals": ["lead_id", "clinic_id", "status", "score", ("reasons", JSON), "created_at",
                  "updated_at", "decline_reason"],
    "quotes": ["referral_id", "amount", "currency", ("includes", JSON), "notes", "created_at"],
    "notes": ["lead_id", "author_id", "body", "created_at"],
    "timeline_events": ["lead_id", "at", "actor", "kind", ("data", JSON)],
    "email_messages": ["dedupe_key", "kind", "lead_id", "recipient", "subject", "status",
                       "attempts", "created_at", "body_text", "body_html", "last_error"],
    "idempotency_records": ["key", "request_hash", "status_code", ("response", JSON),
                            "created_at"],
    "attachments": ["lead_id", "filename", "content_type", "size", "sha256",
                    ("content", sa.LargeBinary()), "created_at"],
}


def table_at_0002(name: str) -> sa.TableClause:
    return sa.table(name, *(sa.column(*c) if isinstance(c, tuple) else sa.column(c)
                            for c in AT_0002[name]))


def plain_story(body: dict, token: str, response: dict) -> list[tuple[str, dict]]:
    """Rows of a lead as the service kept them before revision 0003: in plain text."""
    now = utcnow()
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return [
        ("users", {"email": "coord@care.example", "role": "coordinator", "active": True,
                   "created_at": now}),
        ("treatments", {"slug": "stem-cell-spine-arthritis", "name": "Stem cells for the spine",
                        "specialty": "regenerative-medicine", "active": True, "created_at": now}),
        ("currency_rates", {"currency": "USD", "usd_per_unit": 1, "updated_at": now}),
        ("clinics", {"name": "fit0", "city": "Tijuana", "country": "MX",
                     "email": "fit0@clinic.example", "languages": ["es"], "active": True,
                     "monthly_referral_cap": 50, "created_at": now, "updated_at": now}),
        ("leads", {"reference": "MT-OLD0001", "status": "routed", "priority": "normal",
                   "tags": [], "treatment_id": 1, "first_name": SECRETS["first_name"],
                   "last_name": SECRETS["last_name"], "email": SECRETS["email"],
                   "phone": "+14155550142", "condition": SECRETS["condition"],
                   "email_key": hashlib.sha256(SECRETS["email"].encode()).hexdigest(),
                   "country": "US", "consent_data_processing": True,
                   "consent_share_with_clinics": True, "consent_marketing": False,
                   "source": {}, "status_token_hash": hashlib.sha256(token.encode()).hexdigest(),
                   "created_at": now - timedelta(days=1), "updated_at": now}),
        ("referrals", {"lead_id": 1, "clinic_id": 1, "status": "declined", "score": 0.9,
                       "reasons": [], "created_at": now, "updated_at": now,
                       "decline_reason": SECRETS["decline"]}),
        ("quotes", {"referral_id": 1, "amount": 9500, "currency": "USD", "includes": [],
                    "notes": SECRETS["quote"], "created_at": now}),
        ("notes", {"lead_id": 1, "author_id": 1, "body": SECRETS["note"], "created_at": now}),
        ("timeline_events", {"lead_id": 1, "at": now, "actor": "user:1", "kind": "note_added",
                             "data": {"note_id": 1, "body": SECRETS["note"]}}),
        ("email_messages", {"dedupe_key": "acknowledgement:1", "kind": "acknowledgement",
                            "lead_id": 1, "recipient": SECRETS["email"],
                            "subject": "We received your inquiry MT-OLD0001", "status": "sent",
                            "attempts": 1, "created_at": now,
                            "body_text": f"Hello Quillonia, ?token={token}",
                            "body_html": f"<p>Hello Quillonia, ?token={token}</p>",
                            "last_error": f"550 {SECRETS['email']} unknown"}),
        ("idempotency_records", {"key": "old-1", "status_code": 202, "response": response,
                                 "request_hash": hashlib.sha256(canonical.encode()).hexdigest(),
                                 "created_at": now}),
        ("attachments", {"lead_id": 1, "filename": SECRETS["filename"],
                         "content_type": "application/pdf", "size": len(pdf(SECRETS["file"])),
                         "sha256": hashlib.sha256(pdf(SECRETS["file"])).hexdigest(),
                         "content": pdf(SECRETS["file"]), "created_at": now}),
    ]


PERSONAL_AT_0002 = {"leads": ["first_name", "last_name", "email", "phone", "condition"],
                    "referrals": ["decline_reason"], "quotes": ["notes"], "notes": ["body"],
                    "timeline_events": ["data"], "idempotency_records": ["response"],
                    "email_messages": ["recipient", "body_text", "body_html", "last_error"],
                    "attachments": ["filename", "content"]}


def stored_values(connection) -> list:
    return [value for table, columns in PERSONAL_AT_0002.items()
            for row in connection.execute(text(f"SELECT {', '.join(columns)} FROM {table}"))
            for value in row]


@pytest.fixture
def old_database(app, tmp_path_factory):
    """A database of its own, migrated to revision 0002, and an app on it."""
    with app_at_revision(tmp_path_factory, "0002") as old:
        yield old


def test_the_migration_encrypts_what_was_kept_in_plain_text(old_database):
    from flask_migrate import downgrade, upgrade

    from leads.accounts.models import User
    from leads.accounts.operations import issue_staff_token
    from leads.attachments.models import Attachment
    from leads.core.database import db
    from leads.messaging.models import EmailMessage
    from leads.privacy.personal import keyed_fingerprint

    migrations = str(ROOT / "migrations")
    token = "old-status-token-0123456789abcdef"
    body = inquiry_body(patient={"first_name": SECRETS["first_name"],
                                 "last_name": SECRETS["last_name"], "email": SECRETS["email"],
                                 "country": "US"}, condition=SECRETS["condition"])
    answer = {"reference": "MT-OLD0001", "status": "received",
              "status_url": f"http://testserver/api/v1/inquiries/MT-OLD0001?token={token}"}
    with old_database.app_context():
        with db.engine.begin() as connection:
            for name, row in plain_story(body, token, answer):
                connection.execute(table_at_0002(name).insert().values(row))
        upgrade(directory=migrations)
        with db.engine.connect() as connection:
            stored = stored_values(connection)
        assert stored and all(value[:4] in ("pd1:", b"pd1:") for value in stored)
        everything = "".join(map(str, stored)).lower()
        for secret in [*WORDS, token]:
            assert secret.lower() not in everything, secret
        staff_token = issue_staff_token(db.session.scalar(select(User)))
        db.session.commit()
        attachment = db.session.scalar(select(Attachment))
        assert attachment.content == pdf(SECRETS["file"])
        assert attachment.sha256 == keyed_fingerprint("attachment", pdf(SECRETS["file"]))
        [message] = db.session.scalars(select(EmailMessage)).all()
        assert token in message.body_text and SECRETS["email"] in message.last_error
        db.session.remove()

    client, coordinator = old_database.test_client(), auth(staff_token)
    for search in (SECRETS["email"], "quillonia", "Zarvexton Quill"):
        assert references(listed(client, coordinator, q=search)) == ["MT-OLD0001"], search
    lead = detail(client, coordinator, 1)
    assert lead["patient"]["phone"] == "+14155550142" and lead["condition"] == SECRETS["condition"]
    assert lead["timeline"][0]["data"] == {"note_id": 1, "body": SECRETS["note"]}
    assert client.get("/api/v1/inquiries/MT-OLD0001", query_string={"token": token}
                      ).status_code == 200
    replay = client.post("/api/v1/inquiries", json=body, headers={"Idempotency-Key": "old-1"},
                         environ_base={"REMOTE_ADDR": "10.78.0.1"})
    assert replay.status_code == 202 and replay.get_json() == answer
    again = client.post("/api/v1/inquiries", json=body, environ_base={"REMOTE_ADDR": "10.78.0.2"})
    assert again.status_code == 202
    [duplicate] = listed(client, coordinator, q=again.get_json()["reference"])
    assert duplicate["status"] == "duplicate" and duplicate["duplicate_of"] == 1

    # Down again: the values are plain text as before; and up once more.
    with old_database.app_context():
        downgrade(directory=migrations, revision="0002")
        with db.engine.connect() as connection:
            stored = stored_values(connection)
            first = connection.execute(text("SELECT first_name, email_key FROM leads "
                                            "WHERE id = 1")).one()
        assert first == (SECRETS["first_name"],
                         hashlib.sha256(SECRETS["email"].encode()).hexdigest())
        assert pdf(SECRETS["file"]) in [bytes(v) for v in stored
                                        if isinstance(v, bytes | memoryview)]
        upgrade(directory=migrations)
        assert db.session.get(Attachment, 1).filename == SECRETS["filename"]
        db.session.remove()
