"""The conversations API as the `openai` client library sees it (its own request shapes and
response models), acting for one smith with the admin token and X-Smith-Id."""

from __future__ import annotations

from openai import AsyncOpenAI, NotFoundError

from tests.http.harness import ADMIN, ask, running, session


async def test_the_openai_client_creates_reads_and_deletes_conversations(sqlite_url: str) -> None:
    async with running(sqlite_url) as daemon, daemon.client() as visitor, daemon.client() as b:
        me = await session(visitor)
        other = await session(b)
        client = AsyncOpenAI(
            api_key=ADMIN,
            base_url=f"{daemon.url}/v1",
            default_headers={"X-Smith-Id": me["smith_id"]},
            max_retries=0,
        )
        stranger = AsyncOpenAI(
            api_key=ADMIN,
            base_url=f"{daemon.url}/v1",
            default_headers={"X-Smith-Id": other["smith_id"]},
            max_retries=0,
        )
        try:
            conversation = await client.conversations.create(metadata={"topic": "password"})
            assert conversation.object == "conversation"
            assert conversation.metadata == {"topic": "password"}

            answer = await ask(visitor, conversation.id, "How do I reset my password?")
            assert answer

            items = await client.conversations.items.list(conversation.id)
            roles = [item.role for item in items.data]  # type: ignore[union-attr]
            assert roles == ["user", "assistant"]
            first = items.data[0]
            assert first.type == "message"
            assert first.content[0].text == "How do I reset my password?"  # type: ignore[union-attr]
            assert "Forgot password" in items.data[1].content[0].text  # type: ignore[union-attr]

            newest_first = await client.conversations.items.list(conversation.id, order="desc")
            assert [i.id for i in newest_first.data] == [i.id for i in reversed(items.data)]

            fetched = await client.conversations.retrieve(conversation.id)
            assert fetched.id == conversation.id and fetched.created_at == conversation.created_at
            updated = await client.conversations.update(conversation.id, metadata={"topic": "2fa"})
            assert updated.metadata == {"topic": "2fa"}

            # Another customer's view of the same id: not found, never forbidden with details.
            try:
                await stranger.conversations.retrieve(conversation.id)
            except NotFoundError:
                pass
            else:
                raise AssertionError("another smith could read the conversation")

            deleted = await client.conversations.delete(conversation.id)
            assert deleted.deleted is True and deleted.id == conversation.id
        finally:
            await client.close()
            await stranger.close()
