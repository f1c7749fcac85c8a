"""Background jobs are named once (leads.core.jobs.Job): every name beat schedules and the
outbox stages is a task the workers have."""

from leads.core.jobs import Job


def test_every_job_and_every_beat_entry_is_a_task_the_workers_run(test_env):
    from workers.celery import app

    app.loader.import_default_modules()
    registered = set(app.tasks)
    scheduled = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert scheduled, "beat schedules nothing"
    assert scheduled - registered == set()
    assert set(Job) - registered == set()


def test_the_worker_tasks_acknowledge_late(test_env):
    # A task given back when its worker dies mid-way is run again; every job is idempotent.
    from workers.celery import app

    app.loader.import_default_modules()
    assert all(app.tasks[job].acks_late for job in Job)
