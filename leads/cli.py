"""Operator commands (CONTRACT §1):
`flask --app wsgi seed-demo | users create | clinics issue-key`."""

import click
from flask import Flask
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import func, select

from leads.auth import issue_clinic_key, issue_staff_token
from leads.extensions import db
from leads.models import (
    ROLES,
    Accreditation,
    Clinic,
    ClinicTreatment,
    CurrencyRate,
    Treatment,
    User,
)

users = AppGroup("users", help="Staff users.")
clinics = AppGroup("clinics", help="Partner clinics.")


@users.command("create")
@click.option("--email", required=True, help="The user's e-mail address.")
@click.option("--role", required=True, type=click.Choice(ROLES), help="What the user may do.")
def create_user(email: str, role: str) -> None:
    """Create a staff user and print their API token once."""
    email = email.strip().lower()
    # Only the shape is checked: staff mail may go to an intranet or development name
    # (demo.local, localhost) that a check for public addresses refuses.
    local, at, domain = email.rpartition("@")
    if not (at and local and domain) or "@" in local or any(c.isspace() for c in email):
        raise click.ClickException(f"--email: {email!r} is not an e-mail address")
    if db.session.scalar(select(User).where(User.email == email)) is not None:
        raise click.ClickException(f"a user with e-mail {email} exists already")
    user = User(email=email, role=role)
    db.session.add(user)
    token = issue_staff_token(user)
    db.session.commit()
    click.echo(token)


@clinics.command("issue-key")
@click.argument("clinic_id", type=int)
def issue_key(clinic_id: int) -> None:
    """Print a new API key for a clinic once."""
    clinic = db.session.get(Clinic, clinic_id)
    if clinic is None:
        raise click.ClickException(f"no clinic with id {clinic_id}")
    _, secret = issue_clinic_key(clinic)
    db.session.commit()
    click.echo(secret)


def _catalogue_rows() -> int:
    return sum(db.session.scalar(select(func.count()).select_from(model))
               for model in (Treatment, Clinic, ClinicTreatment, Accreditation, CurrencyRate))


@click.command("seed-demo")
@with_appcontext
def seed_demo_command() -> None:
    """Load the demo catalogue; running it again changes nothing."""
    from leads.demo import seed_demo

    before = _catalogue_rows()
    admin_token = seed_demo()
    completed = _catalogue_rows() != before
    db.session.commit()
    if admin_token:
        click.echo(f"demo catalogue loaded; admin token (shown once): {admin_token}")
    elif completed:
        click.echo("demo catalogue completed; the admin existed already, its token is not "
                   "shown again")
    else:
        click.echo("demo catalogue already loaded; nothing changed")


def register(app: Flask) -> None:
    app.cli.add_command(users)
    app.cli.add_command(clinics)
    app.cli.add_command(seed_demo_command)
