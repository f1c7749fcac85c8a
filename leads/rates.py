"""Currency rates: how budgets and prices in different currencies are compared."""

from decimal import Decimal

from sqlalchemy import select

from leads.extensions import db
from leads.models import CurrencyRate
from leads.models.types import utcnow


def list_rates() -> list[CurrencyRate]:
    return list(db.session.scalars(select(CurrencyRate).order_by(CurrencyRate.currency)))


def set_rate(currency: str, usd_per_unit: Decimal, note: str | None) -> tuple[CurrencyRate, bool]:
    """Create or replace a currency's rate; True when it is new."""
    rate = db.session.get(CurrencyRate, currency)
    created = rate is None
    if created:
        rate = CurrencyRate(currency=currency)
        db.session.add(rate)
    rate.usd_per_unit = usd_per_unit
    rate.note = note
    rate.updated_at = utcnow()
    return rate, created
