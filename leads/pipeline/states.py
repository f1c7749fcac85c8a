"""Every status the service knows, their named groups and the pipeline's two state machines
(CONTRACT §6), as data, with no Flask or database in sight.

`LEAD_TRANSITIONS` and `REFERRAL_TRANSITIONS` are the whole truth about which changes are
allowed; the API, the workers and the tests all ask `transition` or `allowed_targets`. No
other module spells a status: they name these members (a test walks the code for strings).
"""

from dataclasses import dataclass
from enum import StrEnum

from leads.core.errors import Conflict


class LeadStatus(StrEnum):
    RECEIVED = "received"
    ROUTED = "routed"
    QUOTED = "quoted"
    BOOKED = "booked"
    NEEDS_REVIEW = "needs_review"
    CLOSED = "closed"
    SPAM = "spam"
    DUPLICATE = "duplicate"
    COMPLETED = "completed"


class ReferralStatus(StrEnum):
    """After FHIR Task: requested -> received -> accepted | declined, and so on."""

    REQUESTED = "requested"
    RECEIVED = "received"
    ACCEPTED = "accepted"
    QUOTED = "quoted"
    BOOKED = "booked"
    DECLINED = "declined"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class TaskStatus(StrEnum):
    """FHIR R4 `Task.status` codes a referral is answered as (leads/fhir maps them)."""

    REQUESTED = "requested"
    RECEIVED = "received"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class RequestStatus(StrEnum):
    """FHIR R4 `ServiceRequest.status` codes a lead is answered as (leads/fhir maps them)."""

    ACTIVE = "active"
    COMPLETED = "completed"
    REVOKED = "revoked"
    ENTERED_IN_ERROR = "entered-in-error"


