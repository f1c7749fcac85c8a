"""The operator commands of CONTRACT §1: `seed-demo`, `users create`, `clinics issue-key`,
run through Flask's CLI runner and, once each way, as real `flask --app wsgi` processes."""

import os
import re
import subprocess
import sys
from pathlib import Path

import phonenumbers
import pycountry
import pytest
from email_validator import validate_email
from sqlalchemy import func, select

from leads.accounts.credentials import PREFIX_LENGTH, matches
from leads.accounts.models import ClinicApiKey, StaffToken, User
from leads.catalogue.models import Accreditation, Clinic, ClinicTreatment, CurrencyRate, Treatment
from leads.core.clock import today
from leads.core.database import db
from tests.helpers import ROOT, cli, inquiry_body, routed_lead

TOKEN = re.compile(r"stf_[A-Za-z0-9_-]+")
FLASK = Path(sys.executable).with_name("flask")  # .venv/bin/flask beside .venv/bin/python


def flask_process(env: dict, *args) -> subprocess.CompletedProcess:
    return subprocess.run([str(FLASK), "--app", "wsgi", *args], cwd=ROOT,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=120)


def bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}


def every_row(app) -> dict[str, list[tuple]]:
    """Every row of every table, in primary-key order."""
    with app.app_context():
        engine = db.engine
    with engine.connect() as conn:
        return {table.name: conn.execute(
                    select(table).order_by(*table.primary_key.columns)).all()
                for table in db.metadata.sorted_tables}


def catalogue_facts(db_session) -> dict:
    """The demo catalogue as comparable values, without ids or timestamps."""
    db_session.expire_all()
    clinics = db_session.scalars(select(Clinic)).all()
    return {
        "treatments": {(t.slug, t.name, t.specialty, t.active)
                       for t in db_session.scalars(select(Treatment))},
        "rates": {(r.currency, r.usd_per_unit, r.note)
                  for r in db_session.scalars(select(CurrencyRate))},
        "clinics": {(c.name, c.city, c.country, c.email, c.phone, c.website, tuple(c.languages),
                     c.active, c.monthly_referral_cap) for c in clinics},
        "offers": {(c.name, o.treatment.slug, o.price_min, o.price_max, o.currency)
                   for c in clinics for o in c.offers},
        "accreditations": {(c.name, a.body, a.reference, a.valid_from, a.valid_until, a.verified)
                           for c in clinics for a in c.accreditations},
    }


@pytest.fixture
def seeded(app):
    """`seed-demo` through the CLI runner; the admin token it printed."""
    result = cli(app, "seed-demo")
    assert result.exit_code == 0, result.output
    tokens = TOKEN.findall(result.output)
    assert len(tokens) == 1, result.output
    return tokens[0]


# seed-demo ---------------------------------------------------------------------------------

def test_seed_demo_prints_an_admin_token_that_authenticates(client, db_session, seeded):
    me = client.get("/api/v1/me", headers=bearer(seeded))
    assert me.status_code == 200
    assert me.get_json()["email"] == "admin@demo.local" and me.get_json()["role"] == "admin"
    # Staff see the `active` flag of each treatment; patients do not.
    staff_view = client.get("/api/v1/treatments", headers=bearer(seeded)).get_json()
    public_view = client.get("/api/v1/treatments").get_json()
    assert all("active" in t for t in staff_view) and not any("active" in t for t in public_view)
    # Only a hash is kept, and a token that differs in its last character is refused.
    stored = db_session.scalars(select(StaffToken)).all()
    assert len(stored) == 1 and stored[0].user.email == "admin@demo.local"
    assert stored[0].prefix == seeded[:PREFIX_LENGTH] and matches(seeded, stored[0].secret_hash)
    assert seeded not in (stored[0].prefix, stored[0].secret_hash)
    forged = seeded[:-1] + ("A" if seeded[-1] != "A" else "B")
    assert client.get("/api/v1/me", headers=bearer(forged)).status_code == 401


def test_seed_demo_twice_changes_no_row_and_prints_no_token(app, seeded):
    before = every_row(app)
    again = cli(app, "seed-demo")
    assert again.exit_code == 0, again.output
    assert TOKEN.search(again.output) is None
    assert "already loaded" in again.output
    after = every_row(app)
    assert {name: len(rows) for name, rows in after.items()} == \
        {name: len(rows) for name, rows in before.items()}
    assert after == before


