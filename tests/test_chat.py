"""Chat: follow-ups rewritten from the conversation, the OpenAI-compatible API through the official
`openai` client, and Slack slash commands with signed requests; all on a real server on loopback."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from urllib.parse import urlencode

import openai
import pytest
from pydantic import SecretStr

from rag.api.app import create_app
from rag.api.routes.slack import sign
from rag.chat import Turn, carry_terms
from tests.support.openai_peer import openai_peer, peer_llm
from tests.support.servers import live_server

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"  # a test secret, in Slack's format
SEED = "seeds-000"


@pytest.fixture
def client(bbc_service):
    settings = bbc_service.settings.model_copy(update={"slack_signing_secret": SecretStr(SECRET)})
    with live_server(create_app(settings, bbc_service)) as http:
        yield http


@pytest.fixture
def openai_client(client):
    base_url = f"{str(client.base_url).rstrip('/')}/v1"
    with openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=120) as oa:
        yield oa


def test_models_lists_the_index(openai_client):
    models = openai_client.models.list()
    assert [m.id for m in models.data] == ["rag-index"]


def test_three_turn_chat_through_the_openai_client(openai_client):
    messages: list[dict] = [{"role": "system", "content": "You answer from news articles."}]
    replies = []
    for question in ["What did the US propose at the UN Security Council?",
                     "Which countries vetoed it?",
                     "Why did they veto it?"]:
        messages.append({"role": "user", "content": question})
        completion = openai_client.chat.completions.create(model="rag-index", messages=messages)
        content = completion.choices[0].message.content
        extra = completion.model_extra
        replies.append((content, extra))
        messages.append({"role": "assistant", "content": content})

    (first, first_x), (second, second_x), (_third, third_x) = replies
    assert "cease-fire" in first and first_x["rag"]["rewriter"] == "none"
    # The follow-up, alone, names neither the resolution nor the council: the rewrite carries them.
    assert "Russia and China" in second
    standalone = second_x["rag"]["standalone_question"]
    assert standalone.startswith("Which countries vetoed it?") and "council" in standalone
    assert second_x["rag"]["rewriter"] == "terms"
    # "they" is the last answer's Russia and China.
    assert "russia" in third_x["rag"]["standalone_question"] and "china" in third_x["rag"]["standalone_question"]
    for content, extra in replies:
        cites = extra["citations"]
        assert cites and cites[0]["article_id"].startswith(SEED)
        # The content ends with the sources list; the structured citations say the same.
        assert content.rstrip().endswith(f"“{cites[-1]['quote']}”")
        for c in cites:
            assert f"[{c['n']}] {c['title']} ({c['article_id']}): “{c['quote']}”" in content


def test_streaming_gives_the_same_reply_in_chunks(openai_client):
    messages = [{"role": "user", "content": "Which countries vetoed the UN cease-fire resolution?"}]
    whole = openai_client.chat.completions.create(model="rag-index", messages=messages)
    chunks = list(openai_client.chat.completions.create(model="rag-index", messages=messages, stream=True))
    assert len(chunks) > 3
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert streamed == whole.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].model_extra["citations"] == whole.model_extra["citations"]


def test_raw_stream_ends_with_done_and_filters_hold_while_streaming(client):
    body = {"model": "rag-index", "stream": True, "filters": {"category": "tech"},
            "messages": [{"role": "user", "content": "Which countries vetoed the UN cease-fire resolution?"}]}
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]" and all(line.startswith("data: ") for line in lines)
    final = json.loads(lines[-2][len("data: "):])
    # The seed (no category) is outside the filter: no citation may come from it.
    assert all(not c["article_id"].startswith(SEED) for c in final["citations"])


def test_bad_chat_requests(client, openai_client):
    with pytest.raises(openai.UnprocessableEntityError, match="gpt-4"):
        openai_client.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "hi"}])
    last_assistant = {"model": "rag-index", "messages": [{"role": "user", "content": "Who won?"},
                                                          {"role": "assistant", "content": "Nobody."}]}
    response = client.post("/v1/chat/completions", json=last_assistant)
    assert response.status_code == 422 and "role 'user'" in response.text
    assert client.post("/v1/chat/completions", json={"model": "rag-index", "messages": []}).status_code == 422


def test_carry_terms_only_when_the_question_leans_on_the_conversation():
    history = [Turn("user", "What did the US propose at the UN Security Council?"),
               Turn("assistant", "A cease-fire resolution [1]\n\nSources:\n[1] Netanyahu (x): “…”")]
    rewritten = carry_terms("Which countries vetoed it?", history)
    assert rewritten.startswith("Which countries vetoed it? (") and "security" in rewritten
    assert "sources" not in rewritten  # the sources list of an answer is not conversation
    standalone = "How long was the Iranian blogger Arash Sigarchi jailed for?"
    assert carry_terms(standalone, history) == standalone
    why = "Why did Netanyahu reject the US appeal on Rafah?"
    assert carry_terms(why, history) == why
    assert carry_terms("Which countries vetoed it?", []) == "Which countries vetoed it?"


def test_condense_prompt_with_an_llm(bbc_service):
    rewrite = "Which countries vetoed the US-sponsored UN cease-fire resolution?"
    with openai_peer(condense_reply=rewrite) as peer:
        chat_service = replace(bbc_service, llm=peer_llm(peer))
        reply = chat_service.chat([Turn("user", "What did the US propose at the UN Security Council?"),
                                   Turn("assistant", "A cease-fire resolution [1]"),
                                   Turn("user", "Which countries vetoed it?")])
    assert reply.rewriter == "llm" and reply.standalone == rewrite
    assert "Russia and China" in reply.answer.text
    prompt = peer.requests[0]["messages"][-1]["content"]
    assert "Last question: Which countries vetoed it?" in prompt and "UN Security Council" in prompt


# -- Slack -------------------------------------------------------------------------------------------
def _slack(client, text: str, secret: str = SECRET, age: float = 0, signature: str | None = None):
    body = urlencode({"token": "legacy", "team_id": "T1", "command": "/ask", "text": text,
                      "user_id": "U1", "response_url": "https://hooks.slack.com/commands/1/2/3"}).encode()
    timestamp = str(int(time.time() - age))
    headers = {"content-type": "application/x-www-form-urlencoded", "x-slack-request-timestamp": timestamp,
               "x-slack-signature": signature or sign(secret, timestamp, body)}
    return client.post("/integrations/slack/commands", content=body, headers=headers)


def test_slack_command_with_a_valid_signature_gets_the_answer_and_sources(client):
    response = _slack(client, "Which countries vetoed the UN cease-fire resolution?")
    assert response.status_code == 200, response.text
    message = response.json()
    assert message["response_type"] == "in_channel"
    assert "Russia and China" in message["text"]
    section, context = message["blocks"]
    assert section["type"] == "section" and "Russia and China" in section["text"]["text"]
    assert context["type"] == "context" and "[1]" in context["elements"][0]["text"]
    assert SEED in context["elements"][0]["text"]


def test_slack_refuses_a_wrong_secret_a_stale_request_and_a_tampered_body(client):
    wrong = _slack(client, "Who won?", secret="not-the-secret")
    assert wrong.status_code == 401 and "does not match" in wrong.json()["detail"]
    stale = _slack(client, "Who won?", age=6 * 60)
    assert stale.status_code == 401 and "five minutes" in stale.json()["detail"]
    future = _slack(client, "Who won?", age=-6 * 60)
    assert future.status_code == 401
    timestamp = str(int(time.time()))
    signed_for_other = sign(SECRET, timestamp, b"text=something+else")
    tampered = _slack(client, "Who won?", signature=signed_for_other)
    assert tampered.status_code == 401
    unsigned = client.post("/integrations/slack/commands", content=b"text=hi",
                           headers={"content-type": "application/x-www-form-urlencoded"})
    assert unsigned.status_code == 401 and "missing" in unsigned.json()["detail"]


def test_slack_help_and_a_server_without_a_secret(client, bbc_service):
    helped = _slack(client, "")
    assert helped.status_code == 200 and helped.json()["response_type"] == "ephemeral"
    with live_server(create_app(bbc_service.settings, bbc_service)) as unconfigured:
        refused = _slack(unconfigured, "Who won?")
        assert refused.status_code == 401 and "RAG_SLACK_SIGNING_SECRET" in refused.json()["detail"]
