"""The clinic portal (CONTRACT §9): sign-in with the clinic's API key, its referrals, one
referral with accept, decline and quote forms.

Every view does what the clinic API's does, through the same helpers
(leads/pipeline/api/clinic_referrals.py) and the same schemas: the list pages as
`GET /api/v1/clinic/referrals`, opening a referral marks it received, the patient's contact
details and files appear once the clinic has accepted, a quote is judged by `QuoteInSchema`."""

from decimal import Decimal, InvalidOperation

from flask import Blueprint, flash, redirect, url_for
from flask_babel import gettext, lazy_gettext
from marshmallow import EXCLUDE, ValidationError
from webargs.flaskparser import abort

from leads.accounts.operations import clinic_key_for
from leads.attachments.operations import clinic_attachment
from leads.core.database import db
from leads.core.paging import page
from leads.pipeline.api.clinic_referrals import answer_referral, opened_referral, own_referral
from leads.pipeline.clinic_schemas import (
    ClinicReferralQuerySchema,
    ClinicReferralSchema,
    DeclineSchema,
    QuoteInSchema,
)
from leads.pipeline.models import Referral
from leads.pipeline.queries import clinic_referrals
from leads.pipeline.states import (
    REFERRAL_STATUSES,
    REFERRAL_TRANSITIONS,
    UNANSWERED,
    ReferralStatus,
    allowed_targets,
)
from leads.pipeline.workflow import accept_referral, decline_referral, quote_referral
from leads.web.downloads import file_response
from leads.web.guards import Audience, SignedIn, allow, current_clinic
from leads.web.pages.forms import ActionForm, DeclineForm, QuoteForm, given_query
from leads.web.pages.rendering import render_page
from leads.web.pages.signing_in import sign_in_limit, sign_in_page, sign_out_page
from leads.web.pages.words import REFERRAL_STATUS_WORDS
from leads.web.parsing import refuse_nul
from leads.web.problems import flatten_errors

blp = Blueprint("clinic_pages", __name__, url_prefix="/clinic")


@blp.route("", methods=["GET", "POST"])
@sign_in_limit
@allow(Audience.ANYONE)
def sign_in():
    return sign_in_page(
        SignedIn.CLINIC, clinic_key_for, "clinic_pages.referrals",
        title=lazy_gettext("Clinic sign-in"), label=lazy_gettext("Your clinic's API key"),
        hint=lazy_gettext("The key starts with clk_. Your coordinator can issue a new one."),
        wrong=lazy_gettext("This key is not valid. Check it, or ask for a new one."))


@blp.post("/sign-out")
@allow(Audience.CLINIC_PAGE)
def sign_out():
    return sign_out_page("clinic_pages.sign_in")


@blp.get("/referrals")
@allow(Audience.CLINIC_PAGE)
def referrals():
    """This clinic's referrals, newest first, by status if asked, a page at a time."""
    query = _list_query()
    rows = clinic_referrals(current_clinic().id, query.get("status"))
    listed = page(db.session, rows, Referral.id, query["limit"], query["cursor"])
    return render_page("pages/clinic/referrals.html", clinic=current_clinic(),
                       referrals=listed["items"], next_cursor=listed["next_cursor"],
                       chosen_status=query.get("status"), limit=query["limit"],
                       statuses=REFERRAL_STATUSES,
                       status_words=REFERRAL_STATUS_WORDS)


def _list_query() -> dict:
    """The list's query as the API reads it."""
    given = given_query()
    refuse_nul(given, "query")
    try:
        return ClinicReferralQuerySchema(unknown=EXCLUDE).load(given)
    except ValidationError as error:
        abort(422, message=_naming(error))


def _naming(error: ValidationError) -> str:
    return " ".join(f"{field}: {' '.join(messages)}"
                    for field, messages in flatten_errors(error.messages).items())


