"""The matching engine, on plain data (no Flask, no database)."""

from collections import Counter
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal

import pytest

from leads import matching
from leads.matching import Accreditation, Candidate, LeadProfile, Offer

TODAY = date(2026, 11, 24)
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
    fast = matching.responsiveness_reason(clinic(hours_to_first_answer=(2.0, 4.0)))
    slow = matching.responsiveness_reason(clinic(hours_to_first_answer=(40.0, 60.0)))
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
