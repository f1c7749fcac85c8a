"""What a partner clinic sees and does with its API key: its own referrals (CONTRACT §5)."""

from flask.views import MethodView
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from webargs.flaskparser import abort

from leads.api.paging import page
from leads.api.parsing import Blueprint
from leads.auth import clinic_required, current_clinic
from leads.extensions import db
from leads.models import Lead, Referral
from leads.outbox import nudge_relay
from leads.schemas.referrals import (
    ClinicReferralPageSchema,
    ClinicReferralQuerySchema,
    ClinicReferralSchema,
    DeclineSchema,
    QuoteInSchema,
)
from leads.workflow import (
    ReferralExpired,
    accept_referral,
    decline_referral,
    open_referral,
    quote_referral,
)

blp = Blueprint("clinic_referrals", __name__, url_prefix="/api/v1/clinic/referrals",
                description="A partner clinic's own referrals, with its API key.")
clinic = blp.guarded(clinic_required)


def own_referral(referral_id: int, *, for_update: bool = False) -> Referral:
    """The calling clinic's referral; another clinic's answers 404 as an unknown one does."""
    mine = (Referral.id == referral_id, Referral.clinic_id == current_clinic().id)
    query = select(Referral).where(*mine)
    if for_update:
        # The lead first, as the coordinators' endpoints and the worker take it: two clinics
        # declining at once must each see the other's answer, or neither sends the lead to
        # review when every referral is declined.
        lead_id = db.session.scalar(select(Referral.lead_id).where(*mine))
        if lead_id is not None:
            db.session.scalar(select(Lead.id).where(Lead.id == lead_id).with_for_update())
        query = query.with_for_update(of=Referral)
    referral = db.session.scalar(query)
    if referral is None:
        abort(404, message=f"No referral {referral_id} for this clinic.")
    return referral


@blp.route("")
class ClinicReferrals(MethodView):
    @clinic
    @blp.arguments(ClinicReferralQuerySchema, location="query")
    @blp.response(200, ClinicReferralPageSchema)
    def get(self, query):
        """This clinic's referrals, newest first."""
        # Each item shows its lead: load a page's leads in one query, not one per referral.
        rows = (select(Referral).where(Referral.clinic_id == current_clinic().id)
                .options(selectinload(Referral.lead)))
        if query.get("status"):
            rows = rows.where(Referral.status == query["status"])
        return page(db.session, rows, Referral.id, query["limit"], query["cursor"])


@blp.route("/<int:referral_id>")
class ClinicReferralDetail(MethodView):
    @clinic
    @blp.response(200, ClinicReferralSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, referral_id):
        """One referral; opening it tells the marketplace the clinic has seen it."""
        referral = own_referral(referral_id, for_update=True)
        open_referral(referral)
        db.session.commit()
        return referral


def _answer(referral_id: int, act, *args) -> Referral:
    referral = own_referral(referral_id, for_update=True)
    try:
        act(referral, *args)
    except ReferralExpired as expired:
        abort(409, message=f"The time to answer this referral ran out at "
                           f"{expired.args[0].isoformat()}.", extra={"current": "expired"})
    db.session.commit()
    nudge_relay()
    return referral


@blp.route("/<int:referral_id>/accept")
class AcceptReferral(MethodView):
    @clinic
    @blp.response(200, ClinicReferralSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    def post(self, referral_id):
        """Take the patient on; their contact details are shown from now on."""
        return _answer(referral_id, accept_referral)


@blp.route("/<int:referral_id>/decline")
class DeclineReferral(MethodView):
    @clinic
    @blp.arguments(DeclineSchema)
    @blp.response(200, ClinicReferralSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    def post(self, body, referral_id):
        """Turn the referral down, with a reason the coordinators can read."""
        return _answer(referral_id, decline_referral, body.get("reason"))


@blp.route("/<int:referral_id>/quote")
class QuoteReferral(MethodView):
    @clinic
    @blp.arguments(QuoteInSchema)
    @blp.response(200, ClinicReferralSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    def post(self, body, referral_id):
        """Send the patient a quote for an accepted referral; a later quote revises it."""
        return _answer(referral_id, quote_referral, body)
