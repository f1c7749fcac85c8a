"""`q=` over encrypted names: 20,000 leads in PostgreSQL, the lead list's query (the page of
50, decrypted as the API answers it) for names, a name prefix, a common two-letter prefix, an
e-mail and a reference; beside it, what a decrypting scan of every name would cost, and what
the name index costs in rows and bytes. Not part of `make bench`:

    python -m bench.name_search
"""

import os
import random
import time

from sqlalchemy import func, select, text

from bench.support import (
    REDIS_URL,
    bench_lock,
    database,
    flask_command,
    median,
    percentile,
    sqlalchemy_url,
)

LEADS = 20_000
RUNS = 30
FIRST = ["Ana", "María José", "Jürgen", "Søren", "Łukasz", "Chloé", "Mohammed", "Aiko", "John",
         "Mary", "Fatma", "Mehmet", "Olga", "Pierre", "Giulia", "Nguyễn", "Wei", "Ingrid",
         "Carlos", "Lucía", "Thomas", "Emma", "Noah", "Liam", "Sofía", "Mateo", "Ava", "Leon"]
LAST = ["Ruiz", "García López", "Baumgartner", "Nørgaard", "Kowalski", "O'Brien", "Dupont",
        "Rossi", "Yılmaz", "Smith", "Johnson", "Müller", "Schmidt", "Hernández", "Martínez",
        "Tanaka", "Ivanova", "Silva", "Kim", "Nakamura", "Andersson", "Wolfeschlegelstein",
        "Van der Berg", "Papadopoulos", "Novák", "Horváth", "Popescu", "Jensen", "Ferreira"]


def fill(app, rng: random.Random) -> list[str]:
    from leads.catalogue.models import Treatment
    from leads.core.clock import utcnow
    from leads.core.database import db
    from leads.pipeline.models import Lead
    from leads.privacy.personal import email_lookup_key
    from leads.privacy.search import index_names

    emails = []
    with app.app_context():
        treatment = Treatment(slug="t", name="T", specialty="s")
        db.session.add(treatment)
        db.session.flush()
        for start in range(0, LEADS, 1000):
            batch = []
            for n in range(start, start + 1000):
                email = f"patient{n}@example.org"
                emails.append(email)
                now = utcnow()
                batch.append(Lead(
                    reference=f"MT-{n:07d}", treatment_id=treatment.id,
                    first_name=rng.choice(FIRST), last_name=rng.choice(LAST), email=email,
                    email_key=email_lookup_key(email), phone="+14155550100", country="US",
                    condition="c" * 200, consent_data_processing=True, tags=[], source={},
                    status_token_hash="x" * 64, created_at=now, updated_at=now))
            db.session.add_all(batch)
            db.session.flush()
            for lead in batch:
                index_names(lead)
            db.session.commit()
        db.session.execute(text("ANALYZE"))
        db.session.commit()
    return emails


def timed_search(app, q: str) -> tuple[float, float, int]:
    from leads.core.database import db
    from leads.pipeline.models import Lead
    from leads.pipeline.queries import filtered_leads
    from leads.pipeline.schemas import LeadSchema

    times, found = [], 0
    with app.app_context():
        for _ in range(RUNS):
            start = time.perf_counter()
            page = list(db.session.scalars(
                filtered_leads({"q": q}, None).order_by(Lead.id.desc()).limit(50)))
            LeadSchema(many=True).dump(page)
            times.append((time.perf_counter() - start) * 1000)
            found = len(page)
            db.session.expunge_all()
    return median(times), percentile(times, 0.95), found


def decrypting_scan_ms(app) -> float:
    from leads.core.database import db
    from leads.pipeline.models import Lead
    from leads.privacy.personal import name_tokens

    with app.app_context():
        start = time.perf_counter()
        rows = db.session.execute(select(Lead.id, Lead.first_name, Lead.last_name)).all()
        found = [lead_id for lead_id, first, last in rows
                 if any(t.startswith("rui") for t in name_tokens(f"{first} {last}"))]
        assert found
        return (time.perf_counter() - start) * 1000


def index_cost(app) -> tuple[float, float]:
    from leads.core.database import db
    from leads.pipeline.models import Lead
    from leads.privacy.models import LeadSearchTerm

    with app.app_context():
        rows = db.session.scalar(select(func.count()).select_from(LeadSearchTerm))
        leads = db.session.scalar(select(func.count()).select_from(Lead))
        size = db.session.scalar(text("SELECT pg_total_relation_size('lead_search_terms')"))
        return rows / leads, size / leads


def run() -> None:
    from config import new_data_key

    rng = random.Random(20261127)
    with bench_lock(), database("search") as dsn:
        env = {"DATABASE_URL": sqlalchemy_url(dsn), "REDIS_URL": REDIS_URL,
               "LOG_LEVEL": "WARNING", "SECRET_KEY": "bench", "DATA_KEYS": new_data_key(),
               "BLIND_INDEX_KEY": new_data_key()}
        flask_command(env, "db", "upgrade")
        os.environ.update(env)
        from leads.core.database import db
        from leads.web.app import create_app

        app = create_app()
        start = time.perf_counter()
        emails = fill(app, rng)
        print(f"filled {LEADS} leads in {time.perf_counter() - start:.1f} s")
        for q in ("Ana Ruiz", "rui", "ma", "García", "wolfeschlegelstein", emails[12345],
                  "MT-0012345", "nobody at all"):
            p50, p95, found = timed_search(app, q)
            print(f"q={q!r}: median {p50:.1f} ms, p95 {p95:.1f} ms, {found} on the page")
        print(f"decrypting scan of every name (the alternative): {decrypting_scan_ms(app):.0f} ms")
        rows, size = index_cost(app)
        print(f"name index: {rows:.1f} rows and {size:.0f} bytes (with its indexes) per lead")
        with app.app_context():
            db.engine.dispose()


if __name__ == "__main__":
    run()
