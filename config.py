"""Configuration from the environment (CONTRACT §1); a `.env` file may supply it."""

import base64
import contextlib
import os
import secrets
import string
import tempfile
from pathlib import Path

from dotenv import load_dotenv

BASE_DIR = Path(__file__).resolve().parent
load_dotenv(BASE_DIR / ".env")


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw not in (None, "") else default


def _minutes(name: str, default: float) -> float:
    """A number of minutes; fractions are allowed (a test's window of a few seconds)."""
    value = _float(name, default)
    if not value >= 0:
        raise RuntimeError(f"{name} must be a number of minutes, 0 or more")
    return value


DEFAULT_STATUS_PAGE_URL = "{PUBLIC_BASE_URL}/status/{reference}?token={token}"


def _status_page_url(name: str) -> str:
    """The template of the patient's link; refused at start unless it names `{reference}`
    and `{token}`, and nothing but those and `{PUBLIC_BASE_URL}`."""
    template = os.environ.get(name) or DEFAULT_STATUS_PAGE_URL
    try:
        named = {field for _, field, _, _ in string.Formatter().parse(template)
                 if field is not None}
    except ValueError as error:
        raise RuntimeError(f"{name}: {error}") from None
    if not {"reference", "token"} <= named <= {"PUBLIC_BASE_URL", "reference", "token"}:
        raise RuntimeError(f"{name} must name {{reference}} and {{token}}, and may name "
                           f"{{PUBLIC_BASE_URL}}; it names {sorted(named)}")
    return template
def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw not in (None, "") else default


def new_data_key() -> str:
    """A fresh 32-byte key as DATA_KEYS and BLIND_INDEX_KEY take it."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


# Secrets every process must share; in development each is made once in a file of its own.
SECRETS = {"SECRET_KEY": lambda: secrets.token_hex(32), "DATA_KEYS": new_data_key,
           "BLIND_INDEX_KEY": new_data_key}


def key_file(path: Path, make) -> str:
    """The secret kept in `path`, made with `make()` the first time. Several processes may
    start at once (gunicorn workers, celery): each writes a whole file of its own and links
    it into place, the first link wins, and every process reads the one that won."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "w") as file:
            file.write(make() + "\n")
            file.flush()
            os.fsync(file.fileno())
        with contextlib.suppress(FileExistsError):  # another process was first: use its
            os.link(temporary, path)
    finally:
        os.unlink(temporary)
    return path.read_text().strip()


def _secrets(production: bool) -> dict:
    values = {name: os.environ.get(name, "").strip() for name in SECRETS}
    missing = [name for name, value in values.items() if not value]
    if missing and production:
        raise RuntimeError(f"{', '.join(missing)} must be set when APP_ENV=production")
    for name in missing:
        values[name] = key_file(BASE_DIR / "instance" / name.lower(), SECRETS[name])
    return values


