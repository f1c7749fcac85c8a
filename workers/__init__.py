"""Celery workers. `celery -A workers worker|beat` finds the app in `workers.celery`."""
