"""Log lines (CONTRACT §2): JSON, one per event, naming their request or task, and holding
no personal data or secret, whatever the caller handed the logger."""

import io
import json
import logging

import pytest

from leads.core.logs import (
    MASK,
    Context,
    GunicornAccess,
    Redact,
    bind,
    json_handler,
    redact_text,
    unbind,
)

EMAIL = "zebulon.quix@example.org"
STAFF_TOKEN = "stf_Q2xZ-9kq_l3m4n5o6p7q8r9s0t1u2v3w4x5y6z7A8"
CLINIC_KEY = "clk_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_xyz"
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw+/="
STATUS_TOKEN = "k3J9sd0-QpLm2Xv8_zz41aTqWc7RfGh1"


@pytest.fixture
def logged():
    """A logger of its own writing JSON through the app's handler; returns (logger, lines)."""
    stream = io.StringIO()
    logger = logging.getLogger("tests.logs")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    handler = json_handler(stream)
    logger.addHandler(handler)

    def lines() -> list[dict]:
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    yield logger, lines
    logger.removeHandler(handler)


@pytest.mark.parametrize("text, kept", [
    (f"GET /api/v1/inquiries/MT-1?token={STATUS_TOKEN}&lang=es", "/api/v1/inquiries/MT-1?"),
    (f"Authorization: Bearer {STAFF_TOKEN}", "Authorization:"),
    (f"bearer {STATUS_TOKEN}", ""),
    (f"issued {STAFF_TOKEN} to someone", "issued"),
    (f"clinic key {CLINIC_KEY}", "clinic key"),
    (f"endpoint secret {WEBHOOK_SECRET}", "endpoint secret"),
    (f"550 5.1.1 <{EMAIL}>: Recipient address rejected", "Recipient address rejected"),
    ("to jörg.müller@exämple.de", "to"),
    ("call +1 415 555 0100 or +34612345678", "call"),
    (f"{{'email': '{EMAIL}'}}", "email"),
])
def test_redaction_masks_secrets_and_contact_details(text, kept):
    redacted = redact_text(text)
    assert kept in redacted and MASK in redacted
    for secret in (STATUS_TOKEN, STAFF_TOKEN, CLINIC_KEY, WEBHOOK_SECRET[6:], EMAIL, "zebulon",
                   "jörg", "müller", "415 555 0100", "612345678"):
        assert secret not in redacted, (text, redacted)


@pytest.mark.parametrize("text", [
    "relayed 12 outbox messages",
    "Task send_emails[0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0] succeeded in 0.05s: 3",
    "message 17 (acknowledgement) refused for good: 550 5.1.1 [address]",
    "GET /api/v1/leads 200",
    "Idempotency-Key k-1 seen; request_id=3f2a1b",
])
def test_redaction_leaves_ordinary_lines_alone(text):
    assert redact_text(text) == text


def test_a_line_is_json_with_its_message_arguments_and_extras_scrubbed(logged):
    logger, lines = logged
    logger.warning("status view %s by %s", f"/status/MT-1?token={STATUS_TOKEN}", EMAIL,
                   extra={"first_name": "Zebulon", "phone": "+44 20 7946 0958",
                          "condition": "a rare spine", "lead_id": 7,
                          "data": {"patient": {"last_name": "Quix"}, "note": f"mail {EMAIL}",
                                   "ids": [1, 2]}})
    [line] = lines()
    assert line["level"] == "WARNING" and line["logger"] == "tests.logs"
    assert line["message"] == f"status view /status/MT-1?token={MASK} by {MASK}"
    assert line["first_name"] == line["phone"] == line["condition"] == MASK
    assert line["lead_id"] == 7
    assert line["data"] == {"patient": MASK, "note": f"mail {MASK}", "ids": [1, 2]}
    assert line["time"].endswith("+00:00") and isinstance(line["pid"], int)
    text = json.dumps(line)
    for secret in (STATUS_TOKEN, EMAIL, "Zebulon", "Quix", "7946", "rare spine"):
        assert secret not in text


def test_a_traceback_is_scrubbed_too(logged):
    logger, lines = logged
    try:
        raise ValueError(f"no lead for {EMAIL} with Bearer {STAFF_TOKEN}")
    except ValueError:
        logger.exception("lookup failed")
    [line] = lines()
    assert "ValueError" in line["exc_info"] and "Traceback" in line["exc_info"]
    assert EMAIL not in json.dumps(line) and STAFF_TOKEN not in json.dumps(line)


def test_a_dict_message_is_scrubbed(logged):
    logger, lines = logged
    logger.info({"event": "sent", "recipient": EMAIL, "url": f"/x?token={STATUS_TOKEN}"})
    [line] = lines()
    assert line["event"] == "sent" and line["recipient"] == MASK
    assert line["url"] == f"/x?token={MASK}"


def test_bound_fields_name_every_line_of_their_span_only(logged):
    logger, lines = logged
    token = bind(request_id="req-1")
    logger.info("inside")
    inner = bind(task_id="t-9", task_name="process_lead")
    logger.info("nested")
    unbind(inner)
    logger.info("inside again", extra={"request_id": "its-own"})
    unbind(token)
    logger.info("outside")
    inside, nested, own, outside = lines()
    assert inside["request_id"] == "req-1" and "task_id" not in inside
    assert (nested["request_id"], nested["task_id"], nested["task_name"]) == (
        "req-1", "t-9", "process_lead")
    assert own["request_id"] == "its-own"  # a record's own field is not overwritten
    assert "request_id" not in outside


def test_gunicorn_access_atoms_become_fields_without_the_query_string():
    # The atoms as gunicorn hands them to its access logger (gunicorn.glogging.Logger.atoms).
    atoms = {"m": "GET", "U": "/api/v1/inquiries/MT-1", "q": f"token={STATUS_TOKEN}",
             "r": f"GET /api/v1/inquiries/MT-1?token={STATUS_TOKEN} HTTP/1.1", "s": "200",
             "M": 12, "h": "127.0.0.1", "{x-request-id}o": "abc-1",
             "{authorization}i": f"Bearer {STAFF_TOKEN}"}
    record = logging.LogRecord("gunicorn.access", logging.INFO, __file__, 1,
                               "%(m)s %(U)s %(s)s", (atoms,), None)
    for step in (GunicornAccess(), Context(), Redact()):
        assert step.filter(record)
    line = json.loads(json_handler().formatter.format(record))
    assert line["message"] == "GET /api/v1/inquiries/MT-1 200"
    assert (line["method"], line["path"], line["status"], line["duration_ms"],
            line["request_id"]) == ("GET", "/api/v1/inquiries/MT-1", "200", 12, "abc-1")
    assert STATUS_TOKEN not in json.dumps(line) and STAFF_TOKEN not in json.dumps(line)
