"""A clinic's answer as a FHIR `Task` (CONTRACT §5): `PATCH .../fhir/Task` takes the
elements that carry it, `status` and `statusReason`, alone or within the whole Task a GET
answered; the other elements of a Task are the service's and are ignored."""

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from leads.core.fields import Text
from leads.fhir.operations import CLINIC_ANSWERS
from leads.pipeline.clinic_schemas import DECLINE_REASON_LENGTH
from leads.pipeline.states import TaskStatus


class StatusReasonSchema(Schema):
    """A CodeableConcept of which the service reads the text, as `/decline` reads `reason`."""

    text = Text(allow_none=True, max_length=DECLINE_REASON_LENGTH)


class TaskAnswerSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    resourceType = fields.String(validate=validate.OneOf(["Task"]))
    id = fields.String(metadata={"description": "When sent, the referral's own id."})
    status = fields.String(required=True, validate=validate.OneOf(sorted(CLINIC_ANSWERS)),
                           metadata={"description": "`accepted` does what `/accept` does, "
                                                    "`rejected` what `/decline` does."})
    statusReason = fields.Nested(StatusReasonSchema, metadata={
        "description": "Why the clinic declines: the `reason` of `/decline`."})

    @validates_schema
    def reason_only_for_a_rejection(self, data, **kwargs):
        if data.get("statusReason") and data.get("status") != TaskStatus.REJECTED:
            raise ValidationError("Only a rejected Task takes a reason.", "statusReason")
