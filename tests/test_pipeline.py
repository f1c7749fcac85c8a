"""The pipeline state machines, as plain Python (CONTRACT §6)."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leads.pipeline.states import (
    LEAD_STATUSES,
    LEAD_TRANSITIONS,
    REFERRAL_STATUSES,
    REFERRAL_TRANSITIONS,
    Change,
    NotWithdrawable,
    TransitionRefused,
    allowed_targets,
    transition,
    withdrawal,
)

# CONTRACT §3: a patient may withdraw until the lead is completed or closed (a spam lead is
# shown as received, and refused as closed when it tries).
NOT_WITHDRAWABLE = {"completed", "closed", "spam"}


@pytest.mark.parametrize("status", sorted(LEAD_STATUSES))
def test_withdrawal_closes_every_open_lead_and_refuses_the_rest(status):
    if status in NOT_WITHDRAWABLE:
        with pytest.raises(NotWithdrawable) as refused:
            withdrawal(status)
        assert refused.value.status == 409
        assert refused.value.detail == ("This inquiry is closed or completed; it can no "
                                        "longer be withdrawn.")
    else:
        assert withdrawal(status) == Change(before=status, after="closed")


CONTRACT_LEAD_PAIRS = {
    ("received", "routed"), ("received", "needs_review"), ("received", "spam"),
    ("received", "duplicate"),
    ("routed", "quoted"), ("routed", "needs_review"), ("routed", "closed"),
    ("quoted", "booked"), ("quoted", "closed"),
    ("booked", "completed"), ("booked", "closed"),
    ("needs_review", "routed"), ("needs_review", "closed"), ("needs_review", "spam"),
    ("closed", "received"), ("spam", "received"), ("duplicate", "received"),
}


# CONTRACT §6, referral status (after FHIR Task): requested -> received (the clinic opened it)
# -> accepted | declined; accepted -> quoted -> booked; any open one -> expired or cancelled.
# A quoted referral may be quoted again: a later quote revises the first.
CONTRACT_REFERRAL_PAIRS = {
    ("requested", "received"), ("received", "accepted"), ("received", "declined"),
    ("accepted", "quoted"), ("quoted", "booked"), ("quoted", "quoted"),
    *{(open_status, end) for open_status in ("requested", "received", "accepted", "quoted")
      for end in ("expired", "cancelled")},
}


def test_referral_table_is_exactly_the_contract():
    pairs = {(a, b) for a, targets in REFERRAL_TRANSITIONS.items() for b in targets}
    assert pairs == CONTRACT_REFERRAL_PAIRS
    assert set(REFERRAL_STATUSES) == {"requested", "received", "accepted", "declined", "quoted",
                                      "booked", "expired", "cancelled"}


def test_lead_statuses_are_the_contract_ones():
    assert set(LEAD_STATUSES) == {"received", "routed", "needs_review", "spam", "duplicate",
                                  "quoted", "booked", "completed", "closed"}


def test_an_allowed_change_names_both_ends():
    change = transition(LEAD_TRANSITIONS, "received", "routed")
    assert (change.before, change.after) == ("received", "routed")


def test_a_refusal_carries_where_it_was_and_where_it_was_asked_to_go():
    with pytest.raises(TransitionRefused) as refused:
        transition(REFERRAL_TRANSITIONS, "requested", "booked")
    assert (refused.value.current, refused.value.target) == ("requested", "booked")
    assert refused.value.allowed == ["cancelled", "expired", "received"]
    assert str(refused.value) == ("cannot go from 'requested' to 'booked'; "
                                  "allowed: cancelled, expired, received")
    # Answered as a 409 whose problem details name where it is and where it may go.
    assert refused.value.status == 409
    assert refused.value.extra == {"current": "requested",
                                   "allowed": ["cancelled", "expired", "received"]}


def test_a_refusal_from_a_final_state_says_none_is_allowed():
    with pytest.raises(TransitionRefused) as refused:
        transition(REFERRAL_TRANSITIONS, "declined", "accepted")
    assert str(refused.value) == "cannot go from 'declined' to 'accepted'; allowed: none"


def test_an_unknown_state_allows_nothing():
    assert allowed_targets(LEAD_TRANSITIONS, "archived") == frozenset()
    with pytest.raises(TransitionRefused) as refused:
        transition(LEAD_TRANSITIONS, "archived", "received")
    assert refused.value.allowed == []


def test_lead_table_is_exactly_the_contract():
    pairs = {(a, b) for a, targets in LEAD_TRANSITIONS.items() for b in targets}
    assert pairs == CONTRACT_LEAD_PAIRS


def test_completed_is_final():
    assert allowed_targets(LEAD_TRANSITIONS, "completed") == frozenset()
    with pytest.raises(TransitionRefused) as refused:
        transition(LEAD_TRANSITIONS, "completed", "closed")
    assert refused.value.allowed == []


def test_a_refusal_names_the_allowed_targets():
    with pytest.raises(TransitionRefused) as refused:
        transition(LEAD_TRANSITIONS, "received", "booked")
    assert refused.value.allowed == ["duplicate", "needs_review", "routed", "spam"]
    assert "routed" in str(refused.value)


def test_referral_open_states_can_expire_or_be_cancelled():
    for status in ("requested", "received", "accepted", "quoted"):
        assert {"expired", "cancelled"} <= REFERRAL_TRANSITIONS[status]
    for status in ("declined", "expired", "cancelled", "booked"):
        assert REFERRAL_TRANSITIONS[status] == frozenset()


def test_referral_is_received_before_it_is_answered():
    assert REFERRAL_TRANSITIONS["requested"] == {"received", "expired", "cancelled"}
    assert {"accepted", "declined"} <= REFERRAL_TRANSITIONS["received"]


@settings(max_examples=300)
@given(st.lists(st.sampled_from(LEAD_STATUSES), max_size=40))
def test_random_lead_walks_stay_inside_the_table(targets):
    status, timeline, was_completed = "received", [], False
    for target in targets:
        try:
            change = transition(LEAD_TRANSITIONS, status, target)
        except TransitionRefused as refused:
            assert target not in LEAD_TRANSITIONS[status]
            assert refused.allowed == sorted(LEAD_TRANSITIONS[status])
            continue
        assert (change.before, change.after) in CONTRACT_LEAD_PAIRS
        assert not was_completed
        timeline.append(change)
        status = change.after
        was_completed = status == "completed"
    assert all(a.after == b.before for a, b in zip(timeline, timeline[1:], strict=False))


@settings(max_examples=200)
@given(st.lists(st.sampled_from(REFERRAL_STATUSES), max_size=20))
def test_random_referral_walks_stay_inside_the_table(targets):
    status = "requested"
    for target in targets:
        if target in REFERRAL_TRANSITIONS[status]:
            status = transition(REFERRAL_TRANSITIONS, status, target).after
        else:
            with pytest.raises(TransitionRefused):
                transition(REFERRAL_TRANSITIONS, status, target)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(targets=st.lists(st.sampled_from(LEAD_STATUSES), max_size=25))
def test_every_accepted_change_of_a_stored_lead_is_one_timeline_event(app, demo, targets):
    from sqlalchemy import select

    from leads.catalogue.models import Treatment
    from leads.core.database import db
    from leads.pipeline.models import Lead, TimelineEvent
    from leads.pipeline.timeline import change_lead_status

    with app.app_context():
        treatment = db.session.scalar(select(Treatment).limit(1))
        lead = Lead(reference="MT-HYPO", treatment=treatment, first_name="A", last_name="B",
                    email="a@example.org", email_key="k", country="US", condition="c" * 20,
                    consent_data_processing=True, status_token_hash="x")
        db.session.add(lead)
        db.session.flush()
        accepted = []
        for target in targets:
            before = lead.status
            try:
                change_lead_status(lead, target, "user:1", reason="hypothesis")
            except TransitionRefused:
                assert lead.status == before
                continue
            accepted.append((before, target))
        db.session.flush()
        events = db.session.scalars(
            select(TimelineEvent).where(TimelineEvent.lead_id == lead.id)
            .order_by(TimelineEvent.id)).all()
        assert [(e.data["from"], e.data["to"]) for e in events] == accepted
        assert all(pair in CONTRACT_LEAD_PAIRS for pair in accepted)
        assert all(e.actor == "user:1" and e.at is not None for e in events)
        db.session.rollback()
