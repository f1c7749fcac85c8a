"""End to end: 5,000 inquiries accepted, then drained by two worker processes and a beat
(routing, acknowledgements, clinic notifications, review alerts) into an aiosmtpd sink; beside
it, the floor of handing the same number of messages straight to the sink with smtplib. Also
the workers' memory after the first 100 leads and after all of them.

The demo catalogue with its clinics' monthly caps raised (through the admin API), and the
inquiries spread over the treatments and destinations some clinic can take, so that most
leads route: one in 20 without consent to share (review), one in 20 after the first 200 a
repeat of an earlier inquiry (duplicate). The run states the mix it got.

`profile` drains a smaller batch with the workers logging each task's time and py-spy
sampling their pool processes."""

import email
import os
import re
import smtplib
import tempfile
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import psycopg
import requests
from aiosmtpd.controller import Controller

from bench.intake import app_env
from bench.support import (
    BIN,
    OUT,
    busy_share,
    children,
    clean_redis,
    cpu_by_group,
    cpu_times,
    database,
    flask_command,
    free_port,
    gunicorn,
    process_cpu,
    processes,
    py_spy,
    rss_kib,
    stop_spies,
    summarize_stacks,
)

LEADS = 5000
EARLY = 100
PROFILE_LEADS = 1000
DRAIN_LIMIT = 600  # seconds before the run gives up waiting
OPEN_CAP = 100_000  # the largest monthly cap the API takes
MIX = 20  # of every 20 inquiries, one without consent to share and one a repeat
NO_CONSENT, REPEAT = 7, 13
REPEATS_FROM = 200  # a repeat names an inquiry this many before it, long since accepted


class Sink:
    """A real SMTP server that counts what it receives by Message-ID, and apart the
    acknowledgements (the only mail sent to the patients' bench.* addresses; a repeat's
    patient has two, one per lead, each with its own Message-ID)."""

    def __init__(self):
        self.port = free_port()
        self.lock = threading.Lock()
        self.message_ids: Counter = Counter()
        self.acknowledgements: Counter = Counter()
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                message = email.message_from_bytes(envelope.original_content)
                with sink.lock:
                    sink.message_ids[message["Message-ID"]] += 1
                    if any(r.startswith("bench.") for r in envelope.rcpt_tos):
                        sink.acknowledgements[message["Message-ID"]] += 1
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def received(self) -> int:
        with self.lock:
            return sum(self.message_ids.values())

    def acknowledged(self) -> int:
        with self.lock:
            return len(self.acknowledgements)


