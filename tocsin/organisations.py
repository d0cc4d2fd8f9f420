"""The organisations that hold a token: responders of the router, reporters of the intake.

One model and one way of writing them, in both configs::

    organisations:
      - {name: igad, token_sha256: 7cf868b93973d025a80b44e52870c62c05f8fc63530da788d2b35915ee5cdf5d}
      - {name: un-osapg, token_sha256: d3d468fc..., admin: true}    # router: may create and expire silences
      - {name: old-partner, token_sha256: 30e39213..., revoked: true}  # its token is refused (403)

Only the SHA-256 digest of a token is written down (`issue_token`; `tocsin router token` and
`tocsin intake token` print a new token and its digest). Names and digests are each unique in a list.
A request's token is compared with every configured digest in constant time (`find_by_token`).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from hmac import compare_digest
from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints
from pydantic_core import PydanticCustomError

from tocsin.validation import StrictModel

SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


def token_digest(token: str) -> str:
    """The hex SHA-256 digest of a token, as a config holds it."""
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token() -> tuple[str, str]:
    """A new random bearer token and the digest to put in the config."""
    token = secrets.token_urlsafe(32)
    return token, token_digest(token)


def _sha256_hex(value: str) -> str:
    if not SHA256_HEX.match(value):
        raise PydanticCustomError(
            "sha256", "not a SHA-256 hex digest (tocsin router token or tocsin intake token prints one)"
        )
    return value


# No ':' in names: the intake's pseudonyms hash 'organisation:reporter', which must not collide between
# organisations.
Name = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]
TokenDigest = Annotated[str, AfterValidator(_sha256_hex)]


class Organisation(StrictModel):
    name: Name
    token_sha256: TokenDigest
    admin: bool = False  # router: may create and expire silences
    revoked: bool = False  # its token is refused, by the router and the intake alike


def _distinct(organisations: list[Organisation]) -> list[Organisation]:
    problems = []
    names: dict[str, int] = {}
    digests: dict[str, int] = {}
    for i, org in enumerate(organisations):
        if org.name in names:
            problems.append(f"entries {names[org.name]} and {i} have the same name {org.name!r}")
        if org.token_sha256 in digests:
            problems.append(f"entries {digests[org.token_sha256]} and {i} have the same token_sha256")
        names.setdefault(org.name, i)
        digests.setdefault(org.token_sha256, i)
    if problems:
        raise PydanticCustomError("organisations", "{problems}", {"problems": "; ".join(problems)})
    return organisations


# The `organisations:` list of a config: at least one, each name and each token once.
Organisations = Annotated[list[Organisation], Field(min_length=1), AfterValidator(_distinct)]


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (the scheme in any case), or None."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def find_by_token(organisations: Iterable[Organisation], token: str) -> Organisation | None:
    """The organisation holding `token`, revoked or not (the caller refuses a revoked one), or None.

    The token's digest is compared with every configured digest in constant time and without an early
    exit, so the time taken tells neither whether nor where it matched.
    """
    digest = token_digest(token)
    found = None
    for org in organisations:
        if compare_digest(digest, org.token_sha256):
            found = org
    return found
