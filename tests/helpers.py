"""What the tests share besides fixtures: the settings every process under test is given,
sample inquiries and clinics, assertions on HTTP answers, the calls staff and clinics make, and
the real servers (SMTP, Redis, a celery worker) a test may start. Fixtures (conftest.py) use
these; no test module imports another test module or conftest."""

import contextlib
import itertools
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import redis
import requests
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from leads.core.clock import today
from leads.pipeline.models import Lead
from leads.routing import operations as routing

ROOT = Path(__file__).resolve().parent.parent
SERVER_BASE = os.environ.get("TEST_DATABASE_URL", "")
# Redis databases of our own, one per leg, so parallel runs of the legs do not collide.
REDIS_DB = int(os.environ.get("TEST_REDIS_DB", "11"))
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"
# Explicit keys, so that every process under test (app, gunicorn, worker, CLI) shares them.
DATA_KEY = "P2_vQ1VWG-i6KVruT_uw2UeIhLi0QiuzOWCQ0e6gjaU="
BLIND_INDEX_KEY = "7d__IWmaOpRXFLMZS0PyRnkUzKenACQjqO7FnxSarDs="
PROBLEM = "application/problem+json"
_addresses = itertools.count(1)


def create_database(tmp_path_factory) -> tuple[str, callable]:
    if not SERVER_BASE:
        path = tmp_path_factory.mktemp("db") / "leads.db"
        return f"sqlite:///{path}", lambda: None
    name = f"leads_test_{os.getpid()}_{secrets.token_hex(3)}"
    admin = create_engine(make_url(SERVER_BASE).set(database="postgres"),
                          isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop():
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return str(make_url(SERVER_BASE).set(database=name).render_as_string(hide_password=False)), drop


@contextlib.contextmanager
def app_at_revision(tmp_path_factory, revision: str):
    """An app on a database of its own, migrated up to `revision` only."""
    from flask_migrate import upgrade

    from leads.core.database import db
    from leads.web.app import create_app

    url, drop = create_database(tmp_path_factory)
    old = create_app(SQLALCHEMY_DATABASE_URI=url)
    with old.app_context():
        upgrade(directory=str(ROOT / "migrations"), revision=revision)
    try:
        yield old
    finally:
        with old.app_context():
            db.session.remove()
            db.engine.dispose()
        drop()


# --- samples ---------------------------------------------------------------------------

def inquiry_body(**changes) -> dict:
    """A valid inquiry with a unique e-mail; `changes` replace top-level keys. Its dates are
    relative to the service's today, read when it is called."""
    body = {
        "patient": {
            "first_name": "Ana", "last_name": "Ruiz",
            "email": f"ana.{uuid.uuid4().hex[:10]}@example.org",
            "phone": "+1 415 555 0100", "country": "US", "language": "es", "birth_year": 1961,
        },
        "treatment": "stem-cell-spine-arthritis",
        "condition": "Facet joint arthritis L4-L5 confirmed by X-ray, pain for 3 years.",
        "has_imaging": True,
        "destinations": ["MX", "PA"],
        "budget": {"amount": 12000, "currency": "USD"},
        "travel_window": {"earliest": (today() + timedelta(days=60)).isoformat(),
                          "latest": (today() + timedelta(days=150)).isoformat()},
        "contact_preference": "email",
        "consent": {"data_processing": True, "share_with_clinics": True, "marketing": False},
        "source": {"utm_source": "google", "utm_campaign": "spine",
                   "landing_page": "/stem-cell-spine"},
        "website": "",
    }
    body.update(changes)
    return body


def add_clinic(session, treatment, name, country="MX", *, offers=True, active=True,
               verified=True, valid_for_days=365, cap=50, languages=("es", "en")):
    from leads.catalogue.models import Accreditation, Clinic, ClinicTreatment

    clinic = Clinic(name=name, city="Tijuana", country=country, email=f"{name}@clinic.example",
                    languages=list(languages), active=active, monthly_referral_cap=cap)
    session.add(clinic)
    if offers:
        session.add(ClinicTreatment(clinic=clinic, treatment=treatment, price_min=Decimal(8000),
                                    price_max=Decimal(11000), currency="USD"))
    session.add(Accreditation(clinic=clinic, body="JCI", verified=verified,
                              valid_from=today() - timedelta(days=100),
                              valid_until=today() + timedelta(days=valid_for_days)))
    return clinic


def new_clinic_body(**changes) -> dict:
    body = {"name": "Clínica Nueva", "city": "Panama City", "country": "PA",
            "email": "intake@nueva.example", "phone": "+507 264 0000",
            "website": "https://nueva.example", "languages": ["es", "en"],
            "treatments": [{"slug": "stem-cell-spine-arthritis", "price_min": 9000,
                            "price_max": 12000, "currency": "USD"}]}
    body.update(changes)
    return body


# --- HTTP answers and calls ---------------------------------------------------------------

def problem(response, status: int) -> dict:
    """Asserts an RFC 9457 problem with this status; returns its body."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    assert response.mimetype == PROBLEM, response.mimetype
    body = response.get_json()
    assert body["status"] == status and body["title"] and body["type"]
    return body


def field_errors(response) -> dict:
    body = problem(response, 422)
    assert isinstance(body["errors"], dict) and body["errors"]
    return body["errors"]


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def is_utc_instant(text: str) -> bool:
    moment = datetime.fromisoformat(text)
    return moment.utcoffset() == timedelta(0)


def submit(client, **changes) -> dict:
    """Posts an inquiry from an address of its own (the intake allows 10 a minute per
    address); answers the 202 body."""
    n = next(_addresses)
    address = f"10.9.{n // 250 % 250}.{n % 250 + 1}"
    response = client.post("/api/v1/inquiries", json=inquiry_body(**changes),
                           environ_base={"REMOTE_ADDR": address})
    assert response.status_code == 202, response.get_json()
    return response.get_json()


def status_token(accepted: dict) -> str:
    return parse_qs(urlparse(accepted["status_url"]).query)["token"][0]


def inquiry_path(accepted: dict, action: str = "") -> str:
    """The API's own path to what the patient's link shows (`status_url` leads to the
    status page), or to `action` on it (`withdraw`), with the token."""
    suffix = f"/{action}" if action else ""
    return f"/api/v1/inquiries/{accepted['reference']}{suffix}?token={status_token(accepted)}"


def lead_id_of(db_session, reference: str) -> int:
    return db_session.scalar(select(Lead.id).where(Lead.reference == reference))


def route(app, db_session, reference: str) -> int:
    """What the worker does with a new lead; answers the lead's id."""
    lead_id = lead_id_of(db_session, reference)
    with app.app_context():
        routing.process_lead(lead_id)
    db_session.expire_all()
    return lead_id


def submit_reference(client, **changes) -> str:
    """Posts an inquiry; answers its reference."""
    return submit(client, **changes)["reference"]


def routed_lead(app, db_session, reference: str) -> Lead:
    """What the worker does with a new lead; answers the lead, loaded again."""
    return db_session.get(Lead, route(app, db_session, reference))


def listed(client, headers, **query) -> list[dict]:
    response = client.get("/api/v1/leads", headers=headers, query_string=query)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert set(body) == {"items", "next_cursor"}
    return body["items"]


def references(items) -> list[str]:
    return [item["reference"] for item in items]


def detail(client, headers, lead_id) -> dict:
    response = client.get(f"/api/v1/leads/{lead_id}", headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def events(lead: dict, kind: str) -> list[dict]:
    return [e for e in lead["timeline"] if e["kind"] == kind]


def transition(client, headers, lead_id, to, reason=None):
    body = {"to": to} if reason is None else {"to": to, "reason": reason}
    return client.post(f"/api/v1/leads/{lead_id}/transitions", headers=headers, json=body)


def referred_clinics(lead: dict) -> set[int]:
    return {r["clinic"]["id"] for r in lead["referrals"]}


def clinics_of(routed) -> list[tuple[dict, int]]:
    """(key headers, referral id) for each referred clinic, by clinic id."""
    return [(routed["keys"][c], r) for c, r in sorted(routed["referrals"].items())]


def act(client, headers, referral_id, action, body=None):
    return client.post(f"/api/v1/clinic/referrals/{referral_id}/{action}", headers=headers,
                       json=body)


def cli(app, *args):
    # `flask` pushes an app context for every command; the test runner does not, and
    # `seed-demo` is a plain command, so the context is pushed here as `flask` would.
    with app.app_context():
        return app.test_cli_runner().invoke(args=list(args))


# --- processes and servers ---------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=1).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


def wait_until(condition, timeout: float, interval: float = 0.25, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"{message} did not hold within {timeout}s")


class SmtpSink:
    """A real SMTP server (aiosmtpd) that keeps what it receives; can be stopped and
    started again on the same port to play a relay that is down. It offers SMTPUTF8 only
    when told to (the `make run` sink does not), and refuses the recipients `refuse` names."""

    def __init__(self, smtputf8: bool = False):
        import email
        import threading

        from aiosmtpd.controller import Controller

        self.port = free_port()
        self.smtputf8 = smtputf8
        self.messages: list = []
        self.peers: list = []  # the client's (address, port) of each message: its connection
        self.envelopes: list = []  # the RCPT TO addresses of each message
        self._refusals: dict[str, str] = {}
        self._lock = threading.Lock()
        sink = self

        class Handler:
            async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
                with sink._lock:
                    refusal = sink._refusals.get(address)
                if refusal:
                    return refusal
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, server, session, envelope):
                with sink._lock:
                    sink.messages.append(email.message_from_bytes(envelope.original_content))
                    sink.peers.append(session.peer)
                    sink.envelopes.append(list(envelope.rcpt_tos))
                return "250 OK"

        self._controller_class = Controller
        self._handler = Handler()
        self._controller = None

    def start(self):
        self._controller = self._controller_class(self._handler, hostname="127.0.0.1",
                                                  port=self.port, enable_SMTPUTF8=self.smtputf8)
        self._controller.start()

    def stop(self):
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def received(self) -> list:
        with self._lock:
            return list(self.messages)

    def sent_to(self, address: str) -> list:
        return [m for m in self.received() if m["To"] == address]

    def refuse(self, address: str, reply: str | None) -> None:
        """From now on answer RCPT for `address` with `reply`; None takes it again."""
        with self._lock:
            if reply is None:
                self._refusals.pop(address, None)
            else:
                self._refusals[address] = reply


def mail_text(message) -> str:
    """The plain-text parts of a message the sink received, decoded."""
    return "".join(part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8")
                   for part in message.walk() if part.get_content_type() == "text/plain")


class RedisServer:
    """A redis-server process of the test's own, which it may stop and start."""

    def __init__(self, tmp_path):
        self.port = free_port()
        self.dir = tmp_path
        self.process = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL,
        )
        wait_until(self._answers, 10, message="redis-server start")

    def _answers(self) -> bool:
        try:
            return redis.Redis(port=self.port, socket_connect_timeout=0.2).ping()
        except redis.RedisError:
            return False

    def stop(self):
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


