"""Logs as JSON lines, one per event (CONTRACT §2), for the API, the workers and beat alike.

Each line names what it belongs to: the web layer binds `request_id` for the span of a
request, the workers bind `task_id` and `task_name` for the span of a task (`bind`). No line
holds a patient's personal data or a secret: `Redact` masks what it recognises (e-mail
addresses, phone numbers, Bearer tokens, staff and clinic keys, `token=` in a query string)
in every message, argument, extra field and traceback, and masks outright the extra fields
whose name says they are personal. SQL parameters are hidden by the engine options in
config.py; the result rows SQLAlchemy writes at DEBUG are dropped here.
"""

import contextvars
import logging
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

FIELDS = "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s"
RENAMED = {"asctime": "time", "levelname": "level", "name": "logger", "process": "pid"}
MASK = "[redacted]"

_context: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar(
    "log_context", default=None)


def bind(**fields: str) -> contextvars.Token:
    """Adds `fields` to every line logged from here on in this context; `unbind` ends it."""
    return _context.set({**(_context.get() or {}), **fields})


def unbind(token: contextvars.Token) -> None:
    _context.reset(token)


class Context(logging.Filter):
    """Puts the bound fields on each record, unless the record brings its own."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in (_context.get() or {}).items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


# Extra fields whose value is personal or secret whatever it looks like.
PERSONAL_FIELDS = frozenset({
    "first_name", "last_name", "full_name", "email", "phone", "condition", "patient",
    "recipient", "recipients", "address", "token", "status_token", "authorization",
    "password", "secret", "key", "api_key", "cookie",
})
_PATTERNS = [
    # A query string's secrets, wherever a URL is written.
    (re.compile(r"(?i)\b(token|key|api_key|password|secret)=[^&\s\"'<>]*"), rf"\1={MASK}"),
    (re.compile(r"(?i)\bbearer\s+[^\s\"',;]+"), f"Bearer {MASK}"),
    # Staff tokens and clinic keys (`<kind>_<token_urlsafe>`), webhook secrets (`whsec_<base64>`).
    (re.compile(r"\b(?:stf|clk|whsec)_[A-Za-z0-9_+/=-]{6,}"), MASK),
    (re.compile(r"[\w.+%'-]+@[\w-]+(?:\.[\w-]+)+"), MASK),
    # International phone numbers as patients write them: "+1 415 555 0100", "+34612345678".
    (re.compile(r"\+\d(?:[\s().-]{0,2}\d){6,14}"), MASK),
]


def redact_text(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_value(value):
    """`value` with every personal field masked and every string scrubbed, however nested."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {key: MASK if str(key).lower() in PERSONAL_FIELDS else redact_value(item)
                for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_value(item) for item in value]
    return value


class Redact(logging.Filter):
    """Keeps personal data and secrets out of a record before any handler writes it. The
    message is rendered here, so arguments are scrubbed as part of it."""

    _exceptions = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, Mapping):
            record.msg = redact_value(record.msg)
        else:
            try:
                message = record.getMessage()
            except Exception:  # a malformed call: let the formatter report it as logging does
                return True
            record.msg, record.args = redact_text(message), None
        if record.exc_info:
            record.exc_text = self._exceptions.formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        for name, value in list(vars(record).items()):
            if name in RESERVED_ATTRS or name.startswith("_"):
                continue
            setattr(record, name, MASK if name.lower() in PERSONAL_FIELDS else redact_value(value))
        return True


class GunicornAccess(logging.Filter):
    """Turns gunicorn's access-log atoms into fields of their own. The path is PATH_INFO,
    never the request line: a query string (a status link's `token`) is not written."""

    ATOMS = {"method": "m", "path": "U", "status": "s", "duration_ms": "M", "remote_addr": "h",
             "request_id": "{x-request-id}o"}

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, Mapping):
            for name, atom in self.ATOMS.items():
                value = record.args.get(atom)
                if value not in (None, "-"):
                    setattr(record, name, value)
        return True


class Json(JsonFormatter):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("rename_fields", RENAMED)
        super().__init__(FIELDS, *args, **kwargs)

    def formatTime(self, record, datefmt=None) -> str:  # noqa: N802  (logging's name)
        return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


class DropResultRows(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


_ROW_FILTER = DropResultRows()


def json_handler(stream=None) -> logging.Handler:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(Json())
    handler.addFilter(Context())
    handler.addFilter(Redact())
    return handler


def configure_logging(level: str | int) -> None:
    """JSON lines on stderr from the root logger, warnings included, unless a JSON handler is
    there already (gunicorn's configuration puts one there before the app is made)."""
    root = logging.getLogger()
    if not any(isinstance(handler.formatter, Json) for handler in root.handlers):
        root.addHandler(json_handler())
    root.setLevel(level.upper() if isinstance(level, str) else level)
    # A warning is an event too: written as a line like any other, not as plain text.
    logging.captureWarnings(True)
    engine_logger = logging.getLogger("sqlalchemy.engine.Engine")
    if _ROW_FILTER not in engine_logger.filters:
        engine_logger.addFilter(_ROW_FILTER)
