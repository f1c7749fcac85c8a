"""Partner clinics, their accreditations and API keys: coordinators read, admins write."""

from flask.views import MethodView
from marshmallow import ValidationError
from sqlalchemy import select
from webargs.flaskparser import abort

from leads.accounts.models import ClinicApiKey
from leads.accounts.operations import issue_clinic_key
from leads.catalogue.models import Clinic
from leads.catalogue.operations import (
    add_accreditation,
    clinic_accreditation,
    clinics_query,
    create_clinic,
    set_verified,
    update_clinic,
)
from leads.catalogue.schemas import (
    AccreditationInSchema,
    AccreditationPatchSchema,
    AccreditationSchema,
    ApiKeySchema,
    ClinicInSchema,
    ClinicListQuerySchema,
    ClinicPageSchema,
    ClinicPatchSchema,
    ClinicSchema,
)
from leads.core.clock import utcnow
from leads.core.database import db
from leads.core.fields import parse_phone
from leads.core.paging import page
from leads.web.guards import Audience, current_staff
from leads.web.parsing import Blueprint

blp = Blueprint("clinics", __name__, url_prefix="/api/v1/clinics",
                description="Partner clinics; admins change them.")
staff = blp.allow(Audience.STAFF)
admin = blp.allow(Audience.ADMIN)


def find_clinic(clinic_id: int) -> Clinic:
    clinic = db.session.get(Clinic, clinic_id)
    if clinic is None:
        abort(404, message=f"No clinic with id {clinic_id}.")
    return clinic


def _local_phone(changes: dict, country: str) -> None:
    """A number without `+` that the schema could not place is read for the clinic's country."""
    phone = changes.get("phone")
    if phone and not phone.startswith("+"):
        try:
            changes["phone"] = parse_phone(phone, country)
        except ValidationError as error:
            raise ValidationError(error.messages, field_name="phone") from None


@blp.route("")
class Clinics(MethodView):
    @staff
    @blp.arguments(ClinicListQuerySchema, location="query")
    @blp.response(200, ClinicPageSchema)
    def get(self, query):
        """Clinics, newest first."""
        limit, cursor = query.pop("limit"), query.pop("cursor")
        return page(db.session, clinics_query(query), Clinic.id, limit, cursor)

    @admin
    @blp.arguments(ClinicInSchema)
    @blp.response(201, ClinicSchema)
    def post(self, fields):
        """Add a clinic with the treatments it offers."""
        clinic = create_clinic(fields)
        db.session.commit()
        return clinic


@blp.route("/<int:clinic_id>")
class ClinicDetail(MethodView):
    @staff
    @blp.response(200, ClinicSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, clinic_id):
        """One clinic with its offers and accreditations."""
        return find_clinic(clinic_id)

    @admin
    @blp.arguments(ClinicPatchSchema)
    @blp.response(200, ClinicSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def patch(self, changes, clinic_id):
        """Change a clinic; `treatments`, when given, is the whole new list of offers."""
        clinic = find_clinic(clinic_id)
        _local_phone(changes, changes.get("country", clinic.country))
        update_clinic(clinic, changes)
        db.session.commit()
        return clinic


@blp.route("/<int:clinic_id>/accreditations")
class Accreditations(MethodView):
    @admin
    @blp.arguments(AccreditationInSchema)
    @blp.response(201, AccreditationSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def post(self, fields, clinic_id):
        """Record an accreditation, unverified until an admin has checked it."""
        accreditation = add_accreditation(find_clinic(clinic_id), fields)
        db.session.commit()
        return accreditation


@blp.route("/<int:clinic_id>/accreditations/<int:accreditation_id>")
class AccreditationDetail(MethodView):
    @admin
    @blp.arguments(AccreditationPatchSchema)
    @blp.response(200, AccreditationSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def patch(self, body, clinic_id, accreditation_id):
        """Verify an accreditation (or withdraw the verification); who and when are kept."""
        accreditation = clinic_accreditation(clinic_id, accreditation_id)
        set_verified(accreditation, body["verified"], current_staff())
        db.session.commit()
        return accreditation


@blp.route("/<int:clinic_id>/api-keys")
class ApiKeys(MethodView):
    @admin
    @blp.response(201, ApiKeySchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def post(self, clinic_id):
        """Issue an API key for the clinic; the key is in this answer and nowhere else."""
        key, secret = issue_clinic_key(find_clinic(clinic_id))
        db.session.commit()
        return {"id": key.id, "prefix": key.prefix, "key": secret, "created_at": key.created_at}


@blp.route("/<int:clinic_id>/api-keys/<int:key_id>")
class ApiKeyDetail(MethodView):
    @admin
    @blp.response(204)
    @blp.alt_response(404, response="NOT_FOUND")
    def delete(self, clinic_id, key_id):
        """Revoke a key; it stops working at once."""
        key = db.session.scalar(select(ClinicApiKey).where(
            ClinicApiKey.id == key_id, ClinicApiKey.clinic_id == clinic_id))
        if key is None:
            abort(404, message=f"Clinic {clinic_id} has no API key {key_id}.")
        if key.revoked_at is None:
            key.revoked_at = utcnow()
        db.session.commit()
