"""The page forms (Flask-WTF): each carries a CSRF token, checked by CSRFProtect before any
view runs (leads/web/pages/__init__.py)."""

from flask import request
from flask_babel import lazy_gettext
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import (
    HiddenField,
    PasswordField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired

from leads.accounts.models import ROLES


def given_query() -> dict:
    """The query string without its empty values: a browser sends every field of a form,
    and an empty one filters nothing."""
    return {name: value for name, value in request.args.items() if value.strip()}


class SignInForm(FlaskForm):
    """A secret shown once elsewhere: a clinic's API key or a staff token."""

    secret = PasswordField(validators=[InputRequired(message=lazy_gettext("Enter it here."))])


class ActionForm(FlaskForm):
    """A form that is only a button (sign out, accept, ...): its CSRF token is all it sends."""


# The console's forms. Their fields only carry what a person typed: the API's schemas judge
# it (leads/pipeline/schemas.py), so no rule is written here a second time.

class QueueFilterForm(FlaskForm):
    """The queue's filters, sent by GET (a link one can keep), so without a CSRF token."""

    class Meta:
        csrf = False

    q = StringField()
    status = SelectField(validate_choice=False)
    treatment = SelectField(validate_choice=False)
    assigned_to = SelectField(validate_choice=False)
    country = StringField()
    destination = StringField()
    created_from = StringField()
    created_to = StringField()


class PriorityForm(FlaskForm):
    priority = SelectField(validate_choice=False)


class TagsForm(FlaskForm):
    tags = StringField()


class NoteForm(FlaskForm):
    body = TextAreaField()


class TransitionForm(FlaskForm):
    to = SelectField(validate_choice=False)
    reason = StringField()


class RerouteForm(FlaskForm):
    exclude_clinic_ids = SelectMultipleField(validate_choice=False)


class StatusTokenForm(FlaskForm):
    """A form of the patient's status page: the status token travels in a hidden field,
    not in the form's URL."""

    token = HiddenField()


class UploadForm(StatusTokenForm):
    file = FileField(validators=[FileRequired(message=lazy_gettext("Choose a file to add."))])


class WithdrawForm(StatusTokenForm):
    """The withdrawal's confirmation: a button."""


class DeclineForm(FlaskForm):
    """Turning a referral down: the page asks for the reason the coordinators will read."""

    reason = TextAreaField(validators=[DataRequired(
        message=lazy_gettext("Say why you decline, for the coordinators."))])


class QuoteForm(FlaskForm):
    """A quote as typed; the API's QuoteInSchema judges it (leads/web/pages/clinic.py)."""

    amount = StringField()
    currency = StringField()
    includes = TextAreaField()
    valid_until = StringField()
    notes = TextAreaField()


class FunnelForm(FlaskForm):
    """The funnel's window (GET: it changes nothing, so it carries no CSRF token)."""

    class Meta:
        csrf = False

    created_from = StringField()
    created_to = StringField()


ROLE_WORDS = {"coordinator": lazy_gettext("Coordinator"), "admin": lazy_gettext("Admin")}


class NewUserForm(FlaskForm):
    """A staff user to add, as typed; the API's StaffUserInSchema judges it."""

    email = StringField()
    role = SelectField(choices=[SelectChoice(role, ROLE_WORDS[role]) for role in ROLES])
