"""Sending the staged webhook messages (CONTRACT §5), as Standard Webhooks says: a POST of
the JSON document with `webhook-id` (the message's, the same on every retry),
`webhook-timestamp` (this attempt's) and `webhook-signature` (`v1,<base64 HMAC-SHA256>` by
the `standardwebhooks` package, once per live secret, space-separated).

The periodic sweep claims the messages that are due: pending ones whose wait is over (or
sending ones whose lease ran out: their worker died), each the oldest unsent message of its
endpoint and referral, so a referral's events reach an endpoint in the order they happened.
A claim is a lease and a number; the send task does nothing unless its claim is still the
message's latest. Each attempt is recorded. A 2xx delivers the message; a 410 disables the
endpoint; anything else (another status, a 3xx, a timeout, a refused address) is retried
after an exponential backoff with jitter until the retry window since it was staged is over,
then the message fails and the next one of its referral goes.
"""

import json
import logging
import random
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.orm import aliased
from standardwebhooks import Webhook

from leads.core.clock import utcnow
from leads.core.database import db
from leads.core.settings import settings
from leads.pipeline.states import DELIVERY_UNSENT, DeliveryStatus
from leads.webhooks import addresses, transport
from leads.webhooks.models import WebhookAttempt, WebhookEndpoint, WebhookMessage
from leads.webhooks.operations import disable_endpoint, signing_secrets

log = logging.getLogger(__name__)
# A claimed message waits this long for its send task (queued, then at most a timeout to
# connect and one to read) before the sweep takes it to be lost with its worker.
SEND_LEASE = timedelta(minutes=5)
CLAIM_BATCH = 200
GONE = 410
USER_AGENT = "leads-webhooks/1"


def backoff(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed try: the base doubled per try up to the
    longest, drawn from the upper half of that so that messages failed together spread."""
    config = settings()
    ceiling = min(config.webhook_retry_max, config.webhook_retry_base * 2 ** min(attempts - 1, 30))
    return ceiling * random.uniform(0.5, 1.0)


def claim_due() -> list[tuple[int, int]]:
    """Lease the due messages (up to CLAIM_BATCH); answers (message id, claim number) for
    each, oldest first."""
    now = utcnow()
    earlier = aliased(WebhookMessage)
    waiting_behind = exists().where(
        earlier.endpoint_id == WebhookMessage.endpoint_id,
        earlier.referral_id == WebhookMessage.referral_id,
        earlier.id < WebhookMessage.id, earlier.status.in_(DELIVERY_UNSENT))
    due = (
        select(WebhookMessage.id)
        .where(or_(and_(WebhookMessage.status == DeliveryStatus.PENDING,
                        WebhookMessage.next_attempt_at <= now),
                   and_(WebhookMessage.status == DeliveryStatus.SENDING,
                        WebhookMessage.locked_until < now)),
               ~waiting_behind)
        .order_by(WebhookMessage.id)
        .limit(CLAIM_BATCH)
        .with_for_update(skip_locked=True, of=WebhookMessage)
    )
    ids = list(db.session.scalars(due))
    if not ids:
        db.session.rollback()
        return []
    claimed = db.session.execute(
        update(WebhookMessage)
        .where(WebhookMessage.id.in_(ids))
        .values(status=DeliveryStatus.SENDING, locked_until=now + SEND_LEASE,
                claims=WebhookMessage.claims + 1)
        .returning(WebhookMessage.id, WebhookMessage.claims)
    ).all()
    db.session.commit()
    return sorted((row.id, row.claims) for row in claimed)


def signed_request(message: WebhookMessage, endpoint: WebhookEndpoint,
                   now: datetime) -> tuple[bytes, dict[str, str]]:
    """The body and the Standard Webhooks headers of this attempt."""
    body = json.dumps(message.payload, separators=(",", ":"), ensure_ascii=False)
    signatures = " ".join(Webhook(secret).sign(message.webhook_id, now, body)
                          for secret in signing_secrets(endpoint))
    return body.encode(), {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": message.webhook_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signatures,
    }


def attempt(target_url: str, body: bytes, headers: dict[str, str]) -> transport.Answer:
    """One try: the URL checked again after resolving its name, then the POST to an address
    that passed (a name that now resolves somewhere private is refused, never called)."""
    config = settings()
    try:
        target = addresses.check(target_url, config.webhook_allow_private)
    except addresses.RefusedTarget as refusal:
        return transport.Answer(error=f"Refused: {refusal}"[:transport.ERROR_LENGTH])
    return transport.post(target, body, headers, config.webhook_timeout)


def _settle(message: WebhookMessage, answer: transport.Answer, at: datetime) -> None:
    """What the attempt's answer makes of the message (and, for a 410, of its endpoint)."""
    message.attempts += 1
    message.locked_until = None
    if answer.succeeded:
        message.status = DeliveryStatus.DELIVERED
        message.delivered_at = utcnow()
        return
    if answer.status_code == GONE:
        message.status = DeliveryStatus.FAILED
        disable_endpoint(message.endpoint,
                         f"The endpoint answered {GONE} Gone at {at.isoformat()}.")
        log.warning("webhook endpoint %d answered 410: disabled", message.endpoint_id)
        return
    now = utcnow()
    if now - message.created_at >= settings().webhook_retry_window:
        message.status = DeliveryStatus.FAILED
        log.warning("webhook message %d given up after %d attempts", message.id,
                    message.attempts)
        return
    message.status = DeliveryStatus.PENDING
    message.next_attempt_at = now + backoff(message.attempts)


def deliver(message_id: int, claim: int) -> bool:
    """Send one claimed message; True when the endpoint took it. A claim that is no longer
    the message's latest, or a message whose endpoint went away, is not sent."""
    message = db.session.get(WebhookMessage, message_id)
    if (message is None or message.status != DeliveryStatus.SENDING
            or message.claims != claim):
        db.session.rollback()
        return False
    endpoint = message.endpoint
    if not endpoint.active:
        message.status = DeliveryStatus.CANCELLED
        db.session.commit()
        return False
    now = utcnow()
    body, headers = signed_request(message, endpoint, now)
    url = endpoint.url
    # No transaction stays open while the endpoint is waited for.
    db.session.commit()
    answer = attempt(url, body, headers)
    message = db.session.scalars(
        select(WebhookMessage).where(WebhookMessage.id == message_id)
        .with_for_update(of=WebhookMessage).execution_options(populate_existing=True)).one()
    db.session.add(WebhookAttempt(endpoint_id=message.endpoint_id, message_id=message_id, at=now,
                                  status_code=answer.status_code, error=answer.error,
                                  succeeded=answer.succeeded))
    # Deleted or disabled meanwhile, or taken over by a later claim: the attempt is kept and
    # the message left as the others made it.
    if message.status == DeliveryStatus.SENDING and message.claims == claim:
        _settle(message, answer, now)
    db.session.commit()
    return answer.succeeded
