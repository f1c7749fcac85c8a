"""Staff users as admins see and change them (CONTRACT §4 Staff)."""

from marshmallow import Schema, ValidationError, fields, validate

from leads.accounts.models import ROLES
from leads.accounts.operations import NotAnEmail, staff_email
from leads.core.fields import JsonBoolean
from leads.core.paging import page_schema


class StaffEmail(fields.String):
    """A staff address, checked for its shape only and kept in lower case."""

    def __init__(self, **kw):
        metadata = kw.pop("metadata", {})
        metadata.setdefault("format", "email")
        metadata.setdefault("maxLength", 254)
        super().__init__(metadata=metadata, validate=validate.Length(max=254), **kw)

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return staff_email(super()._deserialize(value, attr, data, **kwargs))
        except NotAnEmail:
            raise ValidationError("Not an e-mail address.") from None


class StaffUserSchema(Schema):
    id = fields.Integer()
    email = fields.String()
    role = fields.String()
    active = fields.Boolean()
    created_at = fields.DateTime()
    last_seen_at = fields.DateTime(allow_none=True, metadata={
        "description": "When one of the user's tokens was last used, to the minute."})


class NewStaffUserSchema(StaffUserSchema):
    token = fields.String(metadata={"description": "The user's API token, shown only here."})


StaffUserPageSchema = page_schema(StaffUserSchema, "StaffUserPage")


class StaffUserInSchema(Schema):
    email = StaffEmail(required=True)
    role = fields.String(required=True, validate=validate.OneOf(ROLES))


class StaffUserPatchSchema(Schema):
    role = fields.String(validate=validate.OneOf(ROLES))
    active = JsonBoolean()
