"""Staff users (CONTRACT §4 Staff, §1 `users deactivate`): admins list, add and change them;
an inactive user's tokens are refused on their very next request; `last_seen_at` is kept
without a write per request."""

from datetime import timedelta

import pytest
from sqlalchemy import event, select, update

from leads.accounts.models import StaffToken, User
from leads.core.database import db
from tests.helpers import auth, cli, field_errors, is_utc_instant, problem

USER_KEYS = {"id", "email", "role", "active", "created_at", "last_seen_at"}


@pytest.fixture
def accounts(staff):
    """The catalogue's admin, coordinator and inactive user, with a token each."""
    return staff


def create(client, headers, email="new@care.example", role="coordinator"):
    return client.post("/api/v1/users", headers=headers, json={"email": email, "role": role})


def me(client, headers):
    return client.get("/api/v1/me", headers=headers)


def test_admins_list_users_by_cursor_and_coordinators_may_not(client, accounts):
    page = client.get("/api/v1/users", headers=accounts["admin"], query_string={"limit": 2})
    assert page.status_code == 200
    body = page.get_json()
    assert set(body) == {"items", "next_cursor"} and len(body["items"]) == 2
    assert all(set(user) == USER_KEYS for user in body["items"])
    rest = client.get("/api/v1/users", headers=accounts["admin"],
                      query_string={"cursor": body["next_cursor"]}).get_json()
    emails = [u["email"] for u in body["items"] + rest["items"]]
    assert sorted(emails) == ["admin@care.example", "coord@care.example", "gone@care.example"]
    assert rest["next_cursor"] is None
    gone = next(u for u in body["items"] + rest["items"] if u["email"] == "gone@care.example")
    assert gone["active"] is False and is_utc_instant(gone["created_at"])
    assert "limit" in field_errors(client.get("/api/v1/users", headers=accounts["admin"],
                                              query_string={"limit": 0}))
    problem(client.get("/api/v1/users", headers=accounts["coordinator"]), 403)
    problem(client.get("/api/v1/users"), 401)


def test_an_admin_adds_a_user_whose_token_is_shown_once_and_works(client, accounts):
    response = create(client, accounts["admin"], email=" New.Person@Care.Example ")
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert set(body) == USER_KEYS | {"token"}
    assert (body["email"], body["role"], body["active"]) == (
        "new.person@care.example", "coordinator", True)
    assert body["last_seen_at"] is None
    assert me(client, auth(body["token"])).get_json() == {
        "id": body["id"], "email": "new.person@care.example", "role": "coordinator"}
    listed = client.get("/api/v1/users", headers=accounts["admin"]).get_json()["items"]
    assert "token" not in listed[0] and listed[0]["id"] == body["id"]


def test_an_existing_email_answers_409(client, db_session, accounts):
    assert create(client, accounts["admin"]).status_code == 201
    for email in ("new@care.example", "NEW@care.example", "coord@care.example"):
        body = problem(create(client, accounts["admin"], email=email, role="admin"), 409)
        assert email.lower() in body["detail"]
    assert db_session.scalar(select(User.role).where(User.email == "new@care.example")) == (
        "coordinator")


def test_bad_user_bodies_answer_422_naming_the_fields(client, db_session, accounts):
    assert set(field_errors(client.post("/api/v1/users", headers=accounts["admin"],
                                        json={}))) == {"email", "role"}
    errors = field_errors(client.post("/api/v1/users", headers=accounts["admin"], json={
        "email": "not an address", "role": "superuser", "password": "x"}))
    assert set(errors) == {"email", "role", "password"}
    problem(create(client, accounts["coordinator"]), 403)
    assert db_session.scalar(select(User).where(User.email == "new@care.example")) is None


def test_patch_changes_role_and_refuses_bad_values(client, accounts):
    user_id = accounts["coordinator_id"]
    changed = client.patch(f"/api/v1/users/{user_id}", headers=accounts["admin"],
                           json={"role": "admin"})
    assert changed.status_code == 200 and changed.get_json()["role"] == "admin"
    assert me(client, accounts["coordinator"]).get_json()["role"] == "admin"
    errors = field_errors(client.patch(f"/api/v1/users/{user_id}", headers=accounts["admin"],
                                       json={"role": "root", "active": "no"}))
    assert set(errors) == {"role", "active"}
    problem(client.patch("/api/v1/users/999999", headers=accounts["admin"],
                         json={"active": False}), 404)
    problem(client.patch(f"/api/v1/users/{accounts['admin_id']}", headers=accounts["inactive"],
                         json={"active": False}), 401)


