"""The coordinators' lead list and its CSV export over 200,000 leads in PostgreSQL.

The leads are loaded with COPY, their personal fields sealed and their e-mails' blind index
made by the app's own keyring (leads/privacy/personal.py), so the app reads them as its own:
a year of inquiries, with a mix of statuses, treatments, countries, destinations, priorities,
tags and assignees. Then the real app (`gunicorn -w 2 wsgi:app`) answers 200
`GET /api/v1/leads` with mixed filters and cursor paging to pages 2 and 3, under a
coordinator's token, one at a time; beside each, the floor: the same page selected by one bare
SQL query through psycopg. Last, `GET /api/v1/leads/export.csv` of all of them is streamed
while the serving worker's resident memory is sampled from /proc."""

import hashlib
import json
import random
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import requests

from bench.intake import app_env
from bench.support import (
    children,
    clean_redis,
    database,
    flask_command,
    gunicorn,
    percentile,
    process_cpu,
    processes,
    rss_kib,
)
from leads.core.paging import decode_timed_cursor
from leads.pipeline.states import LeadStatus, Priority
from leads.privacy.personal import email_lookup_key, use_keys

LEADS = 200_000
REQUESTS = 200
TARGET_P95_MS = 30
TARGET_RSS_MIB = 200
PAGE = 50  # the list's default limit
ASSIGNEES = 8
SAMPLE_EVERY = 0.02  # seconds between two looks at the serving worker's memory
STATUSES = {LeadStatus.RECEIVED: 2, LeadStatus.ROUTED: 30, LeadStatus.QUOTED: 14,
            LeadStatus.BOOKED: 5, LeadStatus.NEEDS_REVIEW: 10, LeadStatus.CLOSED: 16,
            LeadStatus.SPAM: 5, LeadStatus.DUPLICATE: 8, LeadStatus.COMPLETED: 10}
PRIORITIES = {Priority.LOW: 20, Priority.NORMAL: 60, Priority.HIGH: 15, Priority.URGENT: 5}
TAGS = ("vip", "callback", "spanish", "follow-up", "insurance", "repeat", "agency")
# Where patients write from (weighted) and where they would travel to.
COUNTRIES = {"US": 40, "CA": 10, "GB": 10, "DE": 6, "AU": 5, "IE": 3, "NL": 3, "SE": 3,
             "NO": 2, "FR": 3, "IT": 2, "ES": 2, "CH": 2, "AE": 2, "SA": 2, "NG": 1, "KE": 1,
             "BR": 1, "JP": 1, "NZ": 1}
DESTINATIONS = ("MX", "PA", "CO", "CR", "TR", "TH", "ES", "HU", "PL", "DE", "IN", "KR")
FIRST = ("Ana", "María José", "Jürgen", "Søren", "Łukasz", "Chloé", "Mohammed", "Aiko", "John",
         "Mary", "Fatma", "Mehmet", "Olga", "Pierre", "Giulia", "Wei", "Ingrid", "Carlos")
LAST = ("Ruiz", "García López", "Baumgartner", "Nørgaard", "Kowalski", "O'Brien", "Dupont",
        "Rossi", "Yılmaz", "Smith", "Johnson", "Müller", "Schmidt", "Hernández", "Tanaka")
CONDITIONS = (
    "Facet joint arthritis L4-L5 confirmed by X-ray, pain for 3 years.",
    "Missing two lower molars, bone graft recommended by my dentist last spring.",
    "Severe osteoarthritis of the right knee, cortisone no longer helps.",
    "BMI 41, type 2 diabetes, looking for a sleeve gastrectomy with follow-up.",
    "Two failed IVF cycles at home, AMH 1.2, would like a clinic with PGT-A.",
)
LEAD_COLUMNS = (
    "id", "reference", "status", "priority", "tags", "assigned_to_id", "treatment_id",
    "first_name", "last_name", "email", "email_key", "phone", "country", "language",
    "birth_year", "has_imaging", "budget_amount", "budget_currency", "travel_earliest",
    "travel_latest", "contact_preference", "consent_data_processing",
    "consent_share_with_clinics", "consent_marketing", "source", "duplicate_of_id",
    "status_token_hash", "created_at", "updated_at")


