"""Files shared in Slack: the reference the inbox keeps when the event arrives, and the
content fetched when the turn starts (never before Slack is acknowledged).

A download needs the bot token (``url_private`` is behind it), so it goes only to hosts
``slack.file_hosts`` lists (``files.slack.com``), over https, at public addresses; the token is
not handed on along a redirect (``bot.http.file_hosts``). It is capped at
``slack.max_file_bytes``, by the size Slack announced and again by what actually arrives.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import aiohttp

from bot.domain import JSON, Attachment
from bot.http.file_hosts import FileHosts, FileRefused, fetch

log = logging.getLogger(__name__)

FILE_TIMEOUT_SECONDS = 10.0


def file_reference(item: JSON) -> Attachment:
    """A shared file as the inbox keeps it: a reference (id, name, type, size, URL)."""
    source = item.get("url_private_download") or item.get("url_private")
    return Attachment(
        name=str(item.get("name") or item.get("title") or "file"),
        content_type=str(item.get("mimetype") or "application/octet-stream"),
        size=int(item.get("size") or 0),
        url=str(source) if source else None,
        file_id=item.get("id"),
    )


class SlackFiles:
    """Downloads shared files' content for a turn."""

    def __init__(self, hosts: FileHosts, *, token: str, max_bytes: int):
        self._hosts = hosts
        self._session: aiohttp.ClientSession | None = None
        self._token = token
        self._max_bytes = max_bytes

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def fetched(self, attachment: Attachment) -> Attachment:
        """``attachment`` with its content, if it is under ``slack.max_file_bytes`` (by the
        size Slack announced: a bigger file is never downloaded), else as it was."""
        if attachment.data is not None or attachment.fetch_error or not attachment.url:
            return attachment
        if attachment.size > self._max_bytes:
            log.info("not downloading %s: %d bytes is over slack.max_file_bytes",
                     attachment.name, attachment.size)
            return attachment
        if (refused := self._hosts.refusal(attachment.url)) is not None:
            log.warning("not fetching a Slack file: %s", refused)
            return replace(attachment, fetch_error=refused)
        data, error = await self._download(attachment.url)
        return replace(attachment, data=data, fetch_error=error)

    async def _download(self, url: str) -> tuple[bytes | None, str | None]:
        """A shared file's bytes, or why there are none."""
        cap = self._max_bytes
        if self._session is None:
            self._session = self._hosts.session(timeout=FILE_TIMEOUT_SECONDS)
        try:
            async with fetch(
                self._session, url, self._hosts,
                headers={"Authorization": f"Bearer {self._token}"},
            ) as response:
                if response.status != 200:
                    log.warning("downloading a Slack file failed: HTTP %d", response.status)
                    return None, f"HTTP {response.status}"
                data = await response.content.read(cap + 1)
        except FileRefused as exc:
            log.warning("not fetching a Slack file: %s", exc)
            return None, str(exc)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning("downloading a Slack file failed: %s", type(exc).__name__)
            return None, type(exc).__name__
        if len(data) > cap:
            log.info("a Slack file was larger than announced and over the cap; not used")
            return None, "over slack.max_file_bytes"
        return data, None
