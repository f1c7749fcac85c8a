"""The figures coordinators steer by."""

from flask.views import MethodView

from leads.api.parsing import Blueprint
from leads.auth import staff_required
from leads.lead_queries import funnel
from leads.schemas.leads import FunnelQuerySchema, FunnelSchema

blp = Blueprint("stats", __name__, url_prefix="/api/v1/stats", description="Pipeline figures.")


@blp.route("/funnel")
class Funnel(MethodView):
    @blp.guarded(staff_required())
    @blp.arguments(FunnelQuerySchema, location="query")
    @blp.response(200, FunnelSchema)
    def get(self, filters):
        """Leads by status and treatment, and how each clinic answers its referrals."""
        return funnel(filters)
