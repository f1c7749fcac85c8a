"""E-mail: rendered from Jinja2 templates, recorded under a unique key, then sent once.

A message is written (with its key: kind, lead, recipient) in the same transaction as the
change that calls for it, so a retry finds the record and never makes a second one. Sending
takes a short lease on the record, hands the message to the relay, and marks it sent at once.
The one window that can still repeat a message is a crash after the relay accepted it and
before that mark is committed (between the relay's reply to the data and the COMMIT of the
mark, sent with the next message's claim; the connection to the relay stays open). The
copy keeps the same Message-ID, so a relay or mailbox that de-duplicates by it drops it.

Each message's fate is its own. A relay that refuses one for good (a 5xx reply, or an address
it cannot take) marks it `failed`, on its lead's timeline, never to be tried again; a
temporary failure (a 4xx reply, a lost connection) sets it back to `pending` with a backoff of
its own; either way the batch goes on. A relay that cannot be reached at all ends the batch:
what is left stays pending for the periodic resend.
"""

import email.policy
import functools
import hashlib
import logging
import os
import random
import re
import smtplib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from email.headerregistry import HeaderRegistry
from email.message import EmailMessage as MimeMessage
from email.utils import formatdate
from pathlib import Path

from email_validator import EmailNotValidError, validate_email
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy import bindparam, or_, select, update

from leads.core.clock import utcnow
from leads.core.database import db, dialect_name, execute_committed, insert_unless_taken
from leads.core.jobs import Job
from leads.core.text import one_line
from leads.messaging.models import EmailMessage
from leads.messaging.outbox import Merge, enqueue_all
from leads.pipeline.models import Lead
from leads.pipeline.states import MAIL_UNSENT, EventKind, MessageStatus
from leads.pipeline.timeline import SYSTEM, record_event

log = logging.getLogger(__name__)
SEND_BATCH = Merge(key="message_ids", size=20)
# A send normally takes milliseconds and each SMTP step gives up after 15 s; a lease that runs
# out while its send still hangs lets the message be tried again, at worst sent twice.
SEND_LEASE = timedelta(seconds=30)
# After a temporary failure a message waits, doubling from the first wait to the longest; the
# resend sweep (every 30 s) takes it once its wait is over.
FIRST_RETRY = timedelta(seconds=10)
LONGEST_RETRY = timedelta(minutes=30)
# Relays quote the address in their refusals; no address goes into a timeline or a log.
ADDRESS = re.compile(r"[^\s<>\"']+@[^\s<>\"']+")
TEMPLATE_LANGUAGES = ("en", "es", "de")
templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    # The templates ship with the code: no file's time looked up at every render.
    auto_reload=False,
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
    """(subject, text, html). The text template sets `subject`; it is made one line, so no
    value in it (a name an admin typed a line break into) can break the header."""
    text = templates.get_template(f"{kind}.{language}.txt").make_module(context)
    html = templates.get_template(f"{kind}.{language}.html").render(**context)
    return one_line(text.subject), str(text).lstrip("\n"), html


def message_row(kind: str, recipient: str, language: str, **context) -> dict:
    """A message's rendered columns: what `stage_message` stages as a pending message."""
    subject, text, html = render(kind, language, **context)
    return {"kind": kind, "recipient": recipient, "subject": subject, "body_text": text,
            "body_html": html}


def queue_email(kind: str, key: str, recipient: str, language: str, *, lead_id: int | None,
                jobs: Sequence[tuple[str, dict]] = (), **context) -> int:
    """Stage a message under `key` in the caller's transaction; answers its id. A second
    call with the same key stages nothing and answers the first one's id."""
    return stage_message(key, lead_id, message_row(kind, recipient, language, **context), jobs)


def stage_message(key: str, lead_id: int | None, row: dict,
                  jobs: Sequence[tuple[str, dict]] = ()) -> int:
    """Stage a rendered message (`message_row`) under `key`, decided by the database in the
    same statement; `jobs`, the caller's own (task, payload) pairs, are written in one
    statement with the message's (intake's routing job: one trip less)."""
    # A second message under the same key is no message.
    message_id = db.session.scalar(insert_unless_taken(EmailMessage.__table__, "dedupe_key"),
                                   {"dedupe_key": key, "lead_id": lead_id, **row,
                                    "status": MessageStatus.PENDING, "attempts": 0,
                                    "created_at": utcnow()})
    if message_id is None:
        enqueue_all(jobs)
        return db.session.scalar(select(EmailMessage.id).where(EmailMessage.dedupe_key == key))
    enqueue_all([*jobs, (Job.SEND_EMAILS, {"message_ids": [message_id]})])
    return message_id


