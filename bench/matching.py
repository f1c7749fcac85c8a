"""Matching at scale: 10,000 clinics and 50 treatments in PostgreSQL, with a year of referrals
behind them (each clinic's share by its monthly cap, most of them answered: what a clinic's
responsiveness is judged on); one lead's match (loading the candidates as routing does, then
scoring them) beside the floor of one bare SQL query that selects the same eligible clinics.
With `profile`, the same 200 matches again under pyinstrument."""

import os
import random
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import psycopg

from bench.support import (
    OUT,
    REDIS_URL,
    database,
    flask_command,
    percentile,
    sqlalchemy_url,
)

CLINICS = 10_000
TREATMENTS = 50
OFFERS_PER_CLINIC = 5
LEADS = 200
# A year of referrals: 50,000 past leads sent to 20 clinics each, 1,000,000 in all, about
# 100 a clinic (more for a clinic with a higher cap), 85 % of them answered.
PAST_LEADS = 50_000
REFERRALS_PER_PAST_LEAD = 20
ANSWERED = 0.85
TARGET_P95_MS = 20
COUNTRIES = ("MX", "PA", "CO", "CR", "TR", "TH", "DE", "ES", "IN", "HU", "KR", "PL", "BR", "AR",
             "PT", "GR", "HR", "CZ", "MY", "AE")
CURRENCIES = {"USD": "1", "EUR": "1.08", "MXN": "0.058", "TRY": "0.031", "THB": "0.028"}
LANGUAGES = ("en", "es", "de", "tr", "th", "pt", "fr")

FLOOR_QUERY = """
SELECT c.id FROM clinics c JOIN clinic_treatments ct ON ct.clinic_id = c.id
WHERE ct.treatment_id = %(treatment)s AND c.active AND c.country = ANY(%(countries)s)
  AND EXISTS (SELECT 1 FROM accreditations a WHERE a.clinic_id = c.id AND a.verified
              AND a.valid_from <= %(today)s AND a.valid_until >= %(today)s)
"""


def fill(dsn: str, rng: random.Random) -> None:
    today = date.today()
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        with cur.copy("COPY treatments (slug, name, specialty, active, created_at) "
                      "FROM STDIN") as copy:
            for n in range(TREATMENTS):
                copy.write_row((f"treatment-{n}", f"Treatment {n}", f"specialty-{n % 8}", True,
                                "now"))
        with cur.copy("COPY clinics (name, city, country, email, languages, active, "
                      "monthly_referral_cap, created_at, updated_at) FROM STDIN") as copy:
            for n in range(CLINICS):
                languages = rng.sample(LANGUAGES, 2)
                copy.write_row((f"Clinic {n}", "City", rng.choice(COUNTRIES),
                                f"clinic{n}@clinic.example", f'["{languages[0]}", '
                                f'"{languages[1]}"]', n % 23 != 0, rng.randint(10, 200),
                                "now", "now"))
        cur.execute("SELECT min(id) FROM clinics")
        first_clinic = cur.fetchone()[0]
        cur.execute("SELECT min(id) FROM treatments")
        first_treatment = cur.fetchone()[0]
        with cur.copy("COPY clinic_treatments (clinic_id, treatment_id, price_min, price_max, "
                      "currency) FROM STDIN") as copy:
            for n in range(CLINICS):
                for t in rng.sample(range(TREATMENTS), OFFERS_PER_CLINIC):
                    low = rng.randint(2, 30) * 500
                    copy.write_row((first_clinic + n, first_treatment + t, low, low * 1.5,
                                    rng.choice(list(CURRENCIES))))
        with cur.copy("COPY accreditations (clinic_id, body, reference, valid_from, "
                      "valid_until, verified, created_at) FROM STDIN") as copy:
            for n in range(CLINICS):
                valid = rng.random() < 0.85
                until = today + timedelta(days=365) if valid else today - timedelta(days=10)
                copy.write_row((first_clinic + n, rng.choice(("JCI", "ISO 9001", "GMP")),
                                f"REF-{n}", today - timedelta(days=400), until,
                                rng.random() < 0.9, "now"))
        for currency, rate in CURRENCIES.items():
            cur.execute("INSERT INTO currency_rates (currency, usd_per_unit, updated_at) "
                        "VALUES (%s, %s, now())", (currency, rate))
        cur.execute("SELECT id, monthly_referral_cap FROM clinics ORDER BY id")
        clinics = cur.fetchall()
        fill_history(cur, rng, [clinic for clinic, _ in clinics], [cap for _, cap in clinics],
                     first_treatment)
        conn.commit()
        conn.autocommit = True
        # As autovacuum would have left tables this old: visibility map set, statistics made.
        cur.execute("VACUUM ANALYZE")


