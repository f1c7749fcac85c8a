"""The patient's status page (CONTRACT §3): what `GET /api/v1/inquiries/{reference}` answers,
as a page in the lead's language, with the API's two actions: add a file, withdraw.

The status token is the patient's only key. It comes in the link's query (as `status_url`
has it) and leaves the page only where it is needed: the forms post it in a hidden field,
and the one link that carries it (to the withdrawal's confirmation) keeps it in the query
as the link itself does. Answers carry `Referrer-Policy: no-referrer` (leads/web/security.py).
"""

from flask import Blueprint, flash, redirect, request, url_for
from flask_babel import format_currency, format_decimal, get_locale, gettext, lazy_gettext

from leads.attachments.operations import (
    FileTooLarge,
    NotAKindWeTake,
    TooManyFiles,
    add_patients_file,
)
from leads.core.database import db
from leads.intake.api import patient_upload_limit
from leads.intake.operations import UnknownInquiry, patients_lead, patients_view
from leads.pipeline.states import LeadStatus, NotWithdrawable, ReferralStatus
from leads.pipeline.workflow import withdraw
from leads.web.guards import Audience, allow
from leads.web.pages.forms import UploadForm, WithdrawForm
from leads.web.pages.rendering import error_page, render_page, use_language
from leads.web.publisher import nudge_relay

blp = Blueprint("status_pages", __name__, url_prefix="/status")

# The lead's status in words, as the patient sees it (a spam lead is shown as received).
LEAD_STATUS_WORDS = {
    LeadStatus.RECEIVED: lazy_gettext("Received: we are looking for clinics that suit your "
                                      "inquiry."),
    LeadStatus.DUPLICATE: lazy_gettext("Received: it repeats an inquiry you sent us "
                                       "recently, which we are following."),
    LeadStatus.NEEDS_REVIEW: lazy_gettext("Being reviewed by our coordinators, who will "
                                          "choose clinics for you."),
    LeadStatus.ROUTED: lazy_gettext("Sent to clinics, which are looking at it."),
    LeadStatus.QUOTED: lazy_gettext("You have a quote from a clinic."),
    LeadStatus.BOOKED: lazy_gettext("Booked with a clinic."),
    LeadStatus.COMPLETED: lazy_gettext("Completed."),
    LeadStatus.CLOSED: lazy_gettext("Closed: nothing more will happen with this inquiry."),
}
# Each referral's status in words, from the patient's side.
REFERRAL_STATUS_WORDS = {
    ReferralStatus.REQUESTED: lazy_gettext("Sent to the clinic"),
    ReferralStatus.RECEIVED: lazy_gettext("Opened by the clinic"),
    ReferralStatus.ACCEPTED: lazy_gettext("The clinic will take you on"),
    ReferralStatus.QUOTED: lazy_gettext("The clinic sent a quote"),
    ReferralStatus.BOOKED: lazy_gettext("Booked"),
    ReferralStatus.DECLINED: lazy_gettext("The clinic declined"),
    ReferralStatus.EXPIRED: lazy_gettext("The clinic did not answer in time"),
    ReferralStatus.CANCELLED: lazy_gettext("Cancelled"),
}
# The upload's refusals, said beside the form on the status page (see `upload_refused`).
UPLOAD_REFUSAL_WORDS = {
    FileTooLarge: lazy_gettext("This file is larger than 10 MB."),
    NotAKindWeTake: lazy_gettext("Send a whole PDF, JPEG, PNG or DICOM file."),
    TooManyFiles: lazy_gettext("An inquiry holds at most 5 files."),
}


@blp.context_processor
def formatting():
    """Amounts, numbers and country names as the page's language writes them."""
    return {"format_currency": format_currency, "format_decimal": format_decimal,
            "country_name": lambda code: get_locale().territories.get(code, code)}


def _patients_lead(reference: str, token: str | None, *, for_update: bool = False):
    """The lead, or UnknownInquiry (a 404 page); the page is then in the lead's language."""
    lead = patients_lead(reference, token or "", for_update=for_update)
    use_language(lead.language)
    return lead


def _status_page(lead, token: str, upload: UploadForm | None = None, status: int = 200):
    return render_page(
        "pages/status/status.html", status=status, view=patients_view(lead), token=token,
        upload=upload or UploadForm(token=token), lead_status_words=LEAD_STATUS_WORDS,
        referral_status_words=REFERRAL_STATUS_WORDS)


def _back_to_status(reference: str, token: str):
    return redirect(url_for(".status", reference=reference, token=token), code=303)


@blp.get("/<string:reference>")
@allow(Audience.ANYONE)
def status(reference: str):
    token = request.args.get("token", "")
    return _status_page(_patients_lead(reference, token), token)


@blp.post("/<string:reference>/files")
@patient_upload_limit
@allow(Audience.ANYONE)
def add_file(reference: str):
    """The API's upload, from the page's form, with the same checks (`upload_refused`)."""
    form = UploadForm()
    lead = _patients_lead(reference, form.token.data)
    if not form.validate():
        return _status_page(lead, form.token.data, form, status=422)
    upload = form.file.data
    attachment = add_patients_file(lead, upload.filename, upload.stream)
    db.session.commit()
    flash(gettext("%(filename)s was added to your inquiry.", filename=attachment.filename),
          "info")
    return _back_to_status(lead.reference, form.token.data)


@blp.get("/<string:reference>/withdraw")
@allow(Audience.ANYONE)
def confirm_withdrawal(reference: str):
    """The confirmation step before the withdrawal."""
    token = request.args.get("token", "")
    lead = _patients_lead(reference, token)
    return render_page("pages/status/withdraw.html", view=patients_view(lead),
                       form=WithdrawForm(token=token))


@blp.post("/<string:reference>/withdraw")
@allow(Audience.ANYONE)
def withdraw_inquiry(reference: str):
    """As `POST /api/v1/inquiries/{reference}/withdraw`: a closed or completed inquiry is
    refused (409 page)."""
    form = WithdrawForm()
    lead = _patients_lead(reference, form.token.data, for_update=True)
    withdraw(lead)
    db.session.commit()
    nudge_relay()
    flash(gettext("Your inquiry is withdrawn. The clinics it was sent to have been told."),
          "info")
    return _back_to_status(lead.reference, form.token.data)


# The domain's refusals, said in the patient's language. They are answered here, for this
# blueprint, rather than by the app's one handler for DomainError, whose page shows the
# domain's English detail (leads/web/problems.py).

@blp.errorhandler(UnknownInquiry)
def unknown_inquiry(_error: UnknownInquiry):
    return error_page(404, gettext("This link does not open an inquiry. Check that it is the "
                                   "whole link from our e-mail."))


@blp.errorhandler(NotWithdrawable)
def not_withdrawable(_error: NotWithdrawable):
    db.session.rollback()
    return error_page(409, gettext("This inquiry is closed or completed already; it can no "
                                   "longer be withdrawn."))


@blp.errorhandler(FileTooLarge)
@blp.errorhandler(NotAKindWeTake)
@blp.errorhandler(TooManyFiles)
def upload_refused(refusal: FileTooLarge | NotAKindWeTake | TooManyFiles):
    """The status page again, the refusal beside the upload form (a form's own errors are
    shown so), answered with the API's status for it (413 or 422)."""
    db.session.rollback()
    form = UploadForm()
    lead = _patients_lead(request.view_args["reference"], form.token.data)
    form.file.errors = [UPLOAD_REFUSAL_WORDS[type(refusal)]]
    return _status_page(lead, form.token.data, form, status=refusal.status)
