"""Who a web visitor is: an anonymous cookie, or a signed identity from the host site.

- Anonymous: a random token minted on first contact, kept in the ``sb_anon`` cookie
  (``HttpOnly``, ``SameSite=Lax``, ``Secure`` over https) → smith ``anon:<token>``, memory off.
- Signed in: the host site's backend signs the visitor's claims with ``web.identity_secret``,
  as a JWT (HS256) with ``sub`` (the user id), ``iat``, ``exp`` and optionally ``customer_id``,
  ``email`` and ``name`` → smith ``web:<sub>``. The first form, which carries the user id alone,
  still works::

      token = f"{user_id}.{expires}.{hmac_sha256_hex(secret, f'{user_id}.{expires}')}"

  A bad signature, a past ``exp`` or an ``iat`` in the future is refused.
- What selects customer data (the smith's ``customer_id``, the ``email`` in its metadata) comes
  only from these claims; the request may only name the visitor for display.
- Claim on login: when a signed-in user arrives with an anonymous cookie whose smith nobody has
  claimed, and their identity was issued within ``web.claim_window_seconds``, that smith becomes
  theirs (memory on, the signed claims) and the alias ``web:<user_id> → smith`` is recorded, so
  later logins resolve to it. The anonymous cookie is then replaced, so a logged-out browser does
  not keep the signed-in history. An identity without ``iat`` (the first form) never claims.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import time
import warnings
from dataclasses import dataclass
from typing import Any

import jwt

from bot.connector import VisitorRecords
from bot.domain import JSON, Smith

log = logging.getLogger(__name__)

ANON_PREFIX = "anon:"
SIGNED_PREFIX = "web:"
_ANON_TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,64}$")
_FIRST_FORM_SIGNATURE = re.compile(r"^[0-9a-fA-F]{64}$")
USER_ID_MAX = 200
CUSTOMER_ID_MAX = 200
EMAIL_MAX = 320
NAME_MAX = 200
ALGORITHM = "HS256"
# Clocks of the host backend and the daemon disagree a little; more than this is refused.
CLOCK_SKEW_SECONDS = 30
# HS256 wants a key of at least 256 bits (RFC 7518 §3.2).
RECOMMENDED_SECRET_BYTES = 32


class IdentityRefused(Exception):
    """A signed identity that is malformed, forged or expired (the message says which)."""


@dataclass(frozen=True, slots=True)
class IdentityClaims:
    """What a valid signed identity proves about the visitor."""

    user_id: str
    expires_at: int
    issued_at: int | None = None  # None: the first form, which has no iat
    customer_id: str | None = None
    email: str | None = None
    name: str | None = None

    def fresh(self, window_seconds: float, *, now: float | None = None) -> bool:
        """Issued at most ``window_seconds`` ago (an identity without ``iat`` never is)."""
        if self.issued_at is None:
            return False
        return (time.time() if now is None else now) - self.issued_at <= window_seconds


def sign_identity(
    secret: str,
    user_id: str,
    *,
    ttl_seconds: int = 3600,
    now: float | None = None,
    customer_id: str | None = None,
    email: str | None = None,
    name: str | None = None,
) -> str:
    """What the host site's backend does (shown here for its tests and docs): a JWT, HS256."""
    issued = int(time.time() if now is None else now)
    payload: dict[str, Any] = {"sub": user_id, "iat": issued, "exp": issued + ttl_seconds}
    for key, value in (("customer_id", customer_id), ("email", email), ("name", name)):
        if value is not None:
            payload[key] = value
    with warnings.catch_warnings():
        # A short secret is reported once, at start (see ``secret_is_short``).
        warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
        return jwt.encode(payload, secret, algorithm=ALGORITHM)


def verify_identity(secret: str, token: str, *, now: float | None = None) -> IdentityClaims:
    """The claims of a valid identity token, either form; raises ``IdentityRefused`` otherwise."""
    parts = token.rsplit(".", 2)
    if len(parts) == 3 and parts[1].isdigit() and _FIRST_FORM_SIGNATURE.match(parts[2]):
        return _verify_first_form(secret, parts[0], parts[1], parts[2], now=now)
    return _verify_jwt(secret, token, now=now)


def _verify_first_form(
    secret: str, user_id: str, expires: str, signature: str, *, now: float | None
) -> IdentityClaims:
    if not user_id or len(user_id) > USER_ID_MAX:
        raise IdentityRefused("malformed identity")
    expected = hmac.new(secret.encode(), f"{user_id}.{expires}".encode(),
                        hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature.lower()):
        raise IdentityRefused("identity signature does not match")
    if int(expires) < (time.time() if now is None else now):
        raise IdentityRefused("identity has expired")
    return IdentityClaims(user_id=user_id, expires_at=int(expires))


