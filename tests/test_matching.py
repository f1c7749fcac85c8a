"""The matching engine, on plain data (no Flask, no database)."""

from collections import Counter
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest

from leads.core.clock import today
from leads.routing import matching
from leads.routing.matching import Accreditation, Candidate, LeadProfile, Offer

# The engine is given the day; any day will do, so the suite's own.
TODAY = today()
RATES = {"USD": Decimal("1"), "MXN": Decimal("0.055"), "EUR": Decimal("1.08")}
VALID_JCI = Accreditation("JCI", True, TODAY - timedelta(days=300), TODAY + timedelta(days=300))


def clinic(clinic_id=1, **changes) -> Candidate:
    base = Candidate(
        clinic_id=clinic_id, name=f"Clinic {clinic_id}", country="MX", active=True,
        languages=("es", "en"), monthly_cap=100, referrals_this_month=0,
        offer=Offer(Decimal("8000"), Decimal("11000"), "USD"), accreditations=(VALID_JCI,),
    )
    return replace(base, **changes)


LEAD = LeadProfile(destinations=("MX", "PA"), language="es", budget_amount=Decimal("12000"),
                   budget_currency="USD")


def test_a_fitting_clinic_has_no_exclusions():
    assert matching.exclusions(clinic(), LEAD, TODAY) == []


@pytest.mark.parametrize("changes,why", [
    ({"accreditations": (Accreditation("JCI", True, TODAY - timedelta(days=800),
                                       TODAY - timedelta(days=1)),)},
     "no verified accreditation valid today"),
    ({"accreditations": (Accreditation("JCI", False, None, None),)},
     "no verified accreditation valid today"),
    ({"accreditations": (Accreditation("GMP", True, TODAY + timedelta(days=1), None),)},
     "no verified accreditation valid today"),
    ({"accreditations": ()}, "no verified accreditation valid today"),
    ({"active": False}, "inactive"),
    ({"country": "TR"}, "not in a destination the patient chose"),
    ({"offer": None}, "does not offer the treatment"),
    ({"referrals_this_month": 100}, "monthly referral cap reached"),
], ids=["expired accreditation", "unverified accreditation", "not yet valid", "none",
        "inactive", "wrong destination", "treatment not offered", "cap reached"])
def test_each_hard_filter_excludes(changes, why):
    candidate = clinic(**changes)
    assert why in matching.exclusions(candidate, LEAD, TODAY)
    assert matching.best_matches([candidate], LEAD, TODAY, RATES, 3) == []


def test_no_destination_means_any_country():
    anywhere = replace(LEAD, destinations=())
    assert matching.exclusions(clinic(country="TR"), anywhere, TODAY) == []


def test_accreditation_valid_on_its_last_day_counts():
    last_day = Accreditation("ISO 9001", True, None, TODAY)
    assert matching.exclusions(clinic(accreditations=(last_day,)), LEAD, TODAY) == []


def test_at_most_the_limit_best_first_with_reasons():
    candidates = [
        clinic(1, languages=("en",)),
        clinic(2),
        clinic(3, offer=Offer(Decimal("300000"), Decimal("400000"), "MXN")),
        clinic(4, offer=Offer(Decimal("20000"), Decimal("30000"), "USD")),
    ]
    matches = matching.best_matches(candidates, LEAD, TODAY, RATES, 3)
    # A budget 27 % short (3) weighs more than a clinic speaking only English (1).
    assert [m.clinic_id for m in matches] == [2, 1, 3]
    assert matches[0].score >= matches[1].score >= matches[2].score
    factors = [r.factor for r in matches[0].reasons]
    assert factors == ["language", "budget", "accreditation", "responsiveness", "load"]
    assert sum(r.weight for r in matches[0].reasons) == pytest.approx(1.0)
    assert all(r.note for r in matches[0].reasons)


