"""The keyed index a lead is found by name through (leads/privacy/search.py)."""

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from leads.core.database import db


class LeadSearchTerm(db.Model):
    """A keyed digest of a prefix of a word of the lead's names (`name_index_digests`), so
    that `q=` finds leads by name without the names being readable or compared."""

    __tablename__ = "lead_search_terms"

    digest: Mapped[str] = mapped_column(String(32), primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id"), primary_key=True, index=True)
