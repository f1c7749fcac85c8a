"""Cursor paging (CONTRACT §2): `?limit=` 1-200 (50 by default) and an opaque `?cursor=`."""

import base64
from collections.abc import Callable
from operator import attrgetter
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate
from sqlalchemy import Select

from leads.core.types import MAX_ROW_ID


class PageQuerySchema(Schema):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = fields.String(load_default=None, allow_none=True)


def page_schema(item_schema: type[Schema], name: str) -> type[Schema]:
    """The schema of one page: `{"items": [...], "next_cursor": "..." | null}`."""
    return Schema.from_dict({"items": fields.List(fields.Nested(item_schema)),
                             "next_cursor": fields.String(allow_none=True)}, name=name)


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, value = raw.partition(":")
        # Only a row id the API could have given out: ASCII digits within 32 bits.
        if kind != "id" or not (value.isascii() and value.isdigit()) or not (
                0 < int(value) <= MAX_ROW_ID):
            raise ValueError(cursor)
        return int(value)
    except (ValueError, UnicodeDecodeError):
        raise ValidationError("Not a cursor this API gave out.", field_name="cursor") from None


def keyset(query: Select, id_column, limit: int, cursor: str | None) -> Select:
    """The page after `cursor`, newest first by id, with one row more than asked: it tells
    whether another page exists (`paged`)."""
    if cursor:
        query = query.where(id_column < decode_cursor(cursor))
    return query.order_by(id_column.desc()).limit(limit + 1)


def paged(rows: list, limit: int, id_of: Callable[[Any], int]) -> dict:
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": rows, "next_cursor": encode_cursor(id_of(rows[-1])) if more and rows else None}


def page(session, query: Select, id_column, limit: int, cursor: str | None) -> dict:
    """A page of the ORM objects `query` selects."""
    rows = list(session.scalars(keyset(query, id_column, limit, cursor)))
    return paged(rows, limit, attrgetter("id"))