def test_budget_is_compared_across_currencies():
    mxn = clinic(offer=Offer(Decimal("150000"), Decimal("200000"), "MXN"))  # 8,250-11,000 USD
    reason = matching.budget_reason(mxn, LEAD, RATES)
    assert reason.value == 1.0 and "MXN" in reason.note
    poor = replace(LEAD, budget_amount=Decimal("4000"))
    assert matching.budget_reason(mxn, poor, RATES).value < 0.5


def test_unknown_rate_is_neutral_not_an_error():
    gbp = replace(LEAD, budget_currency="GBP")
    assert matching.budget_reason(clinic(), gbp, RATES).value == matching.NEUTRAL


def test_language_prefers_the_patient_language_then_english():
    assert matching.language_reason(clinic(), LEAD).value == 1.0
    assert matching.language_reason(clinic(languages=("en",)), LEAD).value == 0.4
    assert matching.language_reason(clinic(languages=("tr",)), LEAD).value == 0.0


def test_faster_clinics_score_higher():
    fast = matching.responsiveness_reason(clinic(median_hours_to_answer=3.0))
    slow = matching.responsiveness_reason(clinic(median_hours_to_answer=50.0))
    assert fast.value > slow.value


def test_ties_fall_to_the_lower_clinic_id():
    matches = matching.best_matches([clinic(9), clinic(4), clinic(7)], LEAD, TODAY, RATES, 2)
    assert [m.clinic_id for m in matches] == [4, 7]


def test_equally_fitting_clinics_share_one_hundred_leads():
    clinics = {i: clinic(i) for i in range(1, 6)}
    referrals = Counter()
    for _ in range(100):
        candidates = [replace(c, referrals_this_month=referrals[i]) for i, c in clinics.items()]
        for match in matching.best_matches(candidates, LEAD, TODAY, RATES, 3):
            referrals[match.clinic_id] += 1
    fair_share = 100 * 3 / len(clinics)
    assert sum(referrals.values()) == 300
    assert set(referrals) == set(clinics)
    assert max(referrals.values()) <= 2 * fair_share
    assert min(referrals.values()) >= fair_share / 2


def test_matching_does_not_import_flask():
    import ast
    import inspect

    for module in (matching, __import__("leads.pipeline", fromlist=["x"])):
        tree = ast.parse(inspect.getsource(module))
        imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                    if isinstance(node, (ast.Import, ast.ImportFrom))
                    for alias in getattr(node, "names", [])}
        imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) and node.module}
        assert not imported & {"flask", "sqlalchemy", "flask_sqlalchemy"}


# Exact values: the scores coordinators read are part of the behaviour, not only their order.

def test_reason_as_dict_names_every_part():
    reason = matching.Reason("load", 0.75, 0.15, "10 of 40 referrals used this month.")
    assert reason.as_dict() == {"factor": "load", "value": 0.75, "weight": 0.15,
                                "note": "10 of 40 referrals used this month."}


def test_weights_are_the_published_ones():
    assert matching.WEIGHTS == {"language": 0.25, "budget": 0.30, "accreditation": 0.15,
                                "responsiveness": 0.15, "load": 0.15}
    assert matching.NEUTRAL == 0.5


@pytest.mark.parametrize("language,languages,value,note", [
    (None, ("es",), 0.5, "The patient named no language."),
    ("", ("es",), 0.5, "The patient named no language."),
    ("es", ("de", "es"), 1.0, "Speaks the patient's language (es)."),
    ("es", ("de", "en"), 0.4, "Does not speak es; speaks English."),
    ("es", ("tr",), 0.0, "Speaks neither es nor English."),
])
def test_language_reason_values(language, languages, value, note):
    reason = matching.language_reason(clinic(languages=languages),
                                      replace(LEAD, language=language))
    assert reason == matching.Reason("language", value, 0.25, note)