def fill_history(cur: psycopg.Cursor, rng: random.Random, clinic_ids: list[int],
                 caps: list[int], first_treatment: int) -> None:
    """The past leads (only what the table requires: matching never reads them) and their
    referrals over the last year, answered within 1-96 hours or not at all."""
    now = datetime.now(UTC)
    with cur.copy("COPY leads (id, reference, status, priority, tags, treatment_id, country, "
                  "consent_data_processing, consent_share_with_clinics, consent_marketing, "
                  "source, created_at, updated_at) FROM STDIN") as copy:
        for n in range(PAST_LEADS):
            copy.write_row((n + 1, f"MT-P{n:06d}", "closed", "normal", "[]",
                            first_treatment + n % TREATMENTS, "US", True, True, False, "{}",
                            now, now))
    cur.execute("SELECT setval('leads_id_seq', %s)", (PAST_LEADS,))
    with cur.copy("COPY referrals (lead_id, clinic_id, status, score, reasons, created_at, "
                  "updated_at, responded_at) FROM STDIN") as copy:
        for n in range(PAST_LEADS):
            sent = now - timedelta(seconds=rng.uniform(0, 365 * 86400))
            for clinic_id in set(rng.choices(clinic_ids, caps, k=REFERRALS_PER_PAST_LEAD)):
                answered = (sent + timedelta(hours=rng.uniform(1, 96))
                            if rng.random() < ANSWERED else None)
                copy.write_row((n + 1, clinic_id, "accepted" if answered else "expired", 0.5,
                                "[]", sent, sent, answered))


def run(profile: str = "auto") -> dict:
    rng = random.Random(20261125)
    with database("matching") as dsn:
        env = {"DATABASE_URL": sqlalchemy_url(dsn), "REDIS_URL": REDIS_URL,
               "LOG_LEVEL": "WARNING", "SECRET_KEY": "bench"}
        flask_command(env, "db", "upgrade")
        fill(dsn, rng)
        os.environ.update(env)
        from sqlalchemy import select

        from leads.catalogue.models import Clinic
        from leads.core.clock import utcnow
        from leads.core.database import db
        from leads.pipeline.models import Lead
        from leads.routing.matching import best_matches
        from leads.routing.operations import (
            lead_profile,
            load_candidates,
            refresh_responsiveness,
        )
        from leads.web.app import create_app

        app = create_app()
        leads = []
        with app.app_context():
            # What the clinics' answers would have left: each one's responsiveness.
            refresh_responsiveness(list(db.session.scalars(select(Clinic.id))))
            db.session.commit()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE clinics")  # after that update, as autovacuum would
        with app.app_context():
            treatment_ids = [t for (t,) in db.session.execute(
                db.text("SELECT id FROM treatments ORDER BY id")).all()]
        for _ in range(LEADS):
            lead = Lead(treatment_id=rng.choice(treatment_ids), language=rng.choice(LANGUAGES),
                        budget_amount=Decimal(rng.randint(5, 40) * 1000),
                        budget_currency=rng.choice(list(CURRENCIES)))
            lead.destinations = rng.sample(COUNTRIES, 2)
            leads.append(lead)

        timings, floor, chosen = [], [], 0
        with app.app_context():
            for lead in leads[:20]:  # warm the caches and the connection
                load_candidates(lead, set(), utcnow())
            for lead in leads:
                start = time.perf_counter()
                now = utcnow()
                candidates, usd_per_unit = load_candidates(lead, set(), now)
                matches = best_matches(candidates, lead_profile(lead), now.date(), usd_per_unit, 3)
                timings.append((time.perf_counter() - start) * 1000)
                chosen += len(matches)
                db.session.expunge_all()
            profiled = profile == "all" or (
                profile == "auto" and percentile(timings, 0.95) >= TARGET_P95_MS)
            if profiled:
                from pyinstrument import Profiler

                profiler = Profiler(interval=0.0005)
                with profiler:
                    for lead in leads:
                        now = utcnow()
                        candidates, usd_per_unit = load_candidates(lead, set(), now)
                        best_matches(candidates, lead_profile(lead), now.date(), usd_per_unit, 3)
                        db.session.expunge_all()
                (OUT / "matching-profile.txt").write_text(
                    profiler.output_text(unicode=False, color=False))
            db.engine.dispose()
        with psycopg.connect(dsn) as conn:
            for lead in leads:
                start = time.perf_counter()
                conn.execute(FLOOR_QUERY, {"treatment": lead.treatment_id,
                                           "countries": lead.destinations,
                                           "today": date.today()}).fetchall()
                floor.append((time.perf_counter() - start) * 1000)
    return {"p50": percentile(timings, 0.5), "p95": percentile(timings, 0.95),
            "floor_p50": percentile(floor, 0.5), "floor_p95": percentile(floor, 0.95),
            "matches_per_lead": chosen / LEADS,
            "profile": "bench/out/matching-profile.txt" if profiled else None}
