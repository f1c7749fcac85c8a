"""E-mail: rendered from Jinja2 templates, recorded under a unique key, then sent once.

A message is written (with its key: kind, lead, recipient) in the same transaction as the
change that calls for it, so a retry finds the record and never makes a second one. Sending
takes a short lease on the record, hands the message to the relay, and marks it sent at once.
The one window that can still repeat a message is a crash after the relay accepted it and
before that mark is committed (the relay's reply to the data, then one UPDATE and COMMIT;
the goodbye to the relay comes after the mark). The copy keeps the same Message-ID, so a
relay or mailbox that de-duplicates by it drops it.
"""

import hashlib
import smtplib
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage as MimeMessage
from email.utils import formatdate
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy import or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from leads.extensions import db
from leads.models import EmailMessage
from leads.models.types import utcnow
from leads.outbox import enqueue

SEND_TASK = "send_email"
INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}
# A send normally takes milliseconds and each SMTP step gives up after 15 s; a lease that runs
# out while its send still hangs lets the message be tried again, at worst sent twice.
SEND_LEASE = timedelta(seconds=30)
TEMPLATE_LANGUAGES = ("en", "es", "de")
templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates" / "mail"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    username: str
    password: str
    starttls: bool
    sender: str

    @classmethod
    def from_config(cls, config) -> "SmtpSettings":
        return cls(config["SMTP_HOST"], config["SMTP_PORT"], config["SMTP_USERNAME"],
                   config["SMTP_PASSWORD"], config["SMTP_STARTTLS"], config["MAIL_FROM"])


def template_language(*preferred: str | None) -> str:
    """The first preferred language we have templates in; English otherwise."""
    return next((lang for lang in preferred if lang in TEMPLATE_LANGUAGES), "en")


def render(kind: str, language: str, **context) -> tuple[str, str, str]:
    """(subject, text, html). The text template's first line is `Subject: ...`."""
    text = templates.get_template(f"{kind}.{language}.txt").render(**context)
    subject_line, _, body = text.partition("\n")
    html = templates.get_template(f"{kind}.{language}.html").render(**context)
    return subject_line.removeprefix("Subject:").strip(), body.lstrip("\n"), html


def queue_email(kind: str, key: str, recipient: str, language: str, *, lead_id: int | None,
                **context) -> bool:
    """Stage a message under `key` in the caller's transaction; True when it is new. A second
    call with the same key is a no-op, decided by the database in the same statement."""
    subject, text, html = render(kind, language, **context)
    insert = INSERTS[db.session.get_bind().dialect.name](EmailMessage)
    message_id = db.session.scalar(
        insert.values(dedupe_key=key, kind=kind, lead_id=lead_id, recipient=recipient,
                      subject=subject, body_text=text, body_html=html, status="pending",
                      attempts=0, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=[EmailMessage.dedupe_key])
        .returning(EmailMessage.id))
    if message_id is None:
        return False
    enqueue(SEND_TASK, message_id=message_id)
    return True


def _claim(message_id: int) -> bool:
    now = utcnow()
    claimed = db.session.execute(
        update(EmailMessage)
        .where(EmailMessage.id == message_id, EmailMessage.status.in_(("pending", "sending")),
               or_(EmailMessage.locked_until.is_(None), EmailMessage.locked_until < now))
        .values(status="sending", locked_until=now + SEND_LEASE,
                attempts=EmailMessage.attempts + 1)
    ).rowcount == 1
    db.session.commit()
    return claimed


def _mime(message: EmailMessage, sender: str) -> MimeMessage:
    mime = MimeMessage()
    mime["From"] = sender
    mime["To"] = message.recipient
    mime["Subject"] = message.subject
    mime["Date"] = formatdate(message.created_at.timestamp(), usegmt=True)
    digest = hashlib.sha256(message.dedupe_key.encode()).hexdigest()[:32]
    mime["Message-ID"] = f"<{digest}@{sender.rpartition('@')[2] or 'localhost'}>"
    mime.set_content(message.body_text)
    mime.add_alternative(message.body_html, subtype="html")
    return mime


def deliver(message_id: int, smtp: SmtpSettings) -> bool:
    """Send one recorded message unless it was sent or is being sent; True if sent now.
    Raises on a relay failure, with the message left pending for a retry."""
    if not _claim(message_id):
        return False
    message = db.session.get(EmailMessage, message_id)
    relay = None
    try:
        relay = smtplib.SMTP(smtp.host, smtp.port, timeout=15)
        if smtp.starttls:
            relay.starttls()
        if smtp.username:
            relay.login(smtp.username, smtp.password)
        relay.send_message(_mime(message, smtp.sender))
    except Exception as error:
        if relay is not None:
            relay.close()
        message.status = "pending"
        message.locked_until = None
        message.last_error = f"{type(error).__name__}: {error}"[:1000]
        db.session.commit()
        raise
    # The relay has taken the message: record it before anything else (saying goodbye to
    # the relay included) can fail or be cut short, to keep the crash window small.
    message.status = "sent"
    message.sent_at = utcnow()
    message.locked_until = None
    message.last_error = None
    db.session.commit()
    try:
        relay.quit()
    except (smtplib.SMTPException, OSError):
        relay.close()
    return True


def stuck_messages(older_than: timedelta) -> list[int]:
    """Messages still unsent a while after they were queued, whose lease (if any) ran out."""
    now = utcnow()
    return list(db.session.scalars(
        select(EmailMessage.id)
        .where(EmailMessage.status.in_(("pending", "sending")),
               EmailMessage.created_at < now - older_than,
               or_(EmailMessage.locked_until.is_(None), EmailMessage.locked_until < now))
        .order_by(EmailMessage.id)
        .limit(1000)
    ))
