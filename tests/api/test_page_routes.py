"""The routes the staff page needs beyond the API's (any client may use them), over real HTTP on
loopback: the page and /me, facets, the article list, file uploads, feedback."""

from __future__ import annotations

import json

import pytest

from rag.api.app import create_app
from tests.support.servers import live_server

READER = "reader-key-0123456789abcdef"
INGESTER = "ingest-key-0123456789abcdef"
ADMIN = "admin-key-0123456789abcdef0"
KEYS = {READER: ["read"], INGESTER: ["ingest"], ADMIN: ["admin"]}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def client(bbc_service):
    with live_server(create_app(bbc_service.settings, bbc_service)) as http:
        yield http


@pytest.fixture
def keyed(bbc_service):
    settings = bbc_service.settings.model_copy(update={"api_keys": json.dumps(KEYS)})
    with live_server(create_app(settings, bbc_service)) as http:
        yield http


def test_the_page_is_served_from_our_origin_with_a_strict_policy(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert 'id="question"' in page.text
    for asset in ("app.js", "api.js", "markdown.js", "app.css"):
        assert client.get(f"/static/{asset}").status_code == 200
    css = client.get("/static/app.css").text
    assert "url(" not in css and "@import" not in css  # no font or image fetched from anywhere


def test_facets_count_the_index_own_values(client):
    body = client.get("/facets").json()
    assert body["articles"] == 61 and body["undated"] == 61  # BBC .txt files carry no date
    assert {c["value"]: c["articles"] for c in body["categories"]} == {
        "business": 12, "entertainment": 12, "politics": 12, "sport": 12, "tech": 12}
    assert body["sources"] == [] and body["first_published"] is None


def test_articles_are_listed_searched_filtered_and_paged(client):
    everything = client.get("/articles", params={"limit": 500}).json()
    assert everything["total"] == 61 and len(everything["articles"]) == 61
    assert "text" not in everything["articles"][0]
    titles = [a["title"] for a in everything["articles"]]
    assert titles == sorted(titles)  # all undated: by title
    last = client.get("/articles", params={"limit": 10, "offset": 55}).json()
    assert last["total"] == 61 and last["offset"] == 55
    assert [a["id"] for a in last["articles"]] == [a["id"] for a in everything["articles"][55:]]
    labour = client.get("/articles", params={"q": "LABOUR"}).json()
    assert labour["total"] >= 1 and all("labour" in a["title"].lower() for a in labour["articles"])
    percent = client.get("/articles", params={"q": "%"}).json()  # a wildcard is a character
    assert 0 < percent["total"] < 61 and all("%" in a["title"] for a in percent["articles"])
    sport = client.get("/articles", params={"category": "Sport"}).json()
    assert sport["total"] == 12 and {a["category"] for a in sport["articles"]} == {"sport"}
    assert client.get("/articles", params={"since": "2005-01-01"}).json()["total"] == 0  # undated never pass
    bad = client.get("/articles", params={"since": "2005-02-01", "until": "2005-01-01"})
    assert bad.status_code == 422 and "after" in bad.json()["detail"]
    assert client.get("/articles", params={"limit": 0}).status_code == 422


def test_an_uploaded_file_is_read_as_ingest_reads_it_and_replaced_when_sent_again(client):
    text = "Orrin council adopts a flag\n\nThe Orrin council adopted a green flag on Monday after a long debate.\n"
    first = client.post("/articles/files", params={"name": "../../etc/orrin.txt"}, content=text.encode())
    assert first.status_code == 200, first.text
    [article_id] = first.json()["ingested"]
    assert article_id.startswith("upload-orrin-")  # the base name only: no folder is ever resolved
    article = client.get(f"/articles/{article_id}").json()
    assert article["title"] == "Orrin council adopts a flag" and article["text"].startswith("The Orrin council")
    again = client.post("/articles/files", params={"name": "orrin.txt"}, content=text.encode()).json()
    assert again["unchanged"] == [article_id]
    changed = client.post("/articles/files", params={"name": "orrin.txt"},
                          content=text.replace("green", "blue").encode()).json()
    assert changed["ingested"] == [article_id]
    assert client.get("/articles", params={"q": "Orrin"}).json()["total"] == 1

    records = b'{"id": "up-1", "title": "One", "text": "The first record."}\n{broken\n'
    partial = client.post("/articles/files", params={"name": "two.jsonl"}, content=records).json()
    assert partial["ingested"] == ["up-1"]
    assert partial["failed"][0]["origin"] == "upload 'two.jsonl' line 2"
    for name, body, reason in (("a.pdf", b"%PDF", "unsupported file type '.pdf'"),
                               ("b.txt", b"\x00\x01binary", "binary file"),
                               ("c.txt", b"   ", "empty file"),
                               ("d.json", b"[1, 2]", "expected a JSON object")):
        refused = client.post("/articles/files", params={"name": name}, content=body)
        assert refused.status_code == 422 and reason in refused.json()["detail"], (name, refused.text)
    assert client.post("/articles/files", content=b"x").status_code == 422  # no name


def test_keys_and_scopes_of_the_page_routes(keyed):
    assert keyed.get("/me").status_code == 401
    assert keyed.get("/me", headers=bearer("not-a-key-of-ours-at-all")).status_code == 401
    me = keyed.get("/me", headers=bearer(INGESTER)).json()  # any known key may ask who it is
    assert me["keys_required"] is True and me["scopes"] == ["ingest"] and me["key"].startswith("key-")
    assert keyed.get("/me", headers=bearer(ADMIN)).json()["scopes"] == ["read", "ingest", "admin"]
    assert keyed.get("/facets", headers=bearer(READER)).status_code == 200
    assert keyed.get("/articles", headers=bearer(INGESTER)).status_code == 403
    upload = {"params": {"name": "k.txt"}, "content": b"Key test\n\nThe body of the key test."}
    assert keyed.post("/articles/files", **upload).status_code == 401
    assert keyed.post("/articles/files", headers=bearer(READER), **upload).status_code == 403
    assert keyed.post("/articles/files", headers=bearer(INGESTER), **upload).status_code == 200
    verdict = {"question": "Who?", "answer": "Them [1]", "backend": "extractive", "verdict": "up",
               "citations": [{"n": 1, "article_id": "a", "title": "T", "chunk_id": "a:0", "quote": "Them.",
                              "start": 0, "end": 5, "score": 0.5}]}
    stored = keyed.post("/feedback", json=verdict, headers=bearer(READER))
    assert stored.status_code == 201 and stored.json()["key"] == keyed.get("/me", headers=bearer(READER)).json()["key"]
    assert keyed.get("/feedback", headers=bearer(READER)).status_code == 403
    listed = keyed.get("/feedback", headers=bearer(ADMIN)).json()["feedback"]
    # Stored as citations, whose fields the API may have grown since (dates): what was sent is kept.
    sent = verdict["citations"]
    assert [{k: c[k] for k in v} for c, v in zip(listed[-1]["citations"], sent, strict=True)] == sent
    assert listed[-1]["comment"] is None
    since = listed[-1]["created_at"]
    assert keyed.get("/feedback", params={"since": since}, headers=bearer(ADMIN)).json()["feedback"] == listed[-1:]
    assert keyed.get("/feedback", params={"since": "2999-01-01T00:00:00Z"},
                     headers=bearer(ADMIN)).json()["feedback"] == []


@pytest.mark.parametrize(("change", "field"), [({"verdict": "meh"}, "verdict"), ({"question": "  "}, "question"),
                                               ({"comment": "x" * 5001}, "comment"), ({"extra": 1}, "extra")])
def test_bad_feedback_is_refused_naming_the_field(client, change, field):
    body = {"question": "Who?", "answer": "Them", "backend": "extractive", "verdict": "down", **change}
    response = client.post("/feedback", json=body)
    assert response.status_code == 422 and field in json.dumps(response.json()["detail"])