class WorkerProcess:
    """`celery -A workers worker -B`: the real worker, with its beat, as a process."""

    def __init__(self, env: dict, log_path: Path, schedule_path: Path):
        self.env = env
        self.log_path = log_path
        self.schedule_path = schedule_path
        self.process = None

    def start(self):
        self.log = open(self.log_path, "ab")  # noqa: SIM115  (closed in stop())
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "workers", "worker", "-B",
             "-s", str(self.schedule_path), "--concurrency=2", "--loglevel=INFO",
             "--without-gossip", "--without-mingle"],
            cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self):
        """SIGKILL the whole process group: the main process, its pool and its beat."""
        import signal

        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self):
        import signal

        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


def message_to(session, address: str):
    """The one recorded e-mail to `address`. Recipients are encrypted at rest, so they are
    compared once read, not in SQL."""
    from leads.messaging.models import EmailMessage

    session.expire_all()
    (message,) = [m for m in session.scalars(select(EmailMessage)) if m.recipient == address]
    return message


class WebhookReceiver:
    """A clinic's system as the Standard Webhooks description has it receive: a real HTTP
    server on 127.0.0.1 (threaded) that reads each POST's raw body and its `webhook-id`,
    `webhook-timestamp` and `webhook-signature` headers, verifies them with the package's
    `Webhook(secret).verify` under the secret of the path it was posted to, and answers.

    `answer` sets what it answers from then on: a status code (200 by default; 503 to play a
    system that is down, 410 one that is gone), optionally a Location (a redirect) and a
    delay before answering (a slow one). `stop()` and `start()` play one not listening at
    all, on the same port. Every request is kept, verified or not."""

    def __init__(self):
        import threading

        self.port = free_port()
        self.requests: list[dict] = []
        self._secrets: dict[str, list[str]] = {}
        self._answer = {"status": 200, "location": None, "delay": 0.0}
        self._lock = threading.Lock()
        self._server = None
        self._thread = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def expect(self, path: str, *secrets: str) -> None:
        """Verify what is posted to `path` with any of these secrets."""
        with self._lock:
            self._secrets[path] = list(secrets)

    def answer(self, status: int = 200, location: str | None = None, delay: float = 0.0):
        with self._lock:
            self._answer = {"status": status, "location": location, "delay": delay}

    def start(self):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver._keep(self.path, dict(self.headers), body)
                with receiver._lock:
                    answer = dict(receiver._answer)
                time.sleep(answer["delay"])
                try:
                    self.send_response(answer["status"])
                    if answer["location"]:
                        self.send_header("Location", answer["location"])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except (BrokenPipeError, ConnectionResetError):  # the sender gave up
                    pass

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _keep(self, path: str, headers: dict, body: bytes) -> None:
        from standardwebhooks import Webhook, WebhookVerificationError

        with self._lock:
            secrets_here = list(self._secrets.get(path, ()))
        verified, payload = [], None
        for secret in secrets_here:
            try:
                payload = Webhook(secret).verify(body, headers)
            except WebhookVerificationError:
                continue
            verified.append(secret)
        lowered = {name.lower(): value for name, value in headers.items()}
        with self._lock:
            self.requests.append({"path": path, "headers": lowered, "body": body,
                                  "payload": payload, "verified_with": verified,
                                  "status": self._answer["status"]})

    def received(self, path: str | None = None) -> list[dict]:
        with self._lock:
            return [r for r in self.requests if path is None or r["path"] == path]

    def accepted(self, path: str | None = None) -> list[dict]:
        """The requests it answered with a 2xx, each verified."""
        return [r for r in self.received(path) if 200 <= r["status"] < 300]


