"""Admins keep the currency rates matching compares budgets and prices with."""

from decimal import Decimal

from sqlalchemy import select

from leads.accounts.models import User
from leads.catalogue.models import CurrencyRate
from tests.helpers import routed_lead as route
from tests.helpers import submit_reference as submit


def token_for(app, role: str) -> dict:
    from leads.accounts.operations import issue_staff_token
    from leads.core.database import db

    with app.app_context():
        user = User(email=f"{role}@rates.example", role=role)
        db.session.add(user)
        token = issue_staff_token(user)
        db.session.commit()
    return {"Authorization": f"Bearer {token}"}


def test_admin_sets_a_rate_and_coordinator_reads_it(app, client):
    admin, coordinator = token_for(app, "admin"), token_for(app, "coordinator")
    created = client.put("/api/v1/currency-rates/mxn", json={"usd_per_unit": 0.058},
                         headers=admin)
    assert created.status_code == 201
    assert created.get_json()["currency"] == "MXN"
    updated = client.put("/api/v1/currency-rates/MXN",
                         json={"usd_per_unit": 0.06, "note": "ECB reference rate"}, headers=admin)
    assert updated.status_code == 200
    listed = client.get("/api/v1/currency-rates", headers=coordinator).get_json()
    assert listed == [updated.get_json()]
    assert listed[0]["usd_per_unit"] == 0.06


def test_rate_changes_are_for_admins_and_checked(app, client):
    coordinator = token_for(app, "coordinator")
    refused = client.put("/api/v1/currency-rates/EUR", json={"usd_per_unit": 1.1},
                         headers=coordinator)
    assert refused.status_code == 403
    assert client.get("/api/v1/currency-rates").status_code == 401
    admin = token_for(app, "admin")
    for code, body, field in (("ZZZ", {"usd_per_unit": 1}, "currency"),
                              ("EUR", {"usd_per_unit": 0}, "usd_per_unit"),
                              ("EUR", {}, "usd_per_unit")):
        response = client.put(f"/api/v1/currency-rates/{code}", json=body, headers=admin)
        assert response.status_code == 422
        assert response.mimetype == "application/problem+json"
        assert field in response.get_json()["errors"]


def test_budget_fit_follows_the_updated_rate(app, client, db_session, catalogue):
    """Clinics price in USD 8,000-11,000; a budget of 10,000 EUR fits at 1.1 and not at 0.5."""
    admin = token_for(app, "admin")

    def budget_reason(rate: float) -> dict:
        assert client.put("/api/v1/currency-rates/EUR", json={"usd_per_unit": rate},
                          headers=admin).status_code in (200, 201)
        lead = route(app, db_session, submit(client, budget={"amount": 10000,
                                                             "currency": "EUR"}))
        return next(r for r in lead.referrals[0].reasons if r["factor"] == "budget")

    assert budget_reason(1.1)["value"] > budget_reason(0.5)["value"]
    stored = db_session.scalar(select(CurrencyRate).where(CurrencyRate.currency == "EUR"))
    assert stored.usd_per_unit == Decimal("0.5")
