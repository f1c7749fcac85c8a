"""The pipeline's state machines (CONTRACT §6) as data, with no Flask or database in sight.

`LEAD_TRANSITIONS` and `REFERRAL_TRANSITIONS` are the whole truth about which changes are
allowed; the API, the workers and the tests all ask `transition` or `allowed_targets`.
"""

from dataclasses import dataclass

LEAD_TRANSITIONS: dict[str, frozenset[str]] = {
    "received": frozenset({"routed", "needs_review", "spam", "duplicate"}),
    "routed": frozenset({"quoted", "needs_review", "closed"}),
    "quoted": frozenset({"booked", "closed"}),
    "booked": frozenset({"completed", "closed"}),
    "needs_review": frozenset({"routed", "closed", "spam"}),
    "closed": frozenset({"received"}),
    "spam": frozenset({"received"}),
    "duplicate": frozenset({"received"}),
    "completed": frozenset(),
}
LEAD_STATUSES = tuple(LEAD_TRANSITIONS)

# Referral statuses follow FHIR Task: requested -> received -> accepted | declined, and so on.
REFERRAL_OPEN = frozenset({"requested", "received", "accepted", "quoted"})
REFERRAL_TRANSITIONS: dict[str, frozenset[str]] = {
    "requested": frozenset({"received", "expired", "cancelled"}),
    "received": frozenset({"accepted", "declined", "expired", "cancelled"}),
    "accepted": frozenset({"quoted", "expired", "cancelled"}),
    "quoted": frozenset({"quoted", "booked", "expired", "cancelled"}),
    "booked": frozenset(),
    "declined": frozenset(),
    "expired": frozenset(),
    "cancelled": frozenset(),
}
REFERRAL_STATUSES = tuple(REFERRAL_TRANSITIONS)
PRIORITIES = ("low", "normal", "high", "urgent")


class TransitionRefused(Exception):
    """A change the table does not allow; names the targets that are allowed."""

    def __init__(self, current: str, target: str, allowed: frozenset[str]):
        self.current = current
        self.target = target
        self.allowed = sorted(allowed)
        super().__init__(
            f"cannot go from {current!r} to {target!r}; "
            f"allowed: {', '.join(self.allowed) or 'none'}"
        )


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
