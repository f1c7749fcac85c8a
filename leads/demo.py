"""Demo catalogue (placeholder until the full catalogue lands)."""

from sqlalchemy import select

from leads.auth import issue_staff_token
from leads.extensions import db
from leads.models import Treatment, User

ADMIN_EMAIL = "admin@demo.local"


def seed_demo() -> str | None:
    if db.session.scalar(select(User).where(User.email == ADMIN_EMAIL)) is not None:
        return None
    db.session.add(Treatment(slug="stem-cell-spine-arthritis", name="Stem cell therapy for spine arthritis",
                             specialty="regenerative-medicine"))
    admin = User(email=ADMIN_EMAIL, role="admin")
    db.session.add(admin)
    return issue_staff_token(admin)