def send_due_webhooks(app) -> int:
    """What the worker's sweep and send tasks do with due webhook messages, in-process:
    claim them, then send each; answers how many were claimed."""
    from leads.core.database import db
    from leads.webhooks import delivery

    with app.app_context():
        claimed = delivery.claim_due()
        for message_id, claim in claimed:
            delivery.deliver(message_id, claim)
        db.session.remove()
    return len(claimed)


def register_webhook(client, headers, url: str, events=None):
    return client.post("/api/v1/clinic/webhooks", headers=headers, json={
        "url": url, "events": events or ["referral.created", "referral.cancelled",
                                          "referral.expired", "lead.booked"]})


# --- pages ---------------------------------------------------------------------------------

@dataclass
class LiveSite:
    """What the `live_site` fixture answers."""

    url: str
    sink: "SmtpSink"
    worker: "WorkerProcess"


def csrf_token_of(html: str) -> str:
    """The CSRF token of the (first) form on a page."""
    found = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html)
    assert found, f"no CSRF token on the page: {html[:500]}"
    return found.group(1)


def page_sign_in(client, path: str, secret: str, **request):
    """Sign a test client in on a sign-in page (/clinic or /console) the way a browser does:
    the form's CSRF token with the secret. Answers the POST's response; `request` goes to
    both requests (`environ_base=...`, say)."""
    token = csrf_token_of(client.get(path, **request).get_data(as_text=True))
    return client.post(path, data={"csrf_token": token, "secret": secret}, **request)
