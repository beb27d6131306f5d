"""API keys on the combined app: every route but /health needs a key once keys are configured."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from fncall.llms.scripted import Scripted
from fncall.server.app import create_app
from fncall.server.auth import API_KEYS_ENV, is_loopback, key_is_valid, parse_api_keys, warn_if_exposed

KEYS = ["key-one", "key-two"]


def _app(tmp_path: Path, api_keys: list[str] | None) -> Any:
    llm = Scripted(lambda request: "Hello there.")
    return create_app(
        "scripted:",
        llm=llm,
        llm_factory=lambda spec: llm,
        database_url=f"sqlite:///{tmp_path / 'fncall.db'}",
        api_keys=api_keys,
        serve_llm_api=True,
    )


@pytest.fixture
def base_url(serve_app: Any, tmp_path: Path) -> Iterator[str]:
    with serve_app(_app(tmp_path, KEYS)) as url:
        yield url


def test_health_is_open_and_everything_else_needs_a_key(base_url: str) -> None:
    with httpx.Client(base_url=base_url) as client:
        assert client.get("/health").status_code == 200
        for method, path in [
            ("GET", "/v1/agents"),
            ("POST", "/exchange"),
            ("GET", "/metrics"),
            ("GET", "/v1/models"),
            ("GET", "/no/such/route"),
        ]:
            refused = client.request(method, path)
            assert refused.status_code == 401, path
            assert refused.headers["www-authenticate"] == "Bearer"
            error = refused.json()["error"]
            assert (error["type"], error["code"]) == ("invalid_request_error", "invalid_api_key")
            assert "Authorization: Bearer" in error["message"]


def test_a_valid_key_opens_every_route(base_url: str) -> None:
    with httpx.Client(base_url=base_url, headers={"Authorization": "Bearer key-two"}) as client:
        assert client.get("/v1/agents").status_code == 200
        assert client.get("/metrics").status_code == 200
    with httpx.Client(base_url=base_url, headers={"x-api-key": "key-one"}) as client:
        assert client.get("/v1/agents").status_code == 200


def test_a_wrong_key_is_refused(base_url: str) -> None:
    for headers in (
        {"Authorization": "Bearer key-three"},
        {"Authorization": "Basic key-one"},
        {"x-api-key": ""},
    ):
        response = httpx.get(f"{base_url}/v1/agents", headers=headers)
        assert response.status_code == 401, headers
    wrong = httpx.get(f"{base_url}/v1/agents", headers={"Authorization": "Bearer key-onex"})
    assert wrong.json()["error"]["message"] == "The API key is not valid for this server."


def test_the_llm_api_on_the_same_app_takes_the_same_keys(base_url: str) -> None:
    good = openai.OpenAI(base_url=f"{base_url}/v1", api_key="key-one", max_retries=0)
    reply = good.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == "Hello there."
    bad = openai.OpenAI(base_url=f"{base_url}/v1", api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])


def test_keys_come_from_the_environment_when_not_given(
    serve_app: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(API_KEYS_ENV, " env-key , ,other ")
    with serve_app(_app(tmp_path, None)) as url:
        assert httpx.get(f"{url}/v1/agents").status_code == 401
        assert httpx.get(f"{url}/v1/agents", headers={"Authorization": "Bearer other"}).status_code == 200


def test_no_keys_means_open(serve_app: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(API_KEYS_ENV, raising=False)
    with serve_app(_app(tmp_path, None)) as url:
        assert httpx.get(f"{url}/v1/agents").status_code == 200


def test_key_helpers() -> None:
    assert parse_api_keys("a, b,,c ") == ["a", "b", "c"]
    assert parse_api_keys("") == []
    keys = [b"alpha", b"beta"]
    assert key_is_valid("beta", keys)
    assert not key_is_valid("bet", keys)
    assert not key_is_valid("alphabeta", keys)
    assert not key_is_valid("x", [])


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("example.com", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_binding_a_public_address_without_keys_warns_loudly(capsys: pytest.CaptureFixture[str]) -> None:
    assert warn_if_exposed("0.0.0.0", []) is True
    warning = capsys.readouterr().err
    assert "WITHOUT API KEYS" in warning
    assert API_KEYS_ENV in warning
    assert warn_if_exposed("0.0.0.0", ["k"]) is False
    assert warn_if_exposed("127.0.0.1", []) is False
    assert capsys.readouterr().err == ""
