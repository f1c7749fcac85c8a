"""The one layer personal data passes through on its way to and from the database.

Every column that holds a patient's personal data uses `PersonalText`, so that
encryption at rest is a change to this file alone. Lookups never compare these
columns: they use keys derived here (`email_lookup_key`).
"""

import hashlib

from sqlalchemy import Text
from sqlalchemy.types import TypeDecorator


class PersonalText(TypeDecorator):
    """Text that is personal data; stored as given for now."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return value

    def process_result_value(self, value, dialect):
        return value


def normalise_email(email: str) -> str:
    return email.strip().lower()


def email_lookup_key(email: str) -> str:
    """A stable, non-reversible key for finding leads by e-mail address."""
    return hashlib.sha256(normalise_email(email).encode()).hexdigest()
