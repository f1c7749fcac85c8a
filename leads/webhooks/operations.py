"""What a clinic does with its webhook endpoints, and the one call the pipeline makes when a
referral changes in a way a clinic hears of (`announce`, in the change's own transaction)."""

import base64
import os
import secrets
from datetime import timedelta

from sqlalchemy import Exists, and_, exists, func, select

from leads.core.clock import utcnow
from leads.core.database import db
from leads.core.errors import Conflict, Invalid
from leads.core.settings import settings
from leads.pipeline.models import Referral
from leads.pipeline.states import DELIVERY_UNSENT, DeliveryStatus
from leads.webhooks import addresses
from leads.webhooks.models import WebhookAttempt, WebhookEndpoint, WebhookMessage

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # Standard Webhooks asks for 24 to 64 random bytes
# After a rotation the secret before it still signs for this long (issue 13).
ROTATION_OVERLAP = timedelta(hours=24)
RECENT_FAILURES = 10
# Every referral change stages a message per endpoint in the pipeline's own transaction: a
# clinic's endpoints are bounded so that it cannot make those transactions heavy.
MAX_ENDPOINTS_PER_CLINIC = 10
# The endpoints events are sent to: neither disabled (after failing) nor deleted.
LIVE_ENDPOINT = and_(WebhookEndpoint.disabled_at.is_(None), WebhookEndpoint.deleted_at.is_(None))


class TooManyEndpoints(Conflict):
    """The clinic has as many endpoints as it may keep."""

    def __init__(self):
        super().__init__(f"A clinic has at most {MAX_ENDPOINTS_PER_CLINIC} webhook endpoints; "
                         f"delete one first.")


def new_secret() -> str:
    """A signing secret as Standard Webhooks writes one: `whsec_` and base64 of its bytes."""
    return SECRET_PREFIX + base64.b64encode(os.urandom(SECRET_BYTES)).decode("ascii")


def checked_url(url: str) -> str:
    """The URL, when it may be called (addresses.check); else 422 naming `url`."""
    try:
        addresses.check(url, settings().webhook_allow_private)
    except addresses.RefusedTarget as refusal:
        raise Invalid("url", str(refusal)) from None
    return url


def register_endpoint(clinic_id: int, url: str, events: list[str]) -> WebhookEndpoint:
    kept = db.session.scalar(select(func.count()).select_from(
        clinic_endpoints(clinic_id).subquery()))
    if kept >= MAX_ENDPOINTS_PER_CLINIC:
        raise TooManyEndpoints()
    endpoint = WebhookEndpoint(clinic_id=clinic_id, url=checked_url(url),
                               events=list(dict.fromkeys(events)), secret=new_secret(),
                               created_at=utcnow())
    db.session.add(endpoint)
    db.session.flush()
    return endpoint


def clinic_endpoints(clinic_id: int):
    """The clinic's endpoints as a query to page: the deleted ones are gone for it."""
    return select(WebhookEndpoint).where(WebhookEndpoint.clinic_id == clinic_id,
                                         WebhookEndpoint.deleted_at.is_(None))


def clinic_endpoint(clinic_id: int, endpoint_id: int) -> WebhookEndpoint | None:
    """One of the clinic's own endpoints; another clinic's is None, as an unknown one."""
    return db.session.scalar(clinic_endpoints(clinic_id).where(WebhookEndpoint.id == endpoint_id))


def _cancel_unsent(endpoint: WebhookEndpoint) -> None:
    db.session.execute(
        WebhookMessage.__table__.update()
        .where(WebhookMessage.endpoint_id == endpoint.id,
               WebhookMessage.status.in_(DELIVERY_UNSENT))
        .values(status=DeliveryStatus.CANCELLED, locked_until=None))


def delete_endpoint(endpoint: WebhookEndpoint) -> None:
    """Nothing more is sent to it; its attempts stay for the admins to read."""
    endpoint.deleted_at = utcnow()
    _cancel_unsent(endpoint)


def disable_endpoint(endpoint: WebhookEndpoint, reason: str) -> None:
    """The endpoint said it is gone for good (410): nothing more is sent to it."""
    endpoint.disabled_at = utcnow()
    endpoint.disabled_reason = reason
    _cancel_unsent(endpoint)


def rotate_secret(endpoint: WebhookEndpoint) -> WebhookEndpoint:
    """A new secret signs from now on; the one it replaces still signs for a day, so the
    clinic's system may switch over at its own pace."""
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_until = utcnow() + ROTATION_OVERLAP
    endpoint.secret = new_secret()
    return endpoint


def signing_secrets(endpoint: WebhookEndpoint) -> list[str]:
    """The secrets each message is signed with now: the current one, and the one before it
    while its overlap lasts."""
    current = [endpoint.secret]
    if endpoint.previous_secret and endpoint.previous_secret_until > utcnow():
        current.append(endpoint.previous_secret)
    return current


def payload(referral: Referral, event: str) -> dict:
    """The body's document: what the clinic may know of the referral, and never the
    patient's name or contact details (it reads those through the API once it accepted)."""
    return {"type": event, "timestamp": utcnow().isoformat(),
            "data": {"referral_id": referral.id, "reference": referral.lead.reference,
                     "status": referral.status, "treatment": referral.lead.treatment.slug}}


def has_live_endpoint(clinic_id) -> Exists:
    """Whether the clinic (an id, or a clinic id column to correlate) has an endpoint events
    are sent to; routing selects it with its candidates, to skip `announce` when none has."""
    return exists().where(WebhookEndpoint.clinic_id == clinic_id, LIVE_ENDPOINT)


def announce(referrals: list[Referral], event: str) -> None:
    """Stage the event for each active endpoint of each referral's clinic that subscribes to
    it, in the caller's transaction: a change is committed with its deliveries or not at all.
    One query for all the referrals: routing announces every referral of a lead at once."""
    if not referrals:
        return
    endpoints: dict[int, list[WebhookEndpoint]] = {}
    for endpoint in db.session.scalars(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.clinic_id.in_({r.clinic_id for r in referrals}),
                   LIVE_ENDPOINT)
            .order_by(WebhookEndpoint.id)):
        endpoints.setdefault(endpoint.clinic_id, []).append(endpoint)
    now = utcnow()
    for referral in referrals:
        for endpoint in endpoints.get(referral.clinic_id, ()):
            if event in endpoint.events:
                db.session.add(WebhookMessage(
                    endpoint_id=endpoint.id, referral_id=referral.id, event=event,
                    webhook_id=f"msg_{secrets.token_urlsafe(18)}",
                    payload=payload(referral, event), status=DeliveryStatus.PENDING,
                    attempts=0, claims=0, next_attempt_at=now, created_at=now))


def endpoint_attempts(endpoint_id: int):
    """Every attempt at the endpoint's messages, as a query to page."""
    return select(WebhookAttempt).where(WebhookAttempt.endpoint_id == endpoint_id)


def recent_failures(endpoint_id: int, limit: int = RECENT_FAILURES) -> list[WebhookAttempt]:
    return list(db.session.scalars(
        endpoint_attempts(endpoint_id).where(WebhookAttempt.succeeded.is_(False))
        .order_by(WebhookAttempt.id.desc()).limit(limit)))

