"""Who is calling: staff with a bearer token, or a clinic with its API key (CONTRACT §2)."""

from functools import wraps

from flask import g, request
from sqlalchemy import select
from webargs.flaskparser import abort

from leads.credentials import PREFIX_LENGTH, matches, new_secret
from leads.extensions import db
from leads.models import Clinic, ClinicApiKey, StaffToken, User
from leads.models.types import utcnow

STAFF_TOKEN_KIND = "stf"
CLINIC_KEY_KIND = "clk"


def issue_staff_token(user: User) -> str:
    secret, prefix, secret_hash = new_secret(STAFF_TOKEN_KIND)
    db.session.add(StaffToken(user=user, prefix=prefix, secret_hash=secret_hash))
    return secret


def issue_clinic_key(clinic: Clinic) -> tuple[ClinicApiKey, str]:
    secret, prefix, secret_hash = new_secret(CLINIC_KEY_KIND)
    key = ClinicApiKey(clinic=clinic, prefix=prefix, secret_hash=secret_hash)
    db.session.add(key)
    return key, secret


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        return None
    return secret.strip()


def _find_credential(model, secret: str):
    candidates = db.session.scalars(
        select(model).where(model.prefix == secret[:PREFIX_LENGTH], model.revoked_at.is_(None))
    )
    for credential in candidates:
        if matches(secret, credential.secret_hash):
            credential.last_used_at = utcnow()
            return credential
    return None


def current_staff() -> User | None:
    """The staff user behind the bearer token, if there is a valid one."""
    if "staff" not in g:
        secret = _bearer()
        token = None
        if secret and secret.startswith(STAFF_TOKEN_KIND + "_"):
            token = _find_credential(StaffToken, secret)
        g.staff = token.user if token is not None and token.user.active else None
    return g.staff


def current_clinic() -> Clinic | None:
    if "clinic" not in g:
        secret = _bearer()
        key = None
        if secret and secret.startswith(CLINIC_KEY_KIND + "_"):
            key = _find_credential(ClinicApiKey, secret)
        g.clinic = key.clinic if key is not None else None
    return g.clinic


def _unauthorized():
    abort(401, message="Missing or invalid credentials.",
          headers={"WWW-Authenticate": 'Bearer realm="api"'})


def staff_required(*roles: str):
    """Allow staff users; with `roles`, only those roles (403 for the others)."""

    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            user = current_staff()
            if user is None:
                _unauthorized()
            if roles and user.role not in roles:
                abort(403, message=f"This needs the role {' or '.join(roles)}.")
            return view(*args, **kwargs)

        return wrapper

    return decorator


def clinic_required(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        clinic = current_clinic()
        if clinic is None:
            _unauthorized()
        if not clinic.active:
            abort(403, message="This clinic is not active.")
        return view(*args, **kwargs)

    return wrapper
