"""Files a patient adds to their inquiry: judged by their content, bounded in size and number."""

import hashlib

from sqlalchemy import func, select

from leads.extensions import db
from leads.models import Attachment, Lead
from leads.models.types import utcnow
from leads.timeline import PATIENT, record_event

MAX_SIZE = 10_000_000  # "10 MB": decimal megabytes, so any reading of "over 10 MB" is refused
MAX_PER_LEAD = 5
DICOM_PREAMBLE = 128


class TooManyFiles(Exception):
    pass


def sniff(content: bytes) -> str | None:
    """The media type the bytes are, whatever the file is called; None for anything else."""
    if content.startswith(b"%PDF-"):
        return "application/pdf"
    if content.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if content.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if content[DICOM_PREAMBLE:DICOM_PREAMBLE + 4] == b"DICM":
        return "application/dicom"
    return None


def add_attachment(lead: Lead, filename: str, content: bytes, content_type: str) -> Attachment:
    # Serialise uploads for one lead so that two at once cannot both be the fifth.
    db.session.scalar(select(Lead.id).where(Lead.id == lead.id).with_for_update())
    count = db.session.scalar(select(func.count()).select_from(Attachment)
                              .where(Attachment.lead_id == lead.id))
    if count >= MAX_PER_LEAD:
        raise TooManyFiles()
    attachment = Attachment(lead_id=lead.id, filename=filename, content_type=content_type,
                            size=len(content), sha256=hashlib.sha256(content).hexdigest(),
                            content=content, created_at=utcnow())
    db.session.add(attachment)
    db.session.flush()
    record_event(lead, PATIENT, "attachment_added", attachment_id=attachment.id,
                 content_type=content_type, size=attachment.size)
    return attachment
