"""`flask --app wsgi users create | users deactivate` (CONTRACT §1)."""

import click
from flask.cli import AppGroup

from leads.accounts import operations as staff
from leads.accounts.models import ROLES
from leads.core.database import db

users = AppGroup("users", help="Staff users.")


def staff_email_option(option: str, email: str) -> str:
    try:
        return staff.staff_email(email)
    except staff.NotAnEmail as error:
        raise click.ClickException(f"{option}: {error}") from None


@users.command("create")
@click.option("--email", required=True, help="The user's e-mail address.")
@click.option("--role", required=True, type=click.Choice(ROLES), help="What the user may do.")
def create_user(email: str, role: str) -> None:
    """Create a staff user and print their API token once."""
    email = staff_email_option("--email", email)
    try:
        _, token = staff.create_user(email, role)
    except staff.UserExists:
        raise click.ClickException(f"a user with e-mail {email} exists already") from None
    db.session.commit()
    click.echo(token)


@users.command("deactivate")
@click.option("--email", required=True, help="The user's e-mail address.")
def deactivate_user(email: str) -> None:
    """Make a staff user inactive: every token of theirs is refused from their next request."""
    email = staff_email_option("--email", email)
    user = staff.find_user(email)
    if user is None:
        raise click.ClickException(f"no user with e-mail {email}")
    staff.update_user(user, {"active": False})
    db.session.commit()
    click.echo(f"deactivated {email}")
    # The operator can always make another admin here, so this is said, not refused.
    if staff.active_admin_count() == 0:
        click.echo("no active admin is left; make one with `users create --role admin`",
                   err=True)