def email_of(n: int) -> str:
    return f"patient{n}@example.org"


def weighted(rng: random.Random, weights: dict, count: int) -> list:
    return rng.choices(list(weights), weights=list(weights.values()), k=count)


def fill(dsn: str, env: dict, rng: random.Random) -> dict:
    """The leads, their destinations and the assignees; what the filters can name."""
    keys = use_keys(env["DATA_KEYS"], env["BLIND_INDEX_KEY"])
    now = datetime.now(UTC)
    # Spread over the last year, oldest first, so that ids grow with created_at as they do.
    created = sorted(now - timedelta(seconds=rng.uniform(0, 365 * 86400)) for _ in range(LEADS))
    statuses = weighted(rng, STATUSES, LEADS)
    priorities = weighted(rng, PRIORITIES, LEADS)
    countries = weighted(rng, COUNTRIES, LEADS)
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.executemany("INSERT INTO users (email, role, active, created_at) "
                        "VALUES (%s, 'coordinator', true, now())",
                        [(f"assignee{n}@bench.local",) for n in range(ASSIGNEES)])
        cur.execute("SELECT id FROM users ORDER BY id")
        users = [user_id for (user_id,) in cur.fetchall()]
        cur.execute("SELECT id, slug FROM treatments ORDER BY id")
        treatments = cur.fetchall()
        # Some treatments are asked for far more often than others.
        treatment_weights = [1 / (rank + 1) for rank in range(len(treatments))]
        with cur.copy(f"COPY leads ({', '.join(LEAD_COLUMNS)}) FROM STDIN") as copy:
            for n in range(LEADS):
                lead_id = n + 1
                email = email_of(n)
                treatment_id = rng.choices(treatments, treatment_weights)[0][0]
                status = statuses[n]
                copy.write_row((
                    lead_id, f"MT-{n:07d}", status, priorities[n],
                    json.dumps(rng.sample(TAGS, rng.choice((1, 1, 2))) if rng.random() < 0.4
                               else []),
                    rng.choice(users) if rng.random() < 0.6 else None, treatment_id,
                    keys.seal_text(rng.choice(FIRST)), keys.seal_text(rng.choice(LAST)),
                    keys.seal_text(email), email_lookup_key(email),
                    keys.seal_text(f"+1415555{n % 10000:04d}"), countries[n],
                    rng.choice(("en", "es", "de", "fr")), rng.randint(1940, 2000),
                    rng.random() < 0.5, Decimal(rng.randint(3, 40) * 1000), "USD",
                    None, None, rng.choice(("email", "phone", "whatsapp")), True,
                    rng.random() < 0.9, rng.random() < 0.3,
                    '{"utm_source": "' + rng.choice(("google", "facebook", "partner")) + '"}',
                    rng.randint(1, lead_id - 1) if status == LeadStatus.DUPLICATE and n else None,
                    hashlib.sha256(email.encode()).hexdigest(), created[n], created[n]))
        with cur.copy("COPY lead_destinations (lead_id, country, position) FROM STDIN") as copy:
            for n in range(LEADS):
                for position, country in enumerate(rng.sample(DESTINATIONS, rng.randint(1, 3))):
                    copy.write_row((n + 1, country, position))
        cur.execute("SELECT setval('leads_id_seq', %s)", (LEADS,))
        conn.commit()
        conn.autocommit = True
        # As autovacuum would have left a table this old: visibility map set, statistics made.
        cur.execute("VACUUM ANALYZE leads, lead_destinations, users, treatments")
    return {"users": users, "treatments": [slug for _, slug in treatments], "now": now}


