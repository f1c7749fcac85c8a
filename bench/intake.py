"""Intake under load: the real app beside the floor (bench/floor.py), both on gunicorn with
two workers and PostgreSQL, loaded by wrk with distinct valid inquiries; then the app paced to
half its top rate. `profile` loads the app once more with py-spy on its workers."""

from bench.support import (
    REDIS_URL,
    children,
    clean_redis,
    database,
    flask_command,
    gunicorn,
    median,
    processes,
    py_spy,
    sqlalchemy_url,
    summarize_stacks,
    wrk,
)
from config import new_data_key

HALF_RATE_SECONDS = 15
# The app and the floor take turns, a slice each, so that both see the same drift of this
# host's speed, which moved by half within a minute (bench/RESULTS.md, "Intake and mail,
# 2026-12-07"). One slice's ratio to the next moves by up to 0.3 on its own; six slices a
# side (since 2026-12-08; three before) make the mean's own spread about 0.7 of what three
# gave (1/sqrt 2), for 30 s more per run.
SLICES = 6
SLICE_SECONDS = 5
CONNECTIONS = 8
PROFILE_SECONDS = 10
PATH = "/api/v1/inquiries"


def app_env(dsn: str) -> dict:
    """The app's settings for a run; fresh keys, which the floor is given too."""
    return {"DATABASE_URL": sqlalchemy_url(dsn), "REDIS_URL": REDIS_URL, "LOG_LEVEL": "WARNING",
            "INQUIRY_RATE_LIMIT": "1000000 per minute", "SECRET_KEY": "bench",
            "DATA_KEYS": new_data_key(), "BLIND_INDEX_KEY": new_data_key()}


def floor_env(dsn: str, app: dict) -> dict:
    return {"FLOOR_DSN": dsn, "DATA_KEYS": app["DATA_KEYS"],
            "BLIND_INDEX_KEY": app["BLIND_INDEX_KEY"]}


def run(run_id: str) -> dict:
    with clean_redis(), database("intake") as dsn, processes() as running:
        env = app_env(dsn)
        flask_command(env, "db", "upgrade")
        flask_command(env, "seed-demo")
        app = gunicorn(running, "intake-app", "wsgi:app", env) + PATH
        floor = gunicorn(running, "intake-floor", "bench.floor:app", floor_env(dsn, env)) + PATH
        for url in (app, floor):  # warm both: imports, connections, caches
            wrk(url, 3, CONNECTIONS, f"{run_id}w")
        turns = [(wrk(app, SLICE_SECONDS, CONNECTIONS, f"{run_id}a{turn}"),
                  wrk(floor, SLICE_SECONDS, CONNECTIONS, f"{run_id}f{turn}"))
                 for turn in range(SLICES)]
        measured, baseline = (combined([pair[side] for pair in turns]) for side in (0, 1))
        # Half the top rate: each connection waits between requests so that together they
        # offer about half of what the app took at full load (a little less for the time
        # each request itself takes).
        target = measured["rps"] / 2
        pause = CONNECTIONS * 1000 / target * 0.9
        half = wrk(app, HALF_RATE_SECONDS, CONNECTIONS, f"{run_id}h", delay_ms=pause)
    return {"app": measured, "floor": baseline, "half": half, "half_target": round(target, 1),
            "ratio": measured["rps"] / baseline["rps"],
            "turn_ratios": [round(app_turn["rps"] / floor_turn["rps"], 2)
                            for app_turn, floor_turn in turns]}


def combined(slices: list[dict]) -> dict:
    """One figure of a load's slices: their mean rate, median p50 and worst p99."""
    return {"rps": sum(s["rps"] for s in slices) / len(slices),
            "p50": median([s["p50"] for s in slices]),
            "p99": max(s["p99"] for s in slices),
            "failed": sum(s["failed"] for s in slices),
            "socket_errors": " ".join(s["socket_errors"] for s in slices if s["socket_errors"]),
            "cpu_busy": round(sum(s["cpu_busy"] for s in slices) / len(slices), 1)}


def profile(run_id: str) -> dict:
    """The app at full load once more, with py-spy sampling both gunicorn workers."""
    with clean_redis(), database("intake_profile") as dsn, processes() as running:
        env = app_env(dsn)
        flask_command(env, "db", "upgrade")
        flask_command(env, "seed-demo")
        base = gunicorn(running, "intake-profile-app", "wsgi:app", env)
        app = base + PATH
        wrk(app, 3, CONNECTIONS, f"{run_id}pw")
        master = running.started[0].pid
        spies, outputs = py_spy(running, "intake-profile", children(master), PROFILE_SECONDS)
        loaded = wrk(app, PROFILE_SECONDS, CONNECTIONS, f"{run_id}p")
        for spy in spies:
            spy.wait(timeout=60)
    return {"under_profiler": loaded,
            **summarize_stacks(outputs, "Flask.wsgi_app (flask/app.py")}