class Config:
    """Every setting the app reads, resolved once from the environment."""

    def __init__(self) -> None:
        env = os.environ.get
        self.APP_ENV = env("APP_ENV", "development")
        self.SQLALCHEMY_DATABASE_URI = env(
            "DATABASE_URL", f"sqlite:///{BASE_DIR / 'instance' / 'leads.db'}"
        )
        # Parameters carry patient data: keep them out of SQLAlchemy's DEBUG log.
        # No ping per checkout: leads.core.database pings only connections left idle.
        self.SQLALCHEMY_ENGINE_OPTIONS = {"hide_parameters": True, "pool_recycle": 1800}
        if self.SQLALCHEMY_DATABASE_URI.startswith("sqlite"):
            self.SQLALCHEMY_ENGINE_OPTIONS["connect_args"] = {"timeout": 30}
        self.REDIS_URL = env("REDIS_URL", "redis://127.0.0.1:6379/0")
        self.SMTP_HOST = env("SMTP_HOST", "127.0.0.1")
        self.SMTP_PORT = _int("SMTP_PORT", 1025)
        self.SMTP_USERNAME = env("SMTP_USERNAME", "")
        self.SMTP_PASSWORD = env("SMTP_PASSWORD", "")
        self.SMTP_STARTTLS = _bool("SMTP_STARTTLS", False)
        self.MAIL_FROM = env("MAIL_FROM", "care@localhost")
        shared = _secrets(self.APP_ENV == "production")
        self.SECRET_KEY = shared["SECRET_KEY"]
        self.DATA_KEYS = shared["DATA_KEYS"]  # newest first; see leads/privacy/personal.py
        self.BLIND_INDEX_KEY = shared["BLIND_INDEX_KEY"]
        self.MAX_CLINICS_PER_LEAD = _int("MAX_CLINICS_PER_LEAD", 3)
        self.REFERRAL_RESPONSE_HOURS = _int("REFERRAL_RESPONSE_HOURS", 48)
        self.PUBLIC_BASE_URL = env("PUBLIC_BASE_URL", "http://127.0.0.1:5000").rstrip("/")
        self.RETENTION_DAYS = _int("RETENTION_DAYS", 730)
        self.STATUS_PAGE_URL = _status_page_url("STATUS_PAGE_URL")
        self.REVIEW_ALERT_DIGEST_MINUTES = _minutes("REVIEW_ALERT_DIGEST_MINUTES", 10)
        self.WEBHOOK_ALLOW_PRIVATE = _bool("WEBHOOK_ALLOW_PRIVATE", False)

        # Not in the contract's table, but an operator needs to tune them.
        self.INQUIRY_RATE_LIMIT = env("INQUIRY_RATE_LIMIT", "10 per minute")
        self.ATTACHMENT_RATE_LIMIT = env("ATTACHMENT_RATE_LIMIT", "20 per hour")
        self.RATELIMIT_STORAGE_URI = self.REDIS_URL
        # Redis answers in microseconds; a dead one must not hold a request.
        self.RATELIMIT_STORAGE_OPTIONS = {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}
        self.RATELIMIT_SWALLOW_ERRORS = True
        self.RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
        # The limit's headers go on a 429 only (leads/web/extensions.py): on every answer
        # they would cost a Redis read each.
        self.RATELIMIT_HEADERS_ENABLED = False
        # Sign-in attempts on the pages (leads/web/pages), per client address.
        self.SIGN_IN_RATE_LIMIT = env("SIGN_IN_RATE_LIMIT", "10 per minute")
        # Page sessions (CONTRACT §9): signed with SECRET_KEY, kept from scripts, sent on
        # top-level navigation from elsewhere (a mailed link) but not on cross-site posts.
        # Secure in production: sent over HTTPS only.
        self.SESSION_COOKIE_HTTPONLY = True
        self.SESSION_COOKIE_SECURE = self.APP_ENV == "production"
        self.SESSION_COOKIE_SAMESITE = "Lax"
        # Every answer says Referrer-Policy: no-referrer, so the browser sends no Referer to
        # check over HTTPS: the CSRF token and SameSite guard the forms.
        self.WTF_CSRF_SSL_STRICT = False
        self.BABEL_DEFAULT_LOCALE = "en"
        self.TRUST_PROXY_HOPS = _int("TRUST_PROXY_HOPS", 0)
        # Origins (a marketplace's site) whose pages may call the patient endpoints.
        self.CORS_ORIGINS = [origin.strip() for origin in env("CORS_ORIGINS", "").split(",")
                             if origin.strip()]
        self.LOG_LEVEL = env("LOG_LEVEL", "INFO")
        # Webhook deliveries (leads/webhooks/delivery.py): the first retry comes after half to
        # all of the base delay, each later one waits twice as long up to the longest, and a
        # message is retried until the retry window has passed since it was staged. Each of
        # connecting and reading the answer gives up after the timeout.
        self.WEBHOOK_RETRY_BASE_SECONDS = _float("WEBHOOK_RETRY_BASE_SECONDS", 30)
        self.WEBHOOK_RETRY_MAX_SECONDS = _float("WEBHOOK_RETRY_MAX_SECONDS", 3600)
        self.WEBHOOK_RETRY_HOURS = _float("WEBHOOK_RETRY_HOURS", 48)
        self.WEBHOOK_TIMEOUT_SECONDS = _float("WEBHOOK_TIMEOUT_SECONDS", 5)

        # Attachments (10 MB, see leads/attachments/operations.py) are the largest bodies; JSON
        # endpoints narrow this per request.
        self.MAX_CONTENT_LENGTH = 11 * 1024 * 1024
        self.JSON_BODY_LIMIT = 64 * 1024

        # flask-smorest / OpenAPI
        self.API_TITLE = "Medical-tourism leads API"
        self.API_VERSION = "v1"
        self.OPENAPI_VERSION = "3.0.3"
        self.OPENAPI_URL_PREFIX = "/api"
        self.OPENAPI_JSON_PATH = "openapi.json"
        self.OPENAPI_SWAGGER_UI_PATH = "/docs"
        self.OPENAPI_SWAGGER_UI_URL = "/static/swagger-ui/"  # vendored: no CDN
        self.SQLALCHEMY_TRACK_MODIFICATIONS = False


def load_config(**overrides) -> dict:
    config = {k: v for k, v in vars(Config()).items() if k.isupper()}
    config.update(overrides)
    return config