def mixed_filters(rng: random.Random, known: dict) -> list[tuple[dict, int]]:
    """Query strings as coordinators would send them: one filter or a few, a q= by e-mail or
    reference, now and then pages 2 and 3 of the same filters. More than REQUESTS: a page 2
    or 3 is skipped when the page before it was the last."""
    now = known["now"]

    def one() -> dict:
        choice = rng.randrange(12)
        if choice == 0:
            return {}
        if choice == 1:
            return {"status": rng.choice(list(STATUSES))}
        if choice == 2:
            return {"treatment": rng.choice(known["treatments"])}
        if choice == 3:
            return {"country": rng.choice(list(COUNTRIES))}
        if choice == 4:
            return {"destination": rng.choice(DESTINATIONS)}
        if choice == 5:
            return {"assigned_to": rng.choice(("me", "none", str(rng.choice(known["users"]))))}
        if choice == 6:
            start = now - timedelta(days=rng.randint(1, 360))
            return {"created_from": start.date().isoformat(),
                    "created_to": (start + timedelta(days=rng.choice((1, 7, 30)))).date()
                    .isoformat()}
        if choice == 7:
            return {"status": rng.choice((LeadStatus.NEEDS_REVIEW, LeadStatus.ROUTED)),
                    "assigned_to": "me"}
        if choice == 8:
            return {"status": rng.choice(list(STATUSES)),
                    "treatment": rng.choice(known["treatments"][:5]),
                    "country": rng.choice(("US", "GB", "CA"))}
        if choice == 9:
            return {"country": rng.choice(list(COUNTRIES)),
                    "created_from": (now - timedelta(days=rng.choice((7, 30, 90)))).date()
                    .isoformat()}
        if choice == 10:
            return {"q": email_of(rng.randrange(LEADS))}
        return {"q": f"MT-{rng.randrange(LEADS):07d}"}

    wanted = []
    while len(wanted) < 2 * REQUESTS:
        filters = one()
        pages = rng.choice((1, 1, 1, 2, 3))
        wanted += [(filters, page) for page in range(1, pages + 1)]
    return wanted


FLOOR_FILTERS = {
    "status": "l.status = %s", "country": "l.country = %s",
    "treatment": "t.slug = %s",
    "destination": "l.id IN (SELECT lead_id FROM lead_destinations WHERE country = %s)",
}


def day_start(text: str, days: int = 0) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC) + timedelta(days=days)


def floor_query(filters: dict, me: int, before: tuple | None) -> tuple[str, list]:
    """The page as one bare SQL query: the lead's columns, its treatment's slug and its
    destinations, newest first, no decryption."""
    where, params = [], []
    for name, value in filters.items():
        if name in FLOOR_FILTERS:
            where.append(FLOOR_FILTERS[name])
            params.append(value)
    if "created_from" in filters:
        where.append("l.created_at >= %s")
        params.append(day_start(filters["created_from"]))
    if "created_to" in filters:  # a date means the whole day, as the app reads it
        where.append("l.created_at < %s")
        params.append(day_start(filters["created_to"], days=1))
    assignee = filters.get("assigned_to")
    if assignee == "none":
        where.append("l.assigned_to_id IS NULL")
    elif assignee is not None:
        where.append("l.assigned_to_id = %s")
        params.append(me if assignee == "me" else int(assignee))
    if "q" in filters:
        where.append("(l.reference = %s OR l.email_key = %s)")
        params += [filters["q"].upper(), email_lookup_key(filters["q"])]
    if before is not None:  # the (created_at, id) the cursor names
        where.append("(l.created_at, l.id) < (%s, %s)")
        params += list(before)
    sql = ("SELECT l.*, t.slug, ARRAY(SELECT d.country FROM lead_destinations d "
           "WHERE d.lead_id = l.id ORDER BY d.position) FROM leads l JOIN treatments t "
           "ON t.id = l.treatment_id" + (" WHERE " + " AND ".join(where) if where else "")
           + f" ORDER BY l.created_at DESC, l.id DESC LIMIT {PAGE + 1}")
    return sql, params


