"""Configuration from the environment (CONTRACT §1); a `.env` file may supply it."""

import os
import secrets
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


class Config:
    """Every setting the app reads, resolved once from the environment."""

    def __init__(self) -> None:
        env = os.environ.get
        self.APP_ENV = env("APP_ENV", "development")
        self.SQLALCHEMY_DATABASE_URI = env(
            "DATABASE_URL", f"sqlite:///{BASE_DIR / 'instance' / 'leads.db'}"
        )
        # Parameters carry patient data: keep them out of SQLAlchemy's DEBUG log.
        self.SQLALCHEMY_ENGINE_OPTIONS = {"hide_parameters": True, "pool_pre_ping": True}
        if self.SQLALCHEMY_DATABASE_URI.startswith("sqlite"):
            self.SQLALCHEMY_ENGINE_OPTIONS["connect_args"] = {"timeout": 30}
        self.REDIS_URL = env("REDIS_URL", "redis://127.0.0.1:6379/0")
        self.SMTP_HOST = env("SMTP_HOST", "127.0.0.1")
        self.SMTP_PORT = _int("SMTP_PORT", 1025)
        self.SMTP_USERNAME = env("SMTP_USERNAME", "")
        self.SMTP_PASSWORD = env("SMTP_PASSWORD", "")
        self.SMTP_STARTTLS = _bool("SMTP_STARTTLS", False)
        self.MAIL_FROM = env("MAIL_FROM", "care@localhost")
        secret = env("SECRET_KEY", "")
        if not secret:
            if self.APP_ENV == "production":
                raise RuntimeError("SECRET_KEY is required when APP_ENV=production")
            secret = secrets.token_hex(32)
        self.SECRET_KEY = secret
        self.MAX_CLINICS_PER_LEAD = _int("MAX_CLINICS_PER_LEAD", 3)
        self.REFERRAL_RESPONSE_HOURS = _int("REFERRAL_RESPONSE_HOURS", 48)
        self.PUBLIC_BASE_URL = env("PUBLIC_BASE_URL", "http://127.0.0.1:5000").rstrip("/")

        # Not in the contract's table, but an operator needs to tune them.
        self.INQUIRY_RATE_LIMIT = env("INQUIRY_RATE_LIMIT", "10 per minute")
        self.RATELIMIT_STORAGE_URI = self.REDIS_URL
        # Redis answers in microseconds; a dead one must not hold a request.
        self.RATELIMIT_STORAGE_OPTIONS = {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}
        self.RATELIMIT_SWALLOW_ERRORS = True
        self.RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
        self.RATELIMIT_HEADERS_ENABLED = True
        self.TRUST_PROXY_HOPS = _int("TRUST_PROXY_HOPS", 0)
        self.LOG_LEVEL = env("LOG_LEVEL", "INFO")

        # Attachments (10 MB, see leads/attachments.py) are the largest bodies; JSON
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
        self.OPENAPI_SWAGGER_UI_URL = "https://cdn.jsdelivr.net/npm/swagger-ui-dist/"
        self.SQLALCHEMY_TRACK_MODIFICATIONS = False


def load_config(**overrides) -> dict:
    config = {k: v for k, v in vars(Config()).items() if k.isupper()}
    config.update(overrides)
    return config
