"""Shared fixtures. The suite runs once per database: SQLite by default, PostgreSQL when
TEST_DATABASE_URL names a server (a fresh database is created on it and dropped after). The
plain helpers they use, and tests use, are in helpers.py."""

import contextlib
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
import redis
from sqlalchemy import select, text

from tests.helpers import (
    BLIND_INDEX_KEY,
    DATA_KEY,
    REDIS_URL,
    ROOT,
    LiveSite,
    RedisServer,
    SmtpSink,
    WebhookReceiver,
    WorkerProcess,
    add_clinic,
    auth,
    create_database,
    free_port,
    inquiry_body,
    lead_id_of,
    route,
    submit,
    wait_for_http,
)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    url, drop = create_database(tmp_path_factory)
    yield url
    drop()


@pytest.fixture(scope="session")
def test_env(database_url):
    """The environment every process under test (app, server, worker) is given."""
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "SECRET_KEY": "test-secret",
        "DATA_KEYS": DATA_KEY,
        "BLIND_INDEX_KEY": BLIND_INDEX_KEY,
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

    from leads.web.app import create_app

    app = create_app()
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
    return app


@pytest.fixture(autouse=True)
def _settings_of_the_app(request):
    """Domain code reads the settings of the last app made in this process; a test that
    makes an app of its own (create_app(...)) must not leave the next test reading its
    settings, nor miss what it changes in `app.config`."""
    if "app" in request.fixturenames:
        from leads.core.settings import use_settings

        use_settings(request.getfixturevalue("app").config)


@pytest.fixture(autouse=True)
def _clean_state(request):
    """Every test starts with empty tables and an empty Redis database."""
    yield
    if "app" not in request.fixturenames:
        return
    app = request.getfixturevalue("app")
    from leads.core.database import db

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

    from leads.core.database import db

    with app.app_context():
        engine = db.engine
    with Session(engine) as session:
        yield session


@pytest.fixture
def demo(app):
    """The demo catalogue; returns the admin's token."""
    from leads.catalogue.demo import seed_demo
    from leads.core.database import db

    with app.app_context():
        token = seed_demo()
        db.session.commit()
    return token


@pytest.fixture
def catalogue(db_session):
    """A small catalogue of its own: four clinics that fit a lead to MX/PA for
    `stem-cell-spine-arthritis`, and one failing each hard filter."""
    from leads.accounts.models import User
    from leads.catalogue.models import CurrencyRate, Treatment

    treatment = Treatment(slug="stem-cell-spine-arthritis", name="Stem cells for the spine",
                          specialty="regenerative-medicine")
    db_session.add(treatment)
    db_session.add(CurrencyRate(currency="USD", usd_per_unit=Decimal(1)))
    db_session.add_all([User(email="admin@care.example", role="admin"),
                        User(email="coord@care.example", role="coordinator"),
                        User(email="gone@care.example", role="coordinator", active=False)])
    eligible = [add_clinic(db_session, treatment, f"fit{i}") for i in range(4)]
    excluded = [
        add_clinic(db_session, treatment, "expired", valid_for_days=-1),
        add_clinic(db_session, treatment, "unverified", verified=False),
        add_clinic(db_session, treatment, "inactive", active=False),
        add_clinic(db_session, treatment, "turkey", country="TR"),
        add_clinic(db_session, treatment, "other-treatment", offers=False),
        add_clinic(db_session, treatment, "full", cap=0),
    ]
    db_session.commit()
    return {"eligible": {c.id for c in eligible}, "excluded": {c.id for c in excluded}}


@pytest.fixture
def staff(app, catalogue):
    """Tokens for the catalogue's admin and coordinator (and the inactive user)."""
    from leads.accounts.models import User
    from leads.accounts.operations import issue_staff_token
    from leads.core.database import db

    with app.app_context():
        users = {u.email.split("@")[0]: u for u in db.session.scalars(select(User))}
        tokens = {name: issue_staff_token(user) for name, user in users.items()}
        ids = {name: user.id for name, user in users.items()}
        db.session.commit()
    return {
        "admin": auth(tokens["admin"]), "coordinator": auth(tokens["coord"]),
        "inactive": auth(tokens["gone"]),
        "admin_id": ids["admin"], "coordinator_id": ids["coord"],
        "catalogue": catalogue,
    }


@pytest.fixture
def varied_leads(app, client, db_session, staff):
    """Six leads that differ in one filtered property each; answers their references."""
    created = client.post("/api/v1/treatments", headers=staff["admin"], json={
        "slug": "dental-implants", "name": "Dental implants", "specialty": "dentistry"})
    assert created.status_code == 201
    refs = {
        "plain": submit(client)["reference"],
        "routed": submit(client, destinations=["MX"])["reference"],
        "dental": submit(client, treatment="dental-implants", destinations=[])["reference"],
        "german": submit(client, patient={**inquiry_body()["patient"], "country": "DE",
                                          "phone": None, "first_name": "Jürgen",
                                          "last_name": "Baumgartner",
                                          "email": "J.Baum@Example.org"})["reference"],
        "panama": submit(client, destinations=["PA"])["reference"],
        "assigned": submit(client)["reference"],
    }
    route(app, db_session, refs["routed"])
    assigned = lead_id_of(db_session, refs["assigned"])
    response = client.patch(f"/api/v1/leads/{assigned}", headers=staff["admin"],
                            json={"assigned_to": staff["coordinator_id"]})
    assert response.status_code == 200
    return refs


