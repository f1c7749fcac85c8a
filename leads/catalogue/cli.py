"""`flask --app wsgi seed-demo | clinics issue-key` (CONTRACT §1)."""

import click
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import func, select

from leads.accounts.operations import issue_clinic_key
from leads.catalogue.demo import seed_demo
from leads.catalogue.models import Accreditation, Clinic, ClinicTreatment, CurrencyRate, Treatment
from leads.core.database import db

clinics = AppGroup("clinics", help="Partner clinics.")


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