class Priority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class MessageStatus(StrEnum):
    """An e-mail's way out: `sending` while a worker holds its lease."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    # Its lead was erased before it went out: it never will.
    CANCELLED = "cancelled"


class DeliveryStatus(StrEnum):
    """A webhook message's way to one endpoint: `sending` while a worker holds its lease;
    `failed` when it was given up (its retries ran out, or the endpoint answered 410);
    `cancelled` when its endpoint was deleted or disabled before it went out."""

    PENDING = "pending"
    SENDING = "sending"
    DELIVERED = "delivered"
    FAILED = "failed"
    CANCELLED = "cancelled"


class EventKind(StrEnum):
    """What a timeline event records (CONTRACT §4, the lead's timeline)."""

    RECEIVED = "received"
    DUPLICATE_RECEIVED = "duplicate_received"
    STATUS_CHANGED = "status_changed"
    REFERRED = "referred"
    REFERRAL_STATUS_CHANGED = "referral_status_changed"
    REROUTED = "rerouted"
    QUOTED = "quoted"
    ASSIGNED = "assigned"
    PRIORITY_CHANGED = "priority_changed"
    TAGS_CHANGED = "tags_changed"
    NOTE_ADDED = "note_added"
    ATTACHMENT_ADDED = "attachment_added"
    MESSAGE_FAILED = "message_failed"
    ERASED = "erased"


_L, _R = LeadStatus, ReferralStatus

LEAD_TRANSITIONS: dict[LeadStatus, frozenset[LeadStatus]] = {
    _L.RECEIVED: frozenset({_L.ROUTED, _L.NEEDS_REVIEW, _L.SPAM, _L.DUPLICATE}),
    _L.ROUTED: frozenset({_L.QUOTED, _L.NEEDS_REVIEW, _L.CLOSED}),
    _L.QUOTED: frozenset({_L.BOOKED, _L.CLOSED}),
    _L.BOOKED: frozenset({_L.COMPLETED, _L.CLOSED}),
    _L.NEEDS_REVIEW: frozenset({_L.ROUTED, _L.CLOSED, _L.SPAM}),
    _L.CLOSED: frozenset({_L.RECEIVED}),
    _L.SPAM: frozenset({_L.RECEIVED}),
    _L.DUPLICATE: frozenset({_L.RECEIVED}),
    _L.COMPLETED: frozenset(),
}
REFERRAL_TRANSITIONS: dict[ReferralStatus, frozenset[ReferralStatus]] = {
    _R.REQUESTED: frozenset({_R.RECEIVED, _R.EXPIRED, _R.CANCELLED}),
    _R.RECEIVED: frozenset({_R.ACCEPTED, _R.DECLINED, _R.EXPIRED, _R.CANCELLED}),
    _R.ACCEPTED: frozenset({_R.QUOTED, _R.EXPIRED, _R.CANCELLED}),
    _R.QUOTED: frozenset({_R.QUOTED, _R.BOOKED, _R.EXPIRED, _R.CANCELLED}),
    _R.BOOKED: frozenset(),
    _R.DECLINED: frozenset(),
    _R.EXPIRED: frozenset(),
    _R.CANCELLED: frozenset(),
}
LEAD_STATUSES = tuple(LeadStatus)
REFERRAL_STATUSES = tuple(ReferralStatus)
PRIORITIES = tuple(Priority)

# Leads that have clinics, or are waiting for a coordinator to find some: they may be rerouted.
REROUTABLE = frozenset({_L.ROUTED, _L.NEEDS_REVIEW})
# An inquiry judged so at intake is not the original of a later duplicate, and gets no mail.
NOT_ORIGINALS = frozenset({_L.SPAM, _L.DUPLICATE})
# A lead in one of these for longer than RETENTION_DAYS is erased by the retention job.
RETAINED_UNTIL_ERASED = frozenset({_L.CLOSED, _L.SPAM, _L.COMPLETED})
# Moving a lead here cancels its open referrals.
CANCELS_REFERRALS = frozenset({_L.CLOSED, _L.SPAM})
# A patient may withdraw a lead in one of these (CONTRACT §6): it goes to `closed`, around
# the table above (a lead still `received` or a `duplicate` may be withdrawn too).
WITHDRAWABLE = frozenset(LeadStatus) - {_L.COMPLETED, _L.CLOSED, _L.SPAM}
# A lead here may take a quote from a clinic (its first one moves it to `quoted`).
TAKES_QUOTES = frozenset({_L.ROUTED, _L.QUOTED})

REFERRAL_OPEN = frozenset({_R.REQUESTED, _R.RECEIVED, _R.ACCEPTED, _R.QUOTED})
# The clinic has not answered yet: such a referral expires after REFERRAL_RESPONSE_HOURS.
UNANSWERED = frozenset({_R.REQUESTED, _R.RECEIVED})
# A clinic in one of these has taken the patient on: it sees their contact details and files.
REFERRAL_ACCEPTED = frozenset({_R.ACCEPTED, _R.QUOTED, _R.BOOKED})

# Mail a worker has still to send (or is sending).
MAIL_UNSENT = frozenset({MessageStatus.PENDING, MessageStatus.SENDING})
# Webhook messages still on their way: a later event for the same referral waits behind one.
DELIVERY_UNSENT = frozenset({DeliveryStatus.PENDING, DeliveryStatus.SENDING})


class TransitionRefused(Conflict):
    """A change the table does not allow; names the targets that are allowed."""

    def __init__(self, current: str, target: str, allowed: frozenset[str]):
        self.current = current
        self.target = target
        self.allowed = sorted(allowed)
        super().__init__(
            f"cannot go from {current!r} to {target!r}; "
            f"allowed: {', '.join(self.allowed) or 'none'}",
            current=current, allowed=self.allowed,
        )


class NotWithdrawable(Conflict):
    """The lead is completed or closed already. The status is not named: a lead caught by
    the honeypot (`spam`) must look to its sender like any other."""

    def __init__(self):
        super().__init__("This inquiry is closed or completed; it can no longer be withdrawn.")


@dataclass(frozen=True)
class Change:
    """One accepted change, ready to be written as a timeline event."""

    before: str
    after: str


def allowed_targets(table: dict[str, frozenset[str]], current: str) -> frozenset[str]:
    return table.get(current, frozenset())


def transition(table: dict[str, frozenset[str]], current: str, target: str) -> Change:
    allowed = allowed_targets(table, current)
    if target not in allowed:
        raise TransitionRefused(current, target, allowed)
    return Change(before=current, after=target)


def withdrawal(current: str) -> Change:
    """The patient's withdrawal from `current`, or `NotWithdrawable`."""
    if current not in WITHDRAWABLE:
        raise NotWithdrawable()
    return Change(before=current, after=LeadStatus.CLOSED)
