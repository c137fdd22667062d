"""Files and inline images customers send on Intercom, fetched when the turn starts.

Intercom gives each upload and each inline image as a URL on its own file host, signed and
readable without the access token, so the token is never sent there: a URL in a message
part is not Intercom's API. Only hosts ``intercom.attachment_hosts`` lists are asked, over
https, at public addresses, redirects included (``bot.http.file_hosts``); a URL refused is kept
with ``fetch_error`` saying why, and the model is told the file was not fetched. A download is capped at ``intercom.max_attachment_bytes``, by the
size Intercom announced (a bigger file is never asked for) and again by what arrives.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import aiohttp

from bot.domain import Attachment
from bot.http.file_hosts import FileHosts, FileRefused, fetch

log = logging.getLogger(__name__)

FILE_TIMEOUT_SECONDS = 10.0


class IntercomFiles:
    """Downloads attachments' content for a turn."""

    def __init__(self, *, max_bytes: int, hosts: FileHosts) -> None:
        self._max_bytes = max_bytes
        self._hosts = hosts
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def fetched(self, attachment: Attachment) -> Attachment:
        """``attachment`` with its content, or with ``fetch_error`` saying why there is none;
        as it was when it has its content already or is over the cap by its announced size."""
        if attachment.data is not None or attachment.fetch_error or not attachment.url:
            return attachment
        if (refused := self._hosts.refusal(attachment.url)) is not None:
            log.warning("not fetching an Intercom attachment: %s", refused)
            return replace(attachment, fetch_error=refused)
        if self._max_bytes and attachment.size > self._max_bytes:
            return attachment
        data, error = await self._download(attachment.url)
        return replace(attachment, data=data, fetch_error=error)

    async def _download(self, url: str) -> tuple[bytes | None, str | None]:
        if self._session is None:
            self._session = self._hosts.session(timeout=FILE_TIMEOUT_SECONDS)
        cap = self._max_bytes or None
        try:
            async with fetch(self._session, url, self._hosts) as response:
                if response.status != 200:
                    log.warning("downloading an Intercom attachment failed: HTTP %d", response.status)
                    return None, f"HTTP {response.status}"
                data = await response.content.read(cap + 1 if cap else -1)
        except FileRefused as exc:
            log.warning("not fetching an Intercom attachment: %s", exc)
            return None, str(exc)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning("downloading an Intercom attachment failed: %s", type(exc).__name__)
            return None, type(exc).__name__
        if cap is not None and len(data) > cap:
            log.info("an Intercom attachment was over intercom.max_attachment_bytes; not used")
            return None, "over intercom.max_attachment_bytes"
        return data, None
