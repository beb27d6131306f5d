"""The BentoML integration: settings, the dependency backends, both services in one process on a scripted
LLM server, and `bentoml serve` of the real thing on the embedded model (marked `model`).

Everything that needs BentoML skips when the `bento` extra is not installed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http import HTTPStatus
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from fncall.errors import ConfigError, InvalidRequestError
from fncall.integrations.bentoml.settings import (
    ASSISTANT_MODEL_NAME_ENV,
    LLM_SPEC_ENV,
    assistant_model_name,
    llm_spec_from_env,
)
from fncall.llms.openai_compat import OpenAICompatible
from fncall.llms.scripted import Scripted, ScriptedRequest, ScriptItem
from fncall.server.llm_api import create_llm_app
from fncall.types import Message, ToolCall

SEED_QUERY = "I want to exchange 42 US dollars to Canadian dollars"
SEED_CALL = ToolCall(
    id="call_seed",
    name="convert_currency",
    arguments={"from_currency": "USD", "to_currency": "CAD", "amount": 42},
)
REMOTE_SPEC = "openai:http://10.255.255.1:8000/v1#Qwen/Qwen2.5-7B-Instruct"  # never contacted


@pytest.fixture(scope="module")
def services() -> ModuleType:
    """`fncall.integrations.bentoml.service`, or a skip when BentoML is not installed."""
    pytest.importorskip("bentoml", reason="needs the `bento` extra: pip install 'fncall[bento]'")
    import fncall.integrations.bentoml.service as service_module

    return service_module


# ------------------------------------------------------------------------------------------- settings


def test_llm_spec_defaults_to_the_embedded_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LLM_SPEC_ENV, raising=False)
    assert llm_spec_from_env() == "local:"
    monkeypatch.setenv(LLM_SPEC_ENV, "  ")
    assert llm_spec_from_env() == "local:"
    monkeypatch.setenv(LLM_SPEC_ENV, f" {REMOTE_SPEC} ")
    assert llm_spec_from_env() == REMOTE_SPEC


def test_assistant_model_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ASSISTANT_MODEL_NAME_ENV, raising=False)
    assert assistant_model_name() == "fncall-llm"
    monkeypatch.setenv(ASSISTANT_MODEL_NAME_ENV, "qwen")
    assert assistant_model_name() == "qwen"


# --------------------------------------------------------------------------------- dependency backends


def test_dependency_addresses_become_openai_backends(services: ModuleType) -> None:
    from fncall.integrations.bentoml.dependency_llm import UnixSocketOpenAI, llm_for_dependency

    on_socket = llm_for_dependency("file:///tmp/bentoml-uds-x/140.sock", object(), model="m")
    assert isinstance(on_socket, UnixSocketOpenAI)
    assert (on_socket.socket_path, on_socket.model, on_socket.base_url) == (
        "/tmp/bentoml-uds-x/140.sock",
        "m",
        "unix:/tmp/bentoml-uds-x/140.sock",
    )
    on_tcp = llm_for_dependency("tcp://127.0.0.1:4321", object(), model="m")
    assert isinstance(on_tcp, OpenAICompatible)
    assert on_tcp.base_url == "http://127.0.0.1:4321/v1"
    on_https = llm_for_dependency("https://llm.example.com/", object(), model="m")
    assert on_https.base_url == "https://llm.example.com/v1"  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="ftp://host"):
        llm_for_dependency("ftp://host", object(), model="m")


def test_in_process_dependency_shares_its_backend(services: ModuleType) -> None:
    from fncall.integrations.bentoml.dependency_llm import llm_for_dependency

    class _InProcessLLMService:
        llm = Scripted(["hello"])

    resolved = _InProcessLLMService()
    assert llm_for_dependency(None, resolved, model="ignored") is resolved.llm
    with pytest.raises(ConfigError, match="no fncall backend"):
        llm_for_dependency(None, object(), model="ignored")


@contextlib.contextmanager
def _serve_on_unix_socket(app: Any) -> Iterator[str]:
    import uvicorn

    with tempfile.TemporaryDirectory(prefix="fncall-uds-") as directory:
        path = os.path.join(directory, "llm.sock")
        server = uvicorn.Server(uvicorn.Config(app, uds=path, log_level="warning", access_log=False))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start on the socket"
            time.sleep(0.01)
        try:
            yield path
        finally:
            server.should_exit = True
            thread.join(timeout=30)


async def test_unix_socket_backend_talks_to_an_llm_api(services: ModuleType) -> None:
    from fncall.integrations.bentoml.dependency_llm import UnixSocketOpenAI

    scripted = Scripted(["Hello over a socket."], model="scripted")
    with _serve_on_unix_socket(create_llm_app(scripted)) as path:
        backend = UnixSocketOpenAI(path, "anything", max_retries=0)
        try:
            completion = await backend.complete([Message.user("hi")])
        finally:
            await backend.aclose()
    assert completion.message.content == "Hello over a socket."
    assert completion.model == "scripted"
    assert scripted.requests[0].messages[-1].content == "hi"


# ------------------------------------------------------------------------------------------- services


def test_services_have_their_own_resources_and_the_dependency(services: ModuleType) -> None:
    assistant, llm_service = services.ExchangeAssistant, services.LLMService
    assert llm_service.name == "fncall-llm"
    assert llm_service.config["resources"] == {"cpu": "2", "memory": "2Gi"}
    assert assistant.name == "fncall-exchange-assistant"
    assert assistant.config["resources"] == {"cpu": "1", "memory": "1Gi"}
    assert assistant.dependencies["llm"].on is llm_service
    assert list(assistant.apis) == ["exchange"]
    assert [path for _, path, _ in llm_service.mount_apps] == ["/"]


async def test_llm_service_builds_on_a_remote_engine_without_network(
    services: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fncall.integrations.bentoml.llm_service import llm_api

    monkeypatch.setenv(LLM_SPEC_ENV, REMOTE_SPEC)
    instance = services.LLMService()
    assert isinstance(instance.llm, OpenAICompatible)
    assert (instance.llm.base_url, instance.llm.model) == (
        "http://10.255.255.1:8000/v1",
        "Qwen/Qwen2.5-7B-Instruct",
    )
    await instance.start_api()
    try:
        transport = httpx.ASGITransport(app=llm_api)
        async with httpx.AsyncClient(transport=transport, base_url="http://bento") as client:
            models = (await client.get("/v1/models")).json()
            missing = await client.get("/not-an-llm-route")
    finally:
        await instance.stop_api()
    assert [card["id"] for card in models["data"]] == ["Qwen/Qwen2.5-7B-Instruct"]
    assert missing.status_code == 404


def _respond_like_the_seed(request: ScriptedRequest) -> ScriptItem:
    """Call the tool when offered it and no result is in yet; then answer from what the messages hold."""
    if request.tools and not any(message.role == "tool" for message in request.messages):
        return SEED_CALL
    seen = " ".join(message.text for message in request.messages)
    return f"You get {'131.95' if '131.95' in seen else 'an unknown amount of'} Canadian dollars."


@contextlib.asynccontextmanager
async def _assistant_in_one_process(
    services: ModuleType, monkeypatch: pytest.MonkeyPatch, serve_app: Any, tmp_path: Path, llm: Scripted
) -> AsyncIterator[Any]:
    """BentoML's in-process resolution of `depends` (development mode): an ExchangeAssistant whose LLM
    service relays to `llm` served as an OpenAI-compatible server; started, and stopped after the block."""
    from _bentoml_sdk.service.dependency import cleanup

    monkeypatch.setenv("FNCALL_DATABASE_URL", f"sqlite:///{tmp_path / 'fncall.db'}")
    monkeypatch.setenv("FNCALL_API_KEYS", "")
    with serve_app(create_llm_app(llm)) as llm_url:
        monkeypatch.setenv(LLM_SPEC_ENV, f"openai:{llm_url}/v1#scripted")
        try:
            assistant = services.ExchangeAssistant()
            await assistant.start_api()
            try:
                yield assistant
            finally:
                await assistant.stop_api()
        finally:
            await cleanup()  # BentoML caches a resolved dependency on the class


async def test_assistant_and_llm_service_in_one_process(
    services: ModuleType, monkeypatch: pytest.MonkeyPatch, serve_app: Any, tmp_path: Path
) -> None:
    from fncall.integrations.bentoml.assistant_service import agent_api

    scripted = Scripted(_respond_like_the_seed, model="scripted")
    async with _assistant_in_one_process(services, monkeypatch, serve_app, tmp_path, scripted) as assistant:
        assert assistant.backend is assistant.llm.llm  # one backend, shared with the LLM service
        answer = await assistant.exchange(SEED_QUERY)
        transport = httpx.ASGITransport(app=agent_api)
        async with httpx.AsyncClient(transport=transport, base_url="http://bento") as client:
            agents = (await client.get("/v1/agents")).json()
    assert answer == "You get 131.95 Canadian dollars."
    assert [tool.name for tool in scripted.requests[0].tools] == ["convert_currency"]
    assert scripted.requests[0].messages[-1].content == SEED_QUERY
    assert {agent["agent_id"] for agent in agents["data"]} >= {"exchange", "stock"}


async def test_a_failed_run_is_a_bad_gateway(
    services: ModuleType, monkeypatch: pytest.MonkeyPatch, serve_app: Any, tmp_path: Path
) -> None:
    from bentoml.exceptions import BentoMLException

    def refuse(request: ScriptedRequest) -> ScriptItem:
        raise InvalidRequestError("the scripted model refuses")

    async with _assistant_in_one_process(
        services, monkeypatch, serve_app, tmp_path, Scripted(refuse)
    ) as assistant:
        with pytest.raises(BentoMLException) as raised:
            await assistant.exchange(SEED_QUERY)
    assert raised.value.error_code == HTTPStatus.BAD_GATEWAY
    assert "the scripted model refuses" in str(raised.value)


# -------------------------------------------------------------------------------- bentoml serve (model)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def _bentoml_serve(target: str, tmp_path: Path, deadline_s: float = 120.0) -> Iterator[str]:
    """`bentoml serve TARGET` on 127.0.0.1 in its own process group; yields its URL once /readyz is 200."""
    port = _free_port()
    env = {key: value for key, value in os.environ.items() if key != LLM_SPEC_ENV}
    env.update(
        FNCALL_DATABASE_URL=f"sqlite:///{tmp_path / 'fncall.db'}",
        FNCALL_API_KEYS="",
        BENTOML_HOME=str(tmp_path / "bentoml-home"),
        BENTOML_DO_NOT_TRACK="True",
    )
    log_path = tmp_path / "bentoml-serve.log"
    bentoml_cli = Path(sys.executable).parent / "bentoml"
    command = [str(bentoml_cli), "serve", target, "--host", "127.0.0.1", "--port", str(port)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + deadline_s
        while True:
            if process.poll() is not None:
                pytest.fail(f"bentoml serve exited with {process.returncode}:\n{log_path.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"bentoml serve was not ready within {deadline_s:g} s:\n{log_path.read_text()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                    break
            time.sleep(0.5)
        yield base_url
    except BaseException:
        sys.stderr.write(f"--- bentoml serve output ---\n{log_path.read_text()}\n")
        raise
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.mark.model
def test_bentoml_serve_answers_the_seed_query_on_the_embedded_model(
    services: ModuleType, tmp_path: Path
) -> None:
    import openai

    pytest.importorskip("llama_cpp", reason="needs the `local` extra")
    from fncall.engine.models import resolve

    try:
        resolve()
    except ConfigError as error:
        pytest.skip(f"{error} (run `make model`)")

    with _bentoml_serve("fncall.integrations.bentoml.service:ExchangeAssistant", tmp_path) as base_url:
        exchange = httpx.post(f"{base_url}/exchange", json={"query": SEED_QUERY}, timeout=240)
        empty = httpx.post(f"{base_url}/exchange", json={"query": ""}, timeout=30)
        client = openai.OpenAI(base_url=f"{base_url}/v1", api_key="not-needed", timeout=240, max_retries=0)
        models = client.models.list()
        completion = client.chat.completions.create(
            model="fncall-llm",
            messages=[{"role": "user", "content": SEED_QUERY}],
            tools=[
                {
                    "type": "function",
                    "function": {
                        "name": "convert_currency",
                        "description": "Convert an amount from one currency to another.",
                        "parameters": {
                            "type": "object",
                            "properties": {
                                "from_currency": {"type": "string"},
                                "to_currency": {"type": "string"},
                                "amount": {"type": "number"},
                            },
                            "required": ["from_currency", "to_currency", "amount"],
                        },
                    },
                }
            ],
            tool_choice={"type": "function", "function": {"name": "convert_currency"}},
        )

    assert exchange.status_code == 200, exchange.text
    assert exchange.headers["content-type"].startswith("text/plain")
    assert "131.95" in exchange.text
    assert empty.status_code == 400
    assert [model.id for model in models.data] == ["fncall-llm"]
    assert completion.model == "fncall-llm"
    assert completion.choices[0].finish_reason == "tool_calls"
    (call,) = completion.choices[0].message.tool_calls or []
    assert call.function.name == "convert_currency"
    arguments = json.loads(call.function.arguments)
    assert set(arguments) == {"from_currency", "to_currency", "amount"}
