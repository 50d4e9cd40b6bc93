"""OpenAIBackend against a local OpenAI-compatible server on 127.0.0.1 (no external network)."""

from __future__ import annotations

import json
import logging
import math
import time

import pytest

from brittle.errors import BrittleError
from brittle.models.backend import Backend, GenerationConfig
from brittle.models.backends import make_backend, parse_openai_spec
from brittle.models.openai_backend import OpenAIBackend, chat_completions_url

from ..fake_openai import FakeOpenAIServer, chat_completion

KEY = "sk-test-secret-123"


class FakeServer(FakeOpenAIServer):
    """Canned chat completions. ``fail`` = list of status codes returned (in order) for the
    first requests; ``sleep`` seconds per request; ``hang_first`` sleeps past the client's
    timeout on the first request; ``logprobs`` toggles the logprobs block."""

    def __init__(self, fail=(), sleep=0.0, hang_first=0.0, logprobs=True, require_key=KEY):
        super().__init__()
        self.fail = list(fail)
        self.sleep = sleep
        self.hang_first = hang_first
        self.logprobs = logprobs
        self.require_key = require_key
        self.auth: list[str | None] = []
        self.in_flight = 0
        self.max_in_flight = 0

    def handle(self, handler, body):
        with self.lock:
            n = self.record(body)
            self.auth.append(handler.headers.get("Authorization"))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        if n == 0 and self.hang_first:
            time.sleep(self.hang_first)
        time.sleep(self.sleep)
        # leave the in-flight count *before* replying: once the reply is written the
        # client may send its next request before this thread runs again
        with self.lock:
            self.in_flight -= 1
        if handler.path != "/v1/chat/completions":
            return 404, {"error": "not found"}
        if self.require_key and handler.headers.get("Authorization") != f"Bearer {self.require_key}":
            return 401, {"error": "bad key"}
        if n < len(self.fail):
            return self.fail[n], {"error": "try again"}
        return 200, self.reply(body)

    def reply(self, body: dict) -> dict:
        msgs = body["messages"]
        last_user = [m["content"] for m in msgs if m["role"] == "user"][-1]
        if body.get("logprobs"):
            logprobs = None
            if self.logprobs:
                top = [{"token": "A", "logprob": -0.5}, {"token": " A", "logprob": -2.0},
                       {"token": "B", "logprob": -1.2}, {"token": "C", "logprob": -3.0}]
                logprobs = {"content": [{"token": "A", "logprob": -0.5, "top_logprobs": top}]}
            return chat_completion("A", logprobs=logprobs)
        text = f"echo: {last_user}"
        if msgs[-1]["role"] == "assistant":  # a server that echoes the prefill
            text = msgs[-1]["content"] + " continued"
        return chat_completion(text)


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)


def _backend(url, **kw):
    kw.setdefault("backoff", 0.01)
    kw.setdefault("timeout", 5.0)
    return OpenAIBackend("test-model", url, **kw)


CONVS = [[{"role": "user", "content": f"prompt {i}"}] for i in range(12)]


def test_generate_in_order_with_auth_and_params():
    with FakeServer() as srv:
        b = _backend(srv.url, max_concurrency=4)
        assert isinstance(b, Backend)
        out = b.generate(CONVS, config=GenerationConfig(max_new_tokens=17, temperature=0.3, top_p=0.9, seed=5))
    assert out == [f"echo: prompt {i}" for i in range(12)]
    assert set(srv.auth) == {f"Bearer {KEY}"}
    body = srv.requests[0]
    assert body["model"] == "test-model"
    assert (body["max_tokens"], body["temperature"], body["top_p"], body["seed"]) == (17, 0.3, 0.9, 5)


def test_concurrency_is_bounded_and_used():
    with FakeServer(sleep=0.05) as srv:
        out = _backend(srv.url, max_concurrency=3).generate(CONVS)
    assert len(out) == 12 and len(srv.requests) == 12
    assert 1 < srv.max_in_flight <= 3