@pytest.fixture
def routed(app, client, db_session, staff):
    """A lead routed to three of the four eligible clinics, and a key for each clinic."""
    from leads.pipeline.models import Referral

    accepted = submit(client)
    lead_id = route(app, db_session, accepted["reference"])
    keys = {}
    for clinic_id in staff["catalogue"]["eligible"]:
        response = client.post(f"/api/v1/clinics/{clinic_id}/api-keys", headers=staff["admin"])
        keys[clinic_id] = auth(response.get_json()["key"])
    referrals = dict(db_session.execute(select(Referral.clinic_id, Referral.id)
                                        .where(Referral.lead_id == lead_id)).all())
    assert len(referrals) == 3
    [unreferred] = staff["catalogue"]["eligible"] - set(referrals)
    return {"lead_id": lead_id, "reference": accepted["reference"], "accepted": accepted,
            "keys": keys, "referrals": referrals, "unreferred": unreferred, **staff}


@pytest.fixture
def gunicorn_server(app, test_env):
    """Starts `gunicorn -c gunicorn.conf.py wsgi:app` with several workers; yields a function
    giving its base URL. With `log_path`, what it writes (stdout and stderr) goes there; with
    `port`, it listens there."""
    started = []

    def start(workers: int = 4, log_path: Path | None = None, port: int | None = None,
              **extra_env) -> str:
        port = port or free_port()
        env = {**os.environ, **test_env, **extra_env}
        output = open(log_path, "ab") if log_path else None  # noqa: SIM115  (closed below)
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "-w", str(workers),
             "-b", f"127.0.0.1:{port}", "wsgi:app"], cwd=ROOT, env=env,
            stdout=output, stderr=subprocess.STDOUT if output else None,
        )
        started.append((process, output))
        base = f"http://127.0.0.1:{port}"
        wait_for_http(base + "/healthz")
        return base

    yield start
    for process, output in started:
        process.terminate()
        process.wait(timeout=20)
        if output:
            output.close()


@pytest.fixture
def smtp_sink():
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
def own_redis(tmp_path):
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


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


@pytest.fixture
def setting(app, monkeypatch):
    """`setting(NAME, value)` changes the test app's setting for one test, as the operations
    read it too: another app made in the process meanwhile (test_personal_data makes some)
    took the process's settings object over, so it is pointed at this app's again."""
    from leads.core import settings

    monkeypatch.setattr(settings, "_current", settings.Settings(app.config))

    def change(name: str, value) -> None:
        monkeypatch.setitem(app.config, name, value)

    return change


@pytest.fixture
def private_allowed(setting):
    """WEBHOOK_ALLOW_PRIVATE for this test: webhook receivers on 127.0.0.1 over plain http."""
    setting("WEBHOOK_ALLOW_PRIVATE", True)


@pytest.fixture
def receiver():
    """A Standard Webhooks receiver on 127.0.0.1 (helpers.WebhookReceiver), started."""
    server = WebhookReceiver()
    server.start()
    yield server
    server.stop()


# --- the browser and a live site (tests/browser.py has the helpers) ------------------------

@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium under Playwright, one per test session; fails when none starts."""
    from playwright.sync_api import sync_playwright

    from tests.browser import launch_chromium

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A fresh page in a context of its own (no cookies), in English unless a test makes
    another context with `browser.new_context(locale="es-ES")`."""
    context = browser.new_context(locale="en-GB")
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def live_server(gunicorn_server, tmp_path):
    """A real `gunicorn` on the test database (two workers); answers its base URL. Its log
    is at tmp_path/gunicorn.log."""
    return gunicorn_server(workers=2, log_path=tmp_path / "gunicorn.log")


@pytest.fixture
def live_site(gunicorn_server, start_worker, smtp_sink, tmp_path):
    """`live_server` with a real worker mailing to an aiosmtpd sink, links in mail pointing
    at the server: `site.url`, `site.sink.received()`, `site.worker`."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    gunicorn_server(workers=2, log_path=tmp_path / "gunicorn.log", port=port,
                    PUBLIC_BASE_URL=url, SMTP_PORT=str(smtp_sink.port))
    worker = start_worker(PUBLIC_BASE_URL=url, SMTP_PORT=smtp_sink.port)
    return LiveSite(url=url, sink=smtp_sink, worker=worker)