def test_a_deactivated_users_token_is_refused_on_the_very_next_request(client, accounts):
    coordinator = accounts["coordinator"]
    assert me(client, coordinator).status_code == 200
    response = client.patch(f"/api/v1/users/{accounts['coordinator_id']}",
                            headers=accounts["admin"], json={"active": False})
    assert response.status_code == 200 and response.get_json()["active"] is False
    problem(me(client, coordinator), 401)
    problem(client.get("/api/v1/leads", headers=coordinator), 401)
    # Made active again, the user's tokens work again: there is no other way to give an
    # existing user a token.
    client.patch(f"/api/v1/users/{accounts['coordinator_id']}", headers=accounts["admin"],
                 json={"active": True})
    assert me(client, coordinator).status_code == 200


def test_an_admin_cannot_lock_themselves_or_everyone_out(client, db_session, accounts):
    admin_id = accounts["admin_id"]
    for change in ({"active": False}, {"role": "coordinator"}):
        body = problem(client.patch(f"/api/v1/users/{admin_id}", headers=accounts["admin"],
                                    json=change), 409)
        assert "admin" in body["detail"]
    assert me(client, accounts["admin"]).get_json()["role"] == "admin"
    # With a second admin, one may step down, and the other may deactivate them.
    second = create(client, accounts["admin"], email="second@care.example", role="admin")
    second_id, second_token = second.get_json()["id"], auth(second.get_json()["token"])
    problem(client.patch(f"/api/v1/users/{admin_id}", headers=accounts["admin"],
                         json={"active": False}), 409)
    assert client.patch(f"/api/v1/users/{second_id}", headers=accounts["admin"],
                        json={"active": False}).status_code == 200
    problem(me(client, second_token), 401)
    # The last active admin again: the first may neither step down nor leave.
    problem(client.patch(f"/api/v1/users/{admin_id}", headers=accounts["admin"],
                         json={"role": "coordinator"}), 409)
    db_session.expire_all()
    assert db_session.get(User, admin_id).role == "admin"


def test_users_deactivate_refuses_the_next_request(app, client, db_session, accounts):
    coordinator = accounts["coordinator"]
    assert me(client, coordinator).status_code == 200
    result = cli(app, "users", "deactivate", "--email", " Coord@Care.Example ")
    assert result.exit_code == 0, result.output
    assert "deactivated coord@care.example" in result.output
    problem(me(client, coordinator), 401)
    db_session.expire_all()
    assert db_session.scalar(select(User.active).where(User.email == "coord@care.example")) is (
        False)


def test_users_deactivate_names_an_unknown_or_bad_address(app, db_session, accounts):
    unknown = cli(app, "users", "deactivate", "--email", "nobody@care.example")
    assert unknown.exit_code == 1 and "no user with e-mail nobody@care.example" in unknown.output
    bad = cli(app, "users", "deactivate", "--email", "not an address")
    assert bad.exit_code == 1 and "--email" in bad.output
    assert cli(app, "users", "deactivate").exit_code == 2


def test_deactivating_the_last_admin_from_the_cli_is_done_and_said(app, client, accounts):
    result = cli(app, "users", "deactivate", "--email", "admin@care.example")
    assert result.exit_code == 0
    assert "no active admin is left" in result.output
    problem(me(client, accounts["admin"]), 401)


def _writes_during(app, request) -> list[str]:
    writes = []

    def record(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith(("UPDATE", "INSERT", "DELETE")):
            writes.append(statement)

    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", record)
        try:
            assert request().status_code == 200
        finally:
            event.remove(db.engine, "before_cursor_execute", record)
    return writes


def test_last_seen_at_is_kept_at_most_once_a_minute_without_a_write_per_request(
        app, client, db_session, accounts):
    coordinator = accounts["coordinator"]
    first = _writes_during(app, lambda: me(client, coordinator))
    assert first, "the first use was not recorded"
    db_session.expire_all()
    user = db_session.get(User, accounts["coordinator_id"])
    seen = user.last_seen_at
    assert seen is not None
    for _ in range(3):
        assert _writes_during(app, lambda: me(client, coordinator)) == []
    db_session.expire_all()
    assert db_session.get(User, accounts["coordinator_id"]).last_seen_at == seen
    listed = client.get("/api/v1/users", headers=accounts["admin"]).get_json()["items"]
    shown = next(u for u in listed if u["id"] == accounts["coordinator_id"])["last_seen_at"]
    assert shown is not None and is_utc_instant(shown)

    # A minute on (moved by writing the stored time back), the next request records it again.
    earlier = seen - timedelta(minutes=2)
    db_session.execute(update(StaffToken).where(StaffToken.user_id == user.id)
                       .values(last_used_at=earlier))
    db_session.execute(update(User).where(User.id == user.id).values(last_seen_at=earlier))
    db_session.commit()
    assert _writes_during(app, lambda: me(client, coordinator))
    db_session.expire_all()
    assert db_session.get(User, accounts["coordinator_id"]).last_seen_at > earlier