def test_retries_on_500_and_429():
    with FakeServer(fail=[500, 429, 503]) as srv:
        out = _backend(srv.url, max_concurrency=1, max_retries=4).generate(CONVS[:2])
    assert out == ["echo: prompt 0", "echo: prompt 1"]
    assert len(srv.requests) == 5  # 3 failures + 2 successes


def test_gives_up_after_max_retries():
    with FakeServer(fail=[500] * 10) as srv, pytest.raises(BrittleError, match="giving up after 3 attempts"):
        _backend(srv.url, max_concurrency=1, max_retries=2).generate(CONVS[:1])
    assert len(srv.requests) == 3


def test_client_errors_are_not_retried():
    with FakeServer(fail=[400]) as srv, pytest.raises(BrittleError, match="HTTP 400"):
        _backend(srv.url, max_concurrency=1).generate(CONVS[:1])
    assert len(srv.requests) == 1


def test_timeout_is_retried():
    with FakeServer(hang_first=1.0) as srv:
        out = _backend(srv.url, max_concurrency=1, timeout=0.2).generate(CONVS[:1])
    assert out == ["echo: prompt 0"]
    assert len(srv.requests) == 2


def test_wrong_key_is_a_clear_error_without_the_key(monkeypatch, caplog):
    monkeypatch.setenv("MY_KEY", "sk-wrong-456")
    caplog.set_level(logging.DEBUG)
    with FakeServer() as srv:
        b = _backend(srv.url, api_key_env="MY_KEY")
        with pytest.raises(BrittleError, match="MY_KEY") as err:
            b.generate(CONVS[:1])
    assert "sk-wrong-456" not in str(err.value)
    assert "sk-wrong-456" not in repr(b) and KEY not in repr(b)
    assert "sk-wrong-456" not in caplog.text
    assert "sk-wrong-456" not in json.dumps(vars(b), default=str)