def _verify_jwt(secret: str, token: str, *, now: float | None) -> IdentityClaims:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
            # Expiry is checked below against ``now`` (so tests can move the clock).
            payload = jwt.decode(
                token, secret, algorithms=[ALGORITHM],
                options={"require": ["sub", "iat", "exp"], "verify_exp": False,
                         "verify_iat": False},
            )
    except jwt.InvalidSignatureError:
        raise IdentityRefused("identity signature does not match") from None
    except jwt.MissingRequiredClaimError as exc:
        raise IdentityRefused(f"identity has no {exc.claim!r} claim") from None
    except jwt.InvalidAlgorithmError:
        raise IdentityRefused(f"identity must be signed with {ALGORITHM}") from None
    except jwt.InvalidTokenError:
        raise IdentityRefused("malformed identity") from None
    at = time.time() if now is None else now
    user_id = _claim(payload, "sub", USER_ID_MAX)
    issued, expires = payload["iat"], payload["exp"]
    if user_id is None or not _is_time(issued) or not _is_time(expires):
        raise IdentityRefused("malformed identity")
    if expires < at:
        raise IdentityRefused("identity has expired")
    if issued > at + CLOCK_SKEW_SECONDS:
        raise IdentityRefused("identity is issued in the future (check the host's clock)")
    return IdentityClaims(
        user_id=user_id,
        expires_at=int(expires),
        issued_at=int(issued),
        customer_id=_claim(payload, "customer_id", CUSTOMER_ID_MAX),
        email=_claim(payload, "email", EMAIL_MAX),
        name=_claim(payload, "name", NAME_MAX),
    )


def _is_time(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _claim(payload: JSON, key: str, limit: int) -> str | None:
    """A string claim, or None when absent; any other type or an over-long one is refused."""
    value = payload.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise IdentityRefused(f"identity claim {key!r} must be a string of at most {limit} chars")
    return value.strip()


def secret_is_short(secret: str) -> bool:
    return len(secret.encode()) < RECOMMENDED_SECRET_BYTES


def new_anon_token() -> str:
    return secrets.token_urlsafe(24)


def valid_anon_token(token: str | None) -> bool:
    return token is not None and bool(_ANON_TOKEN.match(token))


@dataclass(frozen=True, slots=True)
class Visitor:
    smith: Smith
    anon_token: str | None  # the cookie to (re)set; None for a signed-in visitor's claimed one
    signed_in: bool
    claimed: bool


class VisitorResolver:
    """Finds or makes the smith of a web visitor, under the web channel's agent."""

    def __init__(self, records: VisitorRecords, agent_id: str, *, claim_window_seconds: float):
        self._records = records
        self._agent_id = agent_id
        self._claim_window = claim_window_seconds

    async def anonymous(self, token: str | None) -> Visitor:
        """The smith of this anonymous cookie; a missing, malformed or claimed one is replaced."""
        if valid_anon_token(token):
            assert token is not None
            smith = await self._records.find_smith(ANON_PREFIX + token, self._agent_id)
            if smith is not None and not await self._records.is_claimed(smith.id):
                return Visitor(smith, token, signed_in=False, claimed=False)
            if smith is None:
                smith = await self._records.ensure_smith(
                    ANON_PREFIX + token, self._agent_id, auto_memory=False
                )
                return Visitor(smith, token, signed_in=False, claimed=False)
        fresh = new_anon_token()
        smith = await self._records.ensure_smith(ANON_PREFIX + fresh, self._agent_id,
                                               auto_memory=False)
        return Visitor(smith, fresh, signed_in=False, claimed=False)

    async def signed_in(
        self,
        claims: IdentityClaims,
        *,
        anon_token: str | None,
        display_name: str | None,
    ) -> Visitor:
        """The user's smith: an earlier claim, their own ``web:`` smith, a claim of the
        anonymous smith they arrive with (only with a fresh identity), or a new ``web:``
        smith — in that order. Its customer id and email are set to what the identity proves
        (cleared when it proves none), so nothing stored earlier outlives the proof."""
        external_id = SIGNED_PREFIX + claims.user_id
        name = display_name or claims.name
        proven: dict[str, Any] = {
            "customer_id": claims.customer_id,
            "metadata": {"email": claims.email},
        }
        smith = await self._records.alias_smith(self._agent_id, external_id)
        if smith is None:
            smith = await self._records.find_smith(external_id, self._agent_id)
        if smith is None and valid_anon_token(anon_token) and claims.fresh(self._claim_window):
            anon = await self._records.find_smith(ANON_PREFIX + str(anon_token), self._agent_id)
            if anon is not None and not await self._records.is_claimed(anon.id):
                if await self._records.add_alias(self._agent_id, external_id, anon.id):
                    profile = {**proven, "metadata": {**proven["metadata"],
                                                      "claimed_by": external_id}}
                    if name:
                        profile["display_name"] = name
                    claimed = await self._records.patch_smith(anon.id, auto_memory=True, **profile)
                    log.info("anonymous smith %s claimed on login", anon.id)
                    # The old cookie must not lead back here once the user logs out.
                    return Visitor(claimed, new_anon_token(), signed_in=True, claimed=True)
                smith = await self._records.alias_smith(self._agent_id, external_id)
        if smith is None:
            smith = await self._records.ensure_smith(
                external_id, self._agent_id, display_name=name,
                customer_id=claims.customer_id, metadata=proven["metadata"],
            )
        else:
            patch = dict(proven) if _differs(smith, proven) else {}
            if name and name != smith.display_name:
                patch["display_name"] = name
            if patch:
                smith = await self._records.patch_smith(smith.id, **patch)
        return Visitor(smith, None, signed_in=True, claimed=False)


def _differs(smith: Smith, proven: dict[str, Any]) -> bool:
    return bool(smith.customer_id != proven["customer_id"]
                or smith.metadata.get("email") != proven["metadata"]["email"])
