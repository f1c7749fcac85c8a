"""The WSGI entry point: `gunicorn wsgi:app`, `flask --app wsgi ...`."""

from leads.web.app import create_app

app = create_app()