def test_seed_demo_completes_a_partly_loaded_catalogue(app, db_session, seeded):
    complete = catalogue_facts(db_session)
    # Lose a clinic (with its offers and accreditations), one offer and one accreditation of
    # other clinics, a currency rate and a treatment no remaining offer uses.
    db_session.delete(db_session.scalar(select(Clinic).where(Clinic.country == "PL")))
    db_session.flush()
    budai = db_session.scalar(select(Clinic).where(Clinic.name == "Budai Dental Centrum"))
    budai.offers = [o for o in budai.offers if o.treatment.slug != "dental-implants"]
    herz = db_session.scalar(select(Clinic).where(Clinic.name == "Herzzentrum Rhein-Ruhr"))
    herz.accreditations = [a for a in herz.accreditations if a.body != "JCI"]
    db_session.delete(db_session.get(CurrencyRate, "HUF"))
    db_session.commit()
    assert catalogue_facts(db_session) != complete

    result = cli(app, "seed-demo")
    assert result.exit_code == 0, result.output
    assert TOKEN.search(result.output) is None  # the admin was there already
    assert "demo catalogue completed" in result.output
    assert catalogue_facts(db_session) == complete
    assert db_session.scalar(select(func.count()).select_from(User)) == 1


def test_seed_demo_as_a_process_twice(app, test_env, db_session):
    first = flask_process(test_env, "seed-demo")
    assert first.returncode == 0, first.stderr
    tokens = TOKEN.findall(first.stdout)
    assert len(tokens) == 1, first.stdout
    counts = {name: len(rows) for name, rows in every_row(app).items()}
    assert counts["treatments"] >= 12 and counts["clinics"] >= 30

    second = flask_process(test_env, "seed-demo")
    assert second.returncode == 0, second.stderr
    assert TOKEN.search(second.stdout + second.stderr) is None
    assert {name: len(rows) for name, rows in every_row(app).items()} == counts

    token = db_session.scalar(
        select(StaffToken).where(StaffToken.prefix == tokens[0][:PREFIX_LENGTH]))
    assert token is not None and matches(tokens[0], token.secret_hash)
    assert token.user.email == "admin@demo.local" and token.user.role == "admin"

    duplicate = flask_process(test_env, "users", "create", "--email", "admin@demo.local",
                              "--role", "admin")
    assert duplicate.returncode != 0
    assert "exists already" in duplicate.stderr and TOKEN.search(duplicate.stdout) is None


def test_demo_catalogue_is_broad_and_well_formed(db_session, seeded):
    on = today()
    treatments = db_session.scalars(select(Treatment)).all()
    clinics = db_session.scalars(select(Clinic)).all()
    offers = db_session.scalars(select(ClinicTreatment)).all()
    accreditations = db_session.scalars(select(Accreditation)).all()
    rates = {r.currency: r.usd_per_unit for r in db_session.scalars(select(CurrencyRate))}

    slugs = {t.slug for t in treatments}
    assert len(treatments) >= 12 and {"stem-cell-spine-arthritis", "dental-implants"} <= slugs
    assert len({t.specialty for t in treatments}) >= 5
    assert len(clinics) >= 30 and len({c.country for c in clinics}) >= 8
    assert len({c.name for c in clinics}) == len(clinics)
    currencies = {o.currency for o in offers}
    assert len(currencies) >= 3 and currencies <= set(rates)
    assert all(rate > 0 for rate in rates.values()) and rates["USD"] == 1
    assert all(0 < o.price_min <= o.price_max for o in offers)
    assert all(c.offers and c.accreditations for c in clinics)

    for clinic in clinics:
        assert pycountry.countries.get(alpha_2=clinic.country) is not None
        number = phonenumbers.parse(clinic.phone)
        assert phonenumbers.is_valid_number(number), clinic.phone
        assert phonenumbers.region_code_for_number(number) == clinic.country
        assert clinic.phone == phonenumbers.format_number(number,
                                                          phonenumbers.PhoneNumberFormat.E164)
        assert clinic.email.endswith(".example")
        assert validate_email(clinic.email, check_deliverability=False).normalized == clinic.email
        assert clinic.website.startswith("https://")
        assert clinic.languages and all(pycountry.languages.get(alpha_2=code)
                                        for code in clinic.languages)
        assert clinic.monthly_referral_cap > 0

    valid = [a for a in accreditations if a.is_valid_on(on)]
    expired = [a for a in accreditations if a.verified and a.valid_until < on]
    unverified = [a for a in accreditations if not a.verified]
    assert expired and unverified and len(valid) > len(accreditations) / 2
    assert all(a.verified_by_id is not None and a.verified_at is not None for a in valid)
    assert all(a.verified_by_id is None and a.verified_at is None for a in unverified)
    assert {"JCI", "ISO 9001", "GMP"} <= {a.body for a in accreditations}


