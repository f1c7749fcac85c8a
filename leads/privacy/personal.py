"""The one layer personal data passes through on its way to and from the database.

Every column that holds personal data has one of the types here (`PersonalText`,
`PersonalJSON`, `PersonalBytes`): a value is encrypted with AES-256-GCM under the newest of
`DATA_KEYS` and decrypted with the key it names. Lookups never compare these columns: they use
keyed digests made here (`email_lookup_key`, `name_search_digests`), HMAC-SHA256 under
`BLIND_INDEX_KEY`, so a dump cannot be searched by a guessed address or name.

A stored value is `pd1:<key id>:` followed by the 12-byte nonce and the ciphertext with its
tag: raw bytes in binary columns, URL-safe base64 in text ones. The key id comes from the key
itself, so a value names its key (decryption picks it at once) and rotation can tell the
values that are not under the newest key by their first 13 characters. The header is the
associated data, so it cannot be altered either.

The keys are set once per process (`use_keys`, called by `create_app`): the AES-GCM objects
and the keyed HMAC are built then, never per value or per request.
"""

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import unicodedata

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import LargeBinary, Text
from sqlalchemy.types import TypeDecorator

FORMAT = b"pd1"
KEY_BYTES = 32
KEY_ID_LENGTH = 8
HEADER_LENGTH = len(FORMAT) + 1 + KEY_ID_LENGTH + 1  # b"pd1:" + key id + b":"
NONCE_BYTES = 12
# Name tokens are indexed by their prefixes from this many letters up to the longest kept.
NAME_PREFIX_MIN = 2
NAME_PREFIX_MAX = 16
NAME_SEARCH_WORDS = 8
NAME_DIGEST_LENGTH = 32  # hex characters: 128 bits of the HMAC, plenty to tell names apart


class UndecryptableValue(Exception):
    """A stored value that the configured keys cannot open: never answered as garbage."""


def decode_key(text: str, what: str) -> bytes:
    """A 32-byte key from URL-safe base64 (padding optional); ValueError naming `what`."""
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{what} is not URL-safe base64") from None
    if len(key) != KEY_BYTES:
        raise ValueError(f"{what} is {len(key)} bytes; it must be {KEY_BYTES}")
    return key


def key_id(key: bytes) -> str:
    return hashlib.sha256(b"leads data key id\0" + key).hexdigest()[:KEY_ID_LENGTH]


