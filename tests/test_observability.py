"""What an operator sees (CONTRACT §2, §8): an `X-Request-ID` on every answer, `/metrics`
adding up every gunicorn worker with the backlog read from the database, and a whole story's
log lines from gunicorn, the worker and beat, each JSON, none holding personal data."""

import json
import re
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from tests.helpers import inquiry_body, wait_until

REQUEST_ID = "X-Request-ID"
NEW_ID = re.compile(r"[0-9a-f]{32}")


# --- X-Request-ID ------------------------------------------------------------------------

@pytest.fixture
def one_of_each_kind(app, client, demo):
    """A function answering one request of each kind of route, with the headers given."""
    from leads.accounts.operations import issue_clinic_key
    from leads.catalogue.models import Clinic
    from leads.core.database import db

    with app.app_context():
        _, clinic_key = issue_clinic_key(db.session.scalars(db.select(Clinic)).first())
        db.session.commit()

    def answers(headers: dict, address: str) -> dict:
        def call(method, path, bearer=None, **kwargs):
            extra = {"Authorization": f"Bearer {bearer}"} if bearer else {}
            return client.open(path, method=method, headers={**headers, **extra},
                               environ_base={"REMOTE_ADDR": address}, **kwargs)

        kinds = {
            "patient list": call("GET", "/api/v1/treatments"),
            "patient write": call("POST", "/api/v1/inquiries", json=inquiry_body()),
            "patient status, wrong token": call("GET", "/api/v1/inquiries/MT-X?token=nope"),
            "staff": call("GET", "/api/v1/leads", demo),
            "clinic": call("GET", "/api/v1/clinic/referrals", clinic_key),
            "health": call("GET", "/healthz"),
            "readiness": call("GET", "/readyz"),
            "metrics": call("GET", "/metrics"),
            "document": call("GET", "/api/openapi.json"),
            "docs page": call("GET", "/api/docs"),
            "static file": call("GET", "/static/api-docs.js"),
            "unknown URL": call("GET", "/no/such/page"),
            "no credentials": call("GET", "/api/v1/leads"),
            "invalid": call("POST", "/api/v1/inquiries", json={}),
            "wrong method": call("DELETE", "/api/v1/treatments"),
            "too large": call("POST", "/api/v1/inquiries", data=b"{" * (65 * 1024),
                              content_type="application/json"),
        }
        for _ in range(10):
            call("POST", "/api/v1/inquiries", json={})
        kinds["rate limited"] = call("POST", "/api/v1/inquiries", json=inquiry_body())
        return kinds

    return answers


def test_every_kind_of_answer_echoes_a_fair_request_id(one_of_each_kind):
    offered = "a" * 60 + "-_.9"
    answers = one_of_each_kind({REQUEST_ID: offered}, "10.7.0.1")
    assert [answers[k].status_code for k in (
        "patient write", "patient status, wrong token", "unknown URL", "no credentials",
        "invalid", "wrong method", "too large", "rate limited")] == [
        202, 404, 404, 401, 422, 405, 413, 429]
    for kind, response in answers.items():
        assert response.status_code < 500, kind
        assert response.headers.get_all(REQUEST_ID) == [offered], kind


@pytest.mark.parametrize("offered", [
    "a" * 65, "two words", "slash/in/it", "semi;colon", "", "ünïcode",
])
def test_an_unfit_request_id_is_replaced_by_a_new_one(one_of_each_kind, offered):
    answers = one_of_each_kind({REQUEST_ID: offered}, f"10.7.1.{len(offered)}")
    given = [response.headers.get_all(REQUEST_ID) for response in answers.values()]
    assert all(len(ids) == 1 and NEW_ID.fullmatch(ids[0]) for ids in given), given
    assert len({ids[0] for ids in given}) == len(given)  # a new one for each answer


def test_without_a_request_id_each_answer_gets_its_own(one_of_each_kind):
    answers = one_of_each_kind({}, "10.7.2.1")
    ids = [response.headers[REQUEST_ID] for response in answers.values()]
    assert all(NEW_ID.fullmatch(i) for i in ids) and len(set(ids)) == len(ids)


def test_the_document_names_the_header(client):
    document = client.get("/api/openapi.json").get_json()
    components = document["components"]
    assert components["headers"]["X-Request-ID"]["schema"]["pattern"] == "^[A-Za-z0-9._-]{1,64}$"
    reference = {"$ref": "#/components/headers/X-Request-ID"}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if method == "parameters":  # the path's own, beside its operations
                continue
            assert "X-Request-ID" in {p["name"] for p in operation["parameters"]
                                      if p["in"] == "header"}
            for status, response in operation["responses"].items():
                response = components["responses"][response["$ref"].rsplit("/", 1)[-1]] if (
                    "$ref" in response) else response
                assert response["headers"]["X-Request-ID"] == reference, (method, path, status)