class Undelivered(Exception):
    """Why the relay did not take a message: its reply code (None when it gave no reply) and
    the reason, free of addresses; `permanent` when trying again cannot help."""

    def __init__(self, reason: str, code: int | None = None, permanent: bool = False):
        self.reason = one_line(ADDRESS.sub("[address]", reason))[:500]
        self.code = code
        self.permanent = permanent
        super().__init__(self.reason if code is None else f"{code} {self.reason}")

    @classmethod
    def reply(cls, code: int, text: bytes | str) -> "Undelivered":
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        return cls(text, code, permanent=500 <= code < 600)

    @classmethod
    def error(cls, error: Exception) -> "Undelivered":
        return cls(f"{type(error).__name__}: {error}")


class Unreachable(Undelivered):
    """The relay could not be reached at all (connection, greeting, TLS or login)."""


def envelope_address(address: str, smtputf8: bool) -> str:
    """The recipient as the relay is given it: as it is when it is ASCII or the relay takes
    UTF-8 (SMTPUTF8); otherwise with its domain in IDNA. A non-ASCII local part has no ASCII
    form, so such a relay can never take it."""
    if smtputf8 or address.isascii():
        return address
    try:
        ascii_form = validate_email(address, check_deliverability=False).ascii_email
    except EmailNotValidError:
        ascii_form = None
    if ascii_form is None:
        raise Undelivered("The address needs SMTPUTF8, which the relay does not offer.",
                          permanent=True)
    return ascii_form


def backoff(attempts: int) -> timedelta:
    """The wait after a message's `attempts`-th try failed for now: doubling up to the longest,
    drawn from the upper half of that, so messages deferred together come back apart."""
    ceiling = min(LONGEST_RETRY, FIRST_RETRY * 2 ** min(attempts - 1, 16))
    return ceiling * random.uniform(0.5, 1.0)


_MESSAGES = EmailMessage.__table__


def _marking_sent(id_parameter: str):
    return (update(_MESSAGES).where(_MESSAGES.c.id == bindparam(id_parameter))
            .values(status=MessageStatus.SENT, sent_at=bindparam("now"), locked_until=None,
                    last_error=None))


# Built once, on the table rather than the mapped class: a send's two statements are most of
# its database work, and building each anew (and the ORM's bulk-update bookkeeping around
# it) cost more than running it.
_MARK_SENT = _marking_sent("message_id")
_LEASE = (
    update(_MESSAGES)
    .where(_MESSAGES.c.id == bindparam("message_id"), _MESSAGES.c.status.in_(MAIL_UNSENT),
           or_(_MESSAGES.c.locked_until.is_(None), _MESSAGES.c.locked_until < bindparam("now")))
    .values(status=MessageStatus.SENDING, locked_until=bindparam("lease_until"),
            attempts=_MESSAGES.c.attempts + 1)
    .returning(_MESSAGES.c.id, _MESSAGES.c.kind, _MESSAGES.c.lead_id, _MESSAGES.c.attempts,
               _MESSAGES.c.recipient, _MESSAGES.c.subject, _MESSAGES.c.created_at,
               _MESSAGES.c.dedupe_key, _MESSAGES.c.body_text, _MESSAGES.c.body_html)
)


# PostgreSQL: the message sent just before marked and this one leased by one statement,
# committed as it ends; a NULL `sent_before` marks none.
_MARK_SENT_AND_LEASE = _LEASE.add_cte(_marking_sent("sent_before").cte("sent_before"))


def _mark_sent(message_id: int) -> None:
    db.session.execute(_MARK_SENT, {"message_id": message_id, "now": utcnow()})


def _claim(message_id: int, sent_before: int | None):
    """Record the message sent just before (if any) and lease this one, in one short
    transaction; answers what sending it needs, or None when it was sent, failed, or is
    leased or waiting out its backoff. No snapshot is held while the relay is talked to
    (SQLite refuses a later write from a stale one)."""
    now = utcnow()
    lease = {"message_id": message_id, "now": now, "lease_until": now + SEND_LEASE}
    if dialect_name() == "postgresql":
        return execute_committed(_MARK_SENT_AND_LEASE, {**lease, "sent_before": sent_before})
    if sent_before is not None:
        _mark_sent(sent_before)
    claimed = db.session.execute(_LEASE, lease).one_or_none()
    db.session.commit()
    return claimed


def _record_failure(message, failure: Undelivered) -> None:
    """A refusal for good: `failed`, and on the lead's timeline. Anything else: back to
    `pending`, not to be tried again before its backoff is over."""
    if failure.permanent:
        values = {"status": MessageStatus.FAILED, "locked_until": None}
        log.warning("message %d (%s) refused for good: %s", message.id, message.kind, failure)
        if message.lead_id is not None:
            record_event(db.session.get(Lead, message.lead_id), SYSTEM, EventKind.MESSAGE_FAILED,
                         message_id=message.id, message_kind=message.kind, code=failure.code,
                         reason=failure.reason)
    else:
        wait = backoff(message.attempts)
        values = {"status": MessageStatus.PENDING, "locked_until": utcnow() + wait}
        log.info("message %d (%s) not sent, next try in %d s: %s", message.id, message.kind,
                 wait.total_seconds(), failure)
    db.session.execute(update(EmailMessage).where(EmailMessage.id == message.id)
                       .values(last_error=str(failure), **values))
    db.session.commit()


