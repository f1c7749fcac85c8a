"""Shared fixtures. The suite runs once per database: SQLite by default, PostgreSQL when
TEST_DATABASE_URL names a server (a fresh database is created on it and dropped after)."""

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import redis
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

TODAY = date.today()
ROOT = Path(__file__).resolve().parent.parent
SERVER_BASE = os.environ.get("TEST_DATABASE_URL", "")
# Redis databases of our own, one per leg, so parallel runs of the legs do not collide.
REDIS_DB = int(os.environ.get("TEST_REDIS_DB", "11"))
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"


def _create_database(tmp_path_factory) -> tuple[str, callable]:
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


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    url, drop = _create_database(tmp_path_factory)
    yield url
    drop()


@pytest.fixture(scope="session")
def test_env(database_url):
    """The environment every process under test (app, server, worker) is given."""
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "SECRET_KEY": "test-secret",
        "PUBLIC_BASE_URL": "http://testserver",
        "LOG_LEVEL": "WARNING",
    }
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    yield env
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def app(test_env):
    from flask_migrate import upgrade

    from leads import create_app

    app = create_app()
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
    return app


@pytest.fixture(autouse=True)
def _clean_state(request):
    """Every test starts with empty tables and an empty Redis database."""
    yield
    if "app" not in request.fixturenames:
        return
    app = request.getfixturevalue("app")
    from leads.extensions import db

    with app.app_context():
        db.session.remove()
        tables = [t.name for t in reversed(db.metadata.sorted_tables)]
        with db.engine.begin() as conn:
            if db.engine.dialect.name == "postgresql":
                conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
            else:
                for table in tables:
                    conn.execute(text(f"DELETE FROM {table}"))
    with contextlib.suppress(redis.RedisError):
        redis.Redis.from_url(REDIS_URL).flushdb()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def db_session(app):
    """A session of the test's own, outside any app context, so requests made by the test
    client get a fresh context (and `g`) each, as they do in production."""
    from sqlalchemy.orm import Session

    from leads.extensions import db

    with app.app_context():
        engine = db.engine
    with Session(engine) as session:
        yield session


@pytest.fixture
def demo(app):
    """The demo catalogue; returns the admin's token."""
    from leads.demo import seed_demo
    from leads.extensions import db

    with app.app_context():
        token = seed_demo()
        db.session.commit()
    return token


def add_clinic(session, treatment, name, country="MX", *, offers=True, active=True,
               verified=True, valid_until=TODAY + timedelta(days=365), cap=50,
               languages=("es", "en")):
    from leads.models import Accreditation, Clinic, ClinicTreatment

    clinic = Clinic(name=name, city="Tijuana", country=country, email=f"{name}@clinic.example",
                    languages=list(languages), active=active, monthly_referral_cap=cap)
    session.add(clinic)
    if offers:
        session.add(ClinicTreatment(clinic=clinic, treatment=treatment, price_min=Decimal(8000),
                                    price_max=Decimal(11000), currency="USD"))
    session.add(Accreditation(clinic=clinic, body="JCI", verified=verified,
                              valid_from=TODAY - timedelta(days=100), valid_until=valid_until))
    return clinic


@pytest.fixture
def catalogue(db_session):
    """A small catalogue of its own: four clinics that fit a lead to MX/PA for
    `stem-cell-spine-arthritis`, and one failing each hard filter."""
    from leads.models import CurrencyRate, Treatment, User

    treatment = Treatment(slug="stem-cell-spine-arthritis", name="Stem cells for the spine",
                          specialty="regenerative-medicine")
    db_session.add(treatment)
    db_session.add(CurrencyRate(currency="USD", usd_per_unit=Decimal(1)))
    db_session.add_all([User(email="admin@care.example", role="admin"),
                        User(email="coord@care.example", role="coordinator"),
                        User(email="gone@care.example", role="coordinator", active=False)])
    eligible = [add_clinic(db_session, treatment, f"fit{i}") for i in range(4)]
    excluded = [
        add_clinic(db_session, treatment, "expired", valid_until=TODAY - timedelta(days=1)),
        add_clinic(db_session, treatment, "unverified", verified=False),
        add_clinic(db_session, treatment, "inactive", active=False),
        add_clinic(db_session, treatment, "turkey", country="TR"),
        add_clinic(db_session, treatment, "other-treatment", offers=False),
        add_clinic(db_session, treatment, "full", cap=0),
    ]
    db_session.commit()
    return {"eligible": {c.id for c in eligible}, "excluded": {c.id for c in excluded}}


def inquiry_body(**changes) -> dict:
    """A valid inquiry with a unique e-mail; `changes` replace top-level keys."""
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
        "travel_window": {"earliest": "2027-02-01", "latest": "2027-04-30"},
        "contact_preference": "email",
        "consent": {"data_processing": True, "share_with_clinics": True, "marketing": False},
        "source": {"utm_source": "google", "utm_campaign": "spine",
                   "landing_page": "/stem-cell-spine"},
        "website": "",
    }
    body.update(changes)
    return body


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


@pytest.fixture
def gunicorn_server(app, test_env):
    """Starts `gunicorn wsgi:app` with several workers; yields a function giving its base URL."""
    started = []

    def start(workers: int = 4, **extra_env) -> str:
        port = free_port()
        env = {**os.environ, **test_env, **extra_env}
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-w", str(workers), "-b", f"127.0.0.1:{port}",
             "wsgi:app"], cwd=ROOT, env=env,
        )
        started.append(process)
        base = f"http://127.0.0.1:{port}"
        wait_for_http(base + "/healthz")
        return base

    yield start
    for process in started:
        process.terminate()
        process.wait(timeout=20)


class SmtpSink:
    """A real SMTP server (aiosmtpd) that keeps what it receives; can be stopped and
    started again on the same port to play a relay that is down."""

    def __init__(self):
        import email
        import threading

        from aiosmtpd.controller import Controller

        self.port = free_port()
        self.messages: list = []
        self.peers: list = []  # the client's (address, port) of each message: its connection
        self._lock = threading.Lock()
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                with sink._lock:
                    sink.messages.append(email.message_from_bytes(envelope.original_content))
                    sink.peers.append(session.peer)
                return "250 OK"

        self._controller_class = Controller
        self._handler = Handler()
        self._controller = None

    def start(self):
        self._controller = self._controller_class(self._handler, hostname="127.0.0.1",
                                                  port=self.port)
        self._controller.start()

    def stop(self):
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def received(self) -> list:
        with self._lock:
            return list(self.messages)


@pytest.fixture
def smtp_sink():
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


def wait_until(condition, timeout: float, interval: float = 0.25, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"{message} did not hold within {timeout}s")


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


@pytest.fixture
def own_redis(tmp_path):
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


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


@pytest.fixture
def start_worker(app, test_env, tmp_path):
    """Starts real worker processes; `start_worker(SMTP_PORT=..., REDIS_URL=...)`."""
    started = []

    def start(**extra_env) -> WorkerProcess:
        env = {**os.environ, **test_env, **{k: str(v) for k, v in extra_env.items()}}
        n = len(started)
        worker = WorkerProcess(env, tmp_path / f"worker{n}.log", tmp_path / f"beat{n}")
        worker.start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