# --- metrics ------------------------------------------------------------------------------

def read_lines(path: Path) -> list[dict]:
    """Every complete line of a log as JSON; a line that is not JSON fails the test."""
    text = path.read_text(encoding="utf-8")
    complete = text[:text.rfind("\n") + 1]
    lines = []
    for line in complete.splitlines():
        if line.strip():
            try:
                lines.append(json.loads(line))
            except ValueError:
                pytest.fail(f"{path.name}: not a JSON line: {line!r}")
    return lines


def scrape(base: str) -> dict:
    """{(metric, labels...): value} of one scrape."""
    answer = requests.get(base + "/metrics", timeout=10)
    assert answer.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples[(sample.name, *sorted(sample.labels.items()))] = sample.value
    return samples


def health_checks_counted(samples: dict) -> float:
    return sum(value for (name, *labels), value in samples.items()
               if name == "http_requests_total" and ("endpoint", "/healthz") in labels)


def test_metrics_count_every_workers_requests_and_read_the_backlog(
        client, db_session, catalogue, gunicorn_server, tmp_path):
    from leads.messaging.models import EmailMessage, OutboxMessage
    from leads.pipeline.models import Lead
    from leads.pipeline.states import LeadStatus, MessageStatus

    for address in ("10.8.0.1", "10.8.0.2", "10.8.0.3"):
        assert client.post("/api/v1/inquiries", json=inquiry_body(),
                           environ_base={"REMOTE_ADDR": address}).status_code == 202
    first, second, _ = db_session.scalars(select(Lead).order_by(Lead.id)).all()
    first.status = LeadStatus.NEEDS_REVIEW
    messages = db_session.scalars(select(EmailMessage).order_by(EmailMessage.id)).all()
    messages[0].status = MessageStatus.FAILED
    messages[1].status = MessageStatus.SENT
    db_session.commit()
    outbox_pending = sum(row.dispatched_at is None for row in db_session.scalars(
        select(OutboxMessage)))
    assert outbox_pending and len(messages) >= 3

    log = tmp_path / "gunicorn.log"
    base = gunicorn_server(workers=2, log_path=log)
    # The fixture's own, as it waited for the server to answer (one or more).
    before = health_checks_counted(scrape(base))
    sent = 0

    def both_workers_answered() -> bool:
        nonlocal sent
        for _ in range(20):
            # A new connection each: gunicorn's sync workers take them in turn, as they come.
            requests.get(base + "/healthz", timeout=10, headers={"Connection": "close"})
            sent += 1
        pids = {line["pid"] for line in read_lines(log)
                if line["logger"] == "gunicorn.access" and line["path"] == "/healthz"}
        return len(pids) == 2

    wait_until(both_workers_answered, timeout=60, interval=0, message="both workers answered")
    for _ in range(2):
        samples = scrape(base)
        assert health_checks_counted(samples) == before + sent
        assert samples[("leads_needs_review",)] == 1
        assert samples[("leads_mail_failed",)] == 1
        assert samples[("leads_mail_pending",)] == len(messages) - 2
        assert samples[("leads_outbox_pending",)] == outbox_pending

    second.status = LeadStatus.NEEDS_REVIEW  # read at scrape time, not kept
    messages[2].status = MessageStatus.FAILED
    db_session.commit()
    samples = scrape(base)
    assert samples[("leads_needs_review",)] == 2 and samples[("leads_mail_failed",)] == 2
    assert samples[("leads_mail_pending",)] == len(messages) - 3


# --- the log story ------------------------------------------------------------------------

PATIENT = {"first_name": "Zebulon", "last_name": "Quixtanova", "phone": "+44 20 7946 0958",
           "country": "GB", "language": "en"}
CONDITION = "Vertebral glimmerosis at L3-L4, diagnosed by a xylographic scan last winter."


