"""Files a patient adds to their inquiry: judged by their content (kinds.py),
bounded in size and number, and given back only to staff and to clinics that took the
patient on."""

from typing import BinaryIO

from sqlalchemy import func, select

from leads.attachments.kinds import media_type, safe_filename
from leads.attachments.models import Attachment
from leads.core.clock import utcnow
from leads.core.database import db
from leads.core.errors import DomainError, Invalid, NotFound
from leads.pipeline.models import Lead, Referral
from leads.pipeline.states import REFERRAL_ACCEPTED, EventKind, LeadStatus
from leads.pipeline.timeline import PATIENT, record_event
from leads.privacy.personal import keyed_fingerprint

MAX_SIZE = 10_000_000  # "10 MB": decimal megabytes, so any reading of "over 10 MB" is refused
MAX_PER_LEAD = 5


class UnknownAttachment(NotFound):
    def __init__(self, attachment_id: int, referral_id: int):
        super().__init__(f"No attachment {attachment_id} on referral {referral_id}.")


class TooManyFiles(Invalid):
    def __init__(self):
        super().__init__("file", f"An inquiry holds at most {MAX_PER_LEAD} files.")


class FileTooLarge(DomainError):
    status = 413
    title = "Request Entity Too Large"

    def __init__(self):
        super().__init__("A file may be at most 10 MB.")


class NotAKindWeTake(Invalid):
    def __init__(self):
        super().__init__("file", "Send a whole PDF, JPEG, PNG or DICOM file.")


def add_patients_file(lead: Lead, name: str | None, stream: BinaryIO) -> Attachment:
    """A file the patient sends (the API or the status page): at most MAX_SIZE bytes are
    read, the whole of it must be a kind we take, its name is made safe; then as
    `add_attachment`."""
    content = stream.read(MAX_SIZE + 1)
    if len(content) > MAX_SIZE:
        raise FileTooLarge()
    content_type = media_type(content)
    if content_type is None:
        raise NotAKindWeTake()
    return add_attachment(lead, safe_filename(name, content_type), content, content_type)


def add_attachment(lead: Lead, filename: str, content: bytes, content_type: str) -> Attachment:
    """Stage the file in the caller's transaction. A spam lead's file is answered as if kept
    (the honeypot must not tell a bot it was caught) and is not kept."""
    if lead.status == LeadStatus.SPAM:
        return Attachment(id=_plausible_id(), lead_id=lead.id, filename=filename,
                          content_type=content_type, size=len(content), created_at=utcnow())
    # Serialise uploads for one lead so that two at once cannot both be the fifth.
    db.session.scalar(select(Lead.id).where(Lead.id == lead.id).with_for_update())
    count = db.session.scalar(select(func.count()).select_from(Attachment)
                              .where(Attachment.lead_id == lead.id))
    if count >= MAX_PER_LEAD:
        raise TooManyFiles()
    attachment = Attachment(lead_id=lead.id, filename=filename, content_type=content_type,
                            size=len(content), sha256=keyed_fingerprint("attachment", content),
                            content=content, created_at=utcnow())
    db.session.add(attachment)
    db.session.flush()
    record_event(lead, PATIENT, EventKind.ATTACHMENT_ADDED, attachment_id=attachment.id,
                 content_type=content_type, size=attachment.size)
    return attachment


def _plausible_id() -> int:
    return (db.session.scalar(select(func.max(Attachment.id))) or 0) + 1


def lead_attachment(lead_id: int, attachment_id: int) -> Attachment | None:
    return db.session.scalar(select(Attachment).where(
        Attachment.id == attachment_id, Attachment.lead_id == lead_id))


def clinic_may_see_files(referral: Referral) -> bool:
    return referral.status in REFERRAL_ACCEPTED


def clinic_attachment(referral: Referral, attachment_id: int) -> Attachment:
    """One of the lead's files for the clinic of `referral`, once it has accepted; before,
    the file is answered as an unknown one."""
    attachment = (lead_attachment(referral.lead_id, attachment_id)
                  if clinic_may_see_files(referral) else None)
    if attachment is None:
        raise UnknownAttachment(attachment_id, referral.id)
    return attachment