def test_demo_inquiry_to_mx_or_pa_is_routed_to_every_eligible_clinic(
        app, client, db_session, seeded, setting):
    setting("MAX_CLINICS_PER_LEAD", 100)  # so every fit is referred
    response = client.post("/api/v1/inquiries", json=inquiry_body())
    assert response.status_code == 202, response.get_json()
    lead = routed_lead(app, db_session, response.get_json()["reference"])
    on = today()
    mx_pa = db_session.scalars(select(Clinic).where(Clinic.country.in_(["MX", "PA"])))
    offering = [c for c in mx_pa
                if any(o.treatment.slug == "stem-cell-spine-arthritis" for o in c.offers)]
    eligible = {c.id for c in offering
                if c.active and any(a.is_valid_on(on) for a in c.accreditations)}
    assert lead.status == "routed"
    assert len(eligible) >= 4 and {r.clinic_id for r in lead.referrals} == eligible
    # The demo also holds an MX/PA clinic for this treatment that must be passed over.
    assert len(offering) > len(eligible)


# users create ------------------------------------------------------------------------------

def test_users_create_prints_a_working_token_once(app, client, db_session):
    result = cli(app, "users", "create", "--email", " Coord@Example.ORG ", "--role", "coordinator")
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    assert TOKEN.fullmatch(token) and result.output.count("stf_") == 1
    user = db_session.scalar(select(User))
    assert (user.email, user.role, user.active) == ("coord@example.org", "coordinator", True)
    me = client.get("/api/v1/me", headers=bearer(token))
    assert me.status_code == 200
    assert me.get_json() == {"id": user.id, "email": "coord@example.org", "role": "coordinator"}


def test_users_create_refuses_a_duplicate_email(app, db_session):
    assert cli(app, "users", "create", "--email", "coord@example.org",
               "--role", "coordinator").exit_code == 0
    again = cli(app, "users", "create", "--email", "COORD@example.org", "--role", "admin")
    assert again.exit_code == 1
    assert "coord@example.org exists already" in again.output
    assert TOKEN.search(again.output) is None
    assert db_session.scalar(select(func.count()).select_from(User)) == 1
    assert db_session.scalar(select(func.count()).select_from(StaffToken)) == 1
    assert db_session.scalar(select(User.role)) == "coordinator"


@pytest.mark.parametrize("role", ["superuser", "clinic", ""])
def test_users_create_refuses_an_unknown_role(app, db_session, role):
    result = cli(app, "users", "create", "--email", "someone@example.org", "--role", role)
    assert result.exit_code == 2
    assert "Invalid value for '--role'" in result.output
    assert "coordinator" in result.output and "admin" in result.output
    assert TOKEN.search(result.output) is None
    assert db_session.scalar(select(func.count()).select_from(User)) == 0


@pytest.mark.parametrize("email", ["notanemail", "two@@example.org", ""])
def test_users_create_refuses_an_address_mail_cannot_go_to(app, db_session, email):
    result = cli(app, "users", "create", "--email", email, "--role", "coordinator")
    assert result.exit_code == 1
    assert "--email" in result.output and "e-mail address" in result.output
    assert TOKEN.search(result.output) is None
    assert db_session.scalar(select(func.count()).select_from(User)) == 0


def test_users_create_needs_an_email(app, db_session):
    result = cli(app, "users", "create", "--role", "admin")
    assert result.exit_code == 2 and "--email" in result.output
    assert db_session.scalar(select(func.count()).select_from(User)) == 0


# clinics issue-key -------------------------------------------------------------------------

def test_clinics_issue_key_prints_a_working_key(app, client, db_session, seeded):
    clinic = db_session.scalar(select(Clinic).where(Clinic.name == "Panama Regenerative Institute"))
    result = cli(app, "clinics", "issue-key", str(clinic.id))
    assert result.exit_code == 0, result.output
    key = result.output.strip()
    assert key.startswith("clk_") and len(key) > 40 and "\n" not in key
    stored = db_session.scalars(select(ClinicApiKey)).all()
    assert len(stored) == 1 and stored[0].clinic_id == clinic.id
    assert stored[0].prefix == key[:PREFIX_LENGTH] and matches(key, stored[0].secret_hash)
    assert client.get("/api/v1/clinic/referrals", headers=bearer(key)).status_code == 200
    assert client.get("/api/v1/clinic/referrals").status_code == 401
    # A second key is another secret; both work.
    second = cli(app, "clinics", "issue-key", str(clinic.id)).output.strip()
    assert second.startswith("clk_") and second != key
    assert client.get("/api/v1/clinic/referrals", headers=bearer(key)).status_code == 200
    assert client.get("/api/v1/clinic/referrals", headers=bearer(second)).status_code == 200


def test_clinics_issue_key_for_an_unknown_clinic_fails_clearly(app, db_session, seeded):
    missing = db_session.scalar(select(func.max(Clinic.id))) + 1000
    result = cli(app, "clinics", "issue-key", str(missing))
    assert result.exit_code == 1
    assert f"no clinic with id {missing}" in result.output
    assert "clk_" not in result.output
    not_a_number = cli(app, "clinics", "issue-key", "pri-panama")
    assert not_a_number.exit_code == 2 and "is not a valid integer" in not_a_number.output
    assert db_session.scalar(select(func.count()).select_from(ClinicApiKey)) == 0
