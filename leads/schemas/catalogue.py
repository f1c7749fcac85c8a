"""Treatments, clinics and accreditations as the API shows them."""

from marshmallow import Schema, fields


class TreatmentSchema(Schema):
    slug = fields.String(required=True)
    name = fields.String(required=True)
    specialty = fields.String(required=True)
    active = fields.Boolean()
