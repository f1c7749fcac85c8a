"""The matching engine: which clinics may take a lead, and which fit it best.

Plain Python on plain data, with no Flask or database, so that it can be read and tested
alone. `leads.routing` loads the data and writes the outcome.

First the hard filters of CONTRACT §6 (active, offers the treatment, a verified accreditation
valid today, in one of the destinations, room under the monthly cap); then a score over five
factors, each kept with its value, weight and a sentence a coordinator can read. Recent load
is one of the factors, so equally fitting clinics take turns; ties fall to the lower clinic id.
"""

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

WEIGHTS = {
    "language": 0.25,
    "budget": 0.30,
    "accreditation": 0.15,
    "responsiveness": 0.15,
    "load": 0.15,
}
# How much a body's accreditation says about a clinic's standards (1 = the strongest).
ACCREDITATION_STRENGTH = {"JCI": 1.0, "GMP": 0.9, "ISO 9001": 0.8, "ISO 15189": 0.8,
                          "AAAASF": 0.8, "GDP": 0.7, "TEMOS": 0.7}
DEFAULT_STRENGTH = 0.6
NEUTRAL = 0.5


@dataclass(frozen=True)
class Accreditation:
    body: str
    verified: bool
    valid_from: date | None
    valid_until: date | None

    def valid_on(self, day: date) -> bool:
        return (self.verified and (self.valid_from is None or self.valid_from <= day)
                and (self.valid_until is None or day <= self.valid_until))


@dataclass(frozen=True)
class Offer:
    price_min: Decimal
    price_max: Decimal
    currency: str


@dataclass(frozen=True)
class Candidate:
    clinic_id: int
    name: str
    country: str
    active: bool
    languages: tuple[str, ...]
    monthly_cap: int
    referrals_this_month: int
    offer: Offer | None
    accreditations: tuple[Accreditation, ...]
    # Over its latest answers to referrals (leads/routing/operations.py); None: none yet.
    median_hours_to_answer: float | None = None
    # Not for matching: how routing tells the clinic it was chosen.
    email: str | None = None
    webhooks: bool = False


@dataclass(frozen=True)
class LeadProfile:
    destinations: tuple[str, ...]
    language: str | None
    budget_amount: Decimal | None
    budget_currency: str | None


@dataclass(frozen=True)
class Reason:
    factor: str
    value: float
    weight: float
    note: str

    def as_dict(self) -> dict:
        return {"factor": self.factor, "value": self.value, "weight": self.weight,
                "note": self.note}


@dataclass(frozen=True)
class Match:
    clinic_id: int
    score: float
    reasons: tuple[Reason, ...] = field(default_factory=tuple)


def exclusions(candidate: Candidate, lead: LeadProfile, today: date) -> list[str]:
    """Why a clinic may not take this lead; empty when it may."""
    why = []
    if not candidate.active:
        why.append("inactive")
    if candidate.offer is None:
        why.append("does not offer the treatment")
    if not any(a.valid_on(today) for a in candidate.accreditations):
        why.append("no verified accreditation valid today")
    if lead.destinations and candidate.country not in lead.destinations:
        why.append("not in a destination the patient chose")
    if candidate.referrals_this_month >= candidate.monthly_cap:
        why.append("monthly referral cap reached")
    return why


def to_usd(amount: Decimal, currency: str, usd_per_unit: dict[str, Decimal]) -> Decimal | None:
    rate = usd_per_unit.get(currency)
    return None if rate is None else Decimal(amount) * Decimal(rate)


def language_reason(candidate: Candidate, lead: LeadProfile) -> Reason:
    weight = WEIGHTS["language"]
    if not lead.language:
        return Reason("language", NEUTRAL, weight, "The patient named no language.")
    if lead.language in candidate.languages:
        return Reason("language", 1.0, weight, f"Speaks the patient's language ({lead.language}).")
    if "en" in candidate.languages:
        return Reason("language", 0.4, weight,
                      f"Does not speak {lead.language}; speaks English.")
    return Reason("language", 0.0, weight, f"Speaks neither {lead.language} nor English.")


def budget_reason(candidate: Candidate, lead: LeadProfile,
                  usd_per_unit: dict[str, Decimal]) -> Reason:
    weight = WEIGHTS["budget"]
    if lead.budget_amount is None or not lead.budget_currency:
        return Reason("budget", NEUTRAL, weight, "The patient gave no budget.")
    offer = candidate.offer
    budget = to_usd(lead.budget_amount, lead.budget_currency, usd_per_unit)
    low = to_usd(offer.price_min, offer.currency, usd_per_unit)
    if budget is None or low is None:
        return Reason("budget", NEUTRAL, weight, "No exchange rate to compare budget and price.")
    high = to_usd(offer.price_max, offer.currency, usd_per_unit)
    prices = f"{offer.price_min:,.0f}-{offer.price_max:,.0f} {offer.currency}"
    if budget >= high:
        return Reason("budget", 1.0, weight, f"Budget covers the whole price range ({prices}).")
    if budget >= low:
        # Here low <= budget < high, so the range is not empty.
        share = float((budget - low) / (high - low))
        return Reason("budget", round(0.5 + 0.5 * share, 4), weight,
                      f"Budget falls within the price range ({prices}).")
    # Here budget < low, so low is above zero.
    shortfall = float((low - budget) / low)
    return Reason("budget", round(max(0.0, 0.5 * (1 - 2 * shortfall)), 4), weight,
                  f"Budget is {shortfall:.0%} below the lowest price ({prices}).")


def strength(body: str) -> float:
    return ACCREDITATION_STRENGTH.get(body.upper(), DEFAULT_STRENGTH)


def accreditation_reason(candidate: Candidate, today: date) -> Reason:
    valid = [a.body for a in candidate.accreditations if a.valid_on(today)]
    value = max(strength(body) for body in valid)
    return Reason("accreditation", value, WEIGHTS["accreditation"],
                  f"Holds a verified {', '.join(sorted(valid))} accreditation valid today.")


def responsiveness_reason(candidate: Candidate) -> Reason:
    weight = WEIGHTS["responsiveness"]
    hours = candidate.median_hours_to_answer
    if hours is None:
        return Reason("responsiveness", NEUTRAL, weight, "No answers to referrals yet.")
    value = round(1 / (1 + hours / 24), 4)
    return Reason("responsiveness", value, weight,
                  f"Answers referrals in a median of {hours:.1f} hours.")


def load_reason(candidate: Candidate) -> Reason:
    used = candidate.referrals_this_month / candidate.monthly_cap
    return Reason("load", round(1 - used, 4), WEIGHTS["load"],
                  f"{candidate.referrals_this_month} of {candidate.monthly_cap} referrals "
                  "used this month.")


def score(candidate: Candidate, lead: LeadProfile, today: date,
          usd_per_unit: dict[str, Decimal]) -> Match:
    reasons = (
        language_reason(candidate, lead),
        budget_reason(candidate, lead, usd_per_unit),
        accreditation_reason(candidate, today),
        responsiveness_reason(candidate),
        load_reason(candidate),
    )
    total = round(sum(r.value * r.weight for r in reasons), 4)
    return Match(candidate.clinic_id, total, reasons)


def best_matches(candidates: list[Candidate], lead: LeadProfile, today: date,
                 usd_per_unit: dict[str, Decimal], limit: int) -> list[Match]:
    """The `limit` best eligible clinics, best first; ties go to the lower clinic id."""
    matches = [score(c, lead, today, usd_per_unit)
               for c in candidates if not exclusions(c, lead, today)]
    matches.sort(key=lambda m: (-m.score, m.clinic_id))
    return matches[:limit]
