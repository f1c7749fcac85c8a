"""The Celery app the workers run: every task runs inside the Flask app's context."""

import logging
from collections.abc import Mapping

from celery import Celery, Task, signals

from leads.core.logs import bind, configure_logging, unbind
from leads.web.app import create_app
from workers.settings import TASK_MODULES, celery_settings

flask_app = create_app()


class FlaskTask(Task):
    def __call__(self, *args, **kwargs):
        with flask_app.app_context():
            return self.run(*args, **kwargs)


app = Celery("workers", task_cls=FlaskTask, include=TASK_MODULES)
app.conf.update(celery_settings(flask_app.config))


# --- logs: JSON lines, each line of a task naming it (CONTRACT §2) -------------------------

@signals.setup_logging.connect
def _json_logs(loglevel=None, **_):
    # Connected, this replaces Celery's own set-up (plain text) in the worker, its pool
    # and beat; the level comes from `--loglevel`.
    configure_logging(loglevel or flask_app.config["LOG_LEVEL"])


@signals.celeryd_init.connect
def _no_banner(instance=None, **_):
    # The start-up banner is plain text on stdout: every line a worker writes is JSON. What
    # it shows is logged as the worker starts (`Connected to ...`, `... ready.`).
    instance.quiet = True


_bound: dict[str, object] = {}


@signals.task_prerun.connect
def _bind_task(task_id=None, task=None, **_):
    _bound[task_id] = bind(task_id=task_id, task_name=task.name)


@signals.task_postrun.connect
def _unbind_task(task_id=None, **_):
    token = _bound.pop(task_id, None)
    if token is not None:
        unbind(token)


class CeleryTaskLines(logging.Filter):
    """Celery's own lines about a task (received, succeeded, failed), some written outside
    it, carry the task in `data` (its id, name, arguments): named the way every task line
    is, and the arguments left out."""

    def filter(self, record: logging.LogRecord) -> bool:
        data = getattr(record, "data", None)
        if isinstance(data, Mapping) and "id" in data:
            record.task_id, record.task_name = data["id"], data.get("name")
            del record.data
        return True


for _logger in ("celery.app.trace", "celery.worker.strategy", "celery.worker.request"):
    logging.getLogger(_logger).addFilter(CeleryTaskLines())
