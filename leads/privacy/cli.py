"""`flask --app wsgi people export | people erase | keys rotate` (CONTRACT §1)."""

import json

import click
from flask.cli import AppGroup
from marshmallow import ValidationError

from leads.accounts import operations as staff
from leads.accounts.cli import staff_email_option
from leads.core.database import db
from leads.pipeline.workflow import actor_of
from leads.privacy.people import erase_person, leads_of
from leads.privacy.personal import keyring
from leads.privacy.rotation import rotate, values_not_current
from leads.privacy.schemas import ErasedSchema, ErasureSchema, PersonExportSchema

people = AppGroup("people", help="A person's rights over their data.")
keys = AppGroup("keys", help="The keys personal data is encrypted with (DATA_KEYS).")


def _person_form(email: str, reason: str | None = None) -> dict:
    """The address (and reason) read as the API reads them."""
    try:
        return ErasureSchema().load({"email": email, "reason": reason})
    except ValidationError as error:
        raise click.ClickException("; ".join(
            f"--{name}: {' '.join(messages)}" for name, messages in error.messages.items()
        )) from None


@people.command("export")
@click.option("--email", required=True, help="The person's e-mail address.")
def export_person(email: str) -> None:
    """Print, as JSON, everything held about the person with that e-mail address."""
    email = _person_form(email)["email"]
    held = PersonExportSchema().dump({"email": email, "leads": leads_of(email)})
    click.echo(json.dumps(held, indent=2, ensure_ascii=False))


@people.command("erase")
@click.option("--email", required=True, help="The person's e-mail address.")
@click.option("--by", "by_email", required=True, help="The e-mail of the admin who erases.")
@click.option("--reason", default=None, help="Why (kept on each lead's timeline).")
def erase_person_command(email: str, by_email: str, reason: str | None) -> None:
    """Erase that person's personal data from every lead of theirs; prints what was erased."""
    admin = staff.find_user(staff_email_option("--by", by_email))
    if admin is None or admin.role != "admin" or not admin.active:
        raise click.ClickException(f"--by: {by_email} is not an active admin")
    body = _person_form(email, reason)
    erased = erase_person(body["email"], actor_of(admin), body["reason"])
    db.session.commit()
    click.echo(json.dumps(ErasedSchema().dump(erased)))


@keys.command("rotate")
@click.option("--batch-size", default=200, show_default=True, type=click.IntRange(1, 100_000),
              help="Rows re-encrypted per committed batch.")
def rotate_keys(batch_size: int) -> None:
    """Re-encrypt every encrypted value under the newest of DATA_KEYS; safe beside the running
    service, and safe to stop and run again."""
    current = keyring()
    click.echo(f"re-encrypting under key id {current.newest} "
               f"(DATA_KEYS: {', '.join(current.key_ids)})")
    total = 0
    for result in rotate(db.session, db.metadata, current, batch_size):
        meanwhile = (f", {result.changed_meanwhile} changed meanwhile (left as written)"
                     if result.changed_meanwhile else "")
        click.echo(f"{result.column}: {result.rotated} re-encrypted{meanwhile}")
        total += result.rotated
    left = values_not_current(db.session, db.metadata, current)
    click.echo(f"{total} values re-encrypted; {left} under an older key")
    if left:
        raise click.ClickException(
            f"{left} values were written meanwhile under an older key: give every process "
            f"DATA_KEYS starting with the key of id {current.newest}, then run this again")
