"""The fake Intercom itself: it must catch requests that break Intercom's 2.14 spec, or the
end-to-end tests prove nothing."""

from __future__ import annotations

import httpx
import pytest

from tests.fakes.intercom import FakeIntercom


async def test_the_fake_refuses_requests_that_break_the_spec(fake_intercom: FakeIntercom) -> None:
    fake = fake_intercom
    cid = fake.start_conversation(fake.add_contact(), "<p>Hi</p>")
    headers = {"Authorization": f"Bearer {fake.token}", "Intercom-Version": "2.14"}
    async with httpx.AsyncClient(base_url=fake.base_url, headers=headers) as client:
        good = await client.post(
            f"/conversations/{cid}/reply",
            json={"message_type": "note", "type": "admin", "admin_id": fake.bot_admin_id, "body": "ok"},
        )
        assert good.status_code == 200
        assert fake.violations == []

        bad_body = await client.post(
            f"/conversations/{cid}/reply",
            json={"message_type": "shout", "type": "admin", "admin_id": fake.bot_admin_id, "body": "x"},
        )
        no_version = await client.get("/me", headers={"Intercom-Version": ""})
        other_version = await client.get("/me", headers={"Intercom-Version": "2.11"})
        no_token = await client.get("/me", headers={"Authorization": ""})
        bad_search = await client.post(
            "/conversations/search", json={"query": {"operator": "XOR", "value": []}}
        )
        unknown_path = await client.get("/conversations")  # not an operation we fake
    assert [r.status_code for r in (bad_body, no_version, other_version, no_token, bad_search)] == [400] * 5
    assert unknown_path.status_code in (400, 404, 405)
    assert len(fake.violations) >= 5
    assert any("spec" in v for v in fake.violations)
    fake.violations.clear()  # these were on purpose


async def test_the_fake_checks_its_own_answers(
    fake_intercom: FakeIntercom, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = fake_intercom
    cid = fake.start_conversation(fake.add_contact(), "<p>Hi</p>")
    fake.user_reply(cid, "<p>more</p>")
    headers = {"Authorization": f"Bearer {fake.token}", "Intercom-Version": "2.14"}
    async with httpx.AsyncClient(base_url=fake.base_url, headers=headers) as client:
        await client.get(f"/conversations/{cid}")
        assert fake.violations == []
        shaped = fake.conversation_json
        monkeypatch.setattr(fake, "conversation_json", lambda *a, **k: {**shaped(*a, **k), "open": "yes"})
        await client.get(f"/conversations/{cid}")
    assert len(fake.violations) == 1 and "'open'" in fake.violations[0]
    fake.violations.clear()  # on purpose
