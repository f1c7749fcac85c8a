"""Cursor paging (CONTRACT §2): `?limit=` 1-200 (50 by default) and an opaque `?cursor=`."""

import base64
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate
from sqlalchemy import Select, bindparam, tuple_

from leads.core.types import MAX_ROW_ID


class PageQuerySchema(Schema):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = fields.String(load_default=None, allow_none=True)


def page_schema(item_schema: type[Schema], name: str) -> type[Schema]:
    """The schema of one page: `{"items": [...], "next_cursor": "..." | null}`."""
    return Schema.from_dict({"items": fields.List(fields.Nested(item_schema)),
                             "next_cursor": fields.String(allow_none=True)}, name=name)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_NOT_OURS = "Not a cursor this API gave out."


def encode_cursor(last_id: int, created_at: datetime | None = None) -> str:
    """`id:<id>`, or `at:<microseconds since the epoch>:<id>` for a list newest first by when
    its rows were created, as lead lists are."""
    raw = (f"id:{last_id}" if created_at is None
           else f"at:{(created_at - _EPOCH) // _MICROSECOND}:{last_id}")
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _cursor_parts(cursor: str) -> list[str]:
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().split(":")
    except (ValueError, UnicodeDecodeError):
        raise ValidationError(_NOT_OURS, field_name="cursor") from None


def _row_id(value: str) -> int:
    """Only a row id the API could have given out: ASCII digits within 32 bits."""
    if not (value.isascii() and value.isdigit()) or not 0 < int(value) <= MAX_ROW_ID:
        raise ValidationError(_NOT_OURS, field_name="cursor")
    return int(value)


def decode_cursor(cursor: str) -> int:
    kind, *rest = _cursor_parts(cursor)
    if kind != "id" or len(rest) != 1:
        raise ValidationError(_NOT_OURS, field_name="cursor")
    return _row_id(rest[0])


def decode_timed_cursor(cursor: str) -> tuple[datetime, int]:
    kind, *rest = _cursor_parts(cursor)
    if kind != "at" or len(rest) != 2 or not re.fullmatch(r"-?[0-9]{1,18}", rest[0]):
        raise ValidationError(_NOT_OURS, field_name="cursor")
    try:
        created_at = _EPOCH + int(rest[0]) * _MICROSECOND
    except OverflowError:
        raise ValidationError(_NOT_OURS, field_name="cursor") from None
    return created_at, _row_id(rest[1])


def keyset(query: Select, id_column, limit: int, cursor: str | None,
           created_column=None) -> Select:
    """The page after `cursor`, newest first, with one row more than asked: it tells whether
    another page exists (`paged`). Newest first is by id, or with `created_column` by when
    the rows were created (then id): a list filtered by a time range, or by a column indexed
    with the time, then reads its page from one index instead of walking every newer id."""
    if created_column is None:
        if cursor:
            query = query.where(id_column < decode_cursor(cursor))
        return query.order_by(id_column.desc()).limit(limit + 1)
    if cursor:
        created_at, last_id = decode_timed_cursor(cursor)
        query = query.where(tuple_(created_column, id_column) < tuple_(
            bindparam(None, created_at, type_=created_column.type),
            bindparam(None, last_id, type_=id_column.type)))
    return query.order_by(created_column.desc(), id_column.desc()).limit(limit + 1)


def paged(rows: list, limit: int, cursor_of: Callable[[Any], str]) -> dict:
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": rows, "next_cursor": cursor_of(rows[-1]) if more and rows else None}


def page(session, query: Select, id_column, limit: int, cursor: str | None,
         created_column=None) -> dict:
    """A page of the ORM objects `query` selects (`keyset`)."""
    rows = list(session.scalars(keyset(query, id_column, limit, cursor, created_column)))
    created_at = (attrgetter(created_column.key) if created_column is not None
                  else lambda row: None)
    return paged(rows, limit, lambda row: encode_cursor(getattr(row, id_column.key),
                                                        created_at(row)))
