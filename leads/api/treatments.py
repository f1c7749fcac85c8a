"""The treatments patients can ask about."""

from flask.views import MethodView

from leads.api.parsing import Blueprint
from leads.auth import current_staff
from leads.catalogue import list_treatments
from leads.schemas.catalogue import TreatmentSchema

blp = Blueprint("treatments", __name__, url_prefix="/api/v1/treatments",
                description="Treatments patients can ask about.")


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
