"""Staff users and their tokens, clinics' API keys (CONTRACT §2, §4 Staff): issued once, found
by the secret a caller presents, users given a role or made inactive. An inactive user's
tokens stop working on their next request."""

from datetime import timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError

from leads.accounts.credentials import PREFIX_LENGTH, matches, new_secret
from leads.accounts.models import ClinicApiKey, StaffToken, User
from leads.catalogue.models import Clinic
from leads.core.clock import utcnow
from leads.core.database import db
from leads.core.errors import Conflict, NotFound

STAFF_TOKEN_KIND = "stf"
CLINIC_KEY_KIND = "clk"
# How stale `last_used_at` (and a user's `last_seen_at`) may grow: recording every request
# would make every read a write.
SEEN_EVERY = timedelta(minutes=1)


class NotAnEmail(ValueError):
    pass


class UserExists(Conflict):
    # A conflict with what is stored, not a malformed request: 409, as for a state conflict.
    def __init__(self, email: str):
        super().__init__(f"A user with e-mail {email} exists already.")


class LockOut(Conflict):
    """The change would leave the service without an active admin, or the admin making it
    without access: refused, since nobody could undo it through the API."""


def staff_email(raw: str) -> str:
    """The address as kept. Only its shape is checked: staff mail may go to an intranet or
    development name (demo.local, localhost) that a check for public addresses refuses."""
    email = raw.strip().lower()
    local, at, domain = email.rpartition("@")
    if not (at and local and domain) or "@" in local or any(c.isspace() for c in email):
        raise NotAnEmail(f"{raw!r} is not an e-mail address")
    return email


def find_user(email: str) -> User | None:
    return db.session.scalar(select(User).where(User.email == email))


def create_user(email: str, role: str) -> tuple[User, str]:
    """Stage a new user and their first token; the token is shown once, by the caller."""
    if find_user(email) is not None:
        raise UserExists(email)
    user = User(email=email, role=role, active=True)
    db.session.add(user)
    try:
        db.session.flush()
    except IntegrityError:  # a twin request stored the same address first
        raise UserExists(email) from None
    return user, issue_staff_token(user)


def active_admins_besides(user: User) -> int:
    # Every active admin is locked, in one order, so that two admins taking each other's
    # rights at once take turns (and the second sees the first's change) instead of both
    # succeeding.
    admins = db.session.scalars(select(User.id).where(User.role == "admin", User.active)
                                .order_by(User.id).with_for_update()).all()
    return sum(admin_id != user.id for admin_id in admins)


def check_no_lock_out(user: User, changes: dict, by: User) -> None:
    """Raise `LockOut` when `by` applying `changes` to `user` would lock them or everyone out."""
    deactivating = changes.get("active") is False
    if deactivating and user.id == by.id:
        raise LockOut("An admin cannot deactivate themselves; another admin can.")
    if user.role == "admin" and (deactivating or changes.get("role", "admin") != "admin"):
        others = active_admins_besides(user)
        db.session.refresh(user)  # as it is now that the admins are locked
        if user.role == "admin" and user.active and others == 0:
            raise LockOut("This is the last active admin; make another admin first.")


def change_user(user_id: int, changes: dict, by: User) -> User:
    """An admin's change to a user's role or activity (the API's and the console's), refused
    when it would lock anyone out."""
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound(f"No staff user with id {user_id}.")
    check_no_lock_out(user, changes, by)
    update_user(user, changes)
    return user


def update_user(user: User, changes: dict) -> None:
    if "role" in changes:
        user.role = changes["role"]
    if "active" in changes:
        user.active = changes["active"]


def active_admin_count() -> int:
    return db.session.scalar(select(func.count()).select_from(User)
                             .where(User.role == "admin", User.active))


def issue_staff_token(user: User) -> str:
    secret, prefix, secret_hash = new_secret(STAFF_TOKEN_KIND)
    db.session.add(StaffToken(user=user, prefix=prefix, secret_hash=secret_hash))
    return secret


def issue_clinic_key(clinic: Clinic) -> tuple[ClinicApiKey, str]:
    secret, prefix, secret_hash = new_secret(CLINIC_KEY_KIND)
    key = ClinicApiKey(clinic=clinic, prefix=prefix, secret_hash=secret_hash)
    db.session.add(key)
    return key, secret


def _record_use(credential) -> None:
    """Note that the credential was used, at most once a minute, in a transaction of its own
    (a read-only request commits nothing); the condition lets one of several requests at
    once write it."""
    now = utcnow()
    if credential.last_used_at is not None and credential.last_used_at > now - SEEN_EVERY:
        return
    model = type(credential)
    written = db.session.execute(
        update(model)
        .where(model.id == credential.id,
               or_(model.last_used_at.is_(None), model.last_used_at <= now - SEEN_EVERY))
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)).rowcount
    if written and isinstance(credential, StaffToken):
        db.session.execute(update(User).where(User.id == credential.user_id)
                           .values(last_seen_at=now)
                           .execution_options(synchronize_session=False))
    db.session.commit()


def _find_credential(model, kind: str, secret: str | None):
    if not secret or not secret.startswith(kind + "_"):
        return None
    candidates = db.session.scalars(
        select(model).where(model.prefix == secret[:PREFIX_LENGTH], model.revoked_at.is_(None))
    )
    for credential in candidates:
        if matches(secret, credential.secret_hash):
            _record_use(credential)
            return credential
    return None


def staff_user_for(secret: str | None) -> User | None:
    """The active staff user whose token this is."""
    token = staff_token_for(secret)
    return token.user if token is not None else None


def clinic_for(secret: str | None) -> Clinic | None:
    """The clinic whose API key this is (active or not: the caller tells them apart)."""
    key = clinic_key_for(secret)
    return key.clinic if key is not None else None


def staff_token_for(secret: str | None) -> StaffToken | None:
    """The live token of an active user behind the secret: what a console sign-in keeps the
    id of (see `staff_user_by_token_id`)."""
    token = _find_credential(StaffToken, STAFF_TOKEN_KIND, secret)
    return token if token is not None and token.user.active else None


def clinic_key_for(secret: str | None) -> ClinicApiKey | None:
    """The live API key behind the secret: what a portal sign-in keeps the id of."""
    return _find_credential(ClinicApiKey, CLINIC_KEY_KIND, secret)


def staff_user_by_token_id(token_id: int | None) -> User | None:
    """The active user whose token, by id, is still live: a signed-in session is checked
    with it on every request, so a deactivated user or a revoked token loses access at once.
    The use counts as the token's, as a bearer request's does."""
    token = db.session.get(StaffToken, token_id) if isinstance(token_id, int) else None
    if token is None or token.revoked_at is not None or not token.user.active:
        return None
    _record_use(token)
    return token.user


def clinic_by_key_id(key_id: int | None) -> Clinic | None:
    """The clinic whose API key, by id, is still live (active clinic or not: the caller
    tells them apart); a revoked or rotated key ends the sessions signed in with it."""
    key = db.session.get(ClinicApiKey, key_id) if isinstance(key_id, int) else None
    if key is None or key.revoked_at is not None:
        return None
    _record_use(key)
    return key.clinic


def active_staff() -> list[User]:
    """Every active coordinator and admin, by e-mail: whom a lead may be assigned to."""
    return list(db.session.scalars(select(User).where(User.active).order_by(User.email)))
