"""Secrets shown once and kept only as a lookup prefix and a hash (CONTRACT §2)."""

import hashlib
import hmac
import secrets

PREFIX_LENGTH = 12


def hash_secret(secret: str) -> str:
    # The secrets are 256 random bits, so a fast hash is as safe as a slow one here.
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret(kind: str) -> tuple[str, str, str]:
    """A fresh secret such as `stf_...`, with its lookup prefix and its hash."""
    secret = f"{kind}_{secrets.token_urlsafe(32)}"
    return secret, secret[:PREFIX_LENGTH], hash_secret(secret)


def matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)
