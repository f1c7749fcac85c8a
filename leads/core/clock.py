"""The service's one clock."""

from datetime import UTC, date, datetime


def utcnow() -> datetime:
    """Now, in UTC. The service reads the time nowhere else (`today()` included), so a test
    that moves this clock moves it for the whole service."""
    return datetime.now(UTC)


def today() -> date:
    """Today's date in UTC: the day on which travel windows, quotes and accreditations are
    judged, whatever the host's time zone."""
    return utcnow().date()
