"""Currency rates as admins keep them."""

from marshmallow import Schema, fields, validate

from leads.schemas.fields import Text


class RateSchema(Schema):
    currency = fields.String()
    usd_per_unit = fields.Float(metadata={"description": "US dollars one unit buys"})
    note = fields.String(allow_none=True)
    updated_at = fields.DateTime()


class RateInSchema(Schema):
    usd_per_unit = fields.Decimal(required=True, places=8, allow_nan=False, as_string=False,
                                  validate=validate.Range(min=0, min_inclusive=False, max=1e6),
                                  metadata={"type": "number", "exclusiveMinimum": True,
                                            "minimum": 0, "maximum": 1e6})
    note = Text(allow_none=True, max_length=500)
