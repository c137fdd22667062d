"""Who a web visitor is: an anonymous cookie, or a signed identity from the host site.

- Anonymous: a random token minted on first contact, kept in the ``sb_anon`` cookie
  (``HttpOnly``, ``SameSite=Lax``, ``Secure`` over https) → smith ``anon:<token>``, memory off.
- Signed in: the host site's backend signs the user id with ``web.identity_secret``::

      token = f"{user_id}.{expires}.{hmac_sha256_hex(secret, f'{user_id}.{expires}')}"

  → smith ``web:<user_id>``. A bad signature or a past ``expires`` is refused.
- Claim on login: the first time a signed-in user arrives with an anonymous cookie whose smith
  nobody has claimed, that smith becomes theirs (display name, customer id, memory on) and the
  alias ``web:<user_id> → smith`` is recorded, so later logins resolve to it. The anonymous
  cookie is then replaced, so a logged-out browser does not keep the signed-in history.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import time
from dataclasses import dataclass

from bot.domain import Smith
from bot.store.store import Store
from bot.store.web import WebStore

log = logging.getLogger(__name__)

ANON_PREFIX = "anon:"
SIGNED_PREFIX = "web:"
_ANON_TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,64}$")
USER_ID_MAX = 200


class IdentityRefused(Exception):
    """A signed identity that is malformed, forged or expired (the message says which)."""


def sign_identity(secret: str, user_id: str, *, ttl_seconds: int = 3600,
                  now: float | None = None) -> str:
    """What the host site's backend does (shown here for its tests and docs)."""
    expires = int((time.time() if now is None else now) + ttl_seconds)
    signature = hmac.new(secret.encode(), f"{user_id}.{expires}".encode(),
                         hashlib.sha256).hexdigest()
    return f"{user_id}.{expires}.{signature}"


def verify_identity(secret: str, token: str, *, now: float | None = None) -> str:
    """The user id of a valid identity token; raises ``IdentityRefused`` otherwise."""
    parts = token.rsplit(".", 2)
    if len(parts) != 3 or not parts[0] or not parts[1].isdigit():
        raise IdentityRefused("malformed identity")
    user_id, expires, signature = parts
    if len(user_id) > USER_ID_MAX:
        raise IdentityRefused("malformed identity")
    expected = hmac.new(secret.encode(), f"{user_id}.{expires}".encode(),
                        hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature.lower()):
        raise IdentityRefused("identity signature does not match")
    if int(expires) < (time.time() if now is None else now):
        raise IdentityRefused("identity has expired")
    return user_id


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

    def __init__(self, store: Store, agent_id: str):
        self._store = store
        self._web = WebStore(store)
        self._agent_id = agent_id

    async def anonymous(self, token: str | None) -> Visitor:
        """The smith of this anonymous cookie; a missing, malformed or claimed one is replaced."""
        if valid_anon_token(token):
            assert token is not None
            smith = await self._store.find_smith(ANON_PREFIX + token, self._agent_id)
            if smith is not None and not await self._web.is_claimed(smith.id):
                return Visitor(smith, token, signed_in=False, claimed=False)
            if smith is None:
                smith = await self._store.ensure_smith(
                    ANON_PREFIX + token, self._agent_id, auto_memory=False
                )
                return Visitor(smith, token, signed_in=False, claimed=False)
        fresh = new_anon_token()
        smith = await self._store.ensure_smith(ANON_PREFIX + fresh, self._agent_id,
                                               auto_memory=False)
        return Visitor(smith, fresh, signed_in=False, claimed=False)

    async def signed_in(
        self,
        user_id: str,
        *,
        anon_token: str | None,
        display_name: str | None,
        customer_id: str | None,
    ) -> Visitor:
        """The user's smith: an earlier claim, their own ``web:`` smith, a claim of the
        anonymous smith they arrive with, or a new ``web:`` smith — in that order."""
        external_id = SIGNED_PREFIX + user_id
        profile = {k: v for k, v in (("display_name", display_name),
                                     ("customer_id", customer_id)) if v}
        smith = await self._web.alias_smith(self._agent_id, external_id)
        if smith is None:
            smith = await self._store.find_smith(external_id, self._agent_id)
        if smith is None and valid_anon_token(anon_token):
            anon = await self._store.find_smith(ANON_PREFIX + str(anon_token), self._agent_id)
            if anon is not None and not await self._web.is_claimed(anon.id):
                if await self._web.add_alias(self._agent_id, external_id, anon.id):
                    claimed = await self._store.patch_smith(
                        anon.id, auto_memory=True, metadata={"claimed_by": external_id},
                        **profile,
                    )
                    log.info("anonymous smith %s claimed on login", anon.id)
                    # The old cookie must not lead back here once the user logs out.
                    return Visitor(claimed, new_anon_token(), signed_in=True, claimed=True)
                smith = await self._web.alias_smith(self._agent_id, external_id)
        if smith is None:
            smith = await self._store.ensure_smith(
                external_id, self._agent_id, display_name=display_name, customer_id=customer_id
            )
        elif any(getattr(smith, k) != v for k, v in profile.items()):
            smith = await self._store.patch_smith(smith.id, **profile)
        return Visitor(smith, None, signed_in=True, claimed=False)