class Keyring:
    """The data keys (newest first: it encrypts, all decrypt) and the blind-index key."""

    def __init__(self, data_keys: list[bytes], blind_index_key: bytes):
        if not data_keys:
            raise ValueError("DATA_KEYS holds no key")
        if not blind_index_key:
            raise ValueError("BLIND_INDEX_KEY is empty")
        self._ciphers: dict[str, AESGCM] = {}
        for key in data_keys:
            kid = key_id(key)
            if kid in self._ciphers:
                raise ValueError(f"DATA_KEYS names the key with id {kid} twice")
            self._ciphers[kid] = AESGCM(key)
        self.newest = key_id(data_keys[0])
        self.current_header = FORMAT + b":" + self.newest.encode() + b":"
        self._blind = hmac.new(blind_index_key, digestmod=hashlib.sha256)

    @classmethod
    def from_settings(cls, data_keys: str, blind_index_key: str) -> "Keyring":
        parts = [part.strip() for part in data_keys.split(",")]
        keys = [decode_key(part, f"DATA_KEYS: key {n}") for n, part in enumerate(parts, 1)]
        return cls(keys, blind_index_key.encode())

    @property
    def key_ids(self) -> list[str]:
        return list(self._ciphers)

    def seal(self, plaintext: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        header = self.current_header
        return header + nonce + self._ciphers[self.newest].encrypt(nonce, plaintext, header)

    def open(self, sealed: bytes) -> bytes:
        header, body = sealed[:HEADER_LENGTH], sealed[HEADER_LENGTH:]
        if (len(header) != HEADER_LENGTH or not header.startswith(FORMAT + b":")
                or not header.endswith(b":")):
            raise UndecryptableValue("a personal-data column holds a value that is not "
                                     "encrypted (or not in a format this version knows)")
        kid = header[len(FORMAT) + 1:-1].decode("ascii", "replace")
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise UndecryptableValue(
                f"a value is encrypted under key id {kid}, which is not among DATA_KEYS "
                f"(key ids {', '.join(self._ciphers)}): put that key back in DATA_KEYS")
        try:
            return cipher.decrypt(body[:NONCE_BYTES], body[NONCE_BYTES:], header)
        except InvalidTag:
            raise UndecryptableValue(
                f"a value under key id {kid} failed authentication: it was altered, or "
                f"another key has the same id") from None

    def seal_text(self, plaintext: str) -> str:
        sealed = self.seal(plaintext.encode())
        body = base64.urlsafe_b64encode(sealed[HEADER_LENGTH:]).rstrip(b"=")
        return (sealed[:HEADER_LENGTH] + body).decode("ascii")

    def open_text(self, stored: str) -> str:
        header, body = stored[:HEADER_LENGTH], stored[HEADER_LENGTH:]
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            header_bytes = header.encode("ascii")
        except (binascii.Error, ValueError):
            raise UndecryptableValue(
                f"a personal-data value (header {header!r}) is not valid base64") from None
        return self.open(header_bytes + raw).decode()

    def digest(self, purpose: bytes, data: bytes) -> str:
        """HMAC-SHA256 under the blind-index key; `purpose` keeps the uses apart."""
        mac = self._blind.copy()
        mac.update(purpose + b"\0" + data)
        return mac.hexdigest()


_keyring: Keyring | None = None
_settings: tuple[str, str] | None = None


def use_keys(data_keys: str, blind_index_key: str) -> Keyring:
    """Make these the process's keys (the same settings again change nothing)."""
    global _keyring, _settings
    if _settings != (data_keys, blind_index_key):
        _keyring = Keyring.from_settings(data_keys, blind_index_key)
        _settings = (data_keys, blind_index_key)
    return _keyring


def keyring() -> Keyring:
    if _keyring is None:
        raise RuntimeError("the personal-data keys are not set: create_app() sets them")
    return _keyring


class Encrypted(TypeDecorator):
    """What every personal type shares; `keys rotate` finds the columns by this class."""

    def rewrap(self, stored, keys: Keyring):
        """The stored value re-encrypted under the newest key, never decoded further."""
        raise NotImplementedError

    def current_prefix(self, keys: Keyring):
        """How a value under the newest key starts, as this column stores it."""
        raise NotImplementedError


class PersonalText(Encrypted):
    """Text that is personal data."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else keyring().seal_text(value)

    def process_result_value(self, value, dialect):
        return None if value is None else keyring().open_text(value)

    def rewrap(self, stored: str, keys: Keyring) -> str:
        return keys.seal_text(keys.open_text(stored))

    def current_prefix(self, keys: Keyring) -> str:
        return keys.current_header.decode("ascii")


class PersonalJSON(PersonalText):
    """A JSON document that is (or may hold) personal data, encrypted as one text."""

    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        return super().process_bind_param(
            json.dumps(value, separators=(",", ":"), ensure_ascii=False), dialect)

    def process_result_value(self, value, dialect):
        text = super().process_result_value(value, dialect)
        return None if text is None else json.loads(text)


class PersonalBytes(Encrypted):
    """Bytes that are personal data (an attachment's content)."""

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else keyring().seal(bytes(value))

    def process_result_value(self, value, dialect):
        return None if value is None else keyring().open(bytes(value))

    def rewrap(self, stored: bytes, keys: Keyring) -> bytes:
        return keys.seal(keys.open(bytes(stored)))

    def current_prefix(self, keys: Keyring) -> bytes:
        return keys.current_header


def normalise_email(email: str) -> str:
    return email.strip().lower()


def email_lookup_key(email: str) -> str:
    """The keyed blind index of an e-mail address: the one way leads are found by e-mail."""
    return keyring().digest(b"email", normalise_email(email).encode())


def keyed_fingerprint(purpose: str, data: bytes) -> str:
    """A keyed digest of data that may hold personal data, to tell whether two are equal."""
    return keyring().digest(purpose.encode(), data)


# Letters NFKD does not take apart, written as a person searching would type them.
_FOLD = str.maketrans({"ø": "o", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "æ": "ae",
                       "œ": "oe", "ı": "i"})
_APOSTROPHES = re.compile(r"['’`´]")
_TOKEN = re.compile(r"[^\W_]+")


def name_tokens(text: str) -> list[str]:
    """Lower-cased, accent-folded words of a name or a search ("O'Brien-Núñez" → obrien,
    nunez); words shorter than NAME_PREFIX_MIN are not searchable and are left out."""
    folded = unicodedata.normalize("NFKD", text.casefold().translate(_FOLD))
    folded = "".join(c for c in folded if not unicodedata.combining(c))
    folded = _APOSTROPHES.sub("", folded)
    return [token for token in _TOKEN.findall(folded) if len(token) >= NAME_PREFIX_MIN]


def _name_digest(term: str) -> str:
    return keyring().digest(b"name", term.encode())[:NAME_DIGEST_LENGTH]


def name_index_digests(*names: str | None) -> set[str]:
    """What a lead's names are indexed under: each word's prefixes, from NAME_PREFIX_MIN
    letters up to NAME_PREFIX_MAX (a longer word is found by its first NAME_PREFIX_MAX)."""
    return {_name_digest(token[:length])
            for name in names if name
            for token in name_tokens(name)
            for length in range(NAME_PREFIX_MIN, min(len(token), NAME_PREFIX_MAX) + 1)}


def name_search_digests(text: str) -> set[str]:
    """One digest per searchable word of a search (the first NAME_SEARCH_WORDS, so a search
    costs a bounded query): a lead matches when it has them all."""
    words = name_tokens(text)[:NAME_SEARCH_WORDS]
    return {_name_digest(token[:NAME_PREFIX_MAX]) for token in words}