@blp.get("/referrals/<int:referral_id>")
@allow(Audience.CLINIC_PAGE)
def referral(referral_id):
    """One referral; opening it tells the marketplace the clinic has seen it, as the API's
    GET does."""
    return _referral_page(opened_referral(referral_id))


def _referral_page(referral: Referral, status: int = 200, decline_form=None, quote_form=None):
    # What the API answers for this referral: the contact details and the files in it only
    # once the clinic has accepted.
    shown = ClinicReferralSchema().dump(referral)
    return render_page(
        "pages/clinic/referral.html", status=status, referral=referral, shown=shown,
        status_words=REFERRAL_STATUS_WORDS, action_form=ActionForm(),
        # Only the answers the referral's state allows are offered; a post of another one
        # (from a page left open, say) answers 409 with the reason.
        answerable=referral.status in UNANSWERED,
        quotable=ReferralStatus.QUOTED in allowed_targets(REFERRAL_TRANSITIONS, referral.status),
        decline_form=decline_form or DeclineForm(formdata=None),
        quote_form=quote_form or QuoteForm(formdata=None))


@blp.get("/referrals/<int:referral_id>/attachments/<int:attachment_id>")
@allow(Audience.CLINIC_PAGE)
def attachment(referral_id, attachment_id):
    """One of the lead's files, once this clinic has accepted; before, 404, as the API."""
    return file_response(clinic_attachment(own_referral(referral_id), attachment_id))


@blp.post("/referrals/<int:referral_id>/accept")
@allow(Audience.CLINIC_PAGE)
def accept(referral_id):
    answer_referral(referral_id, accept_referral)
    return _answered(referral_id, gettext("You accepted the referral. The patient's contact "
                                          "details are below."))


@blp.post("/referrals/<int:referral_id>/decline")
@allow(Audience.CLINIC_PAGE)
def decline(referral_id):
    form = DeclineForm()
    # The page asks for a reason (DeclineForm); the API's schema bounds it.
    declined = _loaded(form, DeclineSchema(), {"reason": form.reason.data}) \
        if form.validate() else None
    if declined is None:
        return _referral_page(own_referral(referral_id), 422, decline_form=form)
    answer_referral(referral_id, decline_referral, declined["reason"])
    return _answered(referral_id, gettext("You declined the referral."))


@blp.post("/referrals/<int:referral_id>/quote")
@allow(Audience.CLINIC_PAGE)
def quote(referral_id):
    form = QuoteForm()
    quote = _loaded(form, QuoteInSchema(), _quote_as_sent(form))
    if quote is None:
        return _referral_page(own_referral(referral_id), 422, quote_form=form)
    answer_referral(referral_id, quote_referral, quote)
    return _answered(referral_id, gettext("Your quote was sent to the patient."))


def _quote_as_sent(form: QuoteForm) -> dict:
    """The form's text as the API's JSON body would hold it: the amount a number, the
    includes one a line, an empty field left out."""
    body = {"amount": _number(form.amount.data), "currency": form.currency.data,
            "includes": [line for line in (form.includes.data or "").splitlines()
                         if line.strip()],
            "valid_until": form.valid_until.data, "notes": form.notes.data}
    return {name: value for name, value in body.items() if value not in (None, "")}


def _number(text: str | None):
    """A typed amount as JSON would carry it; text that is no number is passed on for the
    schema to refuse."""
    try:
        number = Decimal((text or "").strip())
    except InvalidOperation:
        return text
    if not number.is_finite():
        return text
    return int(number) if number == number.to_integral_value() else float(number)


def _loaded(form, schema, data: dict) -> dict | None:
    """`data` loaded by the API's schema, or None with each message put beside its field."""
    try:
        return schema.load(data)
    except ValidationError as error:
        for path, messages in flatten_errors(error.messages).items():
            field = getattr(form, path.split(".")[0])
            field.errors = [*field.errors, *messages]  # a tuple until the field is validated
        return None


def _answered(referral_id: int, message: str):
    flash(message, "info")
    return redirect(url_for("clinic_pages.referral", referral_id=referral_id), code=303)
