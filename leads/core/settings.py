"""The few settings domain operations need, read from one small object rather than from
Flask's globals. The app factory hands it the app's configuration once per process; values
are read through it when asked, so a changed setting is seen at once."""

from collections.abc import Mapping
from datetime import timedelta
from urllib.parse import quote


class Settings:
    def __init__(self, values: Mapping):
        self._values = values

    @property
    def public_base_url(self) -> str:
        return self._values["PUBLIC_BASE_URL"]

    def status_url(self, reference: str, token: str) -> str:
        """The patient's link (STATUS_PAGE_URL): the status page, or a marketplace's own."""
        return self._values["STATUS_PAGE_URL"].format(
            PUBLIC_BASE_URL=self.public_base_url, reference=quote(reference, safe=""),
            token=quote(token, safe=""))

    @property
    def review_alert_digest_window(self) -> timedelta:
        return timedelta(minutes=self._values["REVIEW_ALERT_DIGEST_MINUTES"])

    @property
    def max_clinics_per_lead(self) -> int:
        return self._values["MAX_CLINICS_PER_LEAD"]

    @property
    def referral_response_hours(self) -> int:
        return self._values["REFERRAL_RESPONSE_HOURS"]

    @property
    def retention_days(self) -> int:
        return self._values["RETENTION_DAYS"]

    @property
    def webhook_allow_private(self) -> bool:
        return self._values["WEBHOOK_ALLOW_PRIVATE"]

    @property
    def webhook_retry_base(self) -> timedelta:
        return timedelta(seconds=self._values["WEBHOOK_RETRY_BASE_SECONDS"])

    @property
    def webhook_retry_max(self) -> timedelta:
        return timedelta(seconds=self._values["WEBHOOK_RETRY_MAX_SECONDS"])

    @property
    def webhook_retry_window(self) -> timedelta:
        return timedelta(hours=self._values["WEBHOOK_RETRY_HOURS"])

    @property
    def webhook_timeout(self) -> float:
        return self._values["WEBHOOK_TIMEOUT_SECONDS"]


_current: Settings | None = None


def use_settings(values: Mapping) -> None:
    global _current
    _current = Settings(values)


def settings() -> Settings:
    if _current is None:
        raise RuntimeError("no settings yet: create_app() hands them over")
    return _current
