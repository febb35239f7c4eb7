"""Bearer-token authentication of the service, and who may see which job.

Tokens live in the settings only as SHA-256 hashes (`[[service.tokens]]`); a presented token is
hashed and compared with every configured hash by `hmac.compare_digest`, so neither the settings
file nor the timing of a refusal gives a token away. With no tokens configured, authentication is
off (which `check_exposure` allows only on a loopback address, or with `allow_unauthenticated`).
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass

from fastapi import HTTPException, status

from prover.service.settings import ServiceSettings, TokenSettings, hash_token


@dataclass(frozen=True, slots=True)
class Caller:
    """Who made a request: the token's settings, or None when authentication is off."""

    token: TokenSettings | None

    @property
    def owner(self) -> str | None:
        """The owner name jobs submitted by this caller carry (None when authentication is off)."""
        return self.token.name if self.token is not None else None

    def may_see(self, owner: str | None) -> bool:
        """Whether a job owned by `owner` is visible to this caller (always, when authentication is off)."""
        return self.token is None or owner == self.token.name


ANONYMOUS = Caller(token=None)


class ExposureError(ValueError):
    """The service would listen on a non-loopback address without authentication."""


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or `localhost`) only accepts connections from this machine."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to anything


def check_exposure(service: ServiceSettings) -> None:
    """Raise `ExposureError` when `service` binds beyond loopback with no tokens and no explicit opt-out."""
    if service.tokens or service.allow_unauthenticated or is_loopback(service.host):
        return
    raise ExposureError(
        f"refusing to serve on {service.host} without authentication: add a token under "
        "[[service.tokens]] (`prover serve --hash-token TOKEN` prints its sha256), bind to 127.0.0.1, "
        "or set service.allow_unauthenticated = true behind your own authenticating proxy"
    )


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"})


def authenticate(service: ServiceSettings, authorization: str | None) -> Caller:
    """The caller an `Authorization` header names; raises a 401 `HTTPException` for a missing or bad token."""
    if not service.tokens:
        return ANONYMOUS
    if not authorization:
        raise _unauthorized("missing bearer token (send `Authorization: Bearer <token>`)")
    scheme, _, presented = authorization.partition(" ")
    presented = presented.strip()
    if scheme.lower() != "bearer" or not presented:
        raise _unauthorized("the Authorization header must be `Bearer <token>`")
    digest = hash_token(presented)
    found: TokenSettings | None = None
    for token in service.tokens:  # every hash is compared, so the time taken does not say which one matched
        if hmac.compare_digest(digest, token.sha256):
            found = token
    if found is None:
        raise _unauthorized("invalid token")
    return Caller(token=found)
