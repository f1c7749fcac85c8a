"""The treatments patients can ask about; admins keep the list."""

from flask.views import MethodView
from sqlalchemy.exc import IntegrityError
from webargs.flaskparser import abort

from leads.api.parsing import Blueprint
from leads.auth import current_staff, staff_required
from leads.catalogue import (
    TreatmentExists,
    create_treatment,
    find_treatment,
    list_treatments,
    update_treatment,
)
from leads.extensions import db
from leads.schemas.catalogue import TreatmentInSchema, TreatmentPatchSchema, TreatmentSchema

blp = Blueprint("treatments", __name__, url_prefix="/api/v1/treatments",
                description="Treatments patients can ask about.")
admin = blp.guarded(staff_required("admin"))


@blp.route("")
class Treatments(MethodView):
    @blp.response(200, TreatmentSchema(many=True))
    def get(self):
        """Active treatments; staff see inactive ones too, with `active: false`."""
        staff = current_staff() is not None
        treatments = list_treatments(include_inactive=staff)
        if staff:
            return treatments
        return [{"slug": t.slug, "name": t.name, "specialty": t.specialty} for t in treatments]

    @admin
    @blp.arguments(TreatmentInSchema)
    @blp.response(201, TreatmentSchema)
    @blp.alt_response(409, response="CONFLICT")
    def post(self, fields):
        """Add a treatment to the catalogue."""
        try:
            treatment = create_treatment(fields)
            db.session.commit()
        except (TreatmentExists, IntegrityError):  # the latter: a twin request came first
            db.session.rollback()
            abort(409, message=f"A treatment with slug {fields['slug']!r} exists already.")
        return treatment


@blp.route("/<string:slug>")
class TreatmentDetail(MethodView):
    @admin
    @blp.arguments(TreatmentPatchSchema)
    @blp.response(200, TreatmentSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def patch(self, changes, slug):
        """Rename, re-file or (de)activate a treatment."""
        treatment = find_treatment(slug)
        if treatment is None:
            abort(404, message=f"No treatment {slug!r}.")
        update_treatment(treatment, changes)
        db.session.commit()
        return treatment