class _HeaderClasses(HeaderRegistry):
    """The email package's registry of header classes, each class made once per header name.
    The standard registry builds a new class for every header of every message (CPython
    3.11): a message took 1.2-1.4 ms to build and write with it, 0.8 ms without."""

    @functools.cache  # noqa: B019  (one registry for the process, kept as long)
    def __getitem__(self, name: str) -> type:
        return super().__getitem__(name)


# The email package's default policy otherwise; smtplib clones it (utf8) for SMTPUTF8.
MIME_POLICY = email.policy.default.clone(header_factory=_HeaderClasses())


def build_mime(message, address: str, sender: str) -> MimeMessage:
    """`message` has the recorded message's subject, created_at, dedupe_key, body_text and
    body_html; `address` is the recipient as the relay is given it. Every header value is
    made one line here, whatever the record holds."""
    # The same message always has the same Message-ID, so a copy is recognisable.
    digest = hashlib.sha256(message.dedupe_key.encode()).hexdigest()[:32]
    headers = {
        "From": sender,
        "To": address,
        "Subject": message.subject,
        "Date": formatdate(message.created_at.timestamp(), usegmt=True),
        "Message-ID": f"<{digest}@{sender.rpartition('@')[2] or 'localhost'}>",
    }
    mime = MimeMessage(policy=MIME_POLICY)
    for name, value in headers.items():
        mime[name] = one_line(value)
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

    def send(self, message, settings: SmtpSettings) -> None:
        """Hand one claimed message to the relay; raises `Undelivered` when it did not
        take it (`Unreachable` when it could not be reached)."""
        try:
            smtp = self._connection(settings)
        except (smtplib.SMTPException, OSError) as error:
            raise Unreachable.error(error) from None
        # smtplib's send_message asks for SMTPUTF8 itself when an address needs it and the
        # relay offers it; without it, the address must be made ASCII first.
        address = envelope_address(message.recipient, smtp.has_extn("smtputf8"))
        try:
            smtp.send_message(build_mime(message, address, settings.sender), settings.sender,
                              [address])
        except smtplib.SMTPRecipientsRefused as error:
            raise Undelivered.reply(*error.recipients[address]) from None
        except smtplib.SMTPResponseException as error:  # MAIL FROM or DATA refused
            raise Undelivered.reply(error.smtp_code, error.smtp_error) from None
        except Exception as error:
            # The connection was lost, or is in a state not to be trusted: the next message
            # opens a new one.
            self.close()
            raise Undelivered.error(error) from None
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
        # smtplib closes the connection itself on a 421 reply (the relay is going away).
        if (self._smtp is not None and self._smtp.sock is not None and self._owner == owner
                and (fresh or self._alive())):
            return self._smtp
        self.close()
        smtp = smtplib.SMTP(settings.host, settings.port, timeout=15)
        try:
            smtp.ehlo_or_helo_if_needed()  # the relay's extensions (SMTPUTF8) are known
            if settings.starttls:
                smtp.starttls()
                smtp.ehlo()
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
    """Send those of the recorded messages that are due (neither sent nor failed, nor leased
    nor waiting out a backoff), one by one over the process's relay connection; returns how
    many were sent now. A message the relay does not take is recorded as such (see
    `_record_failure`) and the next one is tried, unless the relay could not be reached at
    all: then the rest are left as they are, for the resend sweep."""
    sent = 0
    just_sent = None
    try:
        # Merged lists may name a message twice. Its second claim would carry its own mark
        # as `sent_before`: one statement updating a row twice, whose lease could win.
        for message_id in dict.fromkeys(message_ids):
            message = _claim(message_id, sent_before=just_sent)
            just_sent = None
            if message is None:
                continue
            try:
                relay.send(message, smtp)
            except Undelivered as failure:
                _record_failure(message, failure)
                if isinstance(failure, Unreachable):
                    break
                continue
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
    """Messages still unsent a while after they were queued, whose lease or backoff (if any)
    is over."""
    now = utcnow()
    return list(db.session.scalars(
        select(EmailMessage.id)
        .where(EmailMessage.status.in_(MAIL_UNSENT),
               EmailMessage.created_at < now - older_than,
               or_(EmailMessage.locked_until.is_(None), EmailMessage.locked_until < now))
        .order_by(EmailMessage.id)
        .limit(1000)
    ))