def test_key_read_at_call_time(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    with FakeServer() as srv:
        b = _backend(srv.url)
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        assert b.generate(CONVS[:1]) == ["echo: prompt 0"]


def test_prefill_sent_as_assistant_message_and_stripped():
    with FakeServer() as srv:
        out = _backend(srv.url).generate(CONVS[:2], prefill=["Sure, here is", None])
    assert out == [" continued", "echo: prompt 1"]
    msgs = min(srv.requests, key=lambda r: r["messages"][0]["content"])["messages"]
    assert msgs[-1] == {"role": "assistant", "content": "Sure, here is"}


def test_choice_logprobs():
    with FakeServer() as srv:
        got = _backend(srv.url).choice_logprobs(CONVS[:2], ["A", "B", "Z"])
    body = srv.requests[0]
    assert (body["logprobs"], body["top_logprobs"], body["max_tokens"]) == (True, 20, 1)
    assert len(got) == 2
    assert got[0]["A"] == pytest.approx(math.log(math.exp(-0.5) + math.exp(-2.0)))
    assert got[0]["B"] == pytest.approx(-1.2)
    assert got[0]["Z"] == float("-inf")


def test_choice_logprobs_none_without_server_support():
    with FakeServer(logprobs=False) as srv:
        assert _backend(srv.url).choice_logprobs(CONVS[:2], ["A", "B"]) is None


def test_urls_and_spec_parsing(monkeypatch):
    assert chat_completions_url("http://h:8000") == "http://h:8000/v1/chat/completions"
    assert chat_completions_url("http://h:8000/v1/") == "http://h:8000/v1/chat/completions"
    with pytest.raises(BrittleError):
        chat_completions_url("h:8000")
    assert parse_openai_spec("llama3:8b@http://127.0.0.1:11434/v1") == ("llama3:8b", "http://127.0.0.1:11434/v1")
    # issue 16.8: no silent fallback to the public API
    with pytest.raises(BrittleError, match="no endpoint.*https://api.openai.com/v1"):
        parse_openai_spec("gpt-4o-mini")
    monkeypatch.setenv("BRITTLE_API_KEY_ENV", "JUDGE_KEY")
    b = make_backend("openai:org/model@http://127.0.0.1:9/v1")
    assert (b.model, b.api_key_env, b.name) == ("org/model", "JUDGE_KEY", "openai:org/model@http://127.0.0.1:9/v1")


# ---------------------------------------------------------------- issue 16.6 / 16.8


def _server_with_content(content):
    srv = FakeServer()
    srv.reply = lambda body: {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}
    return srv


def test_content_as_list_of_text_parts_is_joined():
    parts = [{"type": "text", "text": "I cannot "}, {"type": "text", "text": "help with that."}]
    with _server_with_content(parts) as srv:
        assert _backend(srv.url).generate(CONVS[:1]) == ["I cannot help with that."]


@pytest.mark.parametrize("content", [42, {"x": 1}, [{"type": "image_url", "image_url": {"url": "x"}}], [7]])
def test_content_of_another_type_is_one_clear_error(content):
    with _server_with_content(content) as srv, pytest.raises(BrittleError, match="reply content") as e:
        _backend(srv.url).generate(CONVS[:1])
    assert srv.url.split("/v1")[0] in str(e.value)


def test_null_content_uses_the_refusal_field():
    from brittle.models.openai_backend import reply_text

    assert reply_text({"content": None, "refusal": "I can't."}, "u") == "I can't."
    assert reply_text({"content": None}, "u") == ""


@pytest.mark.parametrize("spec", ["llama3@127.0.0.1:18110", "llama3@localhost:8000/v1", "m@ftp://h/v1"])
def test_endpoint_without_http_scheme_is_refused_before_any_request(spec, monkeypatch):
    import httpx

    def boom(*a, **k):  # pragma: no cover - must not be reached
        raise AssertionError("a request was sent")

    monkeypatch.setattr(httpx.Client, "post", boom)
    with pytest.raises(BrittleError, match="no scheme|no endpoint"):
        make_backend(f"openai:{spec}")


def test_url_credentials_are_basic_auth_and_redacted_everywhere(monkeypatch, caplog):
    monkeypatch.delenv("OPENAI_API_KEY")
    seen = {}
    with FakeServer(require_key=None) as srv:
        orig = srv.reply

        def reply(body):
            return orig(body)

        srv.reply = reply
        host = srv.url.removeprefix("http://")
        url = f"http://alice:s3cr3t-pw@{host}"
        caplog.set_level(logging.DEBUG)
        b = make_backend(f"openai:m@{url}")
        out = b.generate(CONVS[:1])
        seen["auth"] = srv.auth[0]
    assert out == ["echo: prompt 0"]
    import base64

    assert seen["auth"] == "Basic " + base64.b64encode(b"alice:s3cr3t-pw").decode()
    for text in (b.name, b.base_url, repr(b), json.dumps(vars(b), default=str), caplog.text):
        assert "s3cr3t-pw" not in text and "alice:" not in text
    assert b.name == f"openai:m@http://***@{host}"


def test_request_timeout_and_max_retries_defaults(monkeypatch):
    from brittle.models import openai_backend as ob

    monkeypatch.setattr(ob, "HTTP_DEFAULTS", dict(ob.HTTP_DEFAULTS))
    ob.set_http_defaults(timeout=0.2, max_retries=0)
    with FakeServer(hang_first=1.0) as srv:
        b = OpenAIBackend("m", srv.url, backoff=0.01)
        assert (b.timeout, b.max_retries) == (0.2, 0)
        t0 = time.perf_counter()
        with pytest.raises(BrittleError, match="giving up after 1 attempts"):
            b.generate(CONVS[:1])
        assert time.perf_counter() - t0 < 1.0
    with pytest.raises(BrittleError):
        ob.set_http_defaults(timeout=0)
    with pytest.raises(BrittleError):
        ob.set_http_defaults(max_retries=-1)