def test_no_line_of_a_whole_story_is_anything_but_json_or_holds_personal_data(
        app, db_session, catalogue, smtp_sink, start_worker, gunicorn_server, tmp_path):
    """Intake, routing, the patient's status view and status page with `?token=`, a staff
    search by e-mail and a mail the relay refuses for good, through gunicorn, a worker and
    its beat: every line they write is JSON, names its request or its task, and holds no
    patient's name, e-mail, phone or condition, no status token and no staff token."""
    from leads.accounts.models import User
    from leads.accounts.operations import issue_staff_token
    from leads.core.database import db
    from leads.messaging.models import EmailMessage
    from leads.pipeline.models import Lead
    from leads.pipeline.states import LeadStatus, MessageStatus

    with app.app_context():
        staff_token = issue_staff_token(db.session.scalar(select(User).where(
            User.role == "admin")))
        db.session.commit()
    body = inquiry_body(condition=CONDITION)
    body["patient"] = {**body["patient"], **PATIENT,
                       "email": f"zebulon.quixtanova.{time.time_ns()}@example.org"}
    email = body["patient"]["email"]
    smtp_sink.refuse(email, f"550 5.1.1 <{email}>: Recipient address rejected: User unknown")
    api_log = tmp_path / "api.log"
    base = gunicorn_server(workers=2, log_path=api_log, LOG_LEVEL="DEBUG")
    worker = start_worker(SMTP_PORT=smtp_sink.port)

    accepted = requests.post(base + "/api/v1/inquiries", json=body, timeout=10,
                             headers={REQUEST_ID: "story-intake"})
    assert accepted.status_code == 202
    reference = accepted.json()["reference"]
    status_token = parse_qs(urlsplit(accepted.json()["status_url"]).query)["token"][0]

    def routed_and_mail_settled() -> bool:
        db_session.expire_all()
        lead = db_session.scalar(select(Lead).where(Lead.reference == reference))
        statuses = [m.status for m in db_session.scalars(select(EmailMessage))]
        return (lead.status == LeadStatus.ROUTED and MessageStatus.FAILED in statuses
                and statuses.count(MessageStatus.SENT) == len(statuses) - 1)

    wait_until(routed_and_mail_settled, timeout=60, message="routed, mail sent or failed")
    status = requests.get(f"{base}/api/v1/inquiries/{reference}", timeout=10,
                          params={"token": status_token}, headers={REQUEST_ID: "story-status"})
    assert status.status_code == 200 and status.json()["referrals"]
    page = requests.get(f"{base}/status/{reference}", timeout=10,
                        params={"token": status_token}, headers={REQUEST_ID: "story-page"})
    assert page.status_code == 200 and reference in page.text
    found = requests.get(base + "/api/v1/leads", params={"q": email}, timeout=10,
                         headers={REQUEST_ID: "story-search",
                                  "Authorization": f"Bearer {staff_token}"})
    assert [lead["reference"] for lead in found.json()["items"]] == [reference]

    def lines_of(path, wanted):
        lines = read_lines(path)
        return lines if wanted(lines) else None

    api_lines = wait_until(lambda: lines_of(api_log, lambda lines: "story-search" in {
        line.get("request_id") for line in lines}), timeout=10, message="the search logged")
    # Read while the worker runs: as it stops, Celery says so in plain text on stdout.
    worker_lines = wait_until(lambda: lines_of(worker.log_path, lambda lines: any(
        line["logger"] == "celery.beat" and "Sending due task" in line["message"]
        for line in lines)), timeout=10, message="beat sent a task")

    access = [line for line in api_lines if line["logger"] == "gunicorn.access"]
    assert {"story-intake", "story-status", "story-page", "story-search"} <= {
        line["request_id"] for line in access}
    for line in access:
        assert line["request_id"] and "?" not in line["message"] and "?" not in line["path"]
    for line in api_lines:
        if line["logger"].startswith("leads."):
            assert line.get("request_id"), line

    task_lines = [line for line in worker_lines
                  if line["logger"].split(".")[0] in {"leads", "workers"}
                  or line["logger"] == "celery.app.trace"]
    assert {"process_lead", "send_emails"} <= {line.get("task_name") for line in task_lines}
    for line in task_lines:
        assert line.get("task_id") and line.get("task_name"), line
    [refusal] = [line for line in task_lines if "refused for good" in line["message"]]
    assert refusal["task_name"] == "send_emails" and refusal["level"] == "WARNING"

    secrets = [PATIENT["first_name"], PATIENT["last_name"], email, email.split("@")[0],
               PATIENT["phone"], "+442079460958", "2079460958", "7946 0958", CONDITION,
               "glimmerosis", "xylographic", status_token, staff_token]
    for name, lines in (("gunicorn", api_lines), ("worker and beat", worker_lines)):
        text = "\n".join(json.dumps(line, ensure_ascii=False) for line in lines)
        for secret in secrets:
            assert secret.lower() not in text.lower(), (name, secret)
    raw = api_log.read_text() + worker.log_path.read_text()
    assert all(secret not in raw for secret in secrets)
