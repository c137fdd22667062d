"""Garbage on every public route, with valid signatures where the route wants one: random bytes,
random JSON, deep nesting, huge strings, wrong content types, broken multipart. Whatever comes
in, the answer is never a 5xx and nothing is logged at ERROR (``Target.send`` checks both);
refusals are 4xx with a JSON body naming the reason.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from connectors.intercom.webhook import sign
from tests.fakes.slack import SIGNING_SECRET, signed_headers
from tests.fuzz.conftest import ADMIN, FUZZ, INTERCOM_SECRET, MAX_BODY, Target

# -- what a body can be ------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                max_size=4),
    max_leaves=16,
)


def _nested(depth: int, opener: str, closed: bool) -> bytes:
    closer = {"[": "]", '{"a":': "}"}[opener]
    return (opener * depth + ("1" + closer * depth if closed else "")).encode()


deep = st.builds(_nested, st.integers(60, 100_000), st.sampled_from(["[", '{"a":']),
                 st.booleans())
huge = st.integers(MAX_BODY - 64, MAX_BODY * 4).map(
    lambda n: b'{"text": "' + b"x" * n + b'"}')
awkward = st.sampled_from([
    b"5", b"null", b"[]", b'"text"', b"{", b"}", b"", b" ", b"\x00", b"\xff\xfe{}",
    b'{"a": NaN}', b'{"a": Infinity}', b'{"a": 1e400}', b'{"a": ' + b"9" * 5000 + b"}",
    b'{"a": "\\u0000"}', b'{"a": "\\ud800"}', b'{"\\udfff": 1}', b'{"a": 1, "a": 2}',
    "{\"a\": \"\u00e9\u2603\U0001f600\"}".encode(), b'{"a": "x"}' + b"\x00" * 10,
])


def as_json(value: Any) -> bytes:
    return json.dumps(value).encode()


def bodies(*shaped: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """Any of the generic kinds of garbage, plus route-specific near-misses."""
    return st.one_of(st.binary(max_size=300), json_values.map(as_json), deep, huge, awkward,
                     *shaped)


content_types = st.sampled_from([
    "application/json", "application/json; charset=utf-8", "application/json; charset=bogus",
    "Application/JSON", "application/vnd.api+json", "text/plain",
    "application/x-www-form-urlencoded", "multipart/form-data", "multipart/form-data; boundary=x",
    "application/octet-stream", "",
])


def with_type(content_type: str, headers: dict[str, str] | None = None) -> dict[str, str]:
    headers = dict(headers or {})
    headers.pop("Content-Type", None)
    if content_type:
        headers["Content-Type"] = content_type
    return headers


def assert_json_refusal(response: Any) -> None:
    """A 4xx says why, as JSON."""
    if 400 <= response.status_code < 500 and response.status_code != 405:
        assert response.headers.get("Content-Type", "").startswith("application/json"), (
            response.status_code, response.headers.get("Content-Type"), response.text[:200])
        assert response.json()


# -- Intercom: X-Hub-Signature over the raw body ----------------------------------------------

notifications = st.fixed_dictionaries({
    "type": st.just("notification_event"),
    "id": st.text(max_size=12),
    "topic": st.sampled_from(["ping", "conversation.user.created", "conversation.user.replied",
                              "conversation.admin.closed", "conversation.admin.assigned",
                              "conversation.admin.replied", "contact.user.created"]),
    "data": st.one_of(json_values, st.fixed_dictionaries({"item": json_values}),
                      st.fixed_dictionaries({"item": st.fixed_dictionaries({
                          "type": st.just("conversation"), "id": st.text(max_size=8),
                          "conversation_parts": json_values, "source": json_values,
                          "state": json_values, "admin_assignee_id": json_values})})),
}).map(as_json)


@FUZZ
@given(body=bodies(notifications), content_type=content_types)
def test_intercom_signed_garbage(target: Target, body: bytes, content_type: str) -> None:
    headers = with_type(content_type, {"X-Hub-Signature": sign(INTERCOM_SECRET, body)})
    response = target.send("POST", "/webhooks/intercom", data=body, headers=headers)
    assert_json_refusal(response)
    if len(body) > MAX_BODY:
        assert response.status_code == 413


@FUZZ
@given(body=bodies(notifications), signature=st.one_of(
    st.none(), st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=60),
    st.sampled_from(["sha1=" + "0" * 40, "sha1=\xe9\xff", "sha256=abc", "SHA1="])))
def test_intercom_unsigned_is_refused_unread(target: Target, body: bytes,
                                             signature: str | None) -> None:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Hub-Signature"] = signature
    response = target.send("POST", "/webhooks/intercom", data=body, headers=headers)
    assert response.status_code == (413 if len(body) > MAX_BODY else 401)


# -- Slack: X-Slack-Signature over v0:timestamp:body, checked before Bolt parses --------------

event_callbacks = st.fixed_dictionaries({
    "type": st.just("event_callback"),
    "team_id": st.one_of(st.just("T0001"), json_values),
    "event_id": st.text(max_size=10),
    "event": st.one_of(json_values, st.fixed_dictionaries({
        "type": st.sampled_from(["message", "app_mention", "reaction_added", "member_joined"]),
        "channel": st.one_of(st.just("D0DM"), json_values),
        "user": st.one_of(st.just("UCUST"), json_values),
        "text": json_values, "ts": st.one_of(st.just("1700000000.000100"), json_values),
        "thread_ts": json_values, "subtype": json_values, "files": json_values,
        "channel_type": st.one_of(st.just("im"), json_values), "bot_id": json_values,
    })),
}).map(as_json)
forms = st.one_of(
    st.text(max_size=40).map(lambda t: ("payload=" + t).encode()),
    json_values.map(lambda v: b"payload=" + json.dumps(v).encode()),
    deep.map(lambda d: b"payload=" + d),
)


@FUZZ
@given(body=bodies(event_callbacks, forms), content_type=content_types)
def test_slack_signed_garbage(target: Target, body: bytes, content_type: str) -> None:
    headers = with_type(content_type, signed_headers(body))
    response = target.send("POST", "/slack/events", data=body, headers=headers)
    assert_json_refusal(response)
    if len(body) > MAX_BODY:
        assert response.status_code == 413


stale = st.integers(0, 2_000_000_000).map(str)


@FUZZ
@given(
    body=st.one_of(st.binary(max_size=300), json_values.map(as_json), deep, awkward,
                   event_callbacks, forms).filter(lambda b: len(b) <= MAX_BODY),
    content_type=content_types,
    how=st.sampled_from(["none", "wrong secret", "stale", "garbage", "no timestamp"]),
    garbage=st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=80),
)
def test_slack_bad_signature_is_401_whatever_the_body(
    target: Target, body: bytes, content_type: str, how: str, garbage: str
) -> None:
    headers = signed_headers(body, secret="not-" + SIGNING_SECRET)
    if how == "none":
        headers = {}
    elif how == "stale":
        headers = signed_headers(body, timestamp=1_600_000_000)
    elif how == "garbage":
        headers = {"X-Slack-Request-Timestamp": garbage, "X-Slack-Signature": garbage}
    elif how == "no timestamp":
        headers = signed_headers(body)
        del headers["X-Slack-Request-Timestamp"]
    response = target.send("POST", "/slack/events", data=body,
                           headers=with_type(content_type, headers))
    assert response.status_code == 401, response.text
    assert response.json() == {"error": "invalid request signature"}


# -- the web widget's session -----------------------------------------------------------------

sessions = st.fixed_dictionaries({}, optional={
    "identity": json_values, "name": json_values, "customer_id": json_values,
}).map(as_json)


@FUZZ
@given(body=bodies(sessions), content_type=content_types)
def test_web_session_garbage(target: Target, body: bytes, content_type: str) -> None:
    response = target.send("POST", "/web/session", data=body, headers=with_type(content_type))
    assert_json_refusal(response)


# -- the /v1 JSON API, as the admin acting for a real smith ----------------------------------

api_bodies = st.one_of(
    st.fixed_dictionaries({}, optional={"title": json_values, "metadata": json_values}),
    st.fixed_dictionaries({}, optional={
        "content": st.one_of(json_values, st.lists(st.fixed_dictionaries(
            {"type": st.sampled_from(["text", "input_text", "input_file", "image", "x"])},
            optional={"text": json_values, "file_id": json_values}), max_size=3)),
        "attachments": json_values, "stream": json_values, "client_message_id": json_values,
    }),
    st.fixed_dictionaries({}, optional={
        "display_name": json_values, "customer_id": json_values, "metadata": json_values,
        "auto_memory": json_values, "expires_in": json_values, "scopes": json_values}),
).map(as_json)
json_routes = st.sampled_from([
    ("POST", "/v1/conversations"), ("POST", "/v1/conversations/{conversation}"),
    ("POST", "/v1/conversations/{conversation}/messages"), ("POST", "/v1/conversations/nope"),
    ("PATCH", "/v1/smiths/{smith}"), ("POST", "/v1/smiths/{smith}/tokens"),
    ("PATCH", "/v1/smiths/nope"),
])


@FUZZ
@given(route=json_routes, body=bodies(api_bodies), content_type=content_types,
       query=st.sampled_from(["", "?stream=false", "?stream=true", "?stream=%00"]))
def test_api_garbage(target: Target, route: tuple[str, str], body: bytes, content_type: str,
                     query: str) -> None:
    method, path = route
    path = path.format(conversation=target.conversation_id, smith=target.smith_id) + query
    headers = with_type(content_type, {"Authorization": f"Bearer {ADMIN}",
                                       "X-Smith-Id": target.smith_id,
                                       "Accept": "application/json"})
    response = target.send(method, path, data=body, headers=headers)
    assert_json_refusal(response)
    if len(body) > MAX_BODY:  # the content type is checked first
        assert response.status_code in (413, 415)


# -- /v1/files: broken multipart ------------------------------------------------------------

part_headers = st.lists(st.sampled_from([
    b'Content-Disposition: form-data; name="file"; filename="a.png"',
    b'Content-Disposition: form-data; name="file"', b'Content-Disposition: form-data; name="other"',
    b"Content-Disposition: attachment", b"Content-Disposition: form-data; name=",
    b"Content-Type: image/png", b"Content-Type: text/plain", b"Content-Type: multipart/mixed",
    b"Content-Type: ;;;", b"Content-Transfer-Encoding: base64", b"Content-Encoding: gzip",
    b"Content-Length: 99999", b"X", b": nothing", b"\xff\xfe",
    b'Content-Disposition: form-data; name="file"; filename',
    b"Content-Disposition: form-data; name*=bogus''%ff",
]), max_size=4)
part_bodies = st.one_of(st.binary(max_size=200), st.just(b"\x89PNG\r\n\x1a\n" + b"0" * 40),
                        st.just(b"hello"), st.integers(4_000, 20_000).map(lambda n: b"a" * n))


@st.composite
def multipart(draw: st.DrawFn) -> tuple[bytes, str]:
    boundary = draw(st.sampled_from(["xyz", "", "a" * 80, "with space", "--", "é"]))
    declared = draw(st.sampled_from([boundary, "other", None]))
    parts = draw(st.lists(st.tuples(part_headers, part_bodies), max_size=3))
    body = b""
    for headers, content in parts:
        body += b"--" + boundary.encode() + b"\r\n" + b"\r\n".join(headers) + b"\r\n\r\n"
        body += content + b"\r\n"
    if draw(st.booleans()):
        body += b"--" + boundary.encode() + b"--\r\n"
    cut = draw(st.integers(0, len(body)))
    body = body[:cut] if draw(st.booleans()) else body
    content_type = "multipart/form-data"
    if declared is not None:
        content_type += f"; boundary={declared}" if declared else "; boundary="
    return body, draw(st.sampled_from([content_type, content_type, "text/plain", ""]))


@FUZZ
@given(upload=multipart(), chunked=st.booleans())
def test_files_broken_multipart(target: Target, upload: tuple[bytes, str],
                                chunked: bool) -> None:
    body, content_type = upload
    headers = with_type(content_type, {"Authorization": f"Bearer {ADMIN}",
                                       "X-Smith-Id": target.smith_id})
    data: Any = iter([body]) if chunked else body  # an iterator is sent chunked
    response = target.send("POST", "/v1/files", data=data, headers=headers)
    assert_json_refusal(response)


# -- reads: odd ids and query strings --------------------------------------------------------

read_paths = st.sampled_from([
    "/healthz", "/readyz", "/metrics", "/v1/openapi.json", "/v1/conversations",
    "/v1/conversations/{conversation}", "/v1/conversations/{conversation}/items",
    "/v1/conversations/{id}", "/v1/files/{id}/content", "/v1/smiths", "/v1/smiths/{id}",
    "/v1/runs", "/v1/runs/{id}", "/v1/threads", "/chat", "/widget.js", "/static/{id}",
])
query_values = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=30)


@FUZZ
@given(path=read_paths, some_id=query_values,
       query=st.dictionaries(st.sampled_from(["limit", "after", "cursor", "order", "state",
                                              "external_id_prefix", "thread_id", "smith_id",
                                              "stream", "x"]), query_values, max_size=4),
       auth=st.sampled_from(["admin", "none", "garbage", "admin, other smith"]))
def test_reads_with_odd_queries(target: Target, path: str, some_id: str, query: dict[str, str],
                                auth: str) -> None:
    headers = {"Authorization": f"Bearer {ADMIN}", "X-Smith-Id": target.smith_id}
    if auth == "none":
        headers = {}
    elif auth == "garbage":
        headers = {"Authorization": "Bearer sbt.e30.AAAA", "Cookie": "sb_session=sbt.%%%.x"}
    elif auth == "admin, other smith":
        headers["X-Smith-Id"] = "smt_" + "x" * 10
    url = path.format(conversation=target.conversation_id, id=_quote(some_id) or "x")
    response = target.send("GET", url, params=query, headers=headers)
    assert_json_refusal(response)


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")
