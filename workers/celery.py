"""The Celery app the workers run: every task runs inside the Flask app's context."""

from celery import Celery, Task

from leads import create_app
from workers.settings import celery_settings

flask_app = create_app()


class FlaskTask(Task):
    def __call__(self, *args, **kwargs):
        with flask_app.app_context():
            return self.run(*args, **kwargs)


app = Celery("workers", task_cls=FlaskTask, include=["workers.tasks"])
app.conf.update(celery_settings(flask_app.config))
