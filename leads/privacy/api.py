"""A person's rights over their data (CONTRACT §4 *People*), for admins. The address travels
in the body, never in a URL (URLs end up in logs)."""

from flask.views import MethodView

from leads.core.database import db
from leads.pipeline.workflow import actor_of
from leads.privacy.people import erase_person, leads_of
from leads.privacy.schemas import ErasedSchema, ErasureSchema, PersonExportSchema, PersonQuerySchema
from leads.web.guards import Audience, current_staff
from leads.web.parsing import Blueprint

blp = Blueprint("people", __name__, url_prefix="/api/v1/people",
                description="What is held about a person, and erasing it; admins only.")
admin = blp.allow(Audience.ADMIN)


@blp.route("/export")
class PersonExport(MethodView):
    @admin
    @blp.arguments(PersonQuerySchema)
    @blp.response(200, PersonExportSchema)
    def post(self, body):
        """Everything held about that e-mail address: every lead of it, with its timeline,
        attachments, messages and quotes."""
        return {"email": body["email"], "leads": leads_of(body["email"])}


@blp.route("/erase")
class PersonErasure(MethodView):
    @admin
    @blp.arguments(ErasureSchema)
    @blp.response(200, ErasedSchema)
    def post(self, body):
        """Erase that person's personal data from every lead of the address; what the funnel
        counts stays, and each lead's timeline says who erased it and why."""
        erased = erase_person(body["email"], actor_of(current_staff()), body["reason"])
        db.session.commit()
        return erased
