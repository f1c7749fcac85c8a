"""The treatments patients can ask about; admins keep the list."""

from flask.views import MethodView
from webargs.flaskparser import abort

from leads.catalogue.operations import (
    create_treatment,
    find_treatment,
    list_treatments,
    update_treatment,
)
from leads.catalogue.schemas import TreatmentInSchema, TreatmentPatchSchema, TreatmentSchema
from leads.core.database import db
from leads.web.guards import Audience, current_staff
from leads.web.parsing import Blueprint

blp = Blueprint("treatments", __name__, url_prefix="/api/v1/treatments",
                description="Treatments patients can ask about.")
admin = blp.allow(Audience.ADMIN)


@blp.route("")
class Treatments(MethodView):
    @blp.allow(Audience.ANYONE)
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
        treatment = create_treatment(fields)
        db.session.commit()
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
