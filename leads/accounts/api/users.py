"""Staff users, kept by admins (CONTRACT §4 Staff)."""

from flask.views import MethodView
from sqlalchemy import select

from leads.accounts.models import User
from leads.accounts.operations import change_user, create_user
from leads.accounts.schemas import (
    NewStaffUserSchema,
    StaffUserInSchema,
    StaffUserPageSchema,
    StaffUserPatchSchema,
    StaffUserSchema,
)
from leads.core.database import db
from leads.core.paging import PageQuerySchema, page
from leads.web.guards import Audience, current_staff
from leads.web.parsing import Blueprint

blp = Blueprint("users", __name__, url_prefix="/api/v1/users",
                description="Staff users; admins only.")
admin = blp.allow(Audience.ADMIN)


@blp.route("")
class Users(MethodView):
    @admin
    @blp.arguments(PageQuerySchema, location="query")
    @blp.response(200, StaffUserPageSchema)
    def get(self, query):
        """Staff users, newest first."""
        return page(db.session, select(User), User.id, query["limit"], query["cursor"])

    @admin
    @blp.arguments(StaffUserInSchema)
    @blp.response(201, NewStaffUserSchema)
    @blp.alt_response(409, response="CONFLICT")
    def post(self, body):
        """Add a staff user; their API token is in this answer and nowhere else."""
        user, token = create_user(body["email"], body["role"])
        db.session.commit()
        return {**{name: getattr(user, name) for name in StaffUserSchema().fields},
                "token": token}


@blp.route("/<int:user_id>")
class UserDetail(MethodView):
    @admin
    @blp.arguments(StaffUserPatchSchema)
    @blp.response(200, StaffUserSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    def patch(self, changes, user_id):
        """Change a user's role or make them inactive: their tokens stop working at once. An
        admin cannot deactivate themselves, nor take away the last active admin."""
        user = change_user(user_id, changes, current_staff())
        db.session.commit()
        return user