def list_figures(base: str, token: str, dsn: str, wanted: list, me: int) -> dict:
    """Each request to the app, then the floor's query for the same page, in turn, so that
    both see the same moment of a shared machine."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    app_ms, floor_ms, by_kind, rows = [], [], {}, 0
    cursor = None
    with psycopg.connect(dsn) as conn:
        for warm in wanted[:10]:  # imports, connections, caches, both workers
            session.get(base + "/api/v1/leads", params=warm[0], timeout=60).raise_for_status()
            conn.execute(*floor_query(warm[0], me, None)).fetchall()
        for filters, page in wanted:
            if len(app_ms) == REQUESTS:
                break
            if page == 1:
                cursor = None
            elif cursor is None:  # the previous page was the last
                continue
            params = {**filters, **({"cursor": cursor} if cursor else {})}
            start = time.perf_counter()
            response = session.get(base + "/api/v1/leads", params=params, timeout=60)
            elapsed = (time.perf_counter() - start) * 1000
            response.raise_for_status()
            body = response.json()
            app_ms.append(elapsed)
            kind = "+".join(sorted(filters)) or "none"
            by_kind.setdefault(kind if page == 1 else f"{kind} page {page}", []).append(elapsed)
            rows += len(body["items"])
            start = time.perf_counter()
            conn.execute(*floor_query(filters, me, decode_timed_cursor(cursor) if cursor else None)
                         ).fetchall()
            floor_ms.append((time.perf_counter() - start) * 1000)
            cursor = body["next_cursor"]
    return {"requests": len(app_ms), "p50": percentile(app_ms, 0.5),
            "p95": percentile(app_ms, 0.95), "floor_p50": percentile(floor_ms, 0.5),
            "floor_p95": percentile(floor_ms, 0.95), "rows_per_page": rows / len(app_ms),
            "slowest": sorted(((round(max(times), 1), kind) for kind, times in by_kind.items()),
                              reverse=True)[:5]}


def export_figures(base: str, token: str, master: int) -> dict:
    """The whole export streamed and counted, with every worker's memory sampled meanwhile;
    the serving worker is the one that spent the CPU."""
    workers = children(master)
    before_cpu = process_cpu()
    baseline = {pid: rss_kib(pid) for pid in workers}
    peaks = dict(baseline)
    done = threading.Event()

    def sample():
        while not done.is_set():
            for pid in workers:
                peaks[pid] = max(peaks[pid], rss_kib(pid))
            time.sleep(SAMPLE_EVERY)

    sampler = threading.Thread(target=sample)
    sampler.start()
    start = time.perf_counter()
    lines = size = 0
    complete = True
    try:
        with requests.get(base + "/api/v1/leads/export.csv", stream=True, timeout=600,
                          headers={"Authorization": f"Bearer {token}"}) as response:
            response.raise_for_status()
            for chunk in response.iter_content(chunk_size=1 << 16):
                lines += chunk.count(b"\n")
                size += len(chunk)
    except requests.exceptions.ChunkedEncodingError:
        complete = False  # the worker was stopped mid-stream (see bench/out/lead-list-app.log)
    finally:
        done.set()
        sampler.join()
    seconds = time.perf_counter() - start
    after_cpu = process_cpu()
    serving = max(workers, key=lambda pid: after_cpu.get(pid, ("", 0, 0))[2]
                  - before_cpu.get(pid, ("", 0, 0))[2])
    return {"rows": lines - 1, "complete": complete, "seconds": seconds, "mib": size / 2**20,
            "peak_rss_mib": peaks[serving] / 1024, "before_rss_mib": baseline[serving] / 1024}


def run() -> dict:
    rng = random.Random(20261203)
    with clean_redis(), database("lead_list") as dsn, processes() as running:
        env = app_env(dsn)
        flask_command(env, "db", "upgrade")
        flask_command(env, "seed-demo")
        token = flask_command(env, "users", "create", "--email", "coordinator@bench.local",
                              "--role", "coordinator").strip().splitlines()[-1]
        start = time.perf_counter()
        known = fill(dsn, env, rng)
        filled = time.perf_counter() - start
        print(f"bench: {LEADS} leads loaded in {filled:.0f} s", flush=True)
        with psycopg.connect(dsn) as conn:
            me = conn.execute("SELECT id FROM users WHERE email = 'coordinator@bench.local'"
                              ).fetchone()[0]
        base = gunicorn(running, "lead-list-app", "wsgi:app", env)
        listed = list_figures(base, token, dsn, mixed_filters(rng, known), me)
        exported = export_figures(base, token, running.started[0].pid)
    return {"leads": LEADS, "fill_s": round(filled, 1), "list": listed, "export": exported}