def budget(amount, currency="USD", offer=("8000", "11000", "USD")):
    low, high, offer_currency = offer
    return matching.budget_reason(
        clinic(offer=Offer(Decimal(low), Decimal(high), offer_currency)),
        replace(LEAD, budget_amount=None if amount is None else Decimal(amount),
                budget_currency=currency), RATES)


@pytest.mark.parametrize("amount,currency,offer,value,note", [
    (None, "USD", ("8000", "11000", "USD"), 0.5, "The patient gave no budget."),
    ("9000", None, ("8000", "11000", "USD"), 0.5, "The patient gave no budget."),
    ("9000", "GBP", ("8000", "11000", "USD"), 0.5,
     "No exchange rate to compare budget and price."),
    ("9000", "USD", ("8000", "11000", "GBP"), 0.5,
     "No exchange rate to compare budget and price."),
    ("12000", "USD", ("8000", "11000", "USD"), 1.0,
     "Budget covers the whole price range (8,000-11,000 USD)."),
    ("11000", "USD", ("8000", "11000", "USD"), 1.0,
     "Budget covers the whole price range (8,000-11,000 USD)."),
    ("9000", "USD", ("8000", "11000", "USD"), 0.6667,
     "Budget falls within the price range (8,000-11,000 USD)."),
    ("8000", "USD", ("8000", "11000", "USD"), 0.5,
     "Budget falls within the price range (8,000-11,000 USD)."),
    ("10000", "EUR", ("8000", "12000", "USD"), 0.85,
     "Budget falls within the price range (8,000-12,000 USD)."),
    ("7000", "USD", ("9000", "11000", "USD"), 0.2778,
     "Budget is 22% below the lowest price (9,000-11,000 USD)."),
    ("6000", "USD", ("8000", "11000", "USD"), 0.25,
     "Budget is 25% below the lowest price (8,000-11,000 USD)."),
    ("1000", "USD", ("8000", "11000", "USD"), 0.0,
     "Budget is 88% below the lowest price (8,000-11,000 USD)."),
    ("4000", "USD", ("150000", "200000", "MXN"), 0.0,
     "Budget is 52% below the lowest price (150,000-200,000 MXN)."),
], ids=["no amount", "no currency", "no rate for the budget", "no rate for the price",
        "covers", "exactly the top", "a third in", "exactly the bottom", "across currencies",
        "22 % short", "25 % short", "far short", "short across currencies"])
def test_budget_reason_values(amount, currency, offer, value, note):
    assert budget(amount, currency, offer) == matching.Reason("budget", value, 0.30, note)


def test_to_usd_multiplies_by_the_rate_and_knows_no_unknown_currency():
    assert matching.to_usd(Decimal("100"), "MXN", RATES) == Decimal("5.500")
    assert matching.to_usd(Decimal("100"), "GBP", RATES) is None


@pytest.mark.parametrize("body,value", [
    ("JCI", 1.0), ("GMP", 0.9), ("ISO 9001", 0.8), ("ISO 15189", 0.8), ("AAAASF", 0.8),
    ("GDP", 0.7), ("TEMOS", 0.7), ("jci", 1.0), ("Local board", 0.6),
])
def test_accreditation_strengths(body, value):
    held = Accreditation(body, True, None, None)
    reason = matching.accreditation_reason(clinic(accreditations=(held,)), TODAY)
    assert reason == matching.Reason("accreditation", value, 0.15,
                                     f"Holds a verified {body} accreditation valid today.")


def test_a_known_body_outranks_an_unknown_one():
    held = (Accreditation("Local board", True, None, None), Accreditation("GDP", True, None, None))
    reason = matching.accreditation_reason(clinic(accreditations=held), TODAY)
    assert (reason.value, reason.note) == (
        0.7, "Holds a verified GDP, Local board accreditation valid today.")


