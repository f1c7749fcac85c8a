"""gunicorn's settings (`gunicorn -c gunicorn.conf.py wsgi:app`; gunicorn also reads this file
by itself when started from here): where it listens, how many workers, logs as JSON lines,
and the metrics of every worker added up (CONTRACT §2, §8)."""

import glob
import os
import shutil
import tempfile

bind = os.environ.get("GUNICORN_BIND") or f"127.0.0.1:{os.environ.get('PORT') or 5000}"
workers = int(os.environ.get("WEB_CONCURRENCY") or 2)
# A sync worker tells the arbiter it is alive only between requests, so this also bounds the
# longest response: at the default 30 s the CSV export of 200,000 leads was cut off mid-file
# (bench/RESULTS.md, lead list). A hung worker is still stopped, only later.
timeout = 300

# prometheus_client picks, when first imported, whether its counters live in the process or in
# files under this directory that /metrics adds up: so it is set here, before any worker forks
# and imports the app (with --preload too). A reload runs this file again and keeps it.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.environ["LEADS_OWN_METRICS_DIR"] = (
        tempfile.mkdtemp(prefix="leads-metrics-"))


def on_starting(server):
    # Files of an earlier run would be counted again.
    for stale in glob.glob(os.path.join(os.environ["PROMETHEUS_MULTIPROC_DIR"], "*.db")):
        os.unlink(stale)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if os.environ.get("LEADS_OWN_METRICS_DIR") == os.environ["PROMETHEUS_MULTIPROC_DIR"]:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)


# Every line, access log included, is JSON through the app's own handler: its filters add the
# request id and keep personal data and tokens out. The access line's path is PATH_INFO, never
# the request line, so no query string (a status link's `token`) is written.
loglevel = os.environ.get("LOG_LEVEL", "INFO").lower()
access_log_format = "%(m)s %(U)s %(s)s"
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "context": {"()": "leads.core.logs.Context"},
        "redact": {"()": "leads.core.logs.Redact"},
        "access": {"()": "leads.core.logs.GunicornAccess"},
    },
    "formatters": {"json": {"()": "leads.core.logs.Json"}},
    "handlers": {
        "json": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr",
                 "formatter": "json", "filters": ["context", "redact"]},
    },
    "root": {"level": loglevel.upper(), "handlers": ["json"]},
    "loggers": {
        "gunicorn.error": {"level": loglevel.upper(), "handlers": [], "propagate": True},
        "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": True,
                            "filters": ["access"]},
    },
}
