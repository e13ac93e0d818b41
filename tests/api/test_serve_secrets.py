"""`rag serve` as an operator runs it (access log on): what reaches its output when clients send
keys where they should not, or send many wrong ones, and keys that no client could ever send."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.servers import free_port

RAG = str(Path(sys.executable).parent / "rag")
READER = "serve-reader-key-0123456789abcdef"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    return env | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"} | extra


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[tuple[httpx.Client, Path]]:
    """`rag serve` on an empty index with one read key; its output goes to a file read by tests."""
    folder = tmp_path_factory.mktemp("served")
    output = folder / "serve.log"
    port = free_port()
    with output.open("w") as sink:
        server = subprocess.Popen([RAG, "--index-dir", str(folder / "index"), "serve", "--port", str(port)],
                                  stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  env=_env(RAG_API_KEYS=json.dumps({READER: ["read"]}),
                                           RAG_AUTH_FAILURES_PER_MIN="10"))
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            deadline = time.monotonic() + 180
            while True:
                try:
                    if http.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline and server.poll() is None, output.read_text()[-2000:]
                time.sleep(0.2)
            yield http, output
    finally:
        server.terminate()
        server.wait(timeout=30)


def _logged(output: Path, after: int) -> str:
    time.sleep(0.3)  # the access line is written as the response goes out
    return output.read_text()[after:]


def test_a_key_in_the_query_string_is_refused_and_never_logged(served):
    http, output = served
    before = len(output.read_text())
    for url in (f"/articles/x?api_key={READER}", f"/articles/x?token={READER}&x=1", f"/search?{READER}"):
        response = http.get(url)
        assert response.status_code == 401, url
    assert "URL" in http.get(f"/articles/x?api_key={READER}").json()["detail"]
    assert http.get(f"/articles/x?api_key={READER}", headers={"X-API-Key": READER}).status_code == 404
    log = _logged(output, before)
    assert "GET /articles/x " in log and " 401" in log  # the access log is on, without query strings
    assert READER not in log


def test_many_wrong_keys_write_two_warnings_not_one_each(served):
    http, output = served
    before = len(output.read_text())
    # from 127.0.0.2 (loopback too): an address with its whole budget, whatever other tests spent
    with httpx.Client(base_url=http.base_url, transport=httpx.HTTPTransport(local_address="127.0.0.2")) as other:
        statuses = [other.get("/articles/x", headers={"X-API-Key": f"guess-{n:030d}"}).status_code
                    for n in range(40)]
    assert statuses == [401] * 10 + [429] * 30
    log = _logged(output, before)
    warnings = [line for line in log.splitlines() if "127.0.0.2" in line and " WARNING " in line]
    assert len(warnings) == 2, warnings  # not 40: the first failure, and the address being stopped
    assert "unknown API key" in warnings[0] and "10 times" in warnings[1]
    assert "guess-" not in log


@pytest.mark.parametrize("key", ["ключ-0123456789abcdef", "clé-secrète-0123456789", "key with spaces 0123456789"])
def test_a_key_no_client_could_send_is_refused_at_start(key):
    with tempfile.TemporaryDirectory() as folder:
        result = subprocess.run([RAG, "--index-dir", str(Path(folder) / "index"), "serve", "--port", "0"],
                                check=False, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                                env=_env(RAG_API_KEYS=json.dumps({key: ["read"]})))
    assert result.returncode == 1
    assert "API key #1 holds characters other than visible ASCII" in result.stderr
    assert key not in result.stderr + result.stdout
