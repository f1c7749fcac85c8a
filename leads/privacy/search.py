"""Finding leads by who they are, through keyed digests (leads/privacy/personal.py): the
e-mail's blind index on the lead, and a row per digest of a prefix of a word of its names.
The encrypted columns themselves are never compared."""

from sqlalchemy import Select, delete, insert, intersect, select

from leads.core.database import db
from leads.pipeline.models import Lead
from leads.privacy.models import LeadSearchTerm
from leads.privacy.personal import name_index_digests, name_search_digests

_TERMS_INSERT = insert(LeadSearchTerm.__table__)


def index_names(lead_id: int, first_name: str | None, last_name: str | None) -> None:
    """Write the digests `q=` finds the lead's names by, in one executemany."""
    digests = name_index_digests(first_name, last_name)
    if digests:
        db.session.execute(_TERMS_INSERT,
                           [{"digest": digest, "lead_id": lead_id} for digest in digests])


def forget_search_index(lead: Lead) -> None:
    """Every way of finding the lead by who it was goes (erasure): its name digests and the
    blind index of its e-mail."""
    db.session.execute(delete(LeadSearchTerm).where(LeadSearchTerm.lead_id == lead.id))
    lead.email_key = None


def leads_named(text: str) -> Select | None:
    """Ids of the leads with, for each searchable word of `text`, a name word starting with
    it ("ana ruiz", "rui"); None when `text` has no word long enough to search by."""
    digests = sorted(name_search_digests(text))
    if not digests:
        return None
    each = [select(LeadSearchTerm.lead_id).where(LeadSearchTerm.digest == d) for d in digests]
    if len(each) == 1:
        return each[0]
    # As a subquery of its own: SQLite takes no parenthesised compound inside another.
    return select(intersect(*each).subquery().c.lead_id)
