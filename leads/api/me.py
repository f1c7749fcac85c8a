"""The calling staff user."""

from flask.views import MethodView

from leads.api.parsing import Blueprint
from leads.auth import current_staff, staff_required
from leads.schemas.leads import UserSchema

blp = Blueprint("me", __name__, url_prefix="/api/v1/me", description="The calling staff user.")


@blp.route("")
class Me(MethodView):
    @blp.guarded(staff_required())
    @blp.response(200, UserSchema)
    def get(self):
        """The staff user the token belongs to."""
        return current_staff()
