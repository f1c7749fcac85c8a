"""The calling staff user."""

from flask.views import MethodView

from leads.pipeline.schemas import UserSchema
from leads.web.guards import Audience, current_staff
from leads.web.parsing import Blueprint

blp = Blueprint("me", __name__, url_prefix="/api/v1/me", description="The calling staff user.")


@blp.route("")
class Me(MethodView):
    @blp.allow(Audience.STAFF)
    @blp.response(200, UserSchema)
    def get(self):
        """The staff user the token belongs to."""
        return current_staff()
