"""Operator commands (CONTRACT §1), each declared by its domain: `flask --app wsgi seed-demo |
users create | users deactivate | clinics issue-key | people export | people erase | keys
rotate`."""

from flask import Flask

from leads.accounts.cli import users
from leads.catalogue.cli import clinics, seed_demo_command
from leads.privacy.cli import keys, people


def register(app: Flask) -> None:
    for command in (users, clinics, people, keys, seed_demo_command):
        app.cli.add_command(command)