def open_catalogue(api: str, token: str) -> list[tuple[str, str]]:
    """Raise every active clinic's monthly cap through the admin API, so that the caps do not
    decide the run; answer the (treatment, country) pairs that some clinic may take: active,
    offering the treatment, with a verified accreditation valid today."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    today, pairs, cursor = date.today().isoformat(), set(), None
    while True:
        listed = session.get(f"{api}/api/v1/clinics", timeout=30,
                             params={"limit": 200, **({"cursor": cursor} if cursor else {})})
        listed.raise_for_status()
        for clinic in listed.json()["items"]:
            if not clinic["active"]:
                continue
            session.patch(f"{api}/api/v1/clinics/{clinic['id']}", timeout=30,
                          json={"monthly_referral_cap": OPEN_CAP}).raise_for_status()
            if any(a["verified"] and (a["valid_from"] or today) <= today
                   <= (a["valid_until"] or today) for a in clinic["accreditations"]):
                pairs.update((offer["slug"], clinic["country"]) for offer in clinic["treatments"])
        cursor = listed.json()["next_cursor"]
        if cursor is None:
            return sorted(pairs)


def inquiry(run_id: str, n: int, pairs: list[tuple[str, str]]) -> dict:
    """The n-th inquiry of the run (see the module's docstring for the mix)."""
    origin = n - REPEATS_FROM if n % MIX == REPEAT and n >= REPEATS_FROM else n
    while origin % MIX == REPEAT and origin >= REPEATS_FROM:  # a repeat of a repeat
        origin -= REPEATS_FROM
    treatment, country = pairs[origin % len(pairs)]
    return {
        "patient": {"first_name": "Ana", "last_name": "Ruiz",
                    "email": f"bench.{run_id}.{origin}@example.org", "country": "US",
                    "language": ("es", "de", "en", "fr")[n % 4]},
        "treatment": treatment,
        "condition": "Facet joint arthritis L4-L5 confirmed by X-ray, pain for 3 years.",
        "destinations": [country], "budget": {"amount": 12000, "currency": "USD"},
        "consent": {"data_processing": True, "share_with_clinics": n % MIX != NO_CONSENT},
    }


def post_all(url: str, run_id: str, count: int, pairs: list[tuple[str, str]]) -> None:
    local = threading.local()

    def post(n: int) -> int:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        return local.session.post(url, json=inquiry(run_id, n, pairs), timeout=30).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = Counter(pool.map(post, range(count)))
    if statuses != {202: count}:
        raise RuntimeError(f"posting the inquiries answered {dict(statuses)}")


def smtp_floor(port: int, count: int) -> float:
    """Seconds for two senders to hand `count` messages to the sink, a connection each."""

    def send(share: int) -> None:
        for n in range(share):
            with smtplib.SMTP("127.0.0.1", port) as smtp:
                smtp.sendmail("care@localhost", [f"floor{n}@example.org"],
                              f"Subject: floor {n}\r\nMessage-ID: <floor{n}@bench>\r\n\r\nx")

    start = time.perf_counter()
    threads = [threading.Thread(target=send, args=(count // 2,)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start


def _counts(conn: psycopg.Connection) -> tuple[int, int]:
    waiting = conn.execute("SELECT count(*) FROM leads WHERE status = 'received'").fetchone()
    unsent = conn.execute("SELECT count(*) FROM email_messages WHERE status <> 'sent'").fetchone()
    return waiting[0], unsent[0]


TASK_TIME = re.compile(r"Task (\w+)\[[^\]]+\] succeeded in ([\d.]+)s")


def task_times(names: list[str]) -> dict:
    """Per task name: how many ran and their mean time in ms, from the workers' INFO logs."""
    found = defaultdict(list)
    for name in names:
        for task, seconds in TASK_TIME.findall((OUT / f"{name}.log").read_text()):
            found[task].append(float(seconds) * 1000)
    return {task: {"count": len(times), "mean_ms": round(sum(times) / len(times), 2),
                   "total_s": round(sum(times) / 1000, 1)}
            for task, times in sorted(found.items(), key=lambda item: -sum(item[1]))}


def mix(statuses: dict) -> dict:
    """The run's outcomes: routed, sent to review, duplicates, and anything else."""
    named = ("routed", "needs_review", "duplicate")
    return {**{name: statuses.get(name, 0) for name in named},
            "other": sum(n for status, n in statuses.items() if status not in named)}


def run(run_id: str, leads: int = LEADS, profile: bool = False) -> dict:
    sink = Sink()
    sink.controller.start()
    tag = "e2e-profile" if profile else "e2e"
    try:
        with clean_redis() as broker, database(tag.replace("-", "_")) as dsn, \
                tempfile.TemporaryDirectory() as scratch, processes() as running:
            env = {**app_env(dsn), "SMTP_PORT": str(sink.port)}
            flask_command(env, "db", "upgrade")
            token = flask_command(env, "seed-demo").rsplit(":", 1)[1].strip()
            api = gunicorn(running, f"{tag}-app", "wsgi:app", env)
            pairs = open_catalogue(api, token)
            posted = time.perf_counter()
            post_all(api + "/api/v1/inquiries", run_id, leads, pairs)
            posting = time.perf_counter() - posted
            queued_before = broker.llen("celery")

            names = [f"{tag}-worker{n}" for n in (1, 2)]
            start, cpu_before, by_process = time.perf_counter(), cpu_times(), process_cpu()
            workers = [
                running.start(name, [
                    str(BIN / "celery"), "-A", "workers", "worker", "--concurrency", "1",
                    "--loglevel", "INFO" if profile else "WARNING", "-n", f"{name}@%h",
                    "--without-gossip", "--without-mingle"], env)
                for name in names]
            beat = running.start(f"{tag}-beat", [
                str(BIN / "celery"), "-A", "workers", "beat", "--loglevel", "WARNING", "-s",
                f"{scratch}/beat-schedule"], env)
            spies, outputs = [], []
            watch = psycopg.connect(dsn, autocommit=True)
            early_rss = routed = acknowledged = None
            longest_queue = queued_before
            # Repeats left `received` at intake: the early mark counts the workers' leads.
            received, _ = _counts(watch)
            while True:
                now = time.perf_counter() - start
                if profile and not spies and all(children(w.pid) for w in workers):
                    pool = [pid for w in workers for pid in children(w.pid)]
                    spies, outputs = py_spy(running, tag, pool, DRAIN_LIMIT)
                waiting, unsent = _counts(watch)
                longest_queue = max(longest_queue, broker.llen("celery"))
                if early_rss is None and received - waiting >= EARLY:
                    early_rss = sum(rss_kib(w.pid) for w in workers)
                if routed is None and waiting == 0:
                    routed = now
                if acknowledged is None and sink.acknowledged() >= leads:
                    acknowledged = now
                if routed is not None and acknowledged is not None and unsent == 0:
                    break
                if now > DRAIN_LIMIT:
                    raise RuntimeError(f"not drained in {DRAIN_LIMIT}s: {waiting} leads "
                                       f"waiting, {unsent} mails unsent")
                time.sleep(0.25)
            drained, cpu_busy = time.perf_counter() - start, busy_share(cpu_before, cpu_times())
            cpu_seconds = cpu_by_group(by_process, process_cpu(), {
                "workers": [w.pid for w in workers], "beat": [beat.pid],
                "bench (smtp sink, polling)": [os.getpid()], "gunicorn": [running.started[0].pid]})
            late_rss = sum(rss_kib(w.pid) for w in workers)
            stop_spies(spies)
            statuses = dict(watch.execute(
                "SELECT status, count(*) FROM leads GROUP BY status").fetchall())
            referrals = watch.execute("SELECT count(*) FROM referrals").fetchone()[0]
            alerts = watch.execute("SELECT count(*), count(message_id), count(DISTINCT "
                                   "message_id) FROM review_alerts").fetchone()
            watch.close()
        messages = sink.received()
        figures = {
            # The figure with the target: every lead routed and acknowledged. `all_mail_s`
            # waits also for the clinic notifications and review alerts routing queued.
            "leads": leads, "posting_s": round(posting, 1), "routed_s": round(routed, 1),
            "acknowledged_s": round(acknowledged, 1), "done_s": round(max(routed, acknowledged), 1),
            "all_mail_s": round(drained, 1),
            "messages": messages,
            "twice": sum(1 for count in sink.message_ids.values() if count > 1),
            "acknowledged": sink.acknowledged(),
            "acknowledged_twice": sum(1 for c in sink.acknowledgements.values() if c > 1),
            "lead_statuses": statuses, "mix": mix(statuses), "referrals": referrals,
            # Alerts that came within a person's spell wait for its digest
            # (REVIEW_ALERT_DIGEST_MINUTES, left at its default): after the run.
            "review_alerts": {"raised": alerts[0], "mailed": alerts[1], "in_mails": alerts[2],
                              "waiting_for_digest": alerts[0] - alerts[1]},
            "catalogue_pairs": len(pairs), "queued_before_workers": queued_before,
            "longest_queue": longest_queue, "cpu_busy_during_drain": cpu_busy,
            "cpu_seconds_during_drain": cpu_seconds,
        }
        if profile:
            figures["tasks"] = task_times(names)
            figures["stacks"] = summarize_stacks(outputs, "FlaskTask.__call__")
        else:
            figures.update(floor=round(smtp_floor(sink.port, messages), 1),
                           early_rss=early_rss, late_rss=late_rss)
    finally:
        sink.controller.stop()
    return figures


def profile(run_id: str) -> dict:
    return run(f"{run_id}p", PROFILE_LEADS, profile=True)
