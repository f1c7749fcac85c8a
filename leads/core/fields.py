"""marshmallow fields for the codes and formats the contract fixes (CONTRACT §2)."""

from datetime import UTC
from decimal import ROUND_HALF_EVEN, Decimal

import phonenumbers
import pycountry
from email_validator import EmailNotValidError, validate_email
from marshmallow import ValidationError, fields, validate

from leads.core.text import CONTROL, NO_CONTROL_PATTERN


class RowId(fields.Integer):
    """The id of a stored row: a positive 32-bit integer."""

    def __init__(self, **kw):
        kw.setdefault("strict", True)
        kw.setdefault("validate", validate.Range(min=1, max=2**31 - 1))
        super().__init__(**kw)


class Amount(fields.Decimal):
    """A JSON number between `minimum` and `maximum` (both included), kept to `places`
    decimals. The range is checked on the number as sent and its ends are multiples of
    the last place, so the rounded number that is stored lies in it too, and the bounds
    the document gives are the service's."""

    def __init__(self, *, places: int, minimum: str, maximum: str, **kw):
        self.quantum = Decimal(1).scaleb(-places)
        self.range = validate.Range(min=Decimal(minimum), max=Decimal(maximum),
                                    error=f"Must be between {minimum} and {maximum}.")
        metadata = {"type": "number", "minimum": float(minimum), "maximum": float(maximum),
                    **kw.pop("metadata", {})}
        super().__init__(allow_nan=False, as_string=False, metadata=metadata, **kw)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.make_error("invalid")
        number = self.range(super()._deserialize(value, attr, data, **kwargs))
        return number.quantize(self.quantum, rounding=ROUND_HALF_EVEN)


class JsonBoolean(fields.Boolean):
    """A JSON `true` or `false`; not "yes", 1 or "true", which a consent must not be read
    from."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class Text(fields.String):
    """A string with surrounding white space removed; blank counts as missing.
    `single_line` refuses line breaks and other control characters: for a name, or anything
    else that may end up in a mail header or a one-line display."""

    def __init__(self, *, min_length: int | None = None, max_length: int | None = None,
                 single_line: bool = False, **kw):
        self.min_length = min_length
        self.max_length = max_length
        self.single_line = single_line
        metadata = kw.pop("metadata", {})
        if min_length is not None:
            metadata.setdefault("minLength", min_length)
        if max_length is not None:
            metadata.setdefault("maxLength", max_length)
        if single_line:
            metadata.setdefault("pattern", NO_CONTROL_PATTERN)
        super().__init__(metadata=metadata, **kw)

    def _deserialize(self, value, attr, data, **kwargs):
        raw = super()._deserialize(value, attr, data, **kwargs)
        # Checked before stripping: a trailing line break is refused too, as documented.
        if self.single_line and CONTROL.search(raw):
            raise ValidationError("Must be one line, without control characters.")
        text = raw.strip()
        if not text and self.required:
            raise ValidationError("Must not be blank.")
        if self.min_length is not None and len(text) < self.min_length:
            raise ValidationError(f"Must be at least {self.min_length} characters.")
        if self.max_length is not None and len(text) > self.max_length:
            raise ValidationError(f"Must be at most {self.max_length} characters.")
        return text


class _Code(fields.String):
    """An ISO code looked up in pycountry; answered in its canonical case."""

    lookup = None
    length = 2
    upper = True
    what = "code"

    def __init__(self, **kw):
        metadata = kw.pop("metadata", {})
        metadata.setdefault("minLength", self.length)
        metadata.setdefault("maxLength", self.length)
        super().__init__(metadata=metadata, **kw)

    def _deserialize(self, value, attr, data, **kwargs):
        code = super()._deserialize(value, attr, data, **kwargs).strip()
        code = code.upper() if self.upper else code.lower()
        if len(code) != self.length or type(self).lookup(code) is None:
            raise ValidationError(f"Unknown {self.what} {value!r}.")
        return code


class Country(_Code):
    what = "ISO 3166-1 alpha-2 country code"
    lookup = staticmethod(lambda code: pycountry.countries.get(alpha_2=code))


class Language(_Code):
    what = "ISO 639-1 language code"
    upper = False
    lookup = staticmethod(lambda code: pycountry.languages.get(alpha_2=code))


class Currency(_Code):
    what = "ISO 4217 currency code"
    length = 3
    lookup = staticmethod(lambda code: pycountry.currencies.get(alpha_3=code))


class Email(fields.String):
    def __init__(self, **kw):
        metadata = kw.pop("metadata", {})
        metadata.setdefault("format", "email")
        metadata.setdefault("maxLength", 254)
        super().__init__(metadata=metadata, **kw)

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        try:
            return validate_email(text, check_deliverability=False).normalized
        except EmailNotValidError as error:
            raise ValidationError(f"Not a valid e-mail address: {error}") from None


def parse_phone(raw: str, country: str | None) -> str:
    """A phone number in E.164; without a leading + it is read as a number of `country`."""
    region = None if raw.strip().startswith("+") else country
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        raise ValidationError("Not a phone number.") from None
    if not phonenumbers.is_valid_number(number):
        raise ValidationError("Not a valid phone number" + (f" for {country}." if region else "."))
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


class Instant(fields.Field):
    """A date (`2027-02-01`) or an ISO 8601 date-time; naive times are read as UTC.
    Loads to a `date` or an aware `datetime`, so a filter can treat a whole day."""

    def __init__(self, **kw):
        metadata = kw.pop("metadata", {})
        metadata.setdefault("type", "string")
        metadata.setdefault("description", "A date or an ISO 8601 date-time")
        super().__init__(metadata=metadata, **kw)

    def _deserialize(self, value, attr, data, **kwargs):
        from datetime import date, datetime

        if not isinstance(value, str):
            raise ValidationError("Not a date or date-time.")
        try:
            if len(value) == 10:
                return date.fromisoformat(value)
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError("Not a date or date-time.") from None
        if moment.tzinfo is None:
            return moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)