def test_the_strongest_valid_accreditation_counts_and_invalid_ones_do_not():
    lapsed_jci = Accreditation("JCI", True, None, TODAY - timedelta(days=1))
    held = (Accreditation("TEMOS", True, None, None), Accreditation("GMP", True, None, None),
            lapsed_jci, Accreditation("JCI", False, None, None))
    reason = matching.accreditation_reason(clinic(accreditations=held), TODAY)
    assert reason == matching.Reason(
        "accreditation", 0.9, 0.15, "Holds a verified GMP, TEMOS accreditation valid today.")


@pytest.mark.parametrize("valid_from,valid_until,verified,valid", [
    (None, None, True, True),
    (None, None, False, False),
    (0, None, True, True),
    (1, None, True, False),
    (-1, None, True, True),
    (None, 0, True, True),
    (None, -1, True, False),
], ids=["open-ended", "unverified", "from today", "from tomorrow", "from yesterday",
        "until today", "until yesterday"])
def test_accreditation_validity_edges(valid_from, valid_until, verified, valid):
    def day(offset):
        return None if offset is None else TODAY + timedelta(days=offset)

    held = Accreditation("JCI", verified, day(valid_from), day(valid_until))
    assert held.valid_on(TODAY) is valid


@pytest.mark.parametrize("hours,value,note", [
    (None, 0.5, "No answers to referrals yet."),
    (4.0, 0.8571, "Answers referrals in a median of 4.0 hours."),
    (24.0, 0.5, "Answers referrals in a median of 24.0 hours."),
    (12.0, 0.6667, "Answers referrals in a median of 12.0 hours."),
    (0.0, 1.0, "Answers referrals in a median of 0.0 hours."),
])
def test_responsiveness_values(hours, value, note):
    reason = matching.responsiveness_reason(clinic(median_hours_to_answer=hours))
    assert reason == matching.Reason("responsiveness", value, 0.15, note)


@pytest.mark.parametrize("used,cap,value", [(0, 40, 1.0), (10, 40, 0.75), (1, 3, 0.6667)])
def test_load_values(used, cap, value):
    reason = matching.load_reason(clinic(referrals_this_month=used, monthly_cap=cap))
    assert reason == matching.Reason("load", value, 0.15,
                                     f"{used} of {cap} referrals used this month.")


def test_score_is_the_weighted_sum_of_the_reasons_rounded():
    candidate = clinic(7, languages=("en",), referrals_this_month=10, monthly_cap=40,
                       offer=Offer(Decimal("8000"), Decimal("11000"), "USD"),
                       accreditations=(Accreditation("GMP", True, None, None),),
                       median_hours_to_answer=12.0)
    lead = replace(LEAD, budget_amount=Decimal("9000"))
    match = matching.score(candidate, lead, TODAY, RATES)
    # 0.4*0.25 + 0.6667*0.30 + 0.9*0.15 + 0.6667*0.15 + 0.75*0.15 = 0.647515
    assert match.clinic_id == 7
    assert match.score == 0.6475
    assert [r.value for r in match.reasons] == [0.4, 0.6667, 0.9, 0.6667, 0.75]


def test_every_exclusion_is_named_in_order():
    candidate = clinic(active=False, offer=None, accreditations=(), country="TR",
                       referrals_this_month=5, monthly_cap=5)
    assert matching.exclusions(candidate, LEAD, TODAY) == [
        "inactive", "does not offer the treatment", "no verified accreditation valid today",
        "not in a destination the patient chose", "monthly referral cap reached"]


def test_room_left_under_the_cap_is_no_exclusion():
    assert matching.exclusions(clinic(referrals_this_month=4, monthly_cap=5), LEAD, TODAY) == []


def test_best_matches_drops_the_excluded_and_keeps_the_limit():
    candidates = [clinic(1, active=False), clinic(2), clinic(3, languages=("tr",)), clinic(4)]
    matches = matching.best_matches(candidates, LEAD, TODAY, RATES, 2)
    assert [(m.clinic_id, m.score) for m in matches] == [(2, 0.925), (4, 0.925)]
    assert matching.best_matches(candidates, LEAD, TODAY, RATES, 0) == []
