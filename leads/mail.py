"""E-mail: rendered from Jinja2 templates, recorded under a unique key, then sent once.

A message is written (with its key: kind, lead, recipient) in the same transaction as the
change that calls for it, so a retry finds the record and never makes a second one. Sending
takes a short lease on the record, hands the message to the relay, and marks it sent at once.
The one window that can still repeat a message is a crash after the relay accepted it and
before that mark is committed (between the relay's reply to the data and the COMMIT of the
mark, sent with the next message's claim; the connection to the relay stays open). The
copy keeps the same Message-ID, so a relay or mailbox that de-duplicates by it drops it.
"""

import hashlib
import os
import smtplib
import time
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
from leads.outbox import Merge, enqueue

SEND_TASK = "send_emails"
SEND_BATCH = Merge(key="message_ids", size=20)
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
    enqueue(SEND_TASK, message_ids=[message_id])
    return True


def _mark_sent(message_id: int) -> None:
    db.session.execute(update(EmailMessage).where(EmailMessage.id == message_id)
                       .values(status="sent", sent_at=utcnow(), locked_until=None,
                               last_error=None))


def _claim(message_id: int, sender: str, sent_before: int | None) -> MimeMessage | None:
    """Record the message sent just before (if any), lease this one and build it, in one
    short transaction; None when it was sent or another sender holds it. No snapshot is
    held while the relay is talked to (SQLite refuses a later write from a stale one)."""
    if sent_before is not None:
        _mark_sent(sent_before)
    now = utcnow()
    claimed = db.session.execute(
        update(EmailMessage)
        .where(EmailMessage.id == message_id, EmailMessage.status.in_(("pending", "sending")),
               or_(EmailMessage.locked_until.is_(None), EmailMessage.locked_until < now))
        .values(status="sending", locked_until=now + SEND_LEASE,
                attempts=EmailMessage.attempts + 1)
        .returning(EmailMessage.recipient, EmailMessage.subject, EmailMessage.created_at,
                   EmailMessage.dedupe_key, EmailMessage.body_text, EmailMessage.body_html)
    ).one_or_none()
    db.session.commit()
    return None if claimed is None else _mime(claimed, sender)


def _mime(message, sender: str) -> MimeMessage:
    """`message` has the recorded message's recipient, subject, created_at, dedupe_key,
    body_text and body_html."""
    mime = MimeMessage()
    mime["From"] = sender
    mime["To"] = message.recipient
    mime["Subject"] = message.subject
    mime["Date"] = formatdate(message.created_at.timestamp(), usegmt=True)
    # The same message always has the same Message-ID, so a copy is recognisable.
    digest = hashlib.sha256(message.dedupe_key.encode()).hexdigest()[:32]
    mime["Message-ID"] = f"<{digest}@{sender.rpartition('@')[2] or 'localhost'}>"
    mime.set_content(message.body_text)
    mime.add_alternative(message.body_html, subtype="html")
    return mime


class Relay:
    """The process's connection to the mail relay, opened on first use and kept: a
    connection per message (greeting, EHLO, QUIT) cost more than the message itself."""

    IDLE_CHECK = 10  # seconds idle after which the connection is checked with NOOP first

    def __init__(self):
        self._smtp: smtplib.SMTP | None = None
        self._owner: tuple | None = None  # (pid, settings): never reuse across a fork
        self._last_used = 0.0

    def send(self, mime: MimeMessage, settings: SmtpSettings) -> None:
        self._connection(settings).send_message(mime)
        self._last_used = time.monotonic()

    def close(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.close()
            finally:
                self._smtp = None

    def _connection(self, settings: SmtpSettings) -> smtplib.SMTP:
        owner = (os.getpid(), settings)
        fresh = time.monotonic() - self._last_used < self.IDLE_CHECK
        if self._smtp is not None and self._owner == owner and (fresh or self._alive()):
            return self._smtp
        self.close()
        smtp = smtplib.SMTP(settings.host, settings.port, timeout=15)
        try:
            if settings.starttls:
                smtp.starttls()
            if settings.username:
                smtp.login(settings.username, settings.password)
        except Exception:
            smtp.close()
            raise
        self._smtp, self._owner = smtp, owner
        return smtp

    def _alive(self) -> bool:
        try:
            return self._smtp.noop()[0] == 250
        except (smtplib.SMTPException, OSError):
            self.close()
            return False


relay = Relay()


def deliver(message_ids: list[int], smtp: SmtpSettings) -> int:
    """Send those of the recorded messages that are neither sent nor being sent, one by one
    over the process's relay connection; returns how many were sent now. Raises on a relay
    failure, with the failed message (and those after it) left pending for a retry."""
    sent = 0
    just_sent = None
    try:
        for message_id in message_ids:
            mime = _claim(message_id, smtp.sender, sent_before=just_sent)
            just_sent = None
            if mime is None:
                continue
            try:
                relay.send(mime, smtp)
            except Exception as error:
                relay.close()
                db.session.execute(
                    update(EmailMessage).where(EmailMessage.id == message_id)
                    .values(status="pending", locked_until=None,
                            last_error=f"{type(error).__name__}: {error}"[:1000]))
                db.session.commit()
                raise
            # The relay has taken it: the mark goes out with the next claim, or below.
            just_sent = message_id
            sent += 1
    finally:
        if just_sent is not None:
            db.session.rollback()  # a claim that failed must not take the mark down with it
            _mark_sent(just_sent)
            db.session.commit()
    return sent


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
