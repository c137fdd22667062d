"""Who is who in the workspace: people's profiles (``users.info``) and the members of user
groups (``usergroups.users.list``), each cached for ``slack.user_cache_seconds``.

A lookup that fails or is slow answers what the cache last held (even past its time), else
nothing: a profile is a nicety for the model and a group decides only who may take a thread
over, so neither is worth failing a turn or holding up an event for.
"""

from __future__ import annotations

import asyncio
import time

from cachetools import LRUCache
from slack_sdk.web.async_client import AsyncWebClient

from bot.domain import JSON
from connectors.slack.errors import CALL_ERRORS, log_api_failure

PROFILE_TIMEOUT_SECONDS = 2.5
USER_CACHE_SIZE = 10_000
GROUP_CACHE_SIZE = 1_000


class SlackDirectory:
    """Profiles and user groups of one workspace, cached."""

    def __init__(self, client: AsyncWebClient, *, cache_seconds: float):
        self._client = client
        self._cache_seconds = cache_seconds
        # user → (fresh until, profile). An LRU rather than a TTLCache: a profile past its time
        # still answers when users.info fails.
        self._users: LRUCache[str, tuple[float, JSON]] = LRUCache(maxsize=USER_CACHE_SIZE)
        self._groups: LRUCache[str, tuple[float, frozenset[str]]] = LRUCache(
            maxsize=GROUP_CACHE_SIZE
        )

    async def profile(self, user: str) -> JSON:
        """The Slack profile of ``user`` (cached): real name, display name, email, title."""
        cached = self._users.get(user)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        try:
            response = await asyncio.wait_for(
                self._client.users_info(user=user), PROFILE_TIMEOUT_SECONDS
            )
        except CALL_ERRORS as exc:
            log_api_failure("users.info", exc)
            return cached[1] if cached else {}
        data = response.get("user") or {}
        details = data.get("profile") or {}
        profile: JSON = {
            "slack_user_id": user,
            "real_name": details.get("real_name") or data.get("real_name"),
            "display_name": details.get("display_name") or data.get("name"),
            "email": details.get("email"),
            "title": details.get("title"),
            "tz": data.get("tz"),
            "is_restricted": data.get("is_restricted"),
        }
        profile = {k: v for k, v in profile.items() if v not in (None, "")}
        self._users[user] = (time.monotonic() + self._cache_seconds, profile)
        return profile

    async def group_members(self, group: str) -> frozenset[str]:
        """The members of a user group (``usergroups.users.list``, cached like profiles)."""
        cached = self._groups.get(group)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        try:
            response = await asyncio.wait_for(
                self._client.usergroups_users_list(usergroup=group), PROFILE_TIMEOUT_SECONDS
            )
        except CALL_ERRORS as exc:
            log_api_failure("usergroups.users.list", exc)
            return cached[1] if cached else frozenset()
        members = frozenset(str(u) for u in response.get("users") or [])
        self._groups[group] = (time.monotonic() + self._cache_seconds, members)
        return members
